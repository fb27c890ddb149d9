/// Two-phase commit of one transactional sink subtask's epochs: an epoch is
/// open while rows are written, prepared when the next barrier aligns (phase
/// one), and committed once that barrier's checkpoint completed (phase two)
/// or rolled back. The checkpoint is what decides: an epoch whose checkpoint
/// completed is committed, whatever happens to the run afterwards (a cancel,
/// a failure, a restart); one whose checkpoint did not complete is never
/// committed.
///
/// An epoch is named by the barrier that opened it, plus one; it is closed by
/// the next barrier the task aligns, which need not be the next id: a source
/// skips a barrier whose checkpoint was aborted before it injected it. So
/// each prepared epoch remembers the barrier that closed it, and is committed
/// when *that* checkpoint completes.
///
/// Pure: the sink task loop reports barriers, completed checkpoints and
/// commit results, and executes the commits and rollbacks it returns.
public struct SinkCommitterStateMachine: Sendable {
    public enum Action: Equatable, Sendable {
        /// Commit this prepared epoch (phase two), then report `committed`.
        case commit(epoch: Int64)
        /// Roll back the open epoch and every prepared one still uncommitted.
        case rollBackAll
    }

    /// A prepared epoch and the barrier (checkpoint) that closed it.
    public struct PreparedEpoch: Equatable, Sendable {
        public var epoch: Int64
        public var closedBy: Int64
    }

    /// The epoch rows are written to now.
    public private(set) var openEpoch: Int64
    /// Prepared epochs not yet committed, in order.
    public private(set) var prepared: [PreparedEpoch] = []
    /// Highest checkpoint known complete.
    public private(set) var completedUpTo: Int64 = -1
    private var cancelState: CancelState = .running
    #if WEIR_BUG_SWITCHES
    public var bugs: InjectedBugs = []
    #endif

    package enum CancelState { case running, settling, commitFailed, done }

    public init(firstEpoch: Int64) { openEpoch = firstEpoch }

    /// Barrier `barrier` aligned: the open epoch was prepared (`hasTransaction`:
    /// it wrote rows) and epoch `barrier + 1` is open.
    public mutating func barrierAligned(_ barrier: Int64, hasTransaction: Bool) {
        if hasTransaction { prepared.append(PreparedEpoch(epoch: openEpoch, closedBy: barrier)) }
        openEpoch = barrier + 1
    }

    /// Checkpoint `id` completed: commit every prepared epoch up to it, in order.
    /// Epochs of aborted checkpoints stay prepared: the next completed checkpoint covers them.
    public mutating func checkpointCompleted(_ id: Int64) -> [Action] {
        completedUpTo = max(completedUpTo, id)
        return dueCommits()
    }

    /// Commits due now (prepared epochs of completed checkpoints).
    public func dueCommits() -> [Action] {
        prepared.prefix { $0.closedBy <= completedUpTo }.map { .commit(epoch: $0.epoch) }
    }

    public mutating func committed(epoch: Int64) {
        prepared.removeAll { $0.epoch == epoch }
    }

    /// The input ended or stopped: the outcome of this checkpoint decides the
    /// last prepared epoch (nil: nothing left to wait for).
    public var awaitedCheckpoint: Int64? {
        guard let last = prepared.last, last.closedBy > completedUpTo else { return nil }
        return last.closedBy
    }

    /// After a cancel: the next step of settling. Commits every prepared
    /// epoch whose checkpoint completed (a cancel never undoes a completed
    /// checkpoint), then rolls back the rest. If a commit fails nothing is
    /// rolled back: the epochs stay prepared and recovery decides each by its
    /// checkpoint. nil: settled.
    public mutating func nextCancelStep() -> Action? {
        switch cancelState {
        case .running: cancelState = .settling
        case .settling: break
        case .commitFailed, .done: return nil
        }
        #if WEIR_BUG_SWITCHES
        if bugs.contains(.cancelRollsBackCompleted) { cancelState = .done; prepared.removeAll(); return .rollBackAll }
        #endif
        if let e = prepared.first, e.closedBy <= completedUpTo { return .commit(epoch: e.epoch) }
        cancelState = .done
        prepared.removeAll()
        return .rollBackAll
    }

    /// A commit failed while settling a cancel: stop, leave the rest in doubt.
    public mutating func commitFailed(epoch: Int64) {
        if cancelState == .settling { cancelState = .commitFailed }
    }

    /// Recovery of the in-doubt (prepared, unresolved) transactions a sink
    /// finds when a run starts: commit those whose checkpoint completed, in
    /// this snapshot store or in the lineage of the snapshot being restored;
    /// roll back the rest.
    public struct Recovery: Sendable {
        /// The run and checkpoint of the snapshot being restored, if any.
        public var lineage: (run: String, checkpointID: Int64)?
        /// Whether checkpoint `id` of run `run` completed (the snapshot store knows).
        public var isCompleted: @Sendable (_ run: String, _ id: Int64) -> Bool
        #if WEIR_BUG_SWITCHES
        public var bugs: InjectedBugs = []
        #endif

        public init(lineage: (run: String, checkpointID: Int64)?, isCompleted: @escaping @Sendable (String, Int64) -> Bool) {
            self.lineage = lineage; self.isCompleted = isCompleted
        }

        /// True: commit; false: roll back.
        public func shouldCommit(_ t: PreparedTransaction) -> Bool {
            #if WEIR_BUG_SWITCHES
            if bugs.contains(.recoveryRollsBackCompleted) { return false }
            #endif
            if let l = lineage, t.scope.run == l.run, t.epoch <= l.checkpointID { return true }
            return isCompleted(t.scope.run, t.epoch)
        }
    }
}
