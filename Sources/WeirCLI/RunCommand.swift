import ArgumentParser
import Foundation
import Logging
import Synchronization
import WeirControl
import WeirCore
import WeirState
import WeirEngine
import WeirKafka

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a job in the foreground.",
        discussion: """
        SIGTERM or the first Ctrl-C stops the job with a snapshot (sources stop at a barrier, sinks commit, \
        the snapshot id and offsets are printed, exit 0); a second Ctrl-C, or --cancel-on-signal, cancels \
        without a snapshot (uncommitted output rolled back, exit 130). SIGUSR1 takes a savepoint while the \
        run goes on; SIGUSR2 cancels without a snapshot.
        """)

    @Argument(help: "The job spec (YAML or JSON).") var spec: String

    @Option(help: "End the run once every assigned partition has been at its end for this many seconds; open windows then fire, a final snapshot is taken and all output is committed before exit.")
    var untilIdle: Double?

    @Option(help: "A bounded run: stop each partition at the offsets of this snapshot (an id in the state directory, 'latest', or a snapshot directory) or of a JSON file ({\"node\": {\"topic/partition\": offset}} or {\"topic/partition\": offset}); partitions not listed are not read. Open windows then fire, a final snapshot is taken and all output is committed, as with --until-idle.")
    var untilOffsets: String?

    @Option(help: "Directory of this job's snapshots (default: $WEIR_HOME/state/JOB, WEIR_HOME defaulting to ~/.weir).")
    var stateDir: String?

    @Option(help: "Restore from this snapshot: an id in the state directory (e.g. chk-12, stop-15), 'latest', or a path to a snapshot directory.")
    var fromSnapshot: String?

    @Flag(help: "When restoring, drop the state of nodes the job no longer has instead of refusing.")
    var allowNonRestoredState = false

    @Flag(help: "When restoring, resume partitions whose snapshot offset retention already removed at their oldest held offset (the removed records are lost) instead of refusing.")
    var acceptRetentionLoss = false

    @Flag(help: "Cancel without a snapshot on SIGTERM/Ctrl-C.")
    var cancelOnSignal = false

    @Flag(help: "Plain log lines instead of the live progress line, even on a terminal.")
    var plain = false

    @Option(help: "Write run statistics as JSON to this file when the run ends (used by the benchmarks).")
    var stats: String?

    @Option(help: "Append lifecycle events (running, snapshots, metrics, the outcome) as JSON lines to this file.")
    var events: String?

    @Option(help: "The published job version being run, recorded in every snapshot's manifest (set by the control plane).")
    var jobVersion: Int?

    @Option(help: "Log level on stderr: trace, debug (adds every periodic checkpoint), info, notice, warning, error, critical.")
    var logLevel = "info"

    func run() throws {
        CLILogging.configure(prefix: { "[weir] " }, level: try CLILogging.level(logLevel))
        let eventLog = try EventLog(path: events)
        eventLog.emit(.starting(.init(pid: Int(getpid()))))
        do { try runJob(eventLog) } catch {
            if !(error is ExitCode) { eventLog.emitFailure(error) }
            throw error
        }
    }

    func runJob(_ eventLog: EventLog) throws {
        do { try KafkaLibrary.checkVersion() } catch let e as WeirError { eventLog.emitFailure(e); throw CLIError("\(e)") }
        let plan: JobPlan
        do { plan = try compilePlan(spec) } catch {
            eventLog.emitFailure(error)
            throw CLIError(describeSpecError(error, path: spec))
        }
        var options = RunOptions()
        options.untilIdleMillis = untilIdle.map { Int64(min(max($0, 0), 86_400 * 365) * 1000) }
        options.jobVersion = jobVersion
        options.logger = Logger(label: "weir.run")

        let dir = stateDir.map { URL(fileURLWithPath: $0) } ?? defaultStateDir(job: plan.name)
        let store: SnapshotStore
        do { store = try SnapshotStore(directory: dir, retain: plan.spec.checkpoint.retain, logger: options.logger) } catch {
            eventLog.emitFailure(error)
            throw CLIError("cannot use state directory \(dir.path): \(error)")
        }
        let restoring = fromSnapshot != nil
        options.onEvent = { [store] e in
            eventLog.emit(e, store: store)
            if restoring, case .startupTimes(let state, let positioned, let first) = e {
                printErr(String(format: "[weir] time to restore: state loaded %.0f ms, sources positioned %.0f ms, %@ after the run began",
                                state, positioned, first.map { String(format: "first record %.0f ms", $0) } ?? "no record yet"))
            }
        }
        if let untilOffsets { options.stopOffsets = try stopOffsets(untilOffsets, plan: plan, store: store) }
        var restore: RestorePoint?
        if let fromSnapshot {
            if fromSnapshot == "latest" && store.latest() == nil {
                throw CLIError("state directory \(dir.path) has no snapshots to restore (run without --from-snapshot)")
            }
            // The preview's broker round trips go on while the state files are read and checksummed.
            let ranges = Mutex<Result<[String: [SplitRange]], any Error>?>(nil)
            let asked = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                let r = Result { try RestorePreview.sourceRanges(plan) }
                ranges.withLock { $0 = r }
                asked.signal()
            }
            do { restore = try store.restorePoint(fromSnapshot) } catch let e as WeirError {
                eventLog.emitFailure(e)
                throw CLIError("cannot restore \(fromSnapshot): \(e)")
            }
            asked.wait()
            if let r = restore { restore = try preview(r, ranges: ranges.withLock { $0 }!, plan: plan, eventLog: eventLog) }
        }
        let supervisor = JobSupervisor(
            plan: plan, options: options,
            checkpointing: { [jobVersion] in store.checkpointConfig(for: plan.spec, restoring: $0, version: jobVersion) },
            restore: restore, allowNonRestoredState: allowNonRestoredState,
            latestRestorePoint: { try store.latest().map { try store.restorePoint($0.id) } })

        let signals = SignalHandling(supervisor: supervisor, cancelOnly: cancelOnSignal, eventLog: eventLog)
        defer { signals.cancel() }

        let result = Mutex<Result<RunOutcome, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            let r = Result { try supervisor.run() }
            result.withLock { $0 = r }
            done.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()

        let started = Date()
        let display = ProgressDisplay(metrics: { supervisor.metrics }, live: !plain && isatty(STDERR_FILENO) == 1)
        var ticks = 0
        while done.wait(timeout: .now() + .milliseconds(1000)) == .timedOut {
            display.tick()
            ticks += 1
            if ticks % 2 == 0, eventLog.enabled, let m = supervisor.metrics { eventLog.emitMetrics(m, restarts: supervisor.restarts.load, backpressureNanos: supervisor.backpressureNanos) }
        }
        display.finish()
        let outcome = result.withLock { $0 }!
        let secs = Date().timeIntervalSince(started)
        if let stats, let m = supervisor.metrics {
            let idle = Double(m.idleWaitNanos.load(ordering: .relaxed)) / 1e9
            let ck = m.lastCheckpointFigures
            let figures: [String: Any] = [
                "recordsIn": m.recordsIn.load, "recordsOut": m.recordsOut.load, "decodeErrors": m.decodeErrors.load,
                "lateRecords": m.lateRecords.load, "wallSeconds": secs, "idleWaitSeconds": idle,
                "processingSeconds": max(0.001, secs - idle), "checkpoints": m.checkpointsCompleted.load,
                "lastCheckpointMillis": ck.durationMillis, "lastCheckpointBytes": ck.bytes,
                "restarts": supervisor.restarts.load, "rejectedRecords": m.rejectedRecords.load,
                "nodes": try JSONSerialization.jsonObject(with: JSONEncoder().encode(EventLog.nodeFigures(m)))]
            try JSONSerialization.data(withJSONObject: figures, options: [.sortedKeys])
                .write(to: URL(fileURLWithPath: stats), options: .atomic)
        }
        let m = supervisor.metrics
        if eventLog.enabled, let m { eventLog.emitMetrics(m, restarts: supervisor.restarts.load, backpressureNanos: supervisor.backpressureNanos) }
        switch outcome {
        case .success(.finished): eventLog.emit(.finished)
        case .success(.stopped(let id)): eventLog.emit(.stopped(.init(snapshot: id)))
        case .success(.cancelled): eventLog.emit(.cancelled)
        case .failure(let e): eventLog.emitFailure(e)
        }
        switch outcome {
        case .success(.finished):
            printErr(String(format: "[weir] finished: %d records in, %d out, %d rejected, %d late dropped in %.1f s",
                            m?.recordsIn.load ?? 0, m?.recordsOut.load ?? 0, m?.rejectedRecords.load ?? 0, m?.lateRecords.load ?? 0, secs))
        case .success(.stopped(let id)):
            print("stopped with snapshot \(id)")
            if let manifest = try? store.load(id, verify: false).manifest {
                print("  state directory: \(dir.path)")
                for (node, splits) in manifest.offsets.sorted(by: { $0.key < $1.key }) {
                    print("  offsets of \(node):")
                    for (split, off) in splits.sorted(by: { $0.key.localizedStandardCompare($1.key) == .orderedAscending }) {
                        print("    \(split): \(off)")
                    }
                }
            }
        case .success(.cancelled):
            printErr("[weir] cancelled after \(m?.recordsIn.load ?? 0) records; uncommitted output was rolled back")
            throw ExitCode(130)
        case .failure(let e):
            throw CLIError("job '\(plan.name)' failed: \(e)")
        }
    }
}

extension RunCommand {
    /// The offsets a bounded run stops at, by source node: from a JSON file, or
    /// from a snapshot's manifest.
    func stopOffsets(_ text: String, plan: JobPlan, store: SnapshotStore) throws -> [String: [String: Int64]] {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: text, isDirectory: &isDir), !isDir.boolValue, !text.hasSuffix("manifest.json") {
            let data = try Data(contentsOf: URL(fileURLWithPath: text))
            let sources = plan.nodes.filter(\.isSource).map(\.id)
            if let byNode = try? JSONDecoder().decode([String: [String: Int64]].self, from: data) {
                if let unknown = byNode.keys.first(where: { !sources.contains($0) }) {
                    throw CLIError("--until-offsets \(text): '\(unknown)' is not a source of the job (sources: \(sources.joined(separator: ", ")))")
                }
                return byNode
            }
            guard let flat = try? JSONDecoder().decode([String: Int64].self, from: data) else {
                throw CLIError("--until-offsets \(text): expected {\"node\": {\"topic/partition\": offset}} or {\"topic/partition\": offset}")
            }
            return Dictionary(uniqueKeysWithValues: sources.map { ($0, flat) })
        }
        do { return try store.load(text, verify: false).manifest.offsets } catch let e as WeirError {
            throw CLIError("--until-offsets \(text): neither a JSON file nor a snapshot: \(e)")
        }
    }

    /// Prints what the restore will do before it starts (and records it in the
    /// events file). Refuses a restore that would skip records removed by
    /// retention, unless the loss is accepted: then those partitions resume at
    /// their oldest held offset. A preview the broker does not answer is only
    /// a warning: the run itself then reports what is wrong.
    func preview(_ r: RestorePoint, ranges: Result<[String: [SplitRange]], any Error>, plan: JobPlan,
                 eventLog: EventLog) throws -> RestorePoint {
        let p: RestorePreview
        do {
            p = RestorePreview(plan: plan, restore: r, ranges: try ranges.get(), allowNonRestoredState: allowNonRestoredState,
                               acceptRetentionLoss: acceptRetentionLoss)
        } catch {
            printErr("[weir] warning: no restore preview (\(error))")
            return r
        }
        printErr(p.text.split(separator: "\n", omittingEmptySubsequences: false).map { "[weir] " + $0 }.joined(separator: "\n"))
        if eventLog.enabled, let data = try? JSONEncoder().encode(p), let preview = JSONValue.parse(data) {
            eventLog.emit(.restorePreview(.init(preview: preview)))
        }
        if let e = p.offsets.refusal(snapshot: r.snapshotID, acceptRetentionLoss: acceptRetentionLoss) {
            eventLog.emitFailure(e)
            throw CLIError("cannot restore \(r.snapshotID): \(e)")
        }
        var adjusted = r
        for row in p.offsets.rows where row.action == .retentionLoss {
            adjusted.offsets[row.node]?[row.split] = row.low
            printErr("[weir] warning: \(row.split) resumes at \(row.low!): \(row.lost) records removed by retention are lost (--accept-retention-loss)")
        }
        return adjusted
    }
}

func defaultStateDir(job: String) -> URL {
    let home = ProcessInfo.processInfo.environment["WEIR_HOME"].map { URL(fileURLWithPath: $0) }
        ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".weir")
    return home.appendingPathComponent("state").appendingPathComponent(job)
}

/// SIGTERM / first Ctrl-C: stop with a snapshot; second Ctrl-C (or
/// --cancel-on-signal): cancel. A failed stop leaves the run going and says why.
final class SignalHandling: @unchecked Sendable {
    // @unchecked: `sources` (Dispatch sources are not Sendable, so no Mutex) is set in
    // init and read in cancel(), both on the command's thread.
    private var sources: [any DispatchSourceSignal] = []
    private let signalsSeen = Atomic<Int>(0)

    init(supervisor: JobSupervisor, cancelOnly: Bool, eventLog: EventLog) {
        var list: [any DispatchSourceSignal] = []
        // SIGUSR1: take a savepoint while the run goes on.
        signal(SIGUSR1, SIG_IGN)
        let usr1 = DispatchSource.makeSignalSource(signal: SIGUSR1, queue: .global())
        usr1.setEventHandler {
            DispatchQueue.global().async {
                switch supervisor.savepoint() {
                case .stopped(let id): printErr("[weir] savepoint \(id) taken")
                case .failed(let reason):
                    printErr("[weir] savepoint FAILED: \(reason)")
                    eventLog.emit(.savepointFailed(.init(reason: reason)))
                }
            }
        }
        usr1.resume()
        list.append(usr1)
        // SIGUSR2: cancel without a snapshot (what a supervisor sends for "stop without snapshot").
        signal(SIGUSR2, SIG_IGN)
        let usr2 = DispatchSource.makeSignalSource(signal: SIGUSR2, queue: .global())
        usr2.setEventHandler {
            printErr("[weir] cancel requested: stopping without a snapshot (uncommitted output is rolled back)")
            supervisor.cancel()
        }
        usr2.resume()
        list.append(usr2)
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [self] in
                let n = signalsSeen.add(1, ordering: .relaxed).newValue
                let name = sig == SIGINT ? "interrupted" : "terminated"
                if cancelOnly || n > 1 {
                    printErr("\n[weir] \(name): cancelling without a snapshot (uncommitted output is rolled back)")
                    supervisor.cancel()
                    return
                }
                printErr("\n[weir] \(name): stopping with a snapshot (Ctrl-C again to cancel without one)")
                DispatchQueue.global().async {
                    if case .failed(let reason) = supervisor.stopWithSnapshot() {
                        printErr("[weir] stop with snapshot FAILED, the job keeps running: \(reason) (signal again to cancel without a snapshot)")
                        eventLog.emit(.stopFailed(.init(reason: reason)))
                    }
                }
            }
            s.resume()
            list.append(s)
        }
        sources = list
    }

    func cancel() { sources.forEach { $0.cancel() } }
}

/// The live one-line progress display (on a terminal) or periodic log lines.
final class ProgressDisplay {
    let metrics: () -> JobMetrics?
    let live: Bool
    private var lastIn = 0, lastOut = 0
    private var last = Date()
    private var ticks = 0
    private var lastMetrics: ObjectIdentifier?

    init(metrics: @escaping () -> JobMetrics?, live: Bool) { self.metrics = metrics; self.live = live }

    func tick() {
        ticks += 1
        guard let m = metrics() else { return }
        if lastMetrics != ObjectIdentifier(m) { lastMetrics = ObjectIdentifier(m); lastIn = 0; lastOut = 0 }
        let now = Date()
        let dt = max(0.001, now.timeIntervalSince(last))
        let i = m.recordsIn.load, o = m.recordsOut.load
        let line = String(format: "in %@ rec/s  out %@ rec/s  total in %@ out %@  lag %@  rejected %@  late %@  checkpoints %@",
                          fmt(Double(i - lastIn) / dt), fmt(Double(o - lastOut) / dt), fmt(Double(i)), fmt(Double(o)),
                          fmt(Double(m.totalLag)), fmt(Double(m.rejectedRecords.load)), fmt(Double(m.lateRecords.load)),
                          fmt(Double(m.checkpointsCompleted.load)))
        if live {
            FileHandle.standardError.write(("\r\u{1B}[2K" + line).data(using: .utf8)!)
        } else if ticks % 5 == 0 {
            printErr("[weir] " + line)
        } else {
            return
        }
        lastIn = i; lastOut = o; last = now
    }

    func finish() { if live { FileHandle.standardError.write("\n".data(using: .utf8)!) } }

    private func fmt(_ v: Double) -> String {
        if v >= 1_000_000 { return String(format: "%.2fM", v / 1_000_000) }
        if v >= 10_000 { return String(format: "%.1fk", v / 1_000) }
        return String(Int(v))
    }
}
