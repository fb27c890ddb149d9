import Foundation
import WeirCore
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a run behaves; defaults suit production, tests and benchmarks tune them.
public struct RunOptions: Sendable {
    /// End the run once every split has been at its end for this long (the
    /// input is then complete: every open window fires and sinks commit).
    public var untilIdleMillis: Int64?
    /// A bounded run: source node id → split → the offset each split stops
    /// before (splits not listed are not read). Once every split is there the
    /// input is complete, as with `untilIdleMillis` 0.
    public var stopOffsets: [String: [String: Int64]]?
    /// Batches each subtask inbox holds before producers block.
    public var channelCapacity = 8
    /// Messages a source asks its reader for per poll (the batch size).
    public var pollBatchSize = 4096
    /// How often sinks commit what they have written.
    public var sinkFlushIntervalMillis: Int64 = 1_000
    /// Where the run logs (lifecycle at info, periodic checkpoints at debug,
    /// rejected records and restarts at warning); the host bootstraps the backend.
    public var logger = Logger(label: "weir.run")
    /// Receives lifecycle events (running, snapshots, restarts).
    public var onEvent: @Sendable (RunEvent) -> Void = { _ in }
    /// The published version being run (recorded with dead-letter rows).
    public var jobVersion: Int?
    /// Measures each committed row's latency, from its arrival at the source
    /// to the commit of the sink transaction holding it (`weir bench`).
    public var sinkLatency: SinkLatencyRecorder?
    #if WEIR_BUG_SWITCHES
    /// Deliberate protocol bugs (the simulator's tests switch them on).
    public var injectedBugs: InjectedBugs = []
    #endif

    public init() {}
}

/// How a run ended.
public enum RunOutcome: Sendable, Equatable {
    /// The input was complete (`untilIdle`) and all output is committed.
    case finished
    /// Stopped with a snapshot: every sink committed exactly up to it.
    case stopped(snapshotID: String)
    /// `cancel()` was called; uncommitted output was rolled back.
    case cancelled
}

/// Executes a `JobPlan`: every node as `parallelism` subtasks on their own
/// threads, stateless operators chained into their input's thread, bounded
/// channels between the rest, keyed exchanges partitioned by key group.
/// With checkpointing, a coordinator injects barriers at the sources,
/// inboxes align them, stateful operators snapshot their state and sinks
/// pre-commit, and the checkpoint completes when every task acknowledged.
///
/// The runner knows connectors only through `SourceConnector`/`SinkConnector`.
public final class JobRunner: Sendable {
    public let plan: JobPlan
    public let options: RunOptions
    public let metrics = JobMetrics()
    /// Unique id of this run (part of sink transaction ids).
    public let runID: String
    let checkpointing: CheckpointConfig?
    let restore: RestorePoint?
    let allowNonRestoredState: Bool

    private struct State {
        var error: (any Error)?
        var cancelled = false
        var channels: [Channel] = []
        var coordinator: CheckpointCoordinator?
        var stopped: String?
    }
    private let state = Mutex(State())
    let stopFlag = Atomic<Bool>(false)
    private let sawFirstRecord = Atomic<Bool>(false)
    /// When the run started, its state was loaded, and each source reader opened (uptime nanoseconds).
    private let startup = Mutex<(started: UInt64, stateLoaded: UInt64, readersOpen: Int, positioned: UInt64)>((0, 0, 0, 0))

    /// Reports `.firstRecord` and the run's startup times, with the first record, once per run.
    func noteFirstRecord() {
        if !sawFirstRecord.load(ordering: .relaxed), sawFirstRecord.exchange(true, ordering: .relaxed) == false {
            options.onEvent(.firstRecord)
            reportStartup(firstRecord: DispatchTime.now().uptimeNanoseconds)
        }
    }

    /// A run that ends without a first record still reports how it started.
    func noteEndWithoutRecords() {
        if sawFirstRecord.exchange(true, ordering: .relaxed) == false { reportStartup(firstRecord: nil) }
    }

    private func reportStartup(firstRecord: UInt64?) {
        let s = startup.withLock { $0 }
        func ms(_ t: UInt64) -> Double { t >= s.started ? Double(t - s.started) / 1e6 : 0 }
        options.onEvent(.startupTimes(stateLoadedMillis: ms(s.stateLoaded), sourcesPositionedMillis: ms(max(s.positioned, s.stateLoaded)),
                                      firstRecordMillis: firstRecord.map(ms)))
    }

    /// A source reader is open and positioned; the last one marks the sources
    /// positioned and reports the startup so far (a restore with nothing to
    /// replay may wait long for its first record; the times are known now).
    func noteReaderOpened(of total: Int) {
        let now = DispatchTime.now().uptimeNanoseconds
        let last = startup.withLock { s in
            s.readersOpen += 1
            if s.readersOpen == total { s.positioned = now }
            return s.readersOpen == total
        }
        if last && !sawFirstRecord.load(ordering: .relaxed) { reportStartup(firstRecord: nil) }
    }

    public init(plan: JobPlan, options: RunOptions = RunOptions(), checkpointing: CheckpointConfig? = nil,
                restore: RestorePoint? = nil, allowNonRestoredState: Bool = false, runID: String? = nil) {
        self.plan = plan
        self.options = options
        self.checkpointing = checkpointing
        self.restore = restore
        self.allowNonRestoredState = allowNonRestoredState
        self.runID = runID ?? JobRunner.newRunID()
    }

    static func newRunID() -> String {
        let chars = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<8).map { _ in chars[Int.random(in: 0..<chars.count)] })
    }

    /// Time the run's subtasks spent blocked on full channels (backpressure).
    public var backpressureNanos: UInt64 {
        state.withLock { $0.channels }.reduce(0) { $0 &+ $1.backpressureNanos }
    }

    /// Stops the run as soon as possible without a snapshot; pending output is rolled back.
    public func cancel() {
        let (chans, coord) = state.withLock { s -> ([Channel], CheckpointCoordinator?) in
            s.cancelled = true; return (s.channels, s.coordinator)
        }
        stopFlag.store(true, ordering: .relaxed)
        chans.forEach { $0.cancel() }
        coord?.stop()
    }

    /// Result of `stopWithSnapshot`.
    public enum StopResult: Sendable, Equatable {
        /// The run stopped; every sink committed exactly up to this snapshot.
        case stopped(snapshotID: String)
        /// The snapshot failed; the run goes on unchanged.
        case failed(reason: String)
    }

    /// Takes a snapshot and stops at it (sources end at the barrier, sinks
    /// commit). If the snapshot fails, the run keeps going and says why.
    public func stopWithSnapshot(timeoutSeconds: Double = 120) -> StopResult {
        guard let coord = state.withLock({ $0.coordinator }) else { return .failed(reason: "the run has not started yet") }
        switch coord.requestAndWait(.stop, timeoutSeconds: timeoutSeconds) {
        case .completed(let id): return .stopped(snapshotID: id)
        case .failed(let reason): return .failed(reason: reason)
        }
    }

    /// Takes a savepoint while the run goes on.
    public func savepoint(timeoutSeconds: Double = 120) -> StopResult {
        guard let coord = state.withLock({ $0.coordinator }) else { return .failed(reason: "the run has not started yet") }
        switch coord.requestAndWait(.savepoint, timeoutSeconds: timeoutSeconds) {
        case .completed(let id): return .stopped(snapshotID: id)
        case .failed(let reason): return .failed(reason: reason)
        }
    }

    private func fail(_ e: any Error) {
        let (chans, coord) = state.withLock { s -> ([Channel], CheckpointCoordinator?) in
            if s.error == nil && !(e is CancellationError) { s.error = e }
            return (s.channels, s.coordinator)
        }
        stopFlag.store(true, ordering: .relaxed)
        chans.forEach { $0.cancel() }
        coord?.stop()
    }

    /// Runs the job on the calling thread until it finishes, stops, is cancelled or fails.
    public func run() throws -> RunOutcome {
        startup.withLock { $0.started = DispatchTime.now().uptimeNanoseconds }
        var made: CheckpointCoordinator?
        let graph = try assemble { shape in
            let config = checkpointing ?? CheckpointConfig(storage: NoStorage(), intervalMillis: nil, timeoutMillis: 60_000,
                                                            retain: 1, firstCheckpointID: 1, isCompleted: { _, _ in false })
            let c = CheckpointCoordinator(settings: config, job: shape.plan.name, run: runID, nodes: shape.plan.nodes.map(\.id),
                                          parallelism: shape.plan.parallelism, maxParallelism: shape.plan.maxParallelism,
                                          layouts: shape.layouts, tasks: shape.tasks, sourceTasks: shape.sourceTasks,
                                          untilIdleMillis: options.stopOffsets != nil ? 0 : options.untilIdleMillis, metrics: metrics, logger: options.logger,
                                          onEvent: options.onEvent, activity: { [metrics] in metrics.activity })
            made = c
            return c
        }
        let coord = made!
        let probePlan = graph.plan
        coord.decodeProbe = { blobs in JobRunner.decodeRate(plan: probePlan, blobs: blobs) }
        startup.withLock { $0.stateLoaded = DispatchTime.now().uptimeNanoseconds }
        state.withLock { $0.channels = graph.channels; $0.coordinator = coord }
        var cleanShutdown = false
        defer {
            let cancelled = state.withLock { $0.cancelled }
            // The coordinator is stopped and joined by now: no checkpoint completes after this.
            let completed = coord.completedID.load(ordering: .acquiring)
            if !cleanShutdown && cancelled {
                for t in graph.inboxes { t.settleOnCancel(completedID: completed) }
            }
            graph.writers.forEach { $0.close() }
            graph.rejections.forEach { $0.flushLog() }
        }
        let plan = graph.plan
        var tasks: [(name: String, body: @Sendable () throws -> Void)] = []
        for t in graph.sources { tasks.append(("\(t.node.id)#\(t.subtask)", t.run)) }
        for t in graph.inboxes { tasks.append(("\(t.node.id)#\(t.subtask)", t.run)) }
        if let r = restore { options.logger.info("restored snapshot \(r.snapshotID) (checkpoint \(r.checkpointID) of run \(r.run))") }
        let every = graph.transactional ? ", checkpoint every \(checkpointing?.intervalMillis ?? 0) ms" : ""
        options.logger.info("started \(plan.name) run \(runID): \(plan.nodes.count) nodes × \(plan.parallelism) subtasks, \(tasks.count) threads\(every)")
        options.onEvent(.running(run: runID, restoredFrom: restore?.snapshotID))
        let coordDone = DispatchSemaphore(value: 0)
        let coordThread = Thread { coord.run(); coordDone.signal() }
        coordThread.name = "checkpoints"
        coordThread.start()
        let group = DispatchGroup()
        for t in tasks {
            group.enter()
            let thread = Thread { [self] in
                nameCurrentThread(t.name)
                do { try t.body() } catch { fail(error) }
                metrics.noteThreadCPU(t.name, nanos: threadCPUNanos())
                group.leave()
            }
            thread.stackSize = 4 << 20
            thread.start()
        }
        group.wait()
        coord.stop()
        coordDone.wait()
        noteEndWithoutRecords()
        let final = state.withLock { ($0.error, $0.cancelled) }
        if let e = final.0 {
            // The stop snapshot completed before the failure (typically a sink's final
            // commit): everything up to it is durable and its prepared transactions are
            // committed by recovery when the job next runs. The stop is honest and done.
            if let sid = coord.completedStop {
                options.logger.warning("stopped with snapshot \(sid), but finishing the run failed: \(e); its prepared sink transactions are committed when the job next runs")
                return .stopped(snapshotID: sid)
            }
            throw e
        }
        if final.1 { return .cancelled }
        cleanShutdown = true
        if let sid = coord.completedStop { return .stopped(snapshotID: sid) }
        return .finished
    }
}

/// CPU time the calling thread has used so far.
func threadCPUNanos() -> UInt64 {
    var ts = timespec()
    guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0 else { return 0 }
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Names the calling thread (visible in `top -H`, `perf`, /proc) on Linux.
func nameCurrentThread(_ name: String) {
    #if os(Linux)
    if let h = FileHandle(forWritingAtPath: "/proc/thread-self/comm") {
        h.write(Data(name.prefix(15).utf8))
        try? h.close()
    }
    #endif
}

/// Storage for runs without a state directory: snapshots cannot be kept.
struct NoStorage: CheckpointStorage {
    func persist(_ checkpoint: CompletedCheckpoint, retain: Int) throws -> String {
        if checkpoint.kind == .drain { return "none" }
        throw WeirError(.io, subject: "snapshot", "this run has no state directory", suggestion: "run with --state-dir")
    }
}

