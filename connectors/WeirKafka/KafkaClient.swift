import CRdKafka
import Foundation
import Synchronization
import WeirCore
import Logging

/// The librdkafka build this process loaded, and the check that it is new enough.
///
/// librdkafka is linked dynamically, so the version a binary runs with is only
/// known at run time; Debian bookworm's 2.0.2 fails against every modern broker
/// with a confusing "Read underflow", so Weir refuses it up front instead.
public enum KafkaLibrary {
    /// The oldest version that can talk to brokers sending KIP-482 tagged fields.
    static let minimumVersion = 0x0201_0000

    /// Human-readable version of the loaded library, e.g. `2.8.0`.
    public static var versionString: String { String(cString: rd_kafka_version_str()) }

    /// Version as librdkafka encodes it: `0xMMmmrrxx` (2.8.0 is `0x020800ff`).
    public static var versionNumber: Int { Int(rd_kafka_version()) }

    /// Throws `.unsupportedLibrary` when the loaded librdkafka is older than 2.1.
    public static func checkVersion() throws {
        guard versionNumber >= minimumVersion else {
            let v = versionString
            throw WeirError(.unsupportedLibrary, subject: "librdkafka \(v)",
                            "Weir needs librdkafka 2.1 or newer; this binary loaded \(v) (Debian's 2.0.2 cannot talk to modern brokers)",
                            suggestion: "run scripts/setup.sh, which installs librdkafka 2.8.0 into /usr/local")
        }
    }
}

// librdkafka macros that Swift cannot import (they contain casts).
let kOffsetBeginning: Int64 = -2
let kOffsetEnd: Int64 = -1
let kOffsetInvalid: Int64 = -1001
let kMsgFlagCopy: Int32 = 0x2
let kDestroyNoConsumerClose: Int32 = 0x8

/// What librdkafka's callbacks (error_cb, dr_msg_cb) reported. Callbacks run
/// on whichever thread serves the handle's queues, so the state is in a `Mutex`.
final class KafkaEvents: Sendable {
    private struct State {
        var allBrokersDown = false
        var lastError: String?
        var deliveryError: (topic: String, reason: String, count: Int)?
        var printed: [String: ContinuousClock.Instant] = [:]
        /// Where transient errors are logged (readers and producers); nil: only recorded.
        var logger: Logger?
        var label = "kafka"
    }
    private let state = Mutex(State())

    /// Logs transient errors (rate-limited per reason) under `label`.
    func log(to logger: Logger, as label: String) { state.withLock { $0.logger = logger; $0.label = label } }

    var allBrokersDown: Bool { state.withLock { $0.allBrokersDown } }
    var lastError: String? { state.withLock { $0.lastError } }

    func recordError(_ err: rd_kafka_resp_err_t, _ reason: String) {
        let log: (Logger, String)? = state.withLock { s in
            if err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN { s.allBrokersDown = true }
            // Keep the most specific reason: "all brokers down" says less than "connection refused".
            if err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || s.lastError == nil { s.lastError = reason }
            guard let logger = s.logger else { return nil }
            let now = ContinuousClock.now
            if let last = s.printed[reason], last.duration(to: now) < .seconds(30) { return nil }
            s.printed[reason] = now
            return (logger, s.label)
        }
        if let (logger, label) = log { logger.warning("\(label): \(reason)") }
    }

    func recordDelivery(topic: String, reason: String) {
        state.withLock { s in
            if let d = s.deliveryError { s.deliveryError = (d.topic, d.reason, d.count + 1) }
            else { s.deliveryError = (topic, reason, 1) }
        }
    }

    func takeDeliveryError() -> (topic: String, reason: String, count: Int)? {
        state.withLock { s in defer { s.deliveryError = nil }; return s.deliveryError }
    }
}

/// Owns one librdkafka client handle (`rd_kafka_t`) and the callback state it
/// writes into; destroys the handle exactly once. Not Sendable: each owner
/// (a reader, a producer, a short-lived metadata/admin client) uses it from
/// one thread at a time.
final class KafkaHandle {
    let rk: OpaquePointer
    let events: KafkaEvents
    private var destroyed = false

    init(_ type: rd_kafka_type_t, settings: [(String, String)], subject: String) throws {
        let events = KafkaEvents()
        let conf = try makeKafkaConf(settings)
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(events).toOpaque())
        rd_kafka_conf_set_error_cb(conf) { _, err, reason, opaque in
            guard let opaque else { return }
            let events = Unmanaged<KafkaEvents>.fromOpaque(opaque).takeUnretainedValue()
            events.recordError(rd_kafka_resp_err_t(rawValue: err), reason.map { String(cString: $0) } ?? "error \(err)")
        }
        if type == RD_KAFKA_PRODUCER {
            rd_kafka_conf_set_dr_msg_cb(conf) { _, msg, opaque in
                guard let opaque, let msg, msg.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR else { return }
                let events = Unmanaged<KafkaEvents>.fromOpaque(opaque).takeUnretainedValue()
                let topic = msg.pointee.rkt.flatMap { rd_kafka_topic_name($0) }.map { String(cString: $0) } ?? "?"
                events.recordDelivery(topic: topic, reason: String(cString: rd_kafka_err2str(msg.pointee.err)))
            }
        }
        var errbuf = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(type, conf, &errbuf, errbuf.count) else {
            rd_kafka_conf_destroy(conf)
            throw WeirError(.kafka, subject: subject, "cannot create a Kafka client: \(cString(errbuf))")
        }
        self.rk = rk
        self.events = events
    }

    /// Destroys the handle (idempotent). `flags` are rd_kafka_destroy_flags flags.
    func destroy(flags: Int32 = 0) {
        guard !destroyed else { return }
        destroyed = true
        rd_kafka_destroy_flags(rk, flags)
    }

    deinit { destroy(flags: kDestroyNoConsumerClose) }
}

/// Builds an `rd_kafka_conf_t`; a rejected setting is reported as a spec error naming it.
/// Properties that load code or run commands are refused before librdkafka sees
/// them (setting `plugin.library.paths` alone loads the library).
func makeKafkaConf(_ settings: [(String, String)]) throws -> OpaquePointer {
    for (key, value) in settings {
        if let why = KafkaPropertySafety.refusal(key: key, value: value) {
            throw WeirError(.invalidSpec, subject: "Kafka property '\(key)'", why,
                            suggestion: "remove it from the source's properties; Weir does not load code or run commands named by a job spec")
        }
    }
    let conf = rd_kafka_conf_new()!
    var errbuf = [CChar](repeating: 0, count: 512)
    for (key, value) in settings where rd_kafka_conf_set(conf, key, value, &errbuf, errbuf.count) != RD_KAFKA_CONF_OK {
        rd_kafka_conf_destroy(conf)
        throw WeirError(.invalidSpec, subject: "Kafka property '\(key)'", cString(errbuf),
                        suggestion: "see librdkafka's CONFIGURATION.md for valid properties and values")
    }
    return conf
}

/// Checks raw librdkafka properties without creating a client; returns (key, message) of the first bad one.
func validateKafkaProperties(_ props: [(String, String)]) -> (String, String)? {
    do {
        rd_kafka_conf_destroy(try makeKafkaConf(props))
        return nil
    } catch let e as WeirError {
        let key = props.first { e.subject == "Kafka property '\($0.0)'" }?.0 ?? ""
        return (key, e.message)
    } catch { return ("", "\(error)") }
}

/// Settings every Weir client shares; user `properties` come after and override them.
func baseKafkaSettings(bootstrap: String) -> [(String, String)] {
    [("bootstrap.servers", bootstrap),
     ("client.id", "weir"),
     ("log_level", "2"),              // errors reach us through error_cb instead of raw log lines
     ("log.connection.close", "false"),
     ("enable.metrics.push", "false"),  // KIP-714 telemetry: unused, and rd_kafka_destroy waits 1 s for it
     ("socket.nagle.disable", "true"),
     ("reconnect.backoff.ms", "100"),
     ("reconnect.backoff.max.ms", "2000"),
     ("socket.connection.setup.timeout.ms", "10000")]
}

func cString(_ buf: [CChar]) -> String {
    buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

func errorText(_ err: rd_kafka_resp_err_t) -> String { String(cString: rd_kafka_err2str(err)) }

func brokerUnreachable(_ bootstrap: String, _ reason: String) -> WeirError {
    // "h:1/bootstrap: Connect to ipv4#h:1 failed: Connection refused (after 0ms in state CONNECT)"
    // → "Connect to ipv4#h:1 failed: Connection refused"
    var r = Substring(reason)
    if let tag = r.range(of: "/bootstrap: ") { r = r[tag.upperBound...] }
    if let extra = r.range(of: " (after ") { r = r[..<extra.lowerBound] }
    return WeirError(.brokerUnreachable, subject: "Kafka broker \(bootstrap)", "cannot connect: \(r)",
                     suggestion: "check that the broker is running and 'bootstrap' is right")
}

/// True once librdkafka has reported every broker down for long enough that
/// waiting longer is pointless (connection refused, unresolvable host).
func gaveUpOnBrokers(_ handle: KafkaHandle, since start: ContinuousClock.Instant) -> Bool {
    rd_kafka_poll(handle.rk, 0)   // serves error_cb
    return handle.events.allBrokersDown && start.duration(to: .now) >= .milliseconds(1500)
}
