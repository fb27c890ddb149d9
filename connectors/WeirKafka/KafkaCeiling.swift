import CRdKafka
import Foundation
import WeirCore

/// The throughput ceiling `weir bench` compares a job with: a bare librdkafka
/// consume of the same partitions and offsets, on this machine, in the same
/// run. No decoding and no operators, only touching each payload's first
/// byte, with the consumer settings of Weir's reader except a larger
/// prefetch queue (the fastest single bare consumer; see benchmarks/README.md).
public enum KafkaCeiling {
    /// What the bare consume read and how long it took.
    public struct Result: Sendable, Codable {
        public var messages: Int
        public var bytes: Int
        /// From creating the client to the last partition's end (connection set-up included).
        public var seconds: Double
        /// From creating the client to the first message (metadata, assignment, first fetch).
        public var firstMessageSeconds: Double
        public var eventsPerSecond: Double { seconds > 0 ? Double(messages) / seconds : 0 }
    }

    /// Reads every `topic/partition` in `ranges` from its start to its end
    /// offset (exclusive) with one consumer; fails if it reads a different
    /// number of messages or takes longer than `timeoutSeconds`.
    public static func consume(bootstrap: String, ranges: [(split: String, start: Int64, end: Int64)],
                               properties: [String: String] = [:], batch: Int = 4096,
                               timeoutSeconds: Double = 300) throws -> Result {
        try KafkaLibrary.checkVersion()
        let subject = "ceiling consumer on \(bootstrap)"
        let work = ranges.filter { $0.end > $0.start }
        let expected = work.reduce(0) { $0 + Int($1.end - $1.start) }
        let started = DispatchTime.now().uptimeNanoseconds
        let settings = baseKafkaSettings(bootstrap: bootstrap) + [
            ("client.id", "weir-bench-ceiling"),
            ("group.id", "weir-bench-ceiling"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "false"),
            ("auto.offset.reset", "error"),
            ("fetch.wait.max.ms", "50"),
            ("fetch.queue.backoff.ms", "1"),
            ("fetch.error.backoff.ms", "100"),
            ("queued.min.messages", "200000"),
            ("queued.max.messages.kbytes", "65536"),
            ("max.partition.fetch.bytes", "8388608"),
            ("fetch.max.bytes", "52428800"),
        ] + properties.sorted { $0.key < $1.key }.filter { $0.key.hasPrefix("security.") || $0.key.hasPrefix("sasl.") || $0.key.hasPrefix("ssl.") }
        let handle = try KafkaHandle(RD_KAFKA_CONSUMER, settings: settings, subject: subject)
        defer { handle.destroy(flags: kDestroyNoConsumerClose) }
        rd_kafka_poll_set_consumer(handle.rk)
        // Learn the leaders first, as Weir's reader does (avoids librdkafka's 500 ms retry).
        var md: UnsafePointer<rd_kafka_metadata>?
        if rd_kafka_metadata(handle.rk, 0, nil, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR, let md { rd_kafka_metadata_destroy(md) }

        let list = rd_kafka_topic_partition_list_new(Int32(work.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        var remaining: [String: Int64] = [:]   // "topic/partition" → end offset
        for r in work {
            guard let slash = r.split.lastIndex(of: "/"), let p = Int32(r.split[r.split.index(after: slash)...]) else {
                throw WeirError(.internalError, subject: subject, "split '\(r.split)' is not topic/partition")
            }
            rd_kafka_topic_partition_list_add(list, String(r.split[..<slash]), p).pointee.offset = r.start
            remaining[r.split] = r.end
        }
        let err = rd_kafka_assign(handle.rk, list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw WeirError(.kafka, subject: subject, "assign failed: \(errorText(err))") }
        guard let queue = rd_kafka_queue_get_consumer(handle.rk) else { throw WeirError(.kafka, subject: subject, "no consumer queue") }
        defer { rd_kafka_queue_destroy(queue) }

        let buffer = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: batch)
        defer { buffer.deallocate() }
        var messages = 0, bytes = 0, checksum: UInt64 = 0
        var firstMessage: UInt64 = 0
        // End offsets by topic handle and partition, looked up per message without strings.
        var ends: [(rkt: OpaquePointer, byPartition: [Int64])] = []
        var open = remaining.count
        let deadline = started &+ UInt64(timeoutSeconds * 1e9)
        while open > 0 {
            var n = rd_kafka_consume_batch_queue(queue, 0, buffer, batch)
            if n == 0, let first = rd_kafka_consume_queue(queue, 50) {
                buffer[0] = first
                n = 1
                let more = rd_kafka_consume_batch_queue(queue, 0, buffer + 1, batch - 1)
                if more > 0 { n += more }
            }
            if n < 0 { throw WeirError(.kafka, subject: subject, "consume failed: \(errorText(rd_kafka_last_error()))") }
            if firstMessage == 0 && n > 0 { firstMessage = DispatchTime.now().uptimeNanoseconds }
            for i in 0..<n {
                let m = buffer[i]!
                defer { rd_kafka_message_destroy(m) }
                let msg = m.pointee
                guard msg.err == RD_KAFKA_RESP_ERR_NO_ERROR, let rkt = msg.rkt else { continue }
                var t = 0
                while t < ends.count && ends[t].rkt != rkt { t += 1 }
                if t == ends.count {
                    let name = String(cString: rd_kafka_topic_name(rkt))
                    var byPartition: [Int64] = []
                    for (split, end) in remaining where split.hasPrefix(name + "/") {
                        guard let p = Int(split.dropFirst(name.count + 1)), p >= 0 else { continue }
                        if byPartition.count <= p { byPartition += Array(repeating: -1, count: p + 1 - byPartition.count) }
                        byPartition[p] = end
                    }
                    ends.append((rkt, byPartition))
                }
                let p = Int(msg.partition)
                guard p < ends[t].byPartition.count, msg.offset < ends[t].byPartition[p] else { continue }  // past the end
                messages += 1
                bytes += msg.len
                if msg.len > 0, let payload = msg.payload { checksum &+= UInt64(payload.load(as: UInt8.self)) }
                if msg.offset + 1 == ends[t].byPartition[p] { open -= 1 }
            }
            if DispatchTime.now().uptimeNanoseconds > deadline {
                throw WeirError(.kafka, subject: subject, "read \(messages) of \(expected) messages in \(Int(timeoutSeconds)) s",
                                suggestion: "check that the broker still holds the bench topic's data")
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        rd_kafka_assign(handle.rk, nil)
        withExtendedLifetime(checksum) {}
        guard messages == expected else {
            throw WeirError(.internalError, subject: subject, "read \(messages) messages, the offsets say \(expected)")
        }
        return Result(messages: messages, bytes: bytes, seconds: seconds,
                      firstMessageSeconds: firstMessage > started ? Double(firstMessage - started) / 1e9 : seconds)
    }
}
