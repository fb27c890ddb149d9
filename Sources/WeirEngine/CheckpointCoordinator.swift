import Foundation
import WeirCore
import Logging
import Synchronization

/// Runs `body` for 0..<count on every core (the encoding of a snapshot's
/// key groups, the decoding of a restore's).
func concurrentFor(_ count: Int, _ body: (Int) -> Void) {
    if count <= 1 { for i in 0..<count { body(i) }; return }
    withoutActuallyEscaping(body) { body in
        // Each call touches its own key groups; the caller waits for all of them.
        let unchecked = UncheckedSendableBody(body: body)
        DispatchQueue.concurrentPerform(iterations: count) { unchecked.body($0) }
    }
}

private struct UncheckedSendableBody: @unchecked Sendable { let body: (Int) -> Void }

/// What one task reports when a barrier has passed through it.
struct TaskAck: Sendable {
    var node: String
    var subtask: Int
    var offsets: [String: Int64] = [:]
    var state: (@Sendable (ParallelFor) -> [UInt8])?
    var keyGroups: ClosedRange<Int>?
    var sinkTransaction: String?

    var task: TaskID { TaskID(node: node, subtask: subtask) }
}

/// The thin driver of `CheckpointCoordinatorStateMachine` for a live run:
/// feeds it the clock, the tasks' acknowledgements and requests, persists
/// checkpoints on its own thread, and makes outcomes visible to the tasks
/// (sources read the barrier to inject, sinks the highest completed id).
/// It sleeps until the machine's next deadline or the next event.
final class CheckpointCoordinator: CheckpointCoordination, @unchecked Sendable {
    // @unchecked: all mutable state is guarded by `cond`.

    /// How a requested stop/savepoint ended.
    enum Outcome: Sendable, Equatable {
        case completed(snapshotID: String)
        case failed(String)
    }

    private let cond = NSCondition()
    private var machine: CheckpointCoordinatorStateMachine<TaskAck>
    private let settings: CheckpointConfig
    private let job: String, runID: String
    private let nodes: [String]
    private let parallelism: Int, maxParallelism: Int
    private let layouts: [String: String]
    private let logger: Logger
    private let onEvent: @Sendable (RunEvent) -> Void
    /// Records moved through the run so far: a periodic checkpoint with nothing
    /// moved since the last completed one is skipped, so an idle job stays idle.
    private let activity: (@Sendable () -> Int)?

    private var toPersist: [(Barrier, [TaskID: TaskAck], UInt64)] = []
    private var outcomes: [Int64: Outcome] = [:]
    private var stopSnapshot: String?
    private var shutdown = false
    /// Called (outside the lock) with each completed checkpoint id: sinks wake up to commit.
    private var completionListeners: [@Sendable (Int64) -> Void] = []

    /// Highest checkpoint id known complete (sinks commit up to it).
    let completedID = Atomic<Int64>(-1)
    let metrics: JobMetrics

    /// Decodes a sample of a snapshot's keyed state and returns bytes per
    /// second (set by the runner, which knows the operators).
    var decodeProbe: (@Sendable ([StateBlob]) -> Double?)?
    // Touched only by the coordinator's own thread (in `persist`).
    private var measuredRate: Double?
    private var rateMeasuredAtBytes = 0

    init(settings: CheckpointConfig, job: String, run: String, nodes: [String], parallelism: Int, maxParallelism: Int,
         layouts: [String: String], tasks: Set<TaskID>, sourceTasks: Set<TaskID>, untilIdleMillis: Int64?, metrics: JobMetrics,
         logger: Logger, onEvent: @escaping @Sendable (RunEvent) -> Void = { _ in },
         activity: (@Sendable () -> Int)? = nil) {
        self.onEvent = onEvent
        self.activity = activity
        self.settings = settings; self.job = job; self.runID = run; self.nodes = nodes
        self.parallelism = parallelism; self.maxParallelism = maxParallelism; self.layouts = layouts
        self.metrics = metrics; self.logger = logger
        let config = CheckpointCoordinatorStateMachine<TaskAck>.Configuration(
            tasks: tasks, sourceTasks: sourceTasks,
            intervalNanos: settings.intervalMillis.map { UInt64(max(1, $0)) &* 1_000_000 },
            timeoutNanos: UInt64(max(1, settings.timeoutMillis)) &* 1_000_000,
            untilIdleNanos: untilIdleMillis.map { UInt64(max(0, $0)) &* 1_000_000 },
            firstCheckpointID: settings.firstCheckpointID)
        machine = CheckpointCoordinatorStateMachine(config, now: CheckpointCoordinator.now())
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Registers a listener for completed checkpoints (before the run starts).
    func onCompleted(_ listener: @escaping @Sendable (Int64) -> Void) {
        cond.lock(); completionListeners.append(listener); cond.unlock()
    }

    /// The barrier sources should inject now, if any newer than `after`.
    func barrier(after: Int64) -> Barrier? {
        cond.lock(); defer { cond.unlock() }
        if let b = machine.pendingBarrier, b.id > after { return b }
        return nil
    }

    /// Waits for the outcome of the first barrier triggered after now (of `kind`).
    func requestAndWait(_ kind: BarrierKind, timeoutSeconds: Double) -> Outcome {
        cond.lock()
        let firstCandidate = machine.nextCheckpointID
        execute(machine.request(kind, now: CheckpointCoordinator.now()))
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

    var completedCheckpoint: Int64 { completedID.load(ordering: .acquiring) }

    func outcome(of id: Int64) -> Outcome? {
        cond.lock(); defer { cond.unlock() }
        return outcomes[id]
    }

    /// Blocks until checkpoint `id` completed or failed; nil if the run shuts down first.
    func waitForOutcome(_ id: Int64) -> Outcome? {
        cond.lock(); defer { cond.unlock() }
        while outcomes[id] == nil && !shutdown { cond.wait() }
        return outcomes[id]
    }

    func ack(_ barrier: Barrier, _ a: TaskAck) {
        cond.lock(); defer { cond.unlock() }
        let (outcome, actions) = machine.ack(checkpoint: barrier.id, from: a.task, a, now: CheckpointCoordinator.now())
        if outcome != .accepted && outcome != .late {
            logger.debug("checkpoint \(barrier.id): \(outcome) acknowledgement from \(a.task) ignored")
        }
        execute(actions)
    }

    /// A source task reports how long all its splits have been at their end (nil: some split has lag).
    func sourceAtEnd(_ task: TaskID, atEndFor nanos: UInt64?) {
        cond.lock(); defer { cond.unlock() }
        execute(machine.sourceAtEnd(task, atEndFor: nanos, now: CheckpointCoordinator.now()))
    }

    /// Ends the coordinator: a checkpoint being collected is aborted (quietly:
    /// the run is over), waiters are released.
    func stop() {
        cond.lock()
        for case .abort(let b, let reason) in machine.cancel() { record(b.id, .failed(reason)) }
        shutdown = true
        cond.broadcast()
        cond.unlock()
    }

    /// The coordinator's own thread: persists checkpoints and fires timers.
    func run() {
        cond.lock()
        while true {
            if !toPersist.isEmpty {
                let (b, acks, started) = toPersist.removeFirst()
                cond.unlock()
                let result = persist(b, acks, started: started)
                cond.lock()
                let now = CheckpointCoordinator.now()
                switch result {
                case .success(let id): execute(machine.persisted(checkpoint: b.id, snapshotID: id, now: now))
                case .failure(let e): execute(machine.persistFailed(checkpoint: b.id, reason: "\(e)", now: now))
                }
                continue
            }
            if shutdown { break }
            let now = CheckpointCoordinator.now()
            let actions = machine.tick(now: now, activity: activity?())
            if !actions.isEmpty { execute(actions); continue }
            if let due = machine.nextDeadline() {
                _ = cond.wait(until: Date().addingTimeInterval(Double(due > now ? due - now : 0) / 1e9 + 0.000_5))
            } else {
                cond.wait()
            }
        }
        cond.unlock()
    }

    /// Carries out the machine's actions; called with the lock held.
    private func execute(_ actions: [CheckpointCoordinatorStateMachine<TaskAck>.Action]) {
        guard !actions.isEmpty else { return }
        for a in actions {
            switch a {
            case .injectBarrier:
                break  // sources read `barrier(after:)` between polls
            case .persist(let b, let acks, let started):
                toPersist.append((b, acks, started))
            case .complete(let b, let sid):
                record(b.id, .completed(snapshotID: sid))
                if b.kind == .stop { stopSnapshot = sid }
                if b.id > completedID.load(ordering: .relaxed) { completedID.store(b.id, ordering: .releasing) }
                let listeners = completionListeners
                for l in listeners { l(b.id) }
            case .abort(let b, let reason):
                logger.warning("\(reason)")
                onEvent(.snapshotFailed(checkpointID: b.id, kind: b.kind, reason: reason))
                record(b.id, .failed(reason))
            case .noteIdleWait(let nanos):
                metrics.noteIdleWait(nanos)
            }
        }
        cond.broadcast()
    }

    /// Keeps a checkpoint's outcome for its waiters; outcomes far behind the
    /// newest are dropped, so a long run does not keep one per checkpoint.
    private func record(_ id: Int64, _ outcome: Outcome) {
        outcomes[id] = outcome
        if outcomes.count > 1_024 { outcomes = outcomes.filter { $0.key > id - 256 } }
    }

    /// The run's decode rate: measured (by `decodeProbe`) on the first snapshot
    /// with enough keyed state to tell, again when the state grew fourfold, and
    /// on every stop, savepoint and drain; the last measurement otherwise.
    private func measureDecodeRate(_ kind: BarrierKind, _ blobs: [StateBlob]) -> Double? {
        guard let probe = decodeProbe else { return nil }
        let keyed = blobs.filter { layouts[$0.node] != nil }.reduce(0) { $0 + $1.bytes.count }
        let grown = keyed >= max(256 << 10, rateMeasuredAtBytes * 4)
        if keyed > 0 && (kind != .checkpoint || grown), let rate = probe(blobs) {
            measuredRate = rate
            rateMeasuredAtBytes = keyed
        }
        return measuredRate
    }

    /// Encodes state and persists the checkpoint.
    private func persist(_ b: Barrier, _ acks: [TaskID: TaskAck], started: UInt64) -> Result<String, any Error> {
        let t0 = CheckpointCoordinator.now()
        var c = CompletedCheckpoint(b, acks: acks, job: job, run: runID, nodes: nodes, parallelism: parallelism,
                                    maxParallelism: maxParallelism, layouts: layouts)
        let blobs = c.state
        c.decodeBytesPerSecond = measureDecodeRate(b.kind, blobs)
        do {
            let id = try settings.storage.persist(c, retain: settings.retain)
            let ms = Double(CheckpointCoordinator.now() &- started) / 1e6
            let bytes = blobs.reduce(0) { $0 + $1.bytes.count }
            metrics.noteCheckpoint(durationMillis: ms, bytes: bytes)
            onEvent(.snapshot(id: id, kind: b.kind, checkpointID: b.id, bytes: bytes, durationMillis: ms))
            // Stops, savepoints and drains at info; periodic checkpoints at debug (`--log-level debug`).
            logger.log(level: b.kind == .checkpoint ? .debug : .info,
                       "\(String(format: "snapshot %@ (%@) complete in %.0f ms (state encode+persist %.0f ms), %d bytes", id, b.kind.rawValue, ms, Double(CheckpointCoordinator.now() &- t0) / 1e6, bytes))")
            return .success(id)
        } catch {
            logger.error("checkpoint \(b.id) could not be stored: \(error)")
            return .failure(error)
        }
    }
}

extension CompletedCheckpoint {
    /// The checkpoint the acknowledgements of every task make up (state encoded now).
    init(_ b: Barrier, acks: [TaskID: TaskAck], job: String, run: String, nodes: [String], parallelism: Int,
         maxParallelism: Int, layouts: [String: String]) {
        var offsets: [String: [String: Int64]] = [:]
        var blobs: [StateBlob] = []
        var txs: [String: [Int: String]] = [:]
        for (_, a) in acks.sorted(by: { $0.key < $1.key }) {
            if !a.offsets.isEmpty { offsets[a.node, default: [:]].merge(a.offsets) { $1 } }
            if let s = a.state { blobs.append(StateBlob(node: a.node, subtask: a.subtask, bytes: s(concurrentFor), keyGroups: a.keyGroups)) }
            if let x = a.sinkTransaction { txs[a.node, default: [:]][a.subtask] = x }
        }
        self.init(id: b.id, kind: b.kind, job: job, run: run, nodes: nodes, parallelism: parallelism,
                  maxParallelism: maxParallelism, offsets: offsets, state: blobs, sinkTransactions: txs, layouts: layouts)
    }
}
