import Foundation
import Synchronization

/// What one task reports when a barrier has passed through it.
struct TaskAck: Sendable {
    var node: String
    var subtask: Int
    var offsets: [String: Int64] = [:]
    var state: (@Sendable () -> [UInt8])?
    var keyGroups: ClosedRange<Int>?
    var sinkTransaction: String?
}

/// Triggers checkpoints, collects acknowledgements and completes them
/// (Flink's CheckpointCoordinator, in miniature). One checkpoint is in
/// flight at a time; a checkpoint that is not acknowledged by every task
/// within the timeout is aborted and the run goes on.
final class CheckpointCoordinator: @unchecked Sendable {
    // @unchecked: all mutable state is guarded by `cond`.
    struct Pending {
        var barrier: Barrier
        var started: UInt64
        /// The run's activity figure when the barrier was triggered.
        var activity: Int? = nil
        var acks: [TaskAck] = []
        /// When the last acknowledgement arrived.
        var lastAck: UInt64 = 0
    }

    /// How a requested stop/savepoint ended.
    enum Outcome: Sendable, Equatable {
        case completed(snapshotID: String)
        case failed(String)
    }

    private let cond = NSCondition()
    private let settings: CheckpointConfig
    private let job: String, runID: String
    private let nodes: [String]
    private let parallelism: Int, maxParallelism: Int
    private let layouts: [String: String]
    private let expectedAcks: Int
    private let log: @Sendable (String) -> Void
    private let onEvent: @Sendable (RunEvent) -> Void

    private var nextID: Int64
    private var pending: Pending?
    private var requests: [BarrierKind] = []
    private var outcomes: [Int64: Outcome] = [:]
    private var lastPeriodic = DispatchTime.now().uptimeNanoseconds
    private var shutdown = false
    /// Per source task: how long it has been at the end of its input, and when it said so.
    private var sourcesAtEnd: [Int: (nanos: UInt64, reportedAt: UInt64)] = [:]
    private let sourceTasks: Int
    private let untilIdleNanos: UInt64?
    private var drained = false
    /// Records moved through the run so far (in, out, rejected, late), read
    /// before each periodic trigger: when nothing moved since the last
    /// completed checkpoint, the next one would hold exactly the same offsets,
    /// state and (empty) sink epochs, so it is skipped. An idle job stays idle.
    private let activity: (@Sendable () -> Int)?
    private var activityAtLastCheckpoint: Int?

    /// Highest checkpoint id known complete (sinks commit up to it).
    let completedID = Atomic<Int64>(-1)
    /// Highest checkpoint id that failed or was aborted.
    let abortedID = Atomic<Int64>(-1)
    let metrics: JobMetrics

    init(settings: CheckpointConfig, job: String, run: String, nodes: [String], parallelism: Int, maxParallelism: Int,
         layouts: [String: String], expectedAcks: Int, sourceTasks: Int, untilIdleMillis: Int64?, metrics: JobMetrics,
         log: @escaping @Sendable (String) -> Void, onEvent: @escaping @Sendable (RunEvent) -> Void = { _ in },
         activity: (@Sendable () -> Int)? = nil) {
        self.onEvent = onEvent
        self.activity = activity
        self.settings = settings; self.job = job; self.runID = run; self.nodes = nodes
        self.parallelism = parallelism; self.maxParallelism = maxParallelism; self.layouts = layouts
        self.expectedAcks = expectedAcks; self.sourceTasks = sourceTasks
        self.untilIdleNanos = untilIdleMillis.map { UInt64(max(0, $0)) * 1_000_000 }
        self.nextID = settings.firstCheckpointID; self.metrics = metrics; self.log = log
    }

    /// The barrier sources should inject now, if any newer than `after`.
    func barrier(after: Int64) -> Barrier? {
        cond.lock(); defer { cond.unlock() }
        if let p = pending, p.barrier.id > after { return p.barrier }
        return nil
    }

    /// Requests a snapshot of the given kind; returns once it is triggered.
    func request(_ kind: BarrierKind) {
        cond.lock(); requests.append(kind); cond.broadcast(); cond.unlock()
    }

    /// Waits for the outcome of the first barrier of `kind` triggered after now.
    func requestAndWait(_ kind: BarrierKind, timeoutSeconds: Double) -> Outcome {
        cond.lock()
        let firstCandidate = nextID
        requests.append(kind)
        cond.broadcast()
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while true {
            if let (_, o) = outcomes.filter({ $0.key >= firstCandidate }).min(by: { $0.key < $1.key }) {
                cond.unlock(); return o
            }
            if shutdown { cond.unlock(); return .failed("the run ended before the snapshot completed") }
            if !cond.wait(until: deadline) { cond.unlock(); return .failed("no answer within \(Int(timeoutSeconds)) s") }
        }
    }

    /// The snapshot id of the stop barrier that completed, if any.
    var completedStop: String? {
        cond.lock(); defer { cond.unlock() }
        return stopSnapshot
    }
    private var stopSnapshot: String?

    /// Outcome of checkpoint `id`, once known.
    func outcome(of id: Int64) -> Outcome? {
        cond.lock(); defer { cond.unlock() }
        return outcomes[id]
    }

    /// Blocks until checkpoint `id` completed or failed (or the run shuts down).
    func waitForOutcome(_ id: Int64, stop: () -> Bool) -> Outcome? {
        cond.lock(); defer { cond.unlock() }
        while outcomes[id] == nil && !shutdown && !stop() { _ = cond.wait(until: Date().addingTimeInterval(0.05)) }
        return outcomes[id]
    }

    func ack(_ barrier: Barrier, _ a: TaskAck) {
        cond.lock(); defer { cond.unlock() }
        guard pending?.barrier.id == barrier.id else { return }  // aborted meanwhile
        pending!.acks.append(a)
        pending!.lastAck = DispatchTime.now().uptimeNanoseconds
        cond.broadcast()
    }

    /// Sources report how long all their splits have been observed at their
    /// end (nil: some split has lag), for `--until-idle`. The time is counted
    /// by the source itself and excludes stalls, so a stopped process never
    /// finds its input "complete" on waking up.
    func sourceAtEnd(_ task: Int, atEndFor nanos: UInt64?) {
        cond.lock(); defer { cond.unlock() }
        guard let nanos else { sourcesAtEnd[task] = nil; return }
        let crossed = untilIdleNanos.map { nanos >= $0 && (sourcesAtEnd[task]?.nanos ?? 0) < $0 } ?? false
        sourcesAtEnd[task] = (nanos, DispatchTime.now().uptimeNanoseconds)
        if crossed { cond.broadcast() }  // the drain may be due: don't wait for the next wake-up
    }

    func stop() {
        cond.lock(); shutdown = true; cond.broadcast(); cond.unlock()
    }

    /// The coordinator's own thread.
    func run() {
        cond.lock()
        while !shutdown {
            let now = DispatchTime.now().uptimeNanoseconds
            if var p = pending {
                // Late is late: a checkpoint whose acknowledgements took longer than the
                // timeout fails even if the last one is in by the time we look.
                let acked = p.acks.count >= expectedAcks
                let overdue = (acked ? p.lastAck : now) &- p.started > UInt64(settings.timeoutMillis) * 1_000_000
                if acked && !overdue {
                    pending = nil
                    cond.unlock()
                    let outcome = complete(p)
                    cond.lock()
                    outcomes[p.barrier.id] = outcome
                    if case .completed(let sid) = outcome {
                        completedID.store(p.barrier.id, ordering: .releasing)
                        if let a = p.activity { activityAtLastCheckpoint = a }
                        if p.barrier.kind == .stop { stopSnapshot = sid }
                    }
                    else {
                        abortedID.store(p.barrier.id, ordering: .releasing)
                        if p.barrier.kind == .drain { drained = false; sourcesAtEnd.removeAll() }
                    }
                    if p.barrier.kind == .checkpoint { lastPeriodic = DispatchTime.now().uptimeNanoseconds }
                    cond.broadcast()
                    continue
                }
                if overdue {
                    let missing = expectedAcks - p.acks.count
                    let acked = Set(p.acks.map { "\($0.node)#\($0.subtask)" })
                    let reason = "checkpoint \(p.barrier.id) timed out after \(settings.timeoutMillis) ms: \(missing) of \(expectedAcks) tasks did not acknowledge (acknowledged: \(acked.sorted().joined(separator: ", ")))"
                    log(reason)
                    onEvent(.snapshotFailed(checkpointID: p.barrier.id, kind: p.barrier.kind, reason: reason))
                    pending = nil
                    if p.barrier.kind == .drain { drained = false; sourcesAtEnd.removeAll() }
                    outcomes[p.barrier.id] = .failed(reason)
                    abortedID.store(p.barrier.id, ordering: .releasing)
                    p.acks.removeAll()
                    cond.broadcast()
                    continue
                }
            } else if !drained {
                var kind: BarrierKind?
                if !requests.isEmpty { kind = requests.removeFirst() }
                else if let limit = untilIdleNanos, sourcesAtEnd.count == sourceTasks,
                        sourcesAtEnd.values.allSatisfy({ $0.nanos >= limit }) {
                    kind = .drain
                    // The wait at the end, up to now (benchmarks subtract it from the wall time).
                    metrics.noteIdleWait(sourcesAtEnd.values.map { $0.nanos &+ (now &- min(now, $0.reportedAt)) }.min() ?? 0)
                } else if let iv = settings.intervalMillis, now &- lastPeriodic >= UInt64(iv) * 1_000_000 {
                    if let a = activity?(), a == activityAtLastCheckpoint {
                        lastPeriodic = now  // nothing moved since the last checkpoint: skip this one
                    } else {
                        kind = .checkpoint
                    }
                }
                if let kind {
                    let b = Barrier(id: nextID, kind: kind)
                    nextID += 1
                    if kind == .drain { drained = true }
                    pending = Pending(barrier: b, started: now, activity: kind == .checkpoint ? activity?() : nil)
                    cond.broadcast()
                    continue
                }
            }
            // Requests and acknowledgements broadcast; otherwise wake for the next
            // periodic trigger or timeout check, at most every 50 ms.
            var waitNanos: UInt64 = 50_000_000
            if pending == nil, let iv = settings.intervalMillis {
                let due = lastPeriodic &+ UInt64(iv) * 1_000_000
                waitNanos = min(waitNanos, due > now ? due - now : 0)
            }
            _ = cond.wait(until: Date().addingTimeInterval(Double(max(waitNanos, 1_000_000)) / 1e9))
        }
        cond.unlock()
    }

    /// Encodes state and persists the checkpoint; the outcome decides commit or abort.
    private func complete(_ p: Pending) -> Outcome {
        let t0 = DispatchTime.now().uptimeNanoseconds
        var offsets: [String: [String: Int64]] = [:]
        var blobs: [StateBlob] = []
        var txs: [String: [Int: String]] = [:]
        for a in p.acks {
            if !a.offsets.isEmpty { offsets[a.node, default: [:]].merge(a.offsets) { $1 } }
            if let s = a.state { blobs.append(StateBlob(node: a.node, subtask: a.subtask, bytes: s(), keyGroups: a.keyGroups)) }
            if let x = a.sinkTransaction { txs[a.node, default: [:]][a.subtask] = x }
        }
        let c = CompletedCheckpoint(id: p.barrier.id, kind: p.barrier.kind, job: job, run: runID, nodes: nodes,
                                    parallelism: parallelism, maxParallelism: maxParallelism, offsets: offsets,
                                    state: blobs, sinkTransactions: txs, layouts: layouts)
        do {
            let id = try settings.storage.persist(c, retain: settings.retain)
            let ms = Double(DispatchTime.now().uptimeNanoseconds &- p.started) / 1e6
            let bytes = blobs.reduce(0) { $0 + $1.bytes.count }
            metrics.noteCheckpoint(durationMillis: ms, bytes: bytes)
            onEvent(.snapshot(id: id, kind: p.barrier.kind, checkpointID: p.barrier.id, bytes: bytes, durationMillis: ms))
            if p.barrier.kind != .checkpoint || ProcessInfo.processInfo.environment["WEIR_LOG_CHECKPOINTS"] != nil {
                log(String(format: "snapshot %@ (%@) complete in %.0f ms (state encode+persist %.0f ms), %d bytes",
                           id, p.barrier.kind.rawValue, ms, Double(DispatchTime.now().uptimeNanoseconds &- t0) / 1e6, bytes))
            }
            return .completed(snapshotID: id)
        } catch {
            log("checkpoint \(p.barrier.id) could not be stored: \(error)")
            onEvent(.snapshotFailed(checkpointID: p.barrier.id, kind: p.barrier.kind, reason: "\(error)"))
            return .failed("the snapshot could not be stored: \(error)")
        }
    }
}
