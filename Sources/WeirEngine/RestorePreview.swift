import WeirCore

/// What restoring a snapshot into a job will do, worked out without running
/// anything: where each node's state goes (`StateMapping`) and, per
/// topic-partition, where reading resumes against what the broker holds now
/// (`OffsetDiff`). `weir snapshot diff` prints it, `weir run --from-snapshot`
/// prints it before it starts, and its refusals are the ones the restore
/// itself makes.
public struct RestorePreview: Sendable, Codable {
    public var snapshot: String
    public var checkpointID: Int64
    public var run: String
    public var mapping: StateMapping
    public var offsets: OffsetDiff
    /// Why the restore would be refused (empty: it would go on).
    public var problems: [String]
    /// How long the restore should take, from the snapshot's keyed state and
    /// the decode rate measured when it was taken (nil: not measured).
    public var predicted: PredictedRestore?

    /// A restore's predicted time to its state and to its first record.
    public struct PredictedRestore: Sendable, Codable {
        public var stateBytes: Int64
        public var decodeBytesPerSecond: Double
        public var stateLoadedMillis: Double
        /// The state, plus an allowance for opening the sources and the first fetch.
        public var firstRecordMillis: Double
        /// That allowance: readers opened, partitions assigned and sought, a first fetch answered.
        public static let sourcesMillis: Double = 100
    }

    /// Asks every source of `plan` for its splits' ranges (the broker must be
    /// reachable) and compares them with `restore`.
    public init(plan: JobPlan, restore: RestorePoint, allowNonRestoredState: Bool, acceptRetentionLoss: Bool) throws {
        self.init(plan: plan, restore: restore, ranges: try RestorePreview.sourceRanges(plan),
                  allowNonRestoredState: allowNonRestoredState, acceptRetentionLoss: acceptRetentionLoss)
    }

    /// Every source's splits' ranges now, by source node id: the broker round
    /// trips of a preview, which `weir run --from-snapshot` makes while it
    /// reads the snapshot's state files.
    public static func sourceRanges(_ plan: JobPlan) throws -> [String: [SplitRange]] {
        var out: [String: [SplitRange]] = [:]
        for n in plan.nodes {
            guard case .source(_, let src, _) = n.kind else { continue }
            out[n.id] = try src.ranges()
        }
        return out
    }

    /// Compares `restore` with `ranges` (from `sourceRanges(plan)`).
    public init(plan: JobPlan, restore: RestorePoint, ranges: [String: [SplitRange]], allowNonRestoredState: Bool,
                acceptRetentionLoss: Bool) {
        snapshot = restore.snapshotID
        checkpointID = restore.checkpointID
        run = restore.run
        mapping = StateMapping(restore, into: plan)
        var rows: [OffsetDiff.Row] = []
        for n in plan.nodes {
            guard case .source = n.kind else { continue }
            rows += OffsetDiff(node: n.id, snapshot: restore.offsets[n.id], now: ranges[n.id] ?? []).rows
        }
        // Sources the job no longer has: their offsets are dropped with them.
        for (node, offsets) in restore.offsets where !plan.nodes.contains(where: { $0.id == node }) {
            rows += OffsetDiff(node: node, snapshot: offsets, now: []).rows
        }
        offsets = OffsetDiff(rows: rows)
        problems = []
        if let rate = restore.decodeBytesPerSecond, rate > 0 {
            let bytes = restore.keyedStateBytes
            let load = Double(bytes) / rate * 1000
            predicted = PredictedRestore(stateBytes: bytes, decodeBytesPerSecond: rate, stateLoadedMillis: load,
                                         firstRecordMillis: load + PredictedRestore.sourcesMillis)
        }
        if let e = mapping.refusal(snapshot: restore.snapshotID, allowNonRestoredState: allowNonRestoredState) {
            problems.append(e.description)
        }
        if let e = offsets.refusal(snapshot: restore.snapshotID, acceptRetentionLoss: acceptRetentionLoss) {
            problems.append(e.description)
        }
    }
}
