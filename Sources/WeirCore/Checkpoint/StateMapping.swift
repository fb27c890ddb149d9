/// Where each node's state goes when a snapshot (or a version's layout) is
/// restored into a job: worked out before anything runs, so that publish,
/// `weir job diff`, `weir snapshot diff` and the run itself say the same
/// thing, and the restore refuses exactly what the preview called refused.
public struct StateMapping: Sendable, Equatable, Codable {
    /// What happens to one node id.
    public enum Outcome: String, Sendable, Codable {
        /// The snapshot has state for it and the layout matches: it is loaded.
        case restored
        /// A stateful node the snapshot has no state for: it starts empty.
        case new
        /// The snapshot has state (or offsets) for a node the job no longer has:
        /// dropped, which needs allowNonRestoredState.
        case dropped
        /// The node's keys, window or aggregates (or the job's maxParallelism)
        /// changed: refused.
        case incompatible
    }

    public struct Node: Sendable, Equatable, Codable {
        public var node: String
        public var outcome: Outcome
        /// Why (what starts empty, what is dropped, what changed).
        public var reason: String?
        /// The layouts before and after, for a changed layout.
        public var was: String?
        public var now: String?
    }

    /// A change of maxParallelism under keyed state that would be restored.
    public struct MaxParallelismChange: Sendable, Equatable, Codable {
        public var from: Int
        public var to: Int
    }

    /// Stateful nodes and sources of the snapshot and of the job, in id order.
    public var nodes: [Node]
    /// Refused: the snapshot's keyed state is split into other key groups.
    public var maxParallelismChange: MaxParallelismChange?

    /// The mapping of `snapshot` (node id → layout, for nodes with keyed state;
    /// `sources`: source node ids with offsets) into `plan`.
    public init(snapshotLayouts: [String: String], snapshotStateNodes: Set<String>, snapshotSources: Set<String>,
                snapshotMaxParallelism: Int?, into plan: JobPlan) {
        let layouts = plan.stateLayouts
        let planIDs = Set(plan.nodes.map(\.id))
        let planSources = Set(plan.nodes.filter(\.isSource).map(\.id))
        var out: [Node] = []
        let ids = Set(layouts.keys).union(snapshotStateNodes).union(snapshotSources).union(planSources)
        for id in ids.sorted() {
            let inSnapshot = snapshotStateNodes.contains(id) || snapshotSources.contains(id)
            if !planIDs.contains(id) {
                out.append(Node(node: id, outcome: .dropped,
                                reason: snapshotSources.contains(id) ? "a source the job no longer has (its offsets are dropped)"
                                    : "the job no longer has this node (its state is dropped)"))
            } else if !inSnapshot {
                out.append(Node(node: id, outcome: .new, reason: planSources.contains(id)
                                ? "a source the snapshot does not know: it starts from its startOffsets" : "starts with empty state"))
            } else if let old = snapshotLayouts[id], let new = layouts[id], old != new {
                out.append(Node(node: id, outcome: .incompatible, reason: "its state layout changed", was: old, now: new))
            } else if snapshotLayouts[id] != nil && snapshotStateNodes.contains(id) && layouts[id] == nil {
                out.append(Node(node: id, outcome: .incompatible, reason: "the snapshot has keyed state for it, but it is no longer an aggregate"))
            } else {
                out.append(Node(node: id, outcome: .restored, reason: nil))
            }
        }
        nodes = out
        if let m = snapshotMaxParallelism, m != plan.maxParallelism,
           out.contains(where: { $0.outcome == .restored && layouts[$0.node] != nil && snapshotStateNodes.contains($0.node) }) {
            maxParallelismChange = MaxParallelismChange(from: m, to: plan.maxParallelism)
        }
    }

    /// The mapping of a restore point into `plan`.
    public init(_ r: RestorePoint, into plan: JobPlan) {
        self.init(snapshotLayouts: r.layouts, snapshotStateNodes: Set(r.state.filter { !$0.value.isEmpty }.keys),
                  snapshotSources: Set(r.offsets.keys), snapshotMaxParallelism: r.maxParallelism, into: plan)
    }

    /// The mapping between two versions of a job: what a snapshot of `previous` would become in `plan`.
    public init(from previous: JobPlan, to plan: JobPlan) {
        let old = previous.stateLayouts
        self.init(snapshotLayouts: old, snapshotStateNodes: Set(old.keys),
                  snapshotSources: Set(previous.nodes.filter(\.isSource).map(\.id)),
                  snapshotMaxParallelism: previous.maxParallelism, into: plan)
    }

    /// The first refusal, as the error a restore throws (nil: the restore may go on).
    public func refusal(snapshot: String, allowNonRestoredState: Bool) -> WeirError? {
        if let m = maxParallelismChange {
            return WeirError(.snapshotIncompatible, subject: "snapshot \(snapshot)",
                             "its keyed state is split into maxParallelism \(m.from) key groups, but the job says maxParallelism \(m.to); keys would land in the wrong groups",
                             suggestion: "set maxParallelism: \(m.from) (it is fixed for the life of the state; parallelism may change), or start without the snapshot")
        }
        let dropped = nodes.filter { $0.outcome == .dropped }.map(\.node)
        if !dropped.isEmpty && !allowNonRestoredState {
            return WeirError(.snapshotIncompatible, subject: "snapshot \(snapshot)",
                             "holds state for node\(dropped.count > 1 ? "s" : "") \(dropped.map { "'\($0)'" }.joined(separator: ", ")) that the job no longer has",
                             suggestion: "restore the node, or pass --allow-non-restored-state to drop that state")
        }
        if let n = nodes.first(where: { $0.outcome == .incompatible }) {
            let message = n.was.map { "its state layout changed since snapshot \(snapshot) (was \($0), now \(n.now ?? "none"))" }
                ?? "\(n.reason ?? "its state is incompatible") (snapshot \(snapshot))"
            return WeirError(.snapshotIncompatible, subject: "node '\(n.node)'", message,
                             suggestion: "keep the keys, window and aggregates of a stateful node, or give the changed node a new id (its state then starts empty) with --allow-non-restored-state")
        }
        return nil
    }
}

extension JobPlan {
    /// Node id → fingerprint of its keyed state's layout (aggregates only):
    /// a restore refuses a node whose fingerprint changed.
    public var stateLayouts: [String: String] {
        var out: [String: String] = [:]
        for n in nodes {
            guard case .aggregate(let keys, let window, let aggs) = n.kind else { continue }
            let input = nodes[n.inputs[0]].schema
            let w: String
            switch window {
            case nil: w = "continuous"
            case .tumbling(let s)?: w = "tumbling(\(s))"
            case .sliding(let s, let sl)?: w = "sliding(\(s),\(sl))"
            case .session(let g)?: w = "session(\(g))"
            }
            out[n.id] = "keys=\(keys.map { input.fields[$0].name }.joined(separator: ","));window=\(w);aggs=\(aggs.map { "\($0.name):\($0.function.rawValue)" }.joined(separator: ","))"
        }
        return out
    }
}
