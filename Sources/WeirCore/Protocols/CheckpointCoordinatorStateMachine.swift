/// One task (a subtask of a node) that acknowledges barriers.
public struct TaskID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var node: String
    public var subtask: Int
    public init(node: String, subtask: Int) { self.node = node; self.subtask = subtask }
    public var description: String { "\(node)#\(subtask)" }
    public static func < (a: TaskID, b: TaskID) -> Bool { (a.node, a.subtask) < (b.node, b.subtask) }
}

/// The checkpoint protocol of a run (Flink's CheckpointCoordinator, as a
/// value): when to trigger a barrier, which task acknowledged which
/// checkpoint, when a checkpoint is persisted, completed or aborted.
///
/// Events in, actions out; no threads, clocks or I/O. The driver
/// (`CheckpointCoordinator`) passes the time with every event, executes the
/// actions (sources inject the barrier, storage persists, sinks commit) and
/// reports their results back as events. One checkpoint is in flight at a
/// time. `Ack` is whatever a task hands over with its acknowledgement
/// (offsets, state, a prepared transaction); the machine only keeps it.
public struct CheckpointCoordinatorStateMachine<Ack> {
    public struct Configuration: Sendable {
        /// Every task that must acknowledge a checkpoint.
        public var tasks: Set<TaskID>
        /// The source tasks, which report when their input is at its end (`--until-idle`).
        public var sourceTasks: Set<TaskID>
        /// Periodic checkpoints; nil: only on request (stop, savepoint) and drain.
        public var intervalNanos: UInt64?
        public var timeoutNanos: UInt64
        /// Drain once every source has been at its end for this long.
        public var untilIdleNanos: UInt64?
        public var firstCheckpointID: Int64

        public init(tasks: Set<TaskID>, sourceTasks: Set<TaskID>, intervalNanos: UInt64?, timeoutNanos: UInt64,
                    untilIdleNanos: UInt64?, firstCheckpointID: Int64) {
            self.tasks = tasks; self.sourceTasks = sourceTasks; self.intervalNanos = intervalNanos
            self.timeoutNanos = timeoutNanos; self.untilIdleNanos = untilIdleNanos; self.firstCheckpointID = firstCheckpointID
        }
    }

    /// What the driver must do.
    public enum Action {
        /// Sources inject this barrier before their next poll.
        case injectBarrier(Barrier)
        /// Every task acknowledged: make the checkpoint durable, then report `persisted` or `persistFailed`.
        case persist(Barrier, acks: [TaskID: Ack], startedAt: UInt64)
        /// The checkpoint is durable: sinks may commit its epochs; waiters hear the snapshot id.
        case complete(Barrier, snapshotID: String)
        /// The checkpoint failed; the run goes on (sinks keep its epochs prepared for the next one).
        case abort(Barrier, reason: String)
        /// A drain was triggered after the sources waited this long at their end (for benchmarks).
        case noteIdleWait(nanos: UInt64)
    }

    /// What became of an acknowledgement.
    public enum AckOutcome: Equatable, Sendable {
        /// Counted for the checkpoint in flight.
        case accepted
        /// This task already acknowledged this checkpoint; ignored.
        case duplicate
        /// No such checkpoint was triggered yet, or no such task: ignored.
        case unknown
        /// The checkpoint already completed, failed or timed out; ignored.
        case late
    }

    package struct Pending {
        var barrier: Barrier
        var started: UInt64
        var activity: Int?
        var acks: [TaskID: Ack] = [:]
    }

    package enum Phase {
        case idle
        case collecting(Pending)
        case persisting(Pending)
        /// A stop or drain completed, or the run was cancelled: nothing more is triggered.
        case finished
    }

    public let configuration: Configuration
    private(set) var phase: Phase = .idle
    /// The id the next barrier gets.
    public private(set) var nextCheckpointID: Int64
    /// Highest completed checkpoint id (-1: none yet).
    public private(set) var completedID: Int64 = -1
    private var requests: [BarrierKind] = []
    private var lastPeriodic: UInt64
    private var activityAtLastCheckpoint: Int?
    private var sourcesAtEnd: [TaskID: (nanos: UInt64, reportedAt: UInt64)] = [:]
    private var cancelled = false
    #if WEIR_BUG_SWITCHES
    public var bugs: InjectedBugs = []
    #endif

    public init(_ configuration: Configuration, now: UInt64) {
        self.configuration = configuration
        self.nextCheckpointID = configuration.firstCheckpointID
        self.lastPeriodic = now
    }

    /// The barrier sources should inject now, if any.
    public var pendingBarrier: Barrier? {
        if case .collecting(let p) = phase { return p.barrier }
        return nil
    }

    /// True once a stop or drain completed or the run was cancelled.
    public var isFinished: Bool { if case .finished = phase { return true }; return false }

    /// The tasks that have not acknowledged the checkpoint in flight.
    public var missingAcks: [TaskID] {
        guard case .collecting(let p) = phase else { return [] }
        return configuration.tasks.subtracting(p.acks.keys).sorted()
    }

    /// When the driver must next call `tick` (a periodic trigger or a timeout is due); nil: only events matter.
    public func nextDeadline() -> UInt64? {
        switch phase {
        case .collecting(let p): return p.started &+ configuration.timeoutNanos &+ 1
        case .idle: return configuration.intervalNanos.map { lastPeriodic &+ $0 }
        case .persisting, .finished: return nil
        }
    }

    // MARK: Events

    /// Time passed: times out the checkpoint in flight, or triggers the next one.
    /// `activity` counts records moved so far; a periodic checkpoint with no
    /// activity since the last completed one would hold the same state and is skipped.
    public mutating func tick(now: UInt64, activity: Int? = nil) -> [Action] {
        switch phase {
        case .collecting(let p):
            guard now &- p.started > configuration.timeoutNanos else { return [] }
            let acked = p.acks.keys.map(\.description).sorted().joined(separator: ", ")
            let missing = configuration.tasks.count - p.acks.count
            return abort(p, reason: "checkpoint \(p.barrier.id) timed out after \(configuration.timeoutNanos / 1_000_000) ms: \(missing) of \(configuration.tasks.count) tasks did not acknowledge (acknowledged: \(acked))")
        case .idle:
            return trigger(now: now, activity: activity)
        case .persisting, .finished:
            return []
        }
    }

    /// A savepoint or stop-with-snapshot was requested; it is triggered as soon as no checkpoint is in flight.
    public mutating func request(_ kind: BarrierKind, now: UInt64) -> [Action] {
        requests.append(kind)
        if case .idle = phase { return trigger(now: now, activity: nil) }
        return []
    }

    /// Task `task` has passed barrier `checkpoint` and hands over `ack`.
    public mutating func ack(checkpoint: Int64, from task: TaskID, _ ack: Ack, now: UInt64) -> (AckOutcome, [Action]) {
        guard configuration.tasks.contains(task) else { return (.unknown, []) }
        guard case .collecting(var p) = phase, p.barrier.id == checkpoint else {
            let current: Int64
            switch phase {
            case .collecting(let q), .persisting(let q): current = q.barrier.id
            default: current = nextCheckpointID
            }
            if checkpoint >= nextCheckpointID { return (.unknown, []) }
            if checkpoint == current { return (.duplicate, []) }  // persisting: every task is in already
            return (.late, [])
        }
        guard p.acks[task] == nil else { return (.duplicate, []) }
        p.acks[task] = ack
        var needed = configuration.tasks.count
        #if WEIR_BUG_SWITCHES
        if bugs.contains(.completeWithOneAckMissing) { needed -= 1 }
        #endif
        guard p.acks.count >= needed else { phase = .collecting(p); return (.accepted, []) }
        // Late is late: a checkpoint whose acknowledgements took longer than the timeout fails.
        if now &- p.started > configuration.timeoutNanos {
            return (.accepted, abort(p, reason: "checkpoint \(checkpoint) timed out after \(configuration.timeoutNanos / 1_000_000) ms: the last acknowledgement (\(task)) came too late"))
        }
        phase = .persisting(p)
        var actions: [Action] = [.persist(p.barrier, acks: p.acks, startedAt: p.started)]
        #if WEIR_BUG_SWITCHES
        if bugs.contains(.commitBeforePersist) {
            completedID = max(completedID, checkpoint)
            actions.insert(.complete(p.barrier, snapshotID: "(not yet persisted)"), at: 0)
        }
        #endif
        return (.accepted, actions)
    }

    /// The checkpoint is durable: it is complete, whatever happened meanwhile (a cancel included).
    public mutating func persisted(checkpoint: Int64, snapshotID: String, now: UInt64) -> [Action] {
        guard case .persisting(let p) = phase, p.barrier.id == checkpoint else { return [] }
        completedID = max(completedID, checkpoint)
        if let a = p.activity { activityAtLastCheckpoint = a }
        if p.barrier.kind == .checkpoint { lastPeriodic = now }
        if p.barrier.kind == .stop || p.barrier.kind == .drain || cancelled { phase = .finished } else { phase = .idle }
        return [.complete(p.barrier, snapshotID: snapshotID)]
    }

    /// The checkpoint could not be stored: it is aborted.
    public mutating func persistFailed(checkpoint: Int64, reason: String, now: UInt64) -> [Action] {
        guard case .persisting(let p) = phase, p.barrier.id == checkpoint else { return [] }
        if p.barrier.kind == .checkpoint { lastPeriodic = now }
        return abort(p, reason: "the snapshot could not be stored: \(reason)")
    }

    /// A source task reports how long all its splits have been at their end
    /// (nil: some split has unread records). The time is counted by the source
    /// and excludes stalls, so a stopped process never finds its input complete on waking.
    public mutating func sourceAtEnd(_ task: TaskID, atEndFor nanos: UInt64?, now: UInt64) -> [Action] {
        guard let nanos else { sourcesAtEnd[task] = nil; return [] }
        sourcesAtEnd[task] = (nanos, now)
        if case .idle = phase { return trigger(now: now, activity: nil) }
        return []
    }

    /// The run is cancelled: the checkpoint being collected is aborted; one
    /// being persisted still completes if its persist succeeds (durable is complete).
    public mutating func cancel() -> [Action] {
        cancelled = true
        switch phase {
        case .collecting(let p):
            let actions = abort(p, reason: "the run was cancelled")
            phase = .finished
            return actions
        case .idle: phase = .finished
        case .persisting, .finished: break
        }
        return []
    }

    // MARK: Internals

    private mutating func abort(_ p: Pending, reason: String) -> [Action] {
        phase = cancelled ? .finished : .idle
        if p.barrier.kind == .drain { sourcesAtEnd.removeAll() }
        return [.abort(p.barrier, reason: reason)]
    }

    private mutating func trigger(now: UInt64, activity: Int?) -> [Action] {
        guard case .idle = phase, !cancelled else { return [] }
        var actions: [Action] = []
        let kind: BarrierKind
        if !requests.isEmpty {
            kind = requests.removeFirst()
        } else if let limit = configuration.untilIdleNanos, !configuration.sourceTasks.isEmpty,
                  configuration.sourceTasks.allSatisfy({ sourcesAtEnd[$0].map { $0.nanos >= limit } ?? false }) {
            kind = .drain
            // The wait at the end, up to now (benchmarks subtract it from the wall time).
            let waited = sourcesAtEnd.values.map { $0.nanos &+ (now &- min(now, $0.reportedAt)) }.min() ?? 0
            actions.append(.noteIdleWait(nanos: waited))
        } else if let iv = configuration.intervalNanos, now &- lastPeriodic >= iv {
            if let activity, activity == activityAtLastCheckpoint {
                lastPeriodic = now  // nothing moved since the last checkpoint: skip this one
                return []
            }
            kind = .checkpoint
        } else {
            return []
        }
        let b = Barrier(id: nextCheckpointID, kind: kind)
        nextCheckpointID += 1
        phase = .collecting(Pending(barrier: b, started: now, activity: kind == .checkpoint ? activity : nil))
        actions.append(.injectBarrier(b))
        return actions
    }
}
