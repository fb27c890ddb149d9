import CRdKafka
import Foundation
import WeirCore
import Logging

/// A small Kafka producer and topic administration helper.
///
/// Weir's jobs only read Kafka, but the demo, the tests and the benchmarks
/// need to create topics and load data into them through the same library
/// build the engine uses. Batches for throughput (linger 5 ms, large
/// batches, no compression); not thread-safe: use it from one thread at a time.
public final class KafkaProducer {
    /// Bootstrap servers this producer writes to.
    public let bootstrap: String
    private let handle: KafkaHandle
    private var topicHandles: [String: OpaquePointer] = [:]
    private var sinceServe = 0

    /// Creates the client (it connects lazily); `properties` are raw librdkafka settings overriding the defaults.
    public init(bootstrap: String, properties: [String: String] = [:], logger: Logger = Logger(label: "weir.kafka")) throws {
        try KafkaLibrary.checkVersion()
        self.bootstrap = bootstrap
        let settings = baseKafkaSettings(bootstrap: bootstrap) + [
            ("linger.ms", "5"),
            ("batch.size", "1000000"),
            ("batch.num.messages", "100000"),
            ("queue.buffering.max.messages", "1000000"),
            ("queue.buffering.max.kbytes", "1048576"),
            ("compression.codec", "none"),
        ] + properties.sorted { $0.key < $1.key }
        handle = try KafkaHandle(RD_KAFKA_PRODUCER, settings: settings, subject: "Kafka broker \(bootstrap)")
        handle.events.log(to: logger, as: "Kafka producer \(bootstrap)")
    }

    deinit {
        for rkt in topicHandles.values { rd_kafka_topic_destroy(rkt) }
        handle.destroy()
    }

    private func topicHandle(_ topic: String) -> OpaquePointer {
        if let rkt = topicHandles[topic] { return rkt }
        let rkt = rd_kafka_topic_new(handle.rk, topic, nil)!
        topicHandles[topic] = rkt
        return rkt
    }

    /// Queues one message (copied). `partition` -1 lets the partitioner choose (by key hash).
    /// Waits while the local queue is full; delivery errors surface in `flush`.
    /// A buffer with a nil base address produces a null value (a tombstone).
    public func produce(topic: String, partition: Int32 = -1, key: [UInt8]? = nil,
                        value: UnsafeRawBufferPointer) throws {
        let rkt = topicHandle(topic)
        let start = ContinuousClock.now
        while true {
            let rc: Int32
            if let key {
                rc = key.withUnsafeBytes { k in
                    rd_kafka_produce(rkt, partition, kMsgFlagCopy, UnsafeMutableRawPointer(mutating: value.baseAddress),
                                     value.count, k.baseAddress, k.count, nil)
                }
            } else {
                rc = rd_kafka_produce(rkt, partition, kMsgFlagCopy, UnsafeMutableRawPointer(mutating: value.baseAddress),
                                      value.count, nil, 0, nil)
            }
            if rc == 0 { break }
            let err = rd_kafka_last_error()
            switch err {
            case RD_KAFKA_RESP_ERR__QUEUE_FULL:
                if start.duration(to: .now) > .seconds(120) {
                    throw WeirError(.brokerUnreachable, subject: "Kafka broker \(bootstrap)",
                                    "the producer queue stayed full for 2 minutes" + (handle.events.lastError.map { ": \($0)" } ?? ""),
                                    suggestion: "check that the broker is running and 'bootstrap' is right")
                }
                rd_kafka_poll(handle.rk, 10)
            case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
                throw WeirError(.topicMissing, subject: "topic '\(topic)'",
                                partition >= 0 ? "has no partition \(partition) on \(bootstrap)" : "does not exist on \(bootstrap)",
                                suggestion: "create the topic first (KafkaProducer.createTopic)")
            default:
                throw WeirError(.kafka, subject: "topic '\(topic)'", "cannot produce: \(errorText(err))")
            }
        }
        sinceServe += 1
        if sinceServe >= 1024 {   // serve delivery reports so they do not pile up
            sinceServe = 0
            rd_kafka_poll(handle.rk, 0)
        }
    }

    /// Queues one message (copied). `partition` -1 lets the partitioner choose (by key hash).
    public func produce(topic: String, partition: Int32 = -1, key: [UInt8]? = nil, value: [UInt8]) throws {
        try value.withUnsafeBytes { try produce(topic: topic, partition: partition, key: key, value: $0) }
    }

    /// Waits until every queued message is delivered; throws if that takes longer
    /// than `timeoutMillis` or if any delivery failed since the last flush.
    public func flush(timeoutMillis: Int = 30_000) throws {
        let err = rd_kafka_flush(handle.rk, Int32(clamping: timeoutMillis))
        if let d = handle.events.takeDeliveryError() {
            throw WeirError(.kafka, subject: "topic '\(d.topic)'",
                            "\(d.count) message(s) were not delivered: \(d.reason)")
        }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let pending = rd_kafka_outq_len(handle.rk)
            throw WeirError(.brokerUnreachable, subject: "Kafka broker \(bootstrap)",
                            "\(pending) message(s) still undelivered after \(timeoutMillis) ms"
                                + (handle.events.lastError.map { ": \($0)" } ?? ""),
                            suggestion: "check that the broker is running and 'bootstrap' is right")
        }
    }

    // MARK: Admin

    /// Creates a topic (replication factor 1). With `ifNotExists`, an existing topic is not an error.
    public static func createTopic(bootstrap: String, name: String, partitions: Int,
                                   ifNotExists: Bool = true, properties: [String: String] = [:]) throws {
        try admin(bootstrap: bootstrap, properties: properties, topic: name) { rk, options, q in
            var errbuf = [CChar](repeating: 0, count: 512)
            guard let nt = rd_kafka_NewTopic_new(name, Int32(partitions), 1, &errbuf, errbuf.count) else {
                throw WeirError(.invalidSpec, subject: "topic '\(name)'", cString(errbuf))
            }
            defer { rd_kafka_NewTopic_destroy(nt) }
            var topics: [OpaquePointer?] = [nt]
            rd_kafka_CreateTopics(rk, &topics, 1, options, q)
        } result: { ev in
            var cnt = 0
            let res = rd_kafka_event_CreateTopics_result(ev)
            let results = rd_kafka_CreateTopics_result_topics(res, &cnt)
            return (0..<cnt).compactMap { results?[$0] }
        } ignore: { err in
            ifNotExists && err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS
        }
    }

    /// Deletes a topic. With `ifExists`, a missing topic is not an error.
    public static func deleteTopic(bootstrap: String, name: String, ifExists: Bool = true,
                                   properties: [String: String] = [:]) throws {
        try admin(bootstrap: bootstrap, properties: properties, topic: name) { rk, options, q in
            guard let dt = rd_kafka_DeleteTopic_new(name) else {
                throw WeirError(.invalidSpec, subject: "topic '\(name)'", "invalid topic name")
            }
            defer { rd_kafka_DeleteTopic_destroy(dt) }
            var topics: [OpaquePointer?] = [dt]
            rd_kafka_DeleteTopics(rk, &topics, 1, options, q)
        } result: { ev in
            var cnt = 0
            let res = rd_kafka_event_DeleteTopics_result(ev)
            let results = rd_kafka_DeleteTopics_result_topics(res, &cnt)
            return (0..<cnt).compactMap { results?[$0] }
        } ignore: { err in
            ifExists && err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
        }
    }

    /// Runs one admin request on a short-lived client and checks its per-topic results.
    private static func admin(bootstrap: String, properties: [String: String], topic: String,
                              send: (OpaquePointer, OpaquePointer, OpaquePointer) throws -> Void,
                              result: (OpaquePointer) -> [OpaquePointer],
                              ignore: (rd_kafka_resp_err_t) -> Bool) throws {
        try KafkaLibrary.checkVersion()
        let handle = try KafkaHandle(RD_KAFKA_PRODUCER,
                                     settings: baseKafkaSettings(bootstrap: bootstrap) + properties.sorted { $0.key < $1.key },
                                     subject: "Kafka broker \(bootstrap)")
        defer { handle.destroy() }
        let q = rd_kafka_queue_new(handle.rk)!
        defer { rd_kafka_queue_destroy(q) }
        let options = rd_kafka_AdminOptions_new(handle.rk, RD_KAFKA_ADMIN_OP_ANY)!
        defer { rd_kafka_AdminOptions_destroy(options) }
        var errbuf = [CChar](repeating: 0, count: 512)
        _ = rd_kafka_AdminOptions_set_request_timeout(options, 10_000, &errbuf, errbuf.count)
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, 10_000, &errbuf, errbuf.count)
        try send(handle.rk, options, q)

        let start = ContinuousClock.now
        while true {
            if let ev = rd_kafka_queue_poll(q, 100) {
                defer { rd_kafka_event_destroy(ev) }
                let err = rd_kafka_event_error(ev)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    let reason = rd_kafka_event_error_string(ev).map { String(cString: $0) } ?? errorText(err)
                    if err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT {
                        throw brokerUnreachable(bootstrap, handle.events.lastError ?? reason)
                    }
                    throw WeirError(.kafka, subject: "topic '\(topic)'", reason)
                }
                for r in result(ev) {
                    let e = rd_kafka_topic_result_error(r)
                    if e == RD_KAFKA_RESP_ERR_NO_ERROR || ignore(e) { continue }
                    let msg = rd_kafka_topic_result_error_string(r).map { String(cString: $0) } ?? errorText(e)
                    let code: WeirError.Code = e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? .topicMissing : .kafka
                    throw WeirError(code, subject: "topic '\(topic)'", msg)
                }
                return
            }
            if gaveUpOnBrokers(handle, since: start) {
                throw brokerUnreachable(bootstrap, handle.events.lastError ?? "all brokers are down")
            }
            if start.duration(to: .now) > .seconds(15) {
                throw brokerUnreachable(bootstrap, "no answer within 15 s")
            }
        }
    }
}
