import ArgumentParser
import Foundation
import WeirCore
import WeirExport
import WeirState

/// `weir export JOB.yaml --target flink-sql`: the job as one Flink SQL script,
/// optionally starting at a snapshot's offsets and bounded at end offsets.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a job to a Flink SQL script that gives the same results on an Apache Flink cluster.",
        discussion: """
        Whatever has no faithful Flink equivalent is refused: the command exits 1 with \
        `error: NODE: reason` and a hint, and writes no script. With --from-snapshot the Kafka \
        sources start at the snapshot's offsets (state, open windows and running aggregates stay \
        in Weir; see the script's header). The script holds the sink's MySQL password if the \
        spec's URL has one: -o writes it readable by its owner only.
        """)

    @Argument(help: "The job spec (YAML or JSON).") var spec: String

    @Option(help: "What to export to (only: flink-sql).") var target: String

    @Option(help: "Start the sources at this snapshot's offsets: an id in the state directory (chk-12, stop-15), 'latest', or a snapshot directory.")
    var fromSnapshot: String?

    @Option(help: "Directory of the job's snapshots (default: $WEIR_HOME/state/JOB, WEIR_HOME defaulting to ~/.weir).")
    var stateDir: String?

    @Option(help: "A bounded run: stop each partition before these offsets, e.g. events/0=1200,events/1=900 (partitions not listed are not read).")
    var endOffsets: String?

    @Option(name: [.short, .customLong("output")], help: "Write the script to this file instead of standard output.")
    var output: String?

    func run() throws {
        guard target == "flink-sql" else {
            throw CLIError("unknown target '\(target)' (supported: flink-sql)")
        }
        let plan = try loadPlan(spec)
        var options = FlinkExportOptions()
        if let endOffsets { options.endOffsets = try ExportCommand.parseOffsets(endOffsets) }
        if let fromSnapshot {
            let manifest = try snapshotManifest(fromSnapshot, job: plan.name)
            guard manifest.job == plan.name else {
                throw CLIError("snapshot \(manifest.id) belongs to job '\(manifest.job)', not '\(plan.name)'")
            }
            options.startOffsets = manifest.offsets
            options.note = "snapshot \(manifest.id) (\(manifest.kind.rawValue), taken \(manifest.createdAt)"
                + (manifest.version.map { ", version \($0)" } ?? "") + ") of job '\(manifest.job)'"
        }
        let script: String
        do { script = try FlinkSQLExporter.script(for: plan, options: options) } catch {
            printErr("error: \(error)")
            if let hint = error.hint { printErr("hint: \(hint)") }
            throw ExitCode(1)
        }
        guard let output else {
            print(script, terminator: "")
            return
        }
        // The script may hold the sink's password: readable by its owner only.
        let url = URL(fileURLWithPath: output)
        do {
            if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
            guard FileManager.default.createFile(atPath: url.path, contents: Data(script.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw CLIError("cannot write \(output)")
            }
        } catch let e as CLIError { throw e } catch {
            throw CLIError("cannot write \(output): \(error.localizedDescription)")
        }
        printErr("[weir] wrote the Flink SQL script of job '\(plan.name)' to \(output)")
    }

    /// The snapshot's manifest, read without checking its state files' checksums:
    /// only the offsets go into the script (a readable manifest is a complete snapshot).
    func snapshotManifest(_ id: String, job: String) throws -> SnapshotManifest {
        var isDir: ObjCBool = false
        var url = URL(fileURLWithPath: id)
        if url.lastPathComponent == SnapshotStore.manifestName { url.deleteLastPathComponent() }
        do {
            if stateDir == nil, id.contains("/"), FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue {
                return try LoadedSnapshot(directory: url, verify: false).manifest
            }
            let dir = stateDir.map { URL(fileURLWithPath: $0) } ?? defaultStateDir(job: job)
            let store = try SnapshotStore.openExisting(dir)
            if id == "latest" && store.latest() == nil {
                throw CLIError("state directory \(dir.path) has no snapshots (export without --from-snapshot, or give --state-dir)")
            }
            return try store.load(id, verify: false).manifest
        } catch let e as WeirError {
            throw CLIError("cannot read snapshot \(id): \(e)")
        }
    }

    /// `events/0=1200,events/1=900` → ["events/0": 1200, "events/1": 900].
    static func parseOffsets(_ text: String) throws -> [String: Int64] {
        var out: [String: Int64] = [:]
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let slash = parts[0].lastIndex(of: "/"), let p = Int32(parts[0][parts[0].index(after: slash)...]), p >= 0,
                  slash > parts[0].startIndex, let off = Int64(parts[1]), off >= 0 else {
                throw CLIError("--end-offsets: '\(item)' is not TOPIC/PARTITION=OFFSET (e.g. events/0=1200)")
            }
            guard out[parts[0]] == nil else { throw CLIError("--end-offsets: \(parts[0]) is given twice") }
            out[parts[0]] = off
        }
        guard !out.isEmpty else { throw CLIError("--end-offsets: no offsets given (e.g. events/0=1200,events/1=900)") }
        return out
    }
}
