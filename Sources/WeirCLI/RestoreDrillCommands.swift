import ArgumentParser
import Foundation
import WeirCore
import WeirEngine
import WeirState

// `weir snapshot diff`: see what a restore will do before doing it.

/// The job and snapshot a restore-preview command works on (a local job spec).
struct RestoreTarget: ParsableArguments {
    @Argument(help: "A snapshot id (chk-17, sav-18, stop-19), `latest`, or the path of a snapshot directory.") var snapshot: String
    @Option(help: "The job spec (YAML or JSON) the snapshot would be restored into.") var spec: String
    @Option(help: "The job's snapshot directory (default: $WEIR_HOME/state/JOB).") var stateDir: String?

    /// The compiled spec, its store, and the snapshot as a restore point.
    func load(verify: Bool = false) throws -> (JobPlan, SnapshotStore, LoadedSnapshot) {
        let plan: JobPlan
        do { plan = try compilePlan(spec) } catch { throw CLIError(describeSpecError(error, path: spec)) }
        let dir = stateDir.map { URL(fileURLWithPath: $0) } ?? defaultStateDir(job: plan.name)
        do {
            let store = try SnapshotStore.openExisting(dir)
            return (plan, store, try store.load(snapshot, verify: verify))
        } catch let e as WeirError {
            throw CLIError(e.description)
        }
    }
}

struct SnapshotDiff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show what restoring a snapshot into a job would do: per topic-partition the snapshot's offset against the broker's range now, and where each node's state goes (exit 1 if the restore would be refused).")

    @OptionGroup var target: RestoreTarget
    @Flag(help: "Drop the state of nodes the job no longer has instead of refusing (as the run would).") var allowNonRestoredState = false
    @Flag(help: "Resume partitions whose snapshot offset retention already removed at their oldest held offset.") var acceptRetentionLoss = false
    @Flag(help: "Print the preview as JSON.") var json = false

    func run() throws {
        let (plan, _, loaded) = try target.load()
        let preview: RestorePreview
        do {
            preview = try RestorePreview(plan: plan, restore: try loaded.restorePoint(), allowNonRestoredState: allowNonRestoredState,
                                         acceptRetentionLoss: acceptRetentionLoss)
        } catch let e as WeirError {
            throw CLIError(e.description)
        }
        print(json ? try prettyJSON(preview) : preview.text)
        if !preview.problems.isEmpty { throw ExitCode(1) }
    }
}

extension RestorePreview {
    /// Plain text, as `weir snapshot diff` and `weir run --from-snapshot` print it.
    var text: String {
        var out: [String] = ["restore of snapshot \(snapshot) (checkpoint \(checkpointID) of run \(run))", ""]
        out.append("offsets (per topic-partition: the snapshot's, the broker's range now, what the restore reads):")
        func n(_ v: Int64?) -> String { v.map(String.init) ?? "-" }
        var rows = [["  NODE", "PARTITION", "SNAPSHOT", "LOW", "HIGH", "STARTS AT", "REPLAY", "LOST", "ACTION"]]
        for r in offsets.rows {
            rows.append(["  " + r.node, r.split, n(r.snapshotOffset), n(r.low), n(r.high), n(r.startsAt), n(r.replay),
                         String(r.lost), RestorePreview.words(r.action)])
        }
        out += alignedTable(rows, rightAligned: [2, 3, 4, 5, 6, 7])
        out.append("  records to replay: \(offsets.replay)" + (offsets.lost > 0 ? "; removed by retention: \(offsets.lost)" : ""))
        out.append("")
        out.append("state (per node):")
        var srows = [["  NODE", "OUTCOME", "DETAIL"]]
        for m in mapping.nodes {
            srows.append(["  " + m.node, m.outcome.rawValue, m.was.map { "was \($0), now \(m.now ?? "-")" } ?? (m.reason ?? "")])
        }
        out += alignedTable(srows)
        if let m = mapping.maxParallelismChange {
            out.append("  maxParallelism: the snapshot's keyed state has \(m.from) key groups, the job says \(m.to)")
        }
        out.append("")
        out.append(problems.isEmpty ? "the restore would go on"
                   : "the restore would be REFUSED:\n" + problems.map { "  - " + $0 }.joined(separator: "\n"))
        return out.joined(separator: "\n")
    }

    static func words(_ a: OffsetDiff.Action) -> String {
        switch a {
        case .resume: return "resume"
        case .newPartition: return "new partition: from earliest"
        case .newTopic: return "new topic: from startOffsets"
        case .dropped: return "dropped (no longer read)"
        case .retentionLoss: return "RECORDS LOST to retention"
        case .pastEnd: return "PAST THE END (topic re-created?)"
        }
    }
}

func prettyJSON<T: Encodable>(_ value: T) throws -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try e.encode(value), as: UTF8.self)
}
