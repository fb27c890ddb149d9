import WeirCore
/// Lifecycle events of a run, for whoever supervises it (the CLI's
/// `--events` file, which the control plane reads).
public enum RunEvent: Sendable {
    /// Sources are assigned and consuming; the run can be checkpointed.
    case running(run: String, restoredFrom: String?)
    /// The first record of the run reached the operators (after any restore).
    case firstRecord
    /// How long the run took, from its start, to load its state, to have every
    /// source positioned (readers open, offsets sought) and to its first record
    /// (nil: not yet, or it ended without one). Sent when the sources are
    /// positioned (before any record, if none came yet), again at the first
    /// record, or at the end of a run that saw none.
    case startupTimes(stateLoadedMillis: Double, sourcesPositionedMillis: Double, firstRecordMillis: Double?)
    /// A snapshot completed.
    case snapshot(id: String, kind: BarrierKind, checkpointID: Int64, bytes: Int, durationMillis: Double)
    /// A snapshot failed or was aborted; the run goes on.
    case snapshotFailed(checkpointID: Int64, kind: BarrierKind, reason: String)
    /// A restore found the source's splits changed since the snapshot: offsets
    /// of splits no longer read were dropped, new partitions of known topics
    /// start from earliest, topics new to the job from their `startOffsets`.
    case restoreAdjusted(node: String, dropped: [String], newPartitions: [String], newTopics: [String])
    /// A source found new splits while running (partitions added to a topic)
    /// and reads them from their start.
    case splitsAdded(node: String, subtask: Int, splits: [String])
    /// The run failed and the restart strategy starts another.
    case restarting(attempt: Int, of: Int, error: String)
}
