import ArgumentParser
import Foundation
import Logging
import Synchronization
import WeirCore
import WeirEngine
import WeirMySQL
import WeirState

/// `weir drill JOB.yaml`: rehearse a restore end to end and prove it.
///
/// 1. Stop the job with a snapshot: run it (resuming from its latest snapshot,
///    if any) for `--run-for` seconds and stop it; or take `--snapshot`.
/// 2. Preview the restore (offsets against the broker, state mapping).
/// 3. Restore it and let it catch up to a bounded point: the broker's high
///    watermarks as they are now (`--until-offsets` semantics), timing it.
/// 4. Run the job again from its start offsets, into a shadow database on the
///    same server, up to the same offsets.
/// 5. Compare every sink table with its shadow, row by row.
struct DrillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Rehearse a restore end to end: stop with a snapshot, restore to a bounded point, replay the job from its start into a shadow database up to the same offsets, and compare every sink table row by row (exit 1 on any difference).")

    @Argument(help: "The job spec (YAML or JSON).") var spec: String
    @Option(help: "The job's snapshot directory (default: $WEIR_HOME/state/JOB).") var stateDir: String?
    @Option(help: "Drill from this snapshot instead of running the job and stopping it (an id, `latest`, or a snapshot directory).")
    var snapshot: String?
    @Option(help: "How long the job runs before it is stopped with a snapshot (seconds).") var runFor: Double = 3
    @Option(help: "The shadow database (default: the sink's database + `_shadow`).") var shadowDatabase: String?
    @Flag(help: "Print the report as JSON.") var json = false
    @Option(help: "Also write the report as JSON to this file (what `weir server` keeps of a drill).") var report: String?
    @Option(help: "Log level on stderr.") var logLevel = "warning"

    func run() throws {
        CLILogging.configure(prefix: { "[weir] " }, level: try CLILogging.level(logLevel))
        let plan: JobPlan
        do { plan = try compilePlan(spec) } catch { throw CLIError(describeSpecError(error, path: spec)) }
        let dir = stateDir.map { URL(fileURLWithPath: $0) } ?? defaultStateDir(job: plan.name)
        let store: SnapshotStore
        do { store = try SnapshotStore(directory: dir, retain: plan.spec.checkpoint.retain) } catch {
            throw CLIError("cannot use state directory \(dir.path): \(error)")
        }
        let result: DrillReport
        do { result = try drill(plan, store: store) } catch let e as WeirError { throw CLIError(e.description) }
        if let report {
            do { try Data(try prettyJSON(result).utf8).write(to: URL(fileURLWithPath: report)) } catch {
                throw CLIError("cannot write the report to \(report): \(error)")
            }
        }
        print(json ? try prettyJSON(result) : result.text)
        if !result.passed { throw ExitCode(1) }
    }

    func drill(_ plan: JobPlan, store: SnapshotStore) throws -> DrillReport {
        var options = RunOptions()
        options.logger = Logger(label: "weir.drill")

        // 1. The snapshot to restore.
        let snapshotID: String
        if let snapshot {
            snapshotID = try store.load(snapshot, verify: false).manifest.id
        } else {
            let resume = try store.latest().map { try store.restorePoint($0.id) }
            let runner = JobRunner(plan: plan, options: options, checkpointing: store.checkpointConfig(for: plan.spec, restoring: resume),
                                   restore: resume)
            let result = DrillRun(runner)
            Thread.sleep(forTimeInterval: max(0.5, runFor))
            guard case .stopped(let id) = runner.stopWithSnapshot() else {
                runner.cancel()
                _ = try? result.wait()
                throw WeirError(.internalError, subject: "drill of \(plan.name)", "the job could not be stopped with a snapshot")
            }
            _ = try result.wait()
            snapshotID = id
        }
        let restore = try store.restorePoint(snapshotID)

        // 2. What the restore will do, and a dry run of it.
        let verification = RestoreVerification(plan: plan, restore: restore, allowNonRestoredState: false, acceptRetentionLoss: false,
                                               knownRuns: store.knownRuns, covering: { store.covering(run: $0, epoch: $1) })
        guard verification.passed else {
            return DrillReport(job: plan.name, snapshot: snapshotID, verification: verification, bound: [:], startup: nil, tables: [],
                               problems: verification.problems)
        }

        // 3. The bound: every partition's high watermark now. Restore and catch up to it.
        var bound: [String: [String: Int64]] = [:]
        for n in plan.nodes {
            guard case .source(_, let src, _) = n.kind else { continue }
            for r in try src.ranges() { bound[n.id, default: [:]][r.name] = r.high ?? 0 }
        }
        var restoreOptions = options
        restoreOptions.stopOffsets = bound
        let startup = Mutex<StartupTimes?>(nil)
        restoreOptions.onEvent = { e in
            // Sent when the sources are positioned and again at the first record: keep the first record once seen.
            if case .startupTimes(let s, let p, let f) = e {
                startup.withLock { $0 = StartupTimes(stateLoadedMillis: s, sourcesPositionedMillis: p, firstRecordMillis: f ?? $0?.firstRecordMillis) }
            }
        }
        let restored = JobRunner(plan: plan, options: restoreOptions,
                                 checkpointing: store.checkpointConfig(for: plan.spec, restoring: restore), restore: restore)
        guard try restored.run() == .finished else {
            throw WeirError(.internalError, subject: "drill of \(plan.name)", "the restored run did not reach the bound")
        }

        // 4. The shadow run: from the job's start offsets, into shadow tables, to the same bound.
        var shadowSpec = plan.spec
        shadowSpec.name = plan.name + "-shadow"
        var pairs: [(live: MySQLSinkConnector, shadow: MySQLSinkConnector, node: String)] = []
        for (i, n) in shadowSpec.nodes.enumerated() {
            guard case .sink(let kind, let sink) = n.kind else { continue }
            guard let mysql = sink as? MySQLSinkConnector else {
                throw WeirError(.invalidSpec, subject: "sink '\(n.id)'", "a drill compares MySQL tables; this sink is \(kind)")
            }
            let shadow = try mysql.shadow(database: shadowDatabase ?? mysql.url.database + "_shadow")
            shadowSpec.nodes[i].kind = .sink(connector: kind, sink: shadow)
            pairs.append((mysql, shadow, n.id))
        }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("weir-drill-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let shadowStore = try SnapshotStore(directory: scratch, retain: 1)
        let shadowPlan = try JobPlan.compile(shadowSpec)
        var shadowOptions = options
        shadowOptions.stopOffsets = bound
        guard try JobRunner(plan: shadowPlan, options: shadowOptions,
                            checkpointing: shadowStore.checkpointConfig(for: shadowPlan.spec, restoring: nil)).run() == .finished else {
            throw WeirError(.internalError, subject: "drill of \(plan.name)", "the shadow run did not reach the bound")
        }

        // 5. Row by row.
        var tables: [TableComparison] = []
        var seen = Set<String>()
        for p in pairs where seen.insert(p.live.tableSubject).inserted {
            tables.append(TableComparison(table: p.live.tableSubject, live: try p.live.allRows(), shadow: try p.shadow.allRows()))
        }
        let problems = tables.filter { !$0.identical }.map {
            "\($0.table) differs from its shadow: \(rows($0.onlyLive.count)) only in the table, \(rows($0.onlyShadow.count)) only in the shadow"
        }
        return DrillReport(job: plan.name, snapshot: snapshotID, verification: verification, bound: bound,
                           startup: startup.withLock { $0 }, tables: tables, problems: problems)
    }
}

private func rows(_ n: Int) -> String { n == 1 ? "1 row" : "\(n) rows" }

/// A run on its own thread, so that the drill can stop it.
final class DrillRun: @unchecked Sendable {
    // @unchecked: `result` is written by the run's thread before `done` is signalled, read after.
    private var result: Result<RunOutcome, any Error>?
    private let done = DispatchSemaphore(value: 0)

    init(_ runner: JobRunner) {
        let t = Thread { [self] in
            result = Result { try runner.run() }
            done.signal()
        }
        t.stackSize = 8 << 20
        t.start()
    }

    func wait() throws -> RunOutcome {
        done.wait()
        return try result!.get()
    }
}

/// Measured startup of the restored run.
struct StartupTimes: Codable, Sendable {
    var stateLoadedMillis: Double
    var sourcesPositionedMillis: Double
    var firstRecordMillis: Double?
}

/// What `weir drill` found.
struct DrillReport: Codable {
    var job: String
    var snapshot: String
    var verification: RestoreVerification
    /// Where the restored run and the shadow run stopped: source node → split → offset.
    var bound: [String: [String: Int64]]
    var startup: StartupTimes?
    var tables: [TableComparison]
    var problems: [String]
    /// No problem: every table equals its shadow (stored, so the JSON says it too).
    var passed: Bool

    init(job: String, snapshot: String, verification: RestoreVerification, bound: [String: [String: Int64]],
         startup: StartupTimes?, tables: [TableComparison], problems: [String]) {
        self.job = job; self.snapshot = snapshot; self.verification = verification; self.bound = bound
        self.startup = startup; self.tables = tables; self.problems = problems; self.passed = problems.isEmpty
    }

    var text: String {
        var out = ["drill of \(job) from snapshot \(snapshot)", ""]
        if let p = verification.preview { out.append(p.text); out.append("") }
        if let s = startup {
            out.append(String(format: "time to restore (measured): state loaded %.0f ms, sources positioned %.0f ms, %@",
                              s.stateLoadedMillis, s.sourcesPositionedMillis,
                              s.firstRecordMillis.map { String(format: "first record %.0f ms", $0) } ?? "no record to replay"))
        }
        if let rate = verification.decodeBytesPerSecond {
            let bytes = verification.state.reduce(0) { $0 + $1.bytes }
            out.append(String(format: "state: %@ decoded by verify at %@/s", byteCount(bytes), byteCount(Int64(rate))))
        }
        if !bound.isEmpty {
            out.append("bound (restored and shadow runs stopped at): " + bound.keys.sorted().map { node in
                bound[node]!.keys.sorted(by: { SplitRange.order($0) < SplitRange.order($1) }).map { "\($0)=\(bound[node]![$0]!)" }.joined(separator: " ")
            }.joined(separator: "; "))
        }
        out.append("")
        for t in tables {
            out.append("\(t.table): \(t.rowsLive) rows, shadow \(t.rowsShadow) rows: " + (t.identical ? "identical" : "DIFFERENT"))
            let header = "    (" + t.columns.joined(separator: ", ") + ")"
            if !t.onlyLive.isEmpty {
                out.append("  only in the table (\(t.onlyLive.count)):" + "\n" + header)
                out += t.onlyLive.prefix(20).map { "    " + $0.map { $0 ?? "NULL" }.joined(separator: ", ") }
            }
            if !t.onlyShadow.isEmpty {
                out.append("  only in the shadow (\(t.onlyShadow.count)):" + "\n" + header)
                out += t.onlyShadow.prefix(20).map { "    " + $0.map { $0 ?? "NULL" }.joined(separator: ", ") }
            }
        }
        out.append("")
        out.append(passed ? "drill: PASSED" : "drill: FAILED:\n" + problems.map { "  - " + $0 }.joined(separator: "\n"))
        return out.joined(separator: "\n")
    }
}
