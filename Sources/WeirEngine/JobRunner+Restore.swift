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

    /// Bytes of keyed state a fresh operator of the job decodes per second,
    /// measured on an eighth of the key groups (all of them when that is under
    /// 64 KiB): what the time of a restore is predicted from.
    static func decodeRate(plan: JobPlan, blobs: [StateBlob]) -> Double? {
        let metrics = JobMetrics()
        let m = max(1, plan.maxParallelism)
        var bytes = 0
        var nanos: UInt64 = 0
        for n in plan.nodes {
            let files = blobs.filter { $0.node == n.id }.map(\.bytes)
            guard !files.isEmpty, let op = JobRunner.aggregateOperator(n, maxParallelism: plan.maxParallelism, metrics: metrics, rejections: nil) else { continue }
            var groups = 0...max(0, m / 8 - 1)
            var sampled = files.reduce(0) { $0 + KeyedStateFile.sectionBytes($1, keyGroups: groups) }
            if sampled < 64 << 10 {
                groups = 0...(m - 1)
                sampled = files.reduce(0) { $0 + $1.count }
            }
            let start = DispatchTime.now().uptimeNanoseconds
            guard (try? op.restoreState(files, keyGroups: groups, parallel: concurrentFor)) != nil else { continue }
            nanos &+= DispatchTime.now().uptimeNanoseconds - start
            bytes += sampled
        }
        return nanos > 0 && bytes > 0 ? Double(bytes) / (Double(nanos) / 1e9) : nil
    }
}
