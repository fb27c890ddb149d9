import ArgumentParser
import Foundation
import WeirCore
import WeirState

/// `weir snapshot list|inspect|delete`: look after a job's snapshots
/// (checkpoints, savepoints, stop snapshots) in its state directory.
struct SnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "List, inspect, delete a job's snapshots; preview (diff) and dry-run (verify) a restore; list in-doubt sink transactions.",
        subcommands: [SnapshotList.self, SnapshotInspect.self, SnapshotDelete.self, SnapshotDiff.self, SnapshotVerify.self,
                      SnapshotTransactions.self])
}

/// Opens a state directory for tools: never creates it, never removes
/// anything a running job may be writing.
private func openStore(_ dir: String) throws -> SnapshotStore {
    do { return try SnapshotStore.openExisting(URL(fileURLWithPath: dir)) } catch let e as WeirError {
        throw CLIError(e.description)
    }
}

struct SnapshotList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the snapshots in a state directory, oldest first.")

    @Option(help: "The job's snapshot directory.") var stateDir: String
    @Flag(help: "Print the manifests as a JSON array (unusable directories are still reported on stderr).") var json = false

    func run() throws {
        // A job that never ran has no directory yet: that is an empty list, not an error.
        let url = URL(fileURLWithPath: stateDir)
        if !FileManager.default.fileExists(atPath: url.path) {
            print(json ? "[]" : "no snapshots: \(url.standardizedFileURL.path) does not exist (yet)")
            return
        }
        let store = try openStore(stateDir)
        let listing = store.list()
        if json {
            print(try prettyJSON(listing.snapshots))
        } else if listing.snapshots.isEmpty {
            print("no snapshots in \(store.directory.path)")
        } else {
            var rows = [["ID", "KIND", "CHECKPOINT", "CREATED", "SIZE", "RUN", "PARTITIONS"]]
            for m in listing.snapshots {
                rows.append([m.id, m.kind.rawValue, String(m.checkpointID), displayTime(m.createdAt),
                             byteCount(m.totalBytes), m.run, String(m.splitCount)])
            }
            print(table(rows, rightAligned: [2, 4, 6]))
        }
        // A parent of job directories given by mistake: point at the job directories instead.
        let fm = FileManager.default
        let jobDirs = listing.problems.map(\.directory).filter { dir in
            SnapshotManifest.parseID(URL(fileURLWithPath: dir).lastPathComponent) == nil &&
                ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).contains {
                    fm.fileExists(atPath: dir + "/" + $0 + "/" + SnapshotStore.manifestName)
                }
        }
        if listing.snapshots.isEmpty && !jobDirs.isEmpty {
            printErr("hint: \(store.directory.path) holds job directories, not snapshots; try --state-dir " +
                     jobDirs.joined(separator: " or --state-dir "))
            return
        }
        for p in listing.problems {
            printErr("warning: \(p.directory) is not a usable snapshot: \(p.problem)")
        }
    }
}

struct SnapshotInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show what a snapshot holds and verify its state files' checksums (exit 1 if one is corrupt).")

    @Argument(help: "A snapshot id (chk-17, sav-18, stop-19), `latest`, or the path of a snapshot directory.") var snapshot: String
    @Option(help: "The job's snapshot directory (not needed when a path is given).") var stateDir: String?
    @Flag(help: "Print the manifest as JSON (after verifying the checksums).") var json = false

    func run() throws {
        let loaded: LoadedSnapshot
        do {
            if let stateDir {
                loaded = try openStore(stateDir).load(snapshot, verify: false)
            } else {
                var isDir: ObjCBool = false
                var url = URL(fileURLWithPath: snapshot)
                if url.lastPathComponent == SnapshotStore.manifestName { url.deleteLastPathComponent() }
                guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else {
                    throw CLIError("\(snapshot) is not a snapshot directory; to name a snapshot by id, give --state-dir")
                }
                loaded = try LoadedSnapshot(directory: url, verify: false)
            }
        } catch let e as WeirError {
            throw CLIError(e.description)
        }
        if json {
            do { try loaded.verifyAll() } catch let e as WeirError { throw CLIError(e.description) }
            print(try prettyJSON(loaded.manifest))
            return
        }
        print(describe(loaded))
        do { try loaded.verifyAll() } catch let e as WeirError {
            throw CLIError("checksums FAILED: \(e)")
        }
        print("")
        print("checksums ok (\(loaded.manifest.state.count) state file\(loaded.manifest.state.count == 1 ? "" : "s") verified)")
    }

    func describe(_ s: LoadedSnapshot) -> String {
        let m = s.manifest
        var out: [String] = []
        out.append("snapshot \(m.id)   \(s.directory.path)")
        out.append(table([
            ["  job", m.job + (m.version.map { " (version \($0))" } ?? " (local run, no published version)")],
            ["  run", m.run],
            ["  kind", "\(m.kind.rawValue), checkpoint \(m.checkpointID)"],
            ["  created", displayTime(m.createdAt) + (m.createdAt.isEmpty ? "" : "  (\(m.createdAt))")],
            ["  parallelism", "\(m.parallelism), max parallelism \(m.maxParallelism) (key groups 0-\(m.maxParallelism - 1))"],
            ["  nodes", m.nodes.joined(separator: ", ")],
            ["  total size", byteCount(m.totalBytes) + (m.totalBytes >= 1024 ? " (\(m.totalBytes) bytes)" : "")],
        ], rightAligned: []))

        out.append("")
        if m.offsets.isEmpty {
            out.append("source offsets: none")
        } else {
            out.append("source offsets (next offset to read, \(m.splitCount) topic-partition\(m.splitCount == 1 ? "" : "s")):")
            var rows: [[String]] = []
            for node in m.offsets.keys.sorted() {
                let splits = m.offsets[node]!
                for (i, split) in splits.keys.sorted(by: naturalLess).enumerated() {
                    rows.append(["  " + (i == 0 ? node : ""), split, String(splits[split]!)])
                }
            }
            out.append(table(rows, rightAligned: [2]))
        }

        out.append("")
        if m.state.isEmpty {
            out.append("state files: none")
        } else {
            out.append("state files (\(m.state.count), \(byteCount(m.totalBytes))):")
            var rows = [["  NODE", "SUBTASK", "KEY GROUPS", "FILE", "SIZE", "CRC32"]]
            for f in m.state {
                rows.append(["  " + f.node, String(f.subtask),
                             f.keyGroups.map { "\($0.lowerBound)-\($0.upperBound)" } ?? "(not keyed)",
                             f.file, byteCount(f.bytes), f.crc32Hex])
            }
            out.append(table(rows, rightAligned: [1, 4]))
        }

        out.append("")
        if m.sinkTransactions.isEmpty {
            out.append("sink transactions: none")
        } else {
            out.append("sink transactions (prepared for epoch \(m.checkpointID); subtasks not listed wrote nothing):")
            var rows: [[String]] = []
            for node in m.sinkTransactions.keys.sorted() {
                let txs = m.sinkTransactions[node]!
                for (i, sub) in txs.keys.sorted().enumerated() {
                    rows.append(["  " + (i == 0 ? node : ""), "subtask \(sub)", txs[sub]!])
                }
            }
            out.append(table(rows, rightAligned: []))
        }

        if !m.layouts.isEmpty {
            out.append("")
            out.append("state layouts:")
            out.append(table(m.layouts.keys.sorted().map { ["  " + $0, m.layouts[$0]!] }, rightAligned: []))
        }
        return out.joined(separator: "\n")
    }
}

struct SnapshotDelete: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete snapshots (savepoints and stop snapshots are only ever deleted this way).")

    @Argument(help: "Snapshot ids (chk-17, sav-18, stop-19).") var ids: [String]
    @Option(help: "The job's snapshot directory.") var stateDir: String

    func validate() throws {
        if ids.isEmpty { throw ValidationError("name at least one snapshot id") }
    }

    func run() throws {
        let store = try openStore(stateDir)
        for id in ids {
            do { try store.delete(id) } catch let e as WeirError { throw CLIError(e.description) }
            print("deleted \(id)")
        }
    }
}

// MARK: - Formatting

/// Orders `events/10` after `events/2`.
private func naturalLess(_ a: String, _ b: String) -> Bool {
    func split(_ s: String) -> (String, Int?) {
        guard let slash = s.lastIndex(of: "/"), let n = Int(s[s.index(after: slash)...]) else { return (s, nil) }
        return (String(s[..<slash]), n)
    }
    let (ta, na) = split(a), (tb, nb) = split(b)
    if ta != tb { return ta < tb }
    if let na, let nb { return na < nb }
    return a < b
}

/// The shared column layout, as one string.
private func table(_ rows: [[String]], rightAligned: Set<Int>) -> String {
    alignedTable(rows, rightAligned: rightAligned).joined(separator: "\n")
}
