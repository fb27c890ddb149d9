import Foundation
import WeirCore

/// The prepared sink transactions a job left in its sinks, each with what a
/// restore (or the next run) will do with it: commit it when a completed
/// snapshot covers its epoch, roll it back otherwise. Nothing is resolved here.
public struct TransactionLedger: Sendable, Codable {
    public struct Entry: Sendable, Codable, Equatable {
        public var id: String
        public var node: String
        public var run: String
        public var subtask: Int
        public var epoch: Int64
        /// `commit` or `roll back`.
        public var decision: String
        /// The snapshot whose checkpoint covers the epoch (nil: none does).
        public var snapshot: String?
        /// False when the state directory has no snapshot of the run at all: a
        /// run that crashed before its first checkpoint, was deleted, or belongs
        /// to another deployment with the same job name.
        public var runKnown: Bool
    }

    public var entries: [Entry]

    /// Lists the prepared transactions of every transactional sink of `plan`
    /// and decides each by the snapshot rule: `lineage` is the snapshot a
    /// restore would start from, `covering(run, epoch)` the id of a completed
    /// snapshot of `run` whose checkpoint is at least `epoch`.
    public init(plan: JobPlan, lineage: (run: String, checkpointID: Int64)?, knownRuns: Set<String>,
                covering: (String, Int64) -> String?) throws {
        var seen = Set<String>()
        var out: [Entry] = []
        for n in plan.nodes {
            guard case .sink(_, let sink) = n.kind, let tx = sink as? any TransactionalSinkConnector else { continue }
            for t in try tx.prepared(job: plan.name) where seen.insert(t.id).inserted {
                let cover = covering(t.scope.run, t.epoch)
                // Recovery's own rule, with what the snapshot store says about this epoch.
                let rule = SinkCommitterStateMachine.Recovery(lineage: lineage, isCompleted: { [covered = cover != nil] _, _ in covered })
                let commit = rule.shouldCommit(t)
                out.append(Entry(id: t.id, node: t.scope.node, run: t.scope.run, subtask: t.scope.subtask, epoch: t.epoch,
                                 decision: commit ? "commit" : "roll back", snapshot: cover, runKnown: knownRuns.contains(t.scope.run)))
            }
        }
        entries = out
    }
}

/// A dry-run restore: everything a restore checks, short of running. The
/// snapshot's checksums (read by the caller), all of its state decoded by the
/// job's own operators, its mapping onto the job, its offsets against the
/// broker, and the sinks' in-doubt transactions.
public struct RestoreVerification: Sendable, Codable {
    /// One node's state, decoded.
    public struct NodeState: Sendable, Codable {
        public var node: String
        public var files: Int
        public var bytes: Int64
        public var decodeMillis: Double
        /// Why it could not be decoded (nil: it was).
        public var error: String?
    }

    public var preview: RestorePreview?
    public var state: [NodeState]
    public var transactions: TransactionLedger?
    public var problems: [String]
    /// State bytes decoded per second (nil when there was nothing to decode).
    public var decodeBytesPerSecond: Double?

    public var passed: Bool { problems.isEmpty }

    /// Runs every check; failures are collected as problems, not thrown.
    public init(plan: JobPlan, restore: RestorePoint, allowNonRestoredState: Bool, acceptRetentionLoss: Bool,
                knownRuns: Set<String>, covering: (String, Int64) -> String?) {
        var problems: [String] = []
        do {
            let p = try RestorePreview(plan: plan, restore: restore, allowNonRestoredState: allowNonRestoredState,
                                       acceptRetentionLoss: acceptRetentionLoss)
            problems += p.problems
            preview = p
        } catch {
            problems.append("offsets not checked against the broker: \(error)")
        }
        state = RestoreVerification.decode(plan: plan, restore: restore)
        for s in state { if let e = s.error { problems.append("state of node '\(s.node)' cannot be decoded: \(e)") } }
        let decoded = state.filter { $0.error == nil && $0.bytes > 0 }
        let secs = decoded.reduce(0) { $0 + $1.decodeMillis } / 1000
        decodeBytesPerSecond = secs > 0 ? Double(decoded.reduce(0) { $0 + $1.bytes }) / secs : nil
        do {
            transactions = try TransactionLedger(plan: plan, lineage: (restore.run, restore.checkpointID),
                                                 knownRuns: knownRuns, covering: covering)
        } catch {
            problems.append("the sinks' in-doubt transactions could not be listed: \(error)")
        }
        self.problems = problems
    }
}

extension RestoreVerification {
    /// Decodes every aggregate node's state with a fresh operator of the job,
    /// all key groups at once (as a restore at parallelism 1 would).
    static func decode(plan: JobPlan, restore: RestorePoint) -> [NodeState] {
        var out: [NodeState] = []
        let metrics = JobMetrics()
        for n in plan.nodes {
            guard let files = restore.state[n.id], let op = JobRunner.aggregateOperator(n, maxParallelism: plan.maxParallelism, metrics: metrics, rejections: nil) else { continue }
            let bytes = Int64(files.reduce(0) { $0 + $1.count })
            let start = DispatchTime.now().uptimeNanoseconds
            var error: String?
            let groups = max(1, restore.maxParallelism ?? plan.maxParallelism)
            do { try op.restoreState(files, keyGroups: 0...(groups - 1), parallel: concurrentFor) } catch let e { error = "\(e)" }
            let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            out.append(NodeState(node: n.id, files: files.count, bytes: bytes, decodeMillis: ms, error: error))
        }
        return out
    }
}
