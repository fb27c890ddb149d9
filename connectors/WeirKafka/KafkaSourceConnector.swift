import CRdKafka
import Foundation
import Synchronization
import WeirCore
import Logging

/// Where a Kafka source starts reading each partition.
public enum KafkaStartOffsets: Sendable, Equatable {
    /// From the first retained message (the default).
    case earliest
    /// From the end as of when the reader opens: only messages produced afterwards.
    case latest
    /// Explicit offsets keyed by `topic/partition`, or by bare `partition`
    /// (meaning that partition of every topic); unlisted partitions start at earliest.
    case specific([String: Int64])
}

/// A `kafka:` source: reads one or more topics, each partition being one split.
///
/// The value itself holds only configuration (so it is Sendable and cheap to
/// copy); clients are created by `discoverSplits` (short-lived) and
/// `openReader` (one consumer per reader, manual partition assignment, no
/// consumer-group rebalancing, no offset commits).
public struct KafkaSourceConnector: SourceConnector {
    /// Bootstrap servers, `host:port[,host:port...]`.
    public let bootstrap: String
    /// Topics to read, in spec order (the order of `discoverSplits`).
    public let topics: [String]
    /// Where each partition starts.
    public let startOffsets: KafkaStartOffsets
    /// Raw librdkafka settings, applied after (and so overriding) Weir's defaults.
    public let properties: [String: String]
    /// A restore's snapshot offsets (`topic/partition` → next offset), when
    /// resuming. They win over `startOffsets`: a partition of a topic the
    /// snapshot knows but not listed in it is new since the snapshot and
    /// starts from earliest; a topic the snapshot does not know is new to the
    /// job and starts from `startOffsets`. Offsets of topics or partitions the
    /// source no longer reads are ignored (the runner reports them dropped).
    public let restored: [String: Int64]?
    /// How often a running reader looks for partitions added to its topics
    /// (`partitionDiscovery`, default 10 s; 0: never). New ones are read from
    /// earliest by the subtask `SplitOwner` names.
    public let partitionDiscoveryMillis: Int64
    public static let defaultPartitionDiscoveryMillis: Int64 = 10_000
    /// A bounded run: `topic/partition` → the offset reading stops before;
    /// partitions not listed are not read, and none are discovered (nil: unbounded).
    public private(set) var stopOffsets: [String: Int64]?
    /// Where readers log the broker's transient errors (rate-limited).
    public var logger: Logger
    private var cache = SplitCache()

    public init(bootstrap: String, topics: [String], startOffsets: KafkaStartOffsets = .earliest,
                properties: [String: String] = [:], restored: [String: Int64]? = nil,
                partitionDiscoveryMillis: Int64 = KafkaSourceConnector.defaultPartitionDiscoveryMillis,
                logger: Logger = Logger(label: "weir.kafka")) {
        self.bootstrap = bootstrap
        self.topics = topics
        self.startOffsets = startOffsets
        self.properties = properties
        self.restored = restored
        self.partitionDiscoveryMillis = partitionDiscoveryMillis
        self.logger = logger
    }

    /// Restore: every listed `topic/partition` starts at its snapshot offset;
    /// see `restored` for partitions and topics the snapshot does not list.
    public func resuming(at offsets: [String: Int64]) -> any SourceConnector {
        var c = KafkaSourceConnector(bootstrap: bootstrap, topics: topics, startOffsets: startOffsets, properties: properties,
                                     restored: offsets, partitionDiscoveryMillis: partitionDiscoveryMillis, logger: logger)
        c.stopOffsets = stopOffsets
        return c
    }

    /// The same source, stopping each partition before the given offset (a
    /// bounded run); it keeps this one's split list.
    public func bounded(at offsets: [String: Int64]) throws -> any SourceConnector {
        var c = self
        c.stopOffsets = offsets
        return c
    }

    /// Where reading of a partition stops (nil: never).
    func stopOffset(_ split: String) -> Int64? { stopOffsets.map { $0[split] ?? 0 } }

    var sortedProperties: [(String, String)] { properties.sorted { $0.key < $1.key } }

    // MARK: Discovery

    /// Lists `topic/partition` splits (topics in spec order, partitions ascending).
    /// Throws `.brokerUnreachable` or `.topicMissing` within about 10 s.
    public func discoverSplits() throws -> [String] {
        try KafkaLibrary.checkVersion()
        let subject = "Kafka broker \(bootstrap)"
        let handle = try KafkaHandle(RD_KAFKA_PRODUCER,
                                     settings: baseKafkaSettings(bootstrap: bootstrap) + sortedProperties,
                                     subject: subject)
        defer { handle.destroy() }
        let start = ContinuousClock.now
        let deadline = start + .seconds(10)
        var lastProblem = "no answer within 10 s"
        var topicProblem: WeirError?
        while true {
            var md: UnsafePointer<rd_kafka_metadata_t>?
            let remaining = Int32(max(100, min(1000, ContinuousClock.now.duration(to: deadline).milliseconds)))
            let err = rd_kafka_metadata(handle.rk, 1, nil, &md, remaining)
            if err == RD_KAFKA_RESP_ERR_NO_ERROR, let md {
                defer { rd_kafka_metadata_destroy(md) }
                switch try partitionsByTopic(md.pointee) {
                case .success(let parts):
                    let splits = topics.flatMap { t in parts[t]!.map { "\(t)/\($0)" } }
                    try checkStartOffsets(parts)
                    cache.store(splits)
                    return splits
                case .failure(let problem):
                    topicProblem = problem
                }
            } else {
                lastProblem = handle.events.lastError ?? errorText(err)
            }
            if gaveUpOnBrokers(handle, since: start) {
                throw brokerUnreachable(bootstrap, handle.events.lastError ?? lastProblem)
            }
            if ContinuousClock.now >= deadline {
                throw topicProblem ?? brokerUnreachable(bootstrap, lastProblem)
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Partition ids per requested topic; `.failure` means "not settled yet, retry".
    private func partitionsByTopic(_ md: rd_kafka_metadata_t) throws -> Result<[String: [Int32]], WeirError> {
        var found: [String: rd_kafka_metadata_topic_t] = [:]
        for i in 0..<Int(md.topic_cnt) {
            let t = md.topics[i]
            found[String(cString: t.topic)] = t
        }
        var out: [String: [Int32]] = [:]
        for name in topics {
            guard let t = found[name], t.err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART else {
                throw WeirError(.topicMissing, subject: "topic '\(name)'", "does not exist on \(bootstrap)",
                                suggestion: "create the topic or fix 'topic' in the spec")
            }
            if t.err != RD_KAFKA_RESP_ERR_NO_ERROR || t.partition_cnt == 0 {
                return .failure(WeirError(.kafka, subject: "topic '\(name)'", "has no usable metadata: \(errorText(t.err))"))
            }
            out[name] = (0..<Int(t.partition_cnt)).map { t.partitions[$0].id }.sorted()
        }
        return .success(out)
    }

    private func checkStartOffsets(_ parts: [String: [Int32]]) throws {
        guard case .specific(let offsets) = startOffsets else { return }
        for key in offsets.keys.sorted() {
            let (topic, partition) = splitKey(key)
            guard let p = partition else {
                throw WeirError(.invalidSpec, subject: "startOffsets '\(key)'",
                                "expected 'topic/partition' or 'partition' with a partition number")
            }
            let candidates = topic.map { [$0] } ?? topics
            for t in candidates {
                guard let ps = parts[t] else {
                    throw WeirError(.invalidSpec, subject: "startOffsets '\(key)'",
                                    "topic '\(t)' is not one of the source's topics (\(topics.joined(separator: ", ")))")
                }
                if !ps.contains(p) {
                    throw WeirError(.invalidSpec, subject: "startOffsets '\(key)'",
                                    "topic '\(t)' has no partition \(p) (it has \(ps.count) partitions)")
                }
            }
        }
    }

    /// The requested start offset of one partition: a real offset, or -2 (beginning) / -1 (end).
    func startOffset(topic: String, partition: Int32) -> Int64 {
        if let restored {
            if let o = restored["\(topic)/\(partition)"] { return o }
            // A topic the snapshot knows: this partition is new since the snapshot (read all of it).
            if restored.keys.contains(where: { splitKey($0).0 == topic }) { return kOffsetBeginning }
        }
        switch startOffsets {
        case .earliest: return kOffsetBeginning
        case .latest: return kOffsetEnd
        case .specific(let m): return m["\(topic)/\(partition)"] ?? m["\(partition)"] ?? kOffsetBeginning
        }
    }

    // MARK: Ranges

    /// Every split with the broker's current low and high watermarks, and where
    /// `startOffsets` would start it. A short-lived consumer positioned at the
    /// end takes each high watermark from its first Fetch response (a broker's
    /// ListOffsets(latest) can be stale: Tansu's is); the low one comes from
    /// ListOffsets(earliest). Reads no records.
    public func ranges() throws -> [SplitRange] {
        let splits = try discoverSplits()
        // An empty fetch at the end is answered at once, not after the reader's 500 ms wait.
        let probe = KafkaSourceConnector(bootstrap: bootstrap, topics: topics, startOffsets: .latest,
                                         properties: properties.merging(["fetch.wait.max.ms": "10"]) { _, new in new },
                                         partitionDiscoveryMillis: 0, logger: logger)
        let owned = splits.map { name -> (topic: String, partition: Int32, name: String) in
            let (t, p) = splitKey(name)
            return (t!, p!, name)
        }
        let reader = try KafkaSourceReader(connector: probe, splits: owned, allSplits: splits, owner: .all)
        defer { reader.close() }
        let progress = reader.progress()
        return splits.enumerated().map { i, name in
            let (t, p) = (owned[i].topic, owned[i].partition)
            let low = reader.lowWatermark(i)
            let high = progress[i].highWatermark >= 0 ? progress[i].highWatermark : nil
            let start: Int64?
            switch startOffset(topic: t, partition: p) {
            case kOffsetBeginning: start = low
            case kOffsetEnd: start = high
            case let o: start = o
            }
            return SplitRange(name: name, low: low, high: high, start: start)
        }
    }

    // MARK: Readers

    /// Opens a consumer over the given splits (indices into `discoverSplits()`);
    /// partitions added while it runs are read by the subtask `owner` names.
    public func openReader(splits: [Int], owner: SplitOwner) throws -> any SourceReader {
        let all = try cache.load() ?? discoverSplits()
        var owned: [(topic: String, partition: Int32, name: String)] = []
        for i in splits {
            guard all.indices.contains(i) else {
                throw WeirError(.internalError, subject: "Kafka source \(topics.joined(separator: ","))",
                                "split index \(i) out of range (\(all.count) splits)")
            }
            let (t, p) = splitKey(all[i])
            owned.append((t!, p!, all[i]))
        }
        return try KafkaSourceReader(connector: self, splits: owned, allSplits: all, owner: owner)
    }
}

/// `topic/3` → ("topic", 3); `3` → (nil, 3).
func splitKey(_ key: String) -> (String?, Int32?) {
    guard let slash = key.lastIndex(of: "/") else { return (nil, Int32(key)) }
    return (String(key[..<slash]), Int32(key[key.index(after: slash)...]))
}

/// Remembers the split list of the last discovery, so `openReader` does not
/// ask the broker again for every reader. Shared by copies of a connector.
final class SplitCache: Sendable {
    private let splits = Mutex<[String]?>(nil)
    func store(_ s: [String]) { splits.withLock { $0 = s } }
    func load() -> [String]? { splits.withLock { $0 } }
}

extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

// MARK: Spec configuration

extension KafkaSourceConnector {
    /// The `kafka` source kind: `bootstrap`, `topic` | `topics`, `startOffsets`,
    /// `partitionDiscovery`, `properties`.
    public static let kind: ConnectorKind = .source(name: "kafka") { reader in
        let errorsBefore = reader.errors.count
        let bootstrap = reader.string("bootstrap", required: true)
        if let b = bootstrap, b.trimmingCharacters(in: .whitespaces).isEmpty {
            reader.fail("bootstrap", "must not be empty (e.g. \"127.0.0.1:9092\")")
        }

        var topics: [String] = []
        switch (reader.has("topic"), reader.has("topics")) {
        case (true, true):
            reader.fail("topics", "give either 'topic' or 'topics', not both")
        case (false, false):
            reader.fail(nil, "missing required field 'topic' (or 'topics' for several)")
        case (true, false):
            if let t = reader.string("topic") { topics = [t] }
        case (false, true):
            if let ts = reader.stringList("topics") {
                if ts.isEmpty { reader.fail("topics", "must list at least one topic") }
                topics = ts
            }
        }
        let topicKey = reader.has("topics") ? "topics" : "topic"
        for t in topics where !isValidTopicName(t) {
            reader.fail(topicKey, "'\(t)' is not a valid topic name (use letters, digits, '.', '_' and '-')")
        }
        if Set(topics).count != topics.count { reader.fail(topicKey, "lists a topic more than once") }

        var start = KafkaStartOffsets.earliest
        if reader.has("startOffsets") {
            let raw = reader.raw["startOffsets"]
            if let s = raw as? String {
                switch s {
                case "earliest": start = .earliest
                case "latest": start = .latest
                default: reader.fail("startOffsets", "expected earliest, latest or a mapping of \"topic/partition\": offset, not '\(s)'")
                }
            } else if !(raw is SpecMapping) {
                reader.fail("startOffsets", "expected earliest, latest or a mapping of \"topic/partition\": offset")
            } else if let sub = reader.mapping("startOffsets") {
                var offsets: [String: Int64] = [:]
                for (k, v) in sub.mapping.pairs {
                    let (t, p) = splitKey(k)
                    guard let p, p >= 0 else {
                        reader.fail("startOffsets.\(k)", "expected a key 'topic/partition' or 'partition'"); continue
                    }
                    if let t, !topics.isEmpty, !topics.contains(t) {
                        reader.fail("startOffsets.\(k)", "topic '\(t)' is not read by this source"); continue
                    }
                    guard let off = v as? Int, off >= 0 else {
                        reader.fail("startOffsets.\(k)", "expected an offset (a number >= 0)"); continue
                    }
                    offsets[t.map { "\($0)/\(p)" } ?? "\(p)"] = Int64(off)
                }
                start = .specific(offsets)
            }
        }

        var discovery = KafkaSourceConnector.defaultPartitionDiscoveryMillis
        if let text = reader.string("partitionDiscovery"), ["off", "false", "never"].contains(text.lowercased()) {
            discovery = 0
        } else if let ms = reader.durationMillis("partitionDiscovery") {
            if ms > 0 && ms < 100 { reader.fail("partitionDiscovery", "must be at least 100ms (or off)") }
            discovery = ms
        }

        var props: [String: String] = [:]
        if let sub = reader.mapping("properties") {
            for (k, v) in sub.mapping.pairs {
                switch v {
                case let s as String: props[k] = s
                case let i as Int: props[k] = String(i)
                case let b as Bool: props[k] = String(b)
                case let d as Double: props[k] = String(d)
                default: reader.fail("properties.\(k)", "expected a string value")
                }
            }
            if let (key, message) = validateKafkaProperties(props.sorted { $0.key < $1.key }) {
                reader.fail("properties.\(key)", message)
            }
        }

        guard reader.errors.count == errorsBefore, let bootstrap else { return nil }
        return KafkaSourceConnector(bootstrap: bootstrap, topics: topics, startOffsets: start, properties: props,
                                    partitionDiscoveryMillis: discovery)
    }
}

func isValidTopicName(_ t: String) -> Bool {
    !t.isEmpty && t.count <= 249 && t != "." && t != ".."
        && t.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0)) }
}
