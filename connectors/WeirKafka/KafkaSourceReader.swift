import CRdKafka
import Foundation
import WeirCore
import Logging

/// One source subtask's Kafka consumer: a single `rd_kafka_t` with the
/// subtask's partitions assigned manually (no group subscription, no
/// rebalancing, nothing committed), drained through one queue in batches.
///
/// The hot path (`poll`) does no allocation: messages land in a reusable
/// pointer buffer, splits are found through precomputed per-topic tables,
/// and payloads are handed out in place before the message is destroyed.
/// Used from one thread at a time, as `SourceReader` requires.
final class KafkaSourceReader: SourceReader {
    private(set) var splitNames: [String]
    private let handle: KafkaHandle
    private let queue: OpaquePointer
    private let label: String
    private let bootstrap: String

    // Per topic (index t): handle for pointer comparison, C name, partition → split index (-1: not owned).
    // The properties read per message are exempt from runtime exclusivity checks (two to three
    // per message otherwise): the reader is used from one thread at a time and never lends them out.
    @exclusivity(unchecked) private var topicRkts: [OpaquePointer]
    private let topicNames: [UnsafeMutablePointer<CChar>]
    @exclusivity(unchecked) private var partitionToSplit: [[Int]]

    // Per split (index s). Splits found while running are appended.
    private var splitTopic: [Int]
    private var splitPartition: [Int32]
    private var startOffset: [Int64]   // requested: -2 beginning, -1 end, or an offset
    @exclusivity(unchecked) private var floorOffset: [Int64]   // messages below this are skipped (end resolved for `latest`)
    @exclusivity(unchecked) private var nextOffset: [Int64]    // offset of the next message to deliver, -1 while unknown
    private var startChecked: [Bool]   // explicit start offset checked against the watermarks
    @exclusivity(unchecked) private var stopOffset: [Int64]    // a bounded run stops before this offset (Int64.max: never)
    private var paused: [Bool]         // stopped: no longer fetched
    private var uncheckedStarts: Int

    private var buffer: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>
    private var bufferCapacity: Int
    private var closed = false
    /// When the topics were last seen in the broker's metadata: a topic deleted while the job
    /// runs makes librdkafka go quiet (no error reaches the consumer), so the reader asks.
    private var lastTopicCheck = ContinuousClock.now
    private let topicCheckInterval: Duration
    /// Partition discovery: every split any subtask read at start, who owns new
    /// ones, and how often to look (nil: never).
    private let knownSplits: Set<String>
    private let owner: SplitOwner
    private let discoveryInterval: Duration?
    private var lastDiscovery = ContinuousClock.now
    static let topicDeletedSuggestion =
        "re-create the topic (or publish a version without it), then run from the latest snapshot; output is exactly-once up to it"

    init(connector c: KafkaSourceConnector, splits: [(topic: String, partition: Int32, name: String)],
         allSplits: [String], owner: SplitOwner) throws {
        try KafkaLibrary.checkVersion()
        label = "Kafka source \(c.bootstrap)"
        bootstrap = c.bootstrap
        splitNames = splits.map(\.name)
        knownSplits = Set(allSplits)
        self.owner = owner
        discoveryInterval = c.partitionDiscoveryMillis > 0 && c.stopOffsets == nil ? .milliseconds(c.partitionDiscoveryMillis) : nil
        topicCheckInterval = min(.seconds(2), discoveryInterval ?? .seconds(2))
        let settings = baseKafkaSettings(bootstrap: c.bootstrap) + [
            ("group.id", "weir"),                  // needed for the consumer queue; never joined or committed
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),      // tells us when a partition (even an empty one) is drained
            ("auto.offset.reset", "error"),        // an out-of-range start offset is an error, not a silent skip
            ("fetch.wait.max.ms", "500"),          // the broker answers as soon as data arrives; idle fetches sleep
            // When a partition's local queue is full, librdkafka (>= 2.4) waits this long before
            // it fetches again (default 1 s). A poll drains ~20,000 queued messages in under 10 ms,
            // so a longer wait leaves the source thread without data; only the broker thread
            // rechecks, and only while the queue is full.
            ("fetch.queue.backoff.ms", "1"),
            ("fetch.error.backoff.ms", "100"),
            ("queued.min.messages", "20000"),
            ("queued.max.messages.kbytes", "16384"),
            ("max.partition.fetch.bytes", "8388608"),
            ("fetch.max.bytes", "52428800"),
        ] + c.sortedProperties
        handle = try KafkaHandle(RD_KAFKA_CONSUMER, settings: settings, subject: label)
        handle.events.log(to: c.logger, as: label)
        rd_kafka_poll_set_consumer(handle.rk)   // error events arrive on the queue we consume
        guard let q = rd_kafka_queue_get_consumer(handle.rk) else {
            throw WeirError(.kafka, subject: label, "consumer has no queue (is 'group.id' empty?)")
        }
        queue = q

        // Every topic of the source gets a slot, owned partitions or not: it may gain some.
        var topicOrder: [String] = []
        for t in c.topics + splits.map(\.topic) where !topicOrder.contains(t) { topicOrder.append(t) }
        topicNames = topicOrder.map { strdup($0)! }
        topicRkts = []
        var maps: [[Int]] = []
        for t in topicOrder {
            topicRkts.append(rd_kafka_topic_new(handle.rk, t, nil))
            let maxP = splits.filter { $0.topic == t }.map { Int($0.partition) }.max() ?? 0
            var m = [Int](repeating: -1, count: maxP + 1)
            for (i, s) in splits.enumerated() where s.topic == t { m[Int(s.partition)] = i }
            maps.append(m)
        }
        partitionToSplit = maps
        splitTopic = splits.map { s in topicOrder.firstIndex(of: s.topic)! }
        splitPartition = splits.map(\.partition)
        startOffset = splits.map { c.startOffset(topic: $0.topic, partition: $0.partition) }
        floorOffset = startOffset.map { max($0, 0) }
        nextOffset = startOffset.map { $0 >= 0 ? $0 : -1 }
        startChecked = startOffset.map { $0 < 0 }
        uncheckedStarts = startChecked.filter { !$0 }.count
        stopOffset = splits.map { c.stopOffset($0.name) ?? Int64.max }
        paused = splits.map { _ in false }

        bufferCapacity = 4096
        buffer = .allocate(capacity: bufferCapacity)

        // Learn the partition leaders before assigning: a partition assigned while its
        // leader is unknown waits a fixed 500 ms before librdkafka retries the offset lookup.
        var md: UnsafePointer<rd_kafka_metadata_t>?
        if rd_kafka_metadata(handle.rk, 0, nil, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR, let md {
            rd_kafka_metadata_destroy(md)
        }

        let list = rd_kafka_topic_partition_list_new(Int32(max(1, splits.count)))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (i, s) in splits.enumerated() {
            rd_kafka_topic_partition_list_add(list, s.topic, s.partition).pointee.offset = startOffset[i]
        }
        let err = rd_kafka_assign(handle.rk, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            close()
            throw WeirError(.kafka, subject: label, "cannot assign partitions: \(errorText(err))")
        }
        do { try resolveLatest() } catch { close(); throw error }
    }

    /// `latest` must mean "the end when the reader opened". librdkafka resolves it
    /// with ListOffsets, which some brokers (Tansu) answer with a stale value, so
    /// take the high watermark of the first Fetch response instead and skip
    /// anything below it.
    private func resolveLatest() throws {
        var pending = startOffset.indices.filter { startOffset[$0] == kOffsetEnd }
        let start = ContinuousClock.now
        while !pending.isEmpty {
            pending.removeAll { s in
                let (_, hi) = watermarks(s)
                guard hi >= 0 else { return false }
                floorOffset[s] = hi
                nextOffset[s] = hi
                return true
            }
            if pending.isEmpty { break }
            if start.duration(to: .now) > .seconds(15) {
                throw brokerUnreachable(bootstrap,
                                        "no fetch response for \(pending.map { splitNames[$0] }.joined(separator: ", ")) within 15 s"
                                            + (handle.events.lastError.map { " (\($0))" } ?? ""))
            }
            Thread.sleep(forTimeInterval: 0.005)
        }
    }

    /// An explicit start offset past the end must fail rather than wait forever:
    /// Kafka reports OFFSET_OUT_OF_RANGE, but some brokers (Tansu) just return
    /// nothing. Checked (without blocking) once the first Fetch response is in.
    private func checkStartOffsets() throws {
        for s in startChecked.indices where !startChecked[s] {
            let (lo, hi) = watermarks(s)
            guard hi >= 0 else { continue }
            startChecked[s] = true
            uncheckedStarts -= 1
            let start = startOffset[s]
            if nextOffset[s] == start && lo >= 0 && start < lo {
                throw WeirError(.offsetsRemoved, subject: "Kafka partition \(splitNames[s])",
                                "start offset \(start) is below the partition's low watermark \(lo): \(lo - start) records were already deleted (retention) and would be skipped",
                                suggestion: "restore from a newer snapshot, or start without one (startOffsets) if skipping them is acceptable")
            }
            if nextOffset[s] == start && start > hi {
                throw WeirError(.kafka, subject: "Kafka partition \(splitNames[s])",
                                "start offset \(start) is out of range (the partition holds offsets \(max(lo, 0))..<\(hi))",
                                suggestion: "check 'startOffsets'")
            }
        }
    }

    /// Asks the broker about the source's topics, at most every `topicCheckInterval`:
    /// fails with `topic_deleted` when one is gone (librdkafka reports nothing to a
    /// consumer for a deleted topic), and on the discovery interval starts reading
    /// the partitions added since the run began that this subtask owns, from
    /// earliest. An unanswered request (broker down) proves nothing and is left
    /// to the client.
    func refreshSplits() throws -> [String] {
        guard !closed, lastTopicCheck.duration(to: .now) >= topicCheckInterval else { return [] }
        lastTopicCheck = .now
        let discover = discoveryInterval.map { lastDiscovery.duration(to: .now) >= $0 } ?? false
        if discover { lastDiscovery = .now }
        var added: [(topic: Int, partition: Int32)] = []
        for (t, rkt) in topicRkts.enumerated() {
            var md: UnsafePointer<rd_kafka_metadata_t>?
            guard rd_kafka_metadata(handle.rk, 0, rkt, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR, let md else { continue }
            defer { rd_kafka_metadata_destroy(md) }
            let name = String(cString: topicNames[t])
            let entry = (0..<Int(md.pointee.topic_cnt)).map { md.pointee.topics[$0] }.first { String(cString: $0.topic) == name }
            guard let entry, entry.err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, entry.partition_cnt > 0 else {
                throw WeirError(.topicDeleted, subject: "Kafka topic '\(name)' on \(bootstrap)",
                                "was deleted while the job read it", suggestion: KafkaSourceReader.topicDeletedSuggestion)
            }
            guard discover, entry.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            for i in 0..<Int(entry.partition_cnt) {
                let p = entry.partitions[i].id
                let split = "\(name)/\(p)"
                guard p >= 0, !knownSplits.contains(split), owner.owns(newSplit: split) else { continue }
                if Int(p) < partitionToSplit[t].count && partitionToSplit[t][Int(p)] >= 0 { continue }
                added.append((t, p))
            }
        }
        return try assignNew(added.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) })
    }

    /// Starts reading new partitions from earliest, keeping the current assignment as it is.
    private func assignNew(_ added: [(topic: Int, partition: Int32)]) throws -> [String] {
        guard !added.isEmpty else { return [] }
        let list = rd_kafka_topic_partition_list_new(Int32(added.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (t, p) in added {
            rd_kafka_topic_partition_list_add(list, topicNames[t], p).pointee.offset = kOffsetBeginning
        }
        if let error = rd_kafka_incremental_assign(handle.rk, list) {
            defer { rd_kafka_error_destroy(error) }
            throw WeirError(.kafka, subject: label, "cannot start reading new partitions: \(String(cString: rd_kafka_error_string(error)))")
        }
        var names: [String] = []
        for (t, p) in added {
            let s = splitNames.count
            let name = "\(String(cString: topicNames[t]))/\(p)"
            if Int(p) >= partitionToSplit[t].count {
                partitionToSplit[t] += [Int](repeating: -1, count: Int(p) + 1 - partitionToSplit[t].count)
            }
            partitionToSplit[t][Int(p)] = s
            splitNames.append(name)
            splitTopic.append(t)
            splitPartition.append(p)
            startOffset.append(kOffsetBeginning)
            floorOffset.append(0)
            nextOffset.append(-1)
            startChecked.append(true)
            stopOffset.append(Int64.max)
            paused.append(false)
            names.append(name)
        }
        return names
    }

    /// The first offset the broker still holds for split `s`, asked with
    /// ListOffsets(earliest) (nil when it does not answer in time).
    func lowWatermark(_ s: Int) -> Int64? {
        var lo = kOffsetInvalid, hi = kOffsetInvalid
        let err = rd_kafka_query_watermark_offsets(handle.rk, topicNames[splitTopic[s]], splitPartition[s], &lo, &hi, 5000)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR && lo >= 0 ? lo : nil
    }

    private func watermarks(_ s: Int) -> (Int64, Int64) {
        var lo = kOffsetInvalid, hi = kOffsetInvalid
        _ = rd_kafka_get_watermark_offsets(handle.rk, topicNames[splitTopic[s]], splitPartition[s], &lo, &hi)
        return (lo, hi)
    }

    @inline(__always)
    private func splitIndex(_ rkt: OpaquePointer?, _ partition: Int32) -> Int {
        var t = -1
        for i in 0..<topicRkts.count where topicRkts[i] == rkt { t = i; break }
        if t < 0 {
            guard let rkt, let name = rd_kafka_topic_name(rkt) else { return -1 }
            for i in 0..<topicNames.count where strcmp(topicNames[i], name) == 0 { t = i; break }
            if t < 0 { return -1 }
        }
        let map = partitionToSplit[t]
        return partition >= 0 && Int(partition) < map.count ? map[Int(partition)] : -1
    }

    func offsetOfLastDelivered(split: Int) -> Int64? {
        split >= 0 && split < nextOffset.count && nextOffset[split] > 0 ? nextOffset[split] - 1 : nil
    }

    func poll(maxMessages: Int, timeoutMillis: Int, _ deliver: (Int, UnsafeRawBufferPointer) -> Void) throws -> Int {
        guard !closed, maxMessages > 0 else { return 0 }
        if uncheckedStarts > 0 { try checkStartOffsets() }
        if maxMessages > bufferCapacity {
            buffer.deallocate()
            bufferCapacity = maxMessages
            buffer = .allocate(capacity: bufferCapacity)
        }
        // Take what is already queued; only if nothing is, wait for the first
        // message (consume_batch would wait for a full batch or the timeout).
        var n = rd_kafka_consume_batch_queue(queue, 0, buffer, maxMessages)
        if n == 0 && timeoutMillis > 0 {
            if let first = rd_kafka_consume_queue(queue, Int32(clamping: timeoutMillis)) {
                buffer[0] = first
                n = 1
                if maxMessages > 1 {
                    let more = rd_kafka_consume_batch_queue(queue, 0, buffer + 1, maxMessages - 1)
                    if more > 0 { n += more }
                }
            }
        }
        if n < 0 {
            throw WeirError(.kafka, subject: label, "consume failed: \(errorText(rd_kafka_last_error()))")
        }

        var delivered = 0
        var failure: WeirError?
        for i in 0..<n {
            let m = buffer[i]!
            defer { rd_kafka_message_destroy(m) }
            let msg = m.pointee
            let s = splitIndex(msg.rkt, msg.partition)
            if msg.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                guard s >= 0, msg.offset >= floorOffset[s] else { continue }
                if msg.offset >= stopOffset[s] { stopFetching(s); continue }
                nextOffset[s] = msg.offset + 1
                // A message without a value (a tombstone) is delivered empty: it is not a JSON
                // object, so the source counts it and applies the bad-record policy.
                deliver(s, UnsafeRawBufferPointer(start: msg.payload, count: msg.payload == nil ? 0 : msg.len))
                delivered += 1
            } else if msg.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                // The fetcher reached the end: everything before `offset` has been delivered.
                if s >= 0 && msg.offset > nextOffset[s] { nextOffset[s] = min(msg.offset, stopOffset[s]) }
            } else if failure == nil {
                failure = classify(m, split: s)
            }
        }
        if let failure { throw failure }
        return delivered
    }

    /// Turns a per-message error into a thrown WeirError if it is fatal; logs and ignores transient ones.
    private func classify(_ m: UnsafeMutablePointer<rd_kafka_message_t>, split s: Int) -> WeirError? {
        let err = m.pointee.err
        let reason = rd_kafka_message_errstr(m).map { String(cString: $0) } ?? errorText(err)
        let part: String
        if s >= 0 { part = splitNames[s] }
        else if let rkt = m.pointee.rkt, let name = rd_kafka_topic_name(rkt) { part = "\(String(cString: name))/\(m.pointee.partition)" }
        else { part = "" }
        let subject = part.isEmpty ? label : "Kafka partition \(part)"
        switch err {
        case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
            return WeirError(.topicDeleted, subject: subject, "no longer exists: \(reason)",
                             suggestion: KafkaSourceReader.topicDeletedSuggestion)
        case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET, RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
            return WeirError(.kafka, subject: subject, "start offset is out of range: \(reason)",
                             suggestion: "check 'startOffsets' against the partition's retained offsets")
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
             RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR__AUTHENTICATION,
             RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
            return WeirError(.kafka, subject: subject, "not allowed: \(reason)",
                             suggestion: "check the credentials and ACLs in 'properties'")
        case RD_KAFKA_RESP_ERR__FATAL:
            var buf = [CChar](repeating: 0, count: 512)
            let code = rd_kafka_fatal_error(handle.rk, &buf, buf.count)
            return WeirError(.kafka, subject: subject, "fatal client error: \(errorText(code)): \(cString(buf))")
        default:
            handle.events.recordError(err, part.isEmpty ? reason : "\(part): \(reason)")
            return nil
        }
    }

    /// A bounded run reached split `s`'s stop offset: everything before it was delivered.
    private func stopFetching(_ s: Int) {
        nextOffset[s] = max(nextOffset[s], stopOffset[s])
        guard !paused[s] else { return }
        paused[s] = true
        let list = rd_kafka_topic_partition_list_new(1)!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_topic_partition_list_add(list, topicNames[splitTopic[s]], splitPartition[s])
        _ = rd_kafka_pause_partitions(handle.rk, list)
    }

    func progress() -> [SplitProgress] {
        var out: [SplitProgress] = []
        out.reserveCapacity(splitNames.count)
        for s in splitNames.indices {
            var (lo, hi) = closed ? (kOffsetInvalid, kOffsetInvalid) : watermarks(s)
            // A bounded split ends at its stop offset (reached or not yet produced).
            if stopOffset[s] != Int64.max { hi = stopOffset[s]; if nextOffset[s] >= 0 && nextOffset[s] >= hi { stopFetching(s) } }
            var next = nextOffset[s]
            if !startChecked[s] && hi >= 0 && next > hi { next = -1 }   // poll will report it out of range
            if next < 0 && startOffset[s] == kOffsetBeginning {
                // Nothing delivered yet: the next message is the first retained one.
                if lo >= 0 { next = lo }
                else if hi == 0 { next = 0 }
                else if !closed {
                    let pos = rd_kafka_topic_partition_list_new(1)!
                    defer { rd_kafka_topic_partition_list_destroy(pos) }
                    let e = rd_kafka_topic_partition_list_add(pos, topicNames[splitTopic[s]], splitPartition[s])!
                    if rd_kafka_position(handle.rk, pos) == RD_KAFKA_RESP_ERR_NO_ERROR, e.pointee.offset >= 0 {
                        next = e.pointee.offset
                    }
                }
            }
            out.append(SplitProgress(name: splitNames[s], nextOffset: next, highWatermark: hi >= 0 ? hi : -1))
        }
        return out
    }

    func close() {
        guard !closed else { return }
        closed = true
        rd_kafka_queue_destroy(queue)
        _ = rd_kafka_assign(handle.rk, nil)
        for rkt in topicRkts { rd_kafka_topic_destroy(rkt) }
        topicRkts = []
        // Nothing is committed, so skip the consumer-group close handshake (it can block on a dead broker).
        handle.destroy(flags: kDestroyNoConsumerClose)
    }

    deinit {
        close()
        buffer.deallocate()
        for n in topicNames { free(n) }
    }
}
