/// Per topic-partition, what a restore of a snapshot will read, against what
/// the broker holds now: shown before a restore (`weir snapshot diff`, the
/// run response, `weir run --from-snapshot`) so that nobody restores blind.
public struct OffsetDiff: Sendable, Equatable, Codable {
    /// What the restore does with one split.
    public enum Action: String, Sendable, Codable {
        /// Resumes at the snapshot's offset.
        case resume
        /// A partition of a topic the snapshot knows, new since: read from earliest.
        case newPartition = "new_partition"
        /// A topic new to the job: read from the source's `startOffsets`.
        case newTopic = "new_topic"
        /// In the snapshot, no longer read by the job: its offset is dropped.
        case dropped
        /// The snapshot's offset is below what the broker still holds: records
        /// were removed by retention. Refused unless the loss is accepted.
        case retentionLoss = "retention_loss"
        /// The snapshot's offset is past the partition's end: the topic was
        /// deleted and re-created (or truncated) since. Refused.
        case pastEnd = "past_end"
    }

    public struct Row: Sendable, Equatable, Codable {
        public var node: String
        public var split: String
        /// The snapshot's next offset (nil: not in the snapshot).
        public var snapshotOffset: Int64?
        /// The broker's current low and high watermarks (nil: not read, or the split is dropped).
        public var low: Int64?
        public var high: Int64?
        /// Where the restore starts reading (nil for a dropped split).
        public var startsAt: Int64?
        /// Records the restore reads up to the current high watermark.
        public var replay: Int64?
        /// Records already removed by retention that the snapshot would have read.
        public var lost: Int64
        public var action: Action
    }

    public var rows: [Row]

    public init(rows: [Row]) { self.rows = rows }

    /// The diff of one source node: the snapshot's offsets (split → next offset;
    /// nil when the snapshot has none for the node) against the splits the
    /// source has now and their ranges.
    public init(node: String, snapshot: [String: Int64]?, now: [SplitRange]) {
        let offsets = snapshot ?? [:]
        func topic(_ split: String) -> Substring { split.lastIndex(of: "/").map { split[..<$0] } ?? Substring(split) }
        let knownTopics = Set(offsets.keys.map(topic))
        var rows: [Row] = []
        for r in now {
            let high = r.high
            if let o = offsets[r.name] {
                if let high, o > high {
                    rows.append(Row(node: node, split: r.name, snapshotOffset: o, low: r.low, high: high, startsAt: nil,
                                    replay: nil, lost: 0, action: .pastEnd))
                } else if let low = r.low, o < low {
                    rows.append(Row(node: node, split: r.name, snapshotOffset: o, low: low, high: high, startsAt: low,
                                    replay: high.map { max(0, $0 - low) }, lost: low - o, action: .retentionLoss))
                } else {
                    rows.append(Row(node: node, split: r.name, snapshotOffset: o, low: r.low, high: high, startsAt: o,
                                    replay: high.map { max(0, $0 - o) }, lost: 0, action: .resume))
                }
            } else if snapshot != nil && knownTopics.contains(topic(r.name)) {
                let start = r.low ?? 0
                rows.append(Row(node: node, split: r.name, snapshotOffset: nil, low: r.low, high: high, startsAt: start,
                                replay: high.map { max(0, $0 - start) }, lost: 0, action: .newPartition))
            } else {
                let start = r.start
                let replay: Int64? = if let high, let start { max(0, high - start) } else { nil }
                rows.append(Row(node: node, split: r.name, snapshotOffset: nil, low: r.low, high: high, startsAt: start,
                                replay: replay, lost: 0, action: .newTopic))
            }
        }
        let current = Set(now.map(\.name))
        for (split, o) in offsets where !current.contains(split) {
            rows.append(Row(node: node, split: split, snapshotOffset: o, low: nil, high: nil, startsAt: nil,
                            replay: nil, lost: 0, action: .dropped))
        }
        self.rows = rows.sorted { ($0.node, SplitRange.order($0.split)) < ($1.node, SplitRange.order($1.split)) }
    }

    /// Records the restore reads now, in all (splits with a known high watermark).
    public var replay: Int64 { rows.reduce(0) { $0 + ($1.replay ?? 0) } }
    /// Records removed by retention that the snapshot would have read.
    public var lost: Int64 { rows.reduce(0) { $0 + $1.lost } }

    /// The refusal of a restore whose offsets the broker no longer has: past
    /// the end (always refused), or removed by retention (refused unless
    /// `acceptRetentionLoss`).
    public func refusal(snapshot: String, acceptRetentionLoss: Bool = false) -> WeirError? {
        if let r = rows.first(where: { $0.action == .pastEnd }) {
            return WeirError(.kafka, subject: "snapshot \(snapshot)",
                             "resumes \(r.split) at offset \(r.snapshotOffset!), past the partition's end (\(r.high!)): the topic was deleted and re-created, or truncated, since the snapshot",
                             suggestion: "restore a snapshot taken since the topic was re-created, or run without a snapshot")
        }
        if acceptRetentionLoss { return nil }
        let losing = rows.filter { $0.action == .retentionLoss }
        guard let first = losing.first else { return nil }
        return WeirError(.offsetsRemoved, subject: "snapshot \(snapshot)",
                         "\(lost) records it would resume from were already deleted by retention (\(losing.map { "\($0.split): offsets \($0.snapshotOffset!)..<\($0.low!)" }.joined(separator: ", "))); the first is \(first.split)",
                         suggestion: "restore a newer snapshot, or accept the loss explicitly (--accept-retention-loss) to resume at the oldest offsets still held")
    }
}
