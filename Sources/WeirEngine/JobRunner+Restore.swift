import Foundation
import Logging
import WeirCore

/// What a run checks before it restores a snapshot (`StateMapping`), and how
/// a cancelled run settles its sinks' epochs.
extension JobRunner {
    /// Checks that a snapshot taken by a run of `previous` could be restored
    /// by `plan` (node ids, state layouts, maxParallelism) before anything is
    /// stopped: publish-and-run refuses an incompatible version up front.
    public static func checkCanRestore(_ plan: JobPlan, snapshotOf previous: JobPlan, allowNonRestoredState: Bool) throws {
        if let e = StateMapping(from: previous, to: plan).refusal(snapshot: "the stop snapshot of the running version",
                                                                  allowNonRestoredState: allowNonRestoredState) {
            throw e
        }
    }

    /// After a cancel: commits every prepared epoch whose checkpoint completed
    /// (a cancel never undoes a completed checkpoint), then rolls back the rest.
    /// If such a commit fails, nothing is rolled back: the epochs stay prepared
    /// and recovery resolves each by whether its checkpoint completed.
    static func settleOnCancel(_ t: any TransactionalSinkWriter, committer: SinkCommitterStateMachine, completedID: Int64) {
        var committer = committer
        _ = committer.checkpointCompleted(completedID)
        while let step = committer.nextCancelStep() {
            switch step {
            case .commit(let e):
                do { try t.commit(epoch: e); committer.committed(epoch: e) } catch { committer.commitFailed(epoch: e) }
            case .rollBackAll:
                t.abortAll()
            }
        }
    }

    /// Checks a restore point against the plan (node ids, state layouts,
    /// maxParallelism): the refusals `StateMapping` names.
    func checkRestore(_ r: RestorePoint) throws {
        if let e = StateMapping(r, into: plan).refusal(snapshot: r.snapshotID, allowNonRestoredState: allowNonRestoredState) {
            throw e
        }
    }
}
