/// How a source's splits (`topic/partition`) changed between a snapshot and
/// now, as a restore reports it: splits the snapshot has and the source no
/// longer reads (their offsets are dropped), partitions new to a topic the
/// snapshot knows (read from earliest), and topics new to the job (read from
/// the source's `startOffsets`).
public struct RestoreSplitChange: Sendable, Equatable, CustomStringConvertible {
    public var dropped: [String]
    public var newPartitions: [String]
    public var newTopics: [String]

    /// nil when nothing changed.
    public init?(snapshot: [String: Int64], now: [String]) {
        func topic(_ split: String) -> Substring { split.lastIndex(of: "/").map { split[..<$0] } ?? Substring(split) }
        let known = Set(snapshot.keys.map(topic))
        let current = Set(now)
        dropped = snapshot.keys.filter { !current.contains($0) }.sorted()
        let new = now.filter { snapshot[$0] == nil }
        newPartitions = new.filter { known.contains(topic($0)) }.sorted()
        newTopics = Array(Set(new.filter { !known.contains(topic($0)) }.map { String(topic($0)) })).sorted()
        if dropped.isEmpty && newPartitions.isEmpty && newTopics.isEmpty { return nil }
    }

    public var description: String {
        var parts: [String] = []
        if !dropped.isEmpty {
            parts.append("snapshot offsets of splits this job no longer reads are dropped: \(dropped.joined(separator: ", "))")
        }
        if !newPartitions.isEmpty {
            parts.append("partitions new since the snapshot are read from earliest: \(newPartitions.joined(separator: ", "))")
        }
        if !newTopics.isEmpty {
            parts.append("topics new to the job start from their startOffsets: \(newTopics.joined(separator: ", "))")
        }
        return "restore: " + parts.joined(separator: "; ")
    }
}
