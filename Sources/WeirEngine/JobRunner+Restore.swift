import Foundation
import Logging
import WeirCore

/// What a run checks before it restores a snapshot (node ids, state
/// layouts, maxParallelism), and how a cancelled run settles its sinks' epochs.
extension JobRunner {
    /// Layout fingerprint of a node's state; a restore refuses a changed layout.
    static func layout(_ n: PlannedNode, _ plan: JobPlan) -> String? {
        guard case .aggregate(let keys, let window, let aggs) = n.kind else { return nil }
        let input = plan.nodes[n.inputs[0]].schema
        let w: String
        switch window {
        case nil: w = "continuous"
        case .tumbling(let s)?: w = "tumbling(\(s))"
        case .sliding(let s, let sl)?: w = "sliding(\(s),\(sl))"
        case .session(let g)?: w = "session(\(g))"
        }
        return "keys=\(keys.map { input.fields[$0].name }.joined(separator: ","));window=\(w);aggs=\(aggs.map { "\($0.name):\($0.function.rawValue)" }.joined(separator: ","))"
    }

    /// Checks that a snapshot taken by a run of `previous` could be restored
    /// by `plan` (node ids, state layouts, maxParallelism) before anything is
    /// stopped: publish-and-run refuses an incompatible version up front.
    public static func checkCanRestore(_ plan: JobPlan, snapshotOf previous: JobPlan, allowNonRestoredState: Bool) throws {
        var state: [String: [[UInt8]]] = [:], layouts: [String: String] = [:], offsets: [String: [String: Int64]] = [:]
        for n in previous.nodes {
            if let l = layout(n, previous) { layouts[n.id] = l; state[n.id] = [[]] }
            if n.isSource { offsets[n.id] = [:] }
        }
        let r = RestorePoint(snapshotID: "the stop snapshot of the running version", checkpointID: 0, run: "", nodes: previous.nodes.map(\.id),
                             offsets: offsets, state: state, layouts: layouts, maxParallelism: previous.maxParallelism)
        try JobRunner(plan: plan, restore: r, allowNonRestoredState: allowNonRestoredState).checkRestore(r)
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

    /// Checks a restore point against the plan (node ids, state layouts).
    func checkRestore(_ r: RestorePoint) throws {
        if let m = r.maxParallelism, m != plan.maxParallelism, r.state.values.contains(where: { !$0.isEmpty }),
           plan.nodes.contains(where: { n in if case .aggregate = n.kind { return r.state[n.id] != nil } else { return false } }) {
            throw WeirError(.invalidSpec, subject: "snapshot \(r.snapshotID)",
                            "its keyed state is split into maxParallelism \(m) key groups, but the job says maxParallelism \(plan.maxParallelism); keys would land in the wrong groups",
                            suggestion: "set maxParallelism: \(m) (it is fixed for the life of the state; parallelism may change), or start without the snapshot")
        }
        let ids = Set(plan.nodes.map(\.id))
        let withState = Set(r.state.keys.filter { !$0.isEmpty }).union(r.offsets.keys)
        let missing = withState.subtracting(ids).sorted()
        if !missing.isEmpty && !allowNonRestoredState {
            throw WeirError(.invalidSpec, subject: "snapshot \(r.snapshotID)",
                            "holds state for node\(missing.count > 1 ? "s" : "") \(missing.map { "'\($0)'" }.joined(separator: ", ")) that the job no longer has",
                            suggestion: "restore the node, or pass --allow-non-restored-state to drop that state")
        }
        for n in plan.nodes {
            guard let old = r.layouts[n.id], let new = JobRunner.layout(n, plan), r.state[n.id] != nil else { continue }
            if old != new {
                throw WeirError(.invalidSpec, subject: "node '\(n.id)'",
                                "its state layout changed since snapshot \(r.snapshotID) (was \(old), now \(new))",
                                suggestion: "keep the keys, window and aggregates of a stateful node, or give the changed node a new id (its state then starts empty) with --allow-non-restored-state")
            }
        }
    }
}
