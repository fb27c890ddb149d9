import ArgumentParser
import Foundation
import WeirControl
import WeirCore
import WeirEngine
import WeirState

// `weir snapshot diff`: see what a restore will do before doing it.

/// The job and snapshot a restore-preview command works on: a local job spec
/// and state directory, or a job of a `weir server` (`--job`).
struct RestoreTarget: ParsableArguments {
    @Argument(help: "A snapshot id (chk-17, sav-18, stop-19), `latest`, or (with --spec) the path of a snapshot directory.") var snapshot: String
    @Option(help: "The job spec (YAML or JSON) the snapshot would be restored into.") var spec: String?
    @Option(help: "The job's snapshot directory (default: $WEIR_HOME/state/JOB).") var stateDir: String?
    @Option(help: "Instead of --spec: a job of the weir server (its latest version, or --version).") var job: String?
    @Option(help: "With --job: the published version to restore into (default: the latest).") var version: Int?
    @Option(help: "With --job: the server (default: $WEIR_SERVER, else http://127.0.0.1:8080).") var server: String?

    func validate() throws {
        if (spec == nil) == (job == nil) { throw ValidationError("give either --spec JOB.yaml or --job NAME") }
    }

    /// With --job: the server's report (`diff` or `verify`) as it sent it, through the generated client.
    func fetch(_ report: String, allowNonRestoredState: Bool = false) async throws -> Data? {
        guard let job else { return nil }
        var global = JobGlobalOptions()
        global.server = server
        var data = Data()
        try await reportingJobFailures {
            let api = try global.api()
            if report == "diff" {
                _ = try await api.call {
                    try await $0.previewRestore(path: .init(name: job, id: snapshot),
                                                query: .init(version: version, allowNonRestoredState: allowNonRestoredState ? true : nil)).ok
                }
            } else {
                _ = try await api.call { try await $0.verifySnapshot(path: .init(name: job, id: snapshot), query: .init(version: version)).ok }
            }
            data = api.lastBody
        }
        return data
    }

    /// The compiled spec, its store, and the snapshot as a restore point.
    func load() throws -> (JobPlan, SnapshotStore, LoadedSnapshot) {
        guard let spec else { throw CLIError("--spec is needed here") }
        let plan: JobPlan
        do { plan = try compilePlan(spec) } catch { throw CLIError(describeSpecError(error, path: spec)) }
        let dir = stateDir.map { URL(fileURLWithPath: $0) } ?? defaultStateDir(job: plan.name)
        do {
            let store = try SnapshotStore.openExisting(dir)
            return (plan, store, try store.load(snapshot, verify: false))
        } catch let e as WeirError {
            throw CLIError(e.description)
        }
    }
}

struct SnapshotDiff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show what restoring a snapshot into a job would do: per topic-partition the snapshot's offset against the broker's range now, and where each node's state goes (exit 1 if the restore would be refused).")

    @OptionGroup var target: RestoreTarget
    @Flag(help: "Drop the state of nodes the job no longer has instead of refusing (as the run would).") var allowNonRestoredState = false
    @Flag(help: "Resume partitions whose snapshot offset retention already removed at their oldest held offset.") var acceptRetentionLoss = false
    @Flag(help: "Print the preview as JSON.") var json = false

    func validate() throws {
        if target.job != nil && acceptRetentionLoss {
            throw ValidationError("--accept-retention-loss is for a local preview (--spec); a server's preview refuses the loss, as its run does")
        }
    }

    func run() async throws {
        if let data = try await target.fetch("diff", allowNonRestoredState: allowNonRestoredState) {
            let preview = try JSONDecoder().decode(RestorePreview.self, from: data)
            print(json ? String(decoding: data, as: UTF8.self) : preview.text)
            if !preview.problems.isEmpty { throw ExitCode(1) }
            return
        }
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
        if let p = predicted {
            out.append(String(format: "time to restore (predicted): %@ of keyed state at %@/s (measured when the snapshot was taken): state loaded in ~%.0f ms, first record in ~%.0f ms",
                              byteCount(p.stateBytes), byteCount(Int64(p.decodeBytesPerSecond)), p.stateLoadedMillis, p.firstRecordMillis))
            out.append("")
        }
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

// `weir snapshot verify` and `weir snapshot transactions`: prove a snapshot restorable, list in-doubt transactions.

extension SnapshotStore {
    /// Run ids this store has snapshots of.
    var knownRuns: Set<String> { Set(list().snapshots.map(\.run)) }

    /// The first snapshot of `run` whose checkpoint covers `epoch` (the snapshot rule of recovery).
    func covering(run: String, epoch: Int64) -> String? {
        list().snapshots.filter { $0.run == run && $0.checkpointID >= epoch }.min { $0.checkpointID < $1.checkpointID }?.id
    }
}

struct SnapshotVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Dry-run a restore: checksums, every node's state decoded, its mapping onto the job, offsets against the broker, the sinks' in-doubt transactions (exit 0 when a restore would go on, 1 otherwise).")

    @OptionGroup var target: RestoreTarget
    @Flag(help: "As the run would: drop the state of nodes the job no longer has.") var allowNonRestoredState = false
    @Flag(help: "As the run would: accept records removed by retention as lost.") var acceptRetentionLoss = false
    @Flag(help: "Print the report as JSON.") var json = false

    func validate() throws {
        if target.job != nil && (allowNonRestoredState || acceptRetentionLoss) {
            throw ValidationError("--allow-non-restored-state and --accept-retention-loss are for a local verify (--spec); a server's verify checks the restore as it would run by default")
        }
    }

    func run() async throws {
        if let data = try await target.fetch("verify") {
            let passed = JSONValue.parse(data)?["passed"]?.bool ?? false
            if json { print(String(decoding: data, as: UTF8.self)) }
            else if let v = try? JSONDecoder().decode(RestoreVerification.self, from: data) { print(v.text(snapshot: target.snapshot)) }
            else { print("snapshot \(target.snapshot): " + String(decoding: data, as: UTF8.self)) }
            if !passed { throw ExitCode(1) }
            return
        }
        let (plan, store, _) = try target.load()
        let loaded: LoadedSnapshot, restore: RestorePoint
        do {
            loaded = try store.load(target.snapshot, verify: true)
            restore = try loaded.restorePoint()
        } catch let e as WeirError {
            if json { print(try prettyJSON(["passed": "false", "problem": "checksums failed: \(e)"])) }
            else { print("snapshot \(target.snapshot): checksums FAILED: \(e)") }
            throw ExitCode(1)
        }
        let v = RestoreVerification(plan: plan, restore: restore, allowNonRestoredState: allowNonRestoredState,
                                    acceptRetentionLoss: acceptRetentionLoss, knownRuns: store.knownRuns,
                                    covering: { store.covering(run: $0, epoch: $1) })
        if json {
            print(try prettyJSON(v))
        } else {
            print("checksums ok (\(loaded.manifest.state.count) state files, \(byteCount(loaded.manifest.totalBytes)))\n")
            print(v.text(snapshot: loaded.manifest.id))
        }
        if !v.passed { throw ExitCode(1) }
    }
}

extension RestoreVerification {
    /// The report as text (after the checksums line).
    func text(snapshot: String) -> String {
        var out = ["state decoded with the job's operators:"]
        var rows = [["  NODE", "FILES", "SIZE", "DECODE", "RESULT"]]
        for s in state {
            rows.append(["  " + s.node, String(s.files), byteCount(s.bytes), String(format: "%.1f ms", s.decodeMillis), s.error ?? "ok"])
        }
        out += state.isEmpty ? ["  (no keyed state)"] : alignedTable(rows, rightAligned: [1, 2, 3])
        out.append("")
        if let p = preview { out.append(p.text) }
        out.append("")
        out += TransactionLedger.text(transactions)
        out.append("")
        out.append(passed ? "verify: PASSED: a restore of \(snapshot) would go on"
                   : "verify: FAILED:\n" + problems.map { "  - " + $0 }.joined(separator: "\n"))
        return out.joined(separator: "\n")
    }
}

struct SnapshotTransactions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transactions",
        abstract: "List the job's prepared sink transactions (XA RECOVER) with what the next run or restore will do with each: commit when a completed snapshot covers its epoch, roll back otherwise.")

    @Option(help: "The job spec (YAML or JSON).") var spec: String?
    @Option(help: "The job's snapshot directory (default: $WEIR_HOME/state/JOB).") var stateDir: String?
    @Option(help: "Instead of --spec: a job of the weir server (its latest version).") var job: String?
    @Option(help: "With --job: the server (default: $WEIR_SERVER, else http://127.0.0.1:8080).") var server: String?
    @Flag(help: "Resolve them now by that rule, as the next run would (commit or roll back each; with --spec only).") var resolve = false
    @Flag(help: "Print the ledger as JSON.") var json = false

    func validate() throws {
        if (spec == nil) == (job == nil) { throw ValidationError("give either --spec JOB.yaml or --job NAME") }
        if resolve && job != nil { throw ValidationError("--resolve works on a local job (--spec); a server's job resolves them when it next runs") }
    }

    func run() async throws {
        if let job {
            var global = JobGlobalOptions()
            global.server = server
            var data = Data()
            try await reportingJobFailures {
                let api = try global.api()
                _ = try await api.call { try await $0.listTransactions(path: .init(name: job)).ok }
                data = api.lastBody
            }
            print(json ? String(decoding: data, as: UTF8.self)
                  : TransactionLedger.text(try JSONDecoder().decode(TransactionLedger.self, from: data)).joined(separator: "\n"))
            return
        }
        guard let spec else { return }
        let plan: JobPlan
        do { plan = try compilePlan(spec) } catch { throw CLIError(describeSpecError(error, path: spec)) }
        let dir = stateDir.map { URL(fileURLWithPath: $0) } ?? defaultStateDir(job: plan.name)
        let store = FileManager.default.fileExists(atPath: dir.path) ? try? SnapshotStore.openExisting(dir) : nil
        let ledger: TransactionLedger
        do {
            ledger = try TransactionLedger(plan: plan, lineage: nil, knownRuns: store?.knownRuns ?? [],
                                           covering: { store?.covering(run: $0, epoch: $1) })
        } catch let e as WeirError {
            throw CLIError(e.description)
        }
        if json { print(try prettyJSON(ledger)) } else { print(TransactionLedger.text(ledger).joined(separator: "\n")) }
        guard resolve, !ledger.entries.isEmpty else { return }
        let commit = Set(ledger.entries.filter { $0.decision == "commit" }.map(\.id))
        for n in plan.nodes {
            guard case .sink(_, let sink) = n.kind, let tx = sink as? any TransactionalSinkConnector else { continue }
            do {
                let (c, r) = try tx.recover(job: plan.name, node: nil, shouldCommit: { commit.contains($0.id) })
                for t in c { printErr("committed \(t.id)") }
                for t in r { printErr("rolled back \(t.id)") }
            } catch let e as WeirError {
                throw CLIError(e.description)
            }
        }
    }
}

extension TransactionLedger {
    /// The ledger as text lines.
    static func text(_ ledger: TransactionLedger?) -> [String] {
        guard let ledger else { return ["sink transactions: not listed"] }
        if ledger.entries.isEmpty { return ["sink transactions: none in doubt"] }
        var rows = [["  XID", "NODE", "SUBTASK", "RUN", "EPOCH", "COVERED BY", "DECISION"]]
        for e in ledger.entries {
            rows.append(["  " + e.id, e.node, String(e.subtask), e.run + (e.runKnown ? "" : " (no snapshot of this run)"),
                         String(e.epoch), e.snapshot ?? "-", e.decision])
        }
        var out = ["sink transactions in doubt (\(ledger.entries.count)):"] + alignedTable(rows, rightAligned: [2, 4])
        if ledger.entries.contains(where: { !$0.runKnown }) {
            out.append("  transactions of runs this state directory has no snapshot of are rolled back; to resolve them now: weir snapshot transactions --spec JOB.yaml --resolve")
        }
        return out
    }
}
