import Foundation
import Logging
import Synchronization

/// Record-level error isolation: what happens to one record that cannot be
/// processed (a malformed message, a value the declared type cannot hold, an
/// aggregate that overflowed, a row the sink's table refuses).
///
/// One bad record never stops a job and never holds back the good records
/// around it: it is rejected at the earliest point that can tell it is bad,
/// counted per node and reason, logged (rate-limited), and, when asked,
/// written to a dead-letter table in the same transaction as the sink's epoch.

/// The policy for rejected records (`onError:` of the job, overridable per sink).
public enum OnError: String, Sendable, CaseIterable, Equatable {
    /// Count, log (rate-limited) and drop the record; the job goes on. The default.
    case skip
    /// As skip, and write the record to the dead-letter table.
    case deadLetter
    /// Fail the job, naming the record (no restart: a replay would meet the same record).
    case fail
}

/// Why a record was rejected: stable codes, used in metrics and in the
/// dead-letter table's `error_code` column.
public enum RejectReason: String, Sendable, CaseIterable, Equatable, Comparable {
    /// The message is not a JSON object (or not valid JSON).
    case malformed
    /// A field has a value its declared type cannot hold (`"abc"` for an int).
    case typeMismatch = "type_mismatch"
    /// A declared, non-nullable field is missing or null.
    case missingField = "missing_field"
    /// A number outside the range of its declared type.
    case outOfRange = "out_of_range"
    /// The event time is missing, not a number, or outside the supported range.
    case badEventTime = "bad_event_time"
    /// Arithmetic on the record overflowed (an integer `sum`, for instance).
    case overflow
    /// The sink's table refuses the row (NULL into NOT NULL, out of range,
    /// too long, invalid date, charset, a CHECK constraint, ...).
    case sinkRejected = "sink_rejected"

    public static func < (a: RejectReason, b: RejectReason) -> Bool { a.rawValue < b.rawValue }
}

/// One rejected record, as counted, logged and dead-lettered.
public struct RejectedRecord: Sendable, Equatable {
    /// Most bytes of a record's value kept (dead-letter `raw_value`, logs).
    public static let maxValueBytes = 16 << 10

    /// The id of the node that rejected it.
    public var node: String
    public var reason: RejectReason
    /// What exactly is wrong, naming the field or column (`field 'user_id' is missing`).
    public var message: String
    /// Where it came from in Kafka, when the record is a source message.
    public var topic: String?
    public var partition: Int32?
    public var offset: Int64?
    /// The raw message value (sources), or the row rendered as JSON (operators,
    /// sinks); capped at `maxValueBytes`.
    public var value: [UInt8]

    public init(node: String, reason: RejectReason, message: String, topic: String? = nil,
                partition: Int32? = nil, offset: Int64? = nil, value: [UInt8]) {
        self.node = node; self.reason = reason; self.message = message
        self.topic = topic; self.partition = partition; self.offset = offset
        self.value = value.count > Self.maxValueBytes ? Array(value.prefix(Self.maxValueBytes)) : value
    }

    /// `events/3@1200`, or the node id when the record has no Kafka origin.
    public var origin: String {
        guard let topic, let partition else { return "node '\(node)'" }
        return "\(topic)/\(partition)" + (offset.map { "@\($0)" } ?? "")
    }

    /// A row rendered as a JSON object with the schema's field names (for
    /// rows rejected after the source, which have no raw message).
    public static func json(row: UnsafePointer<Value>, schema: Schema) -> [UInt8] {
        var s = "{"
        for (i, f) in schema.fields.enumerated() {
            if i > 0 { s += "," }
            s += jsonString(f.name) + ":"
            switch row[i] {
            case .null: s += "null"
            case .bool(let b): s += b ? "true" : "false"
            case .int(let v): s += String(v)
            case .double(let d): s += d.isFinite ? String(d) : "null"
            case .string(let t): s += jsonString(t)
            }
        }
        return Array((s + "}").utf8)
    }

    package static func jsonString(_ t: String) -> String {
        var out = ""
        appendJSONQuoted(t, to: &out)
        return out
    }
}

/// Appends `text` as a JSON string literal (quotes, escapes, control
/// characters as `\u00XX`): one implementation for every JSON Weir writes.
public func appendJSONQuoted(_ text: String, to out: inout String) {
    out += "\""
    for u in text.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 {
                let h = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    out += "\""
}

/// What a sink writer needs to know to isolate the rows its table refuses:
/// who it is (for the dead-letter rows), the policy, and where to report.
public struct SinkContext: Sendable {
    public var job: String
    /// The published version being run, when the control plane knows it.
    public var version: Int?
    public var run: String
    /// The sink node's id.
    public var node: String
    public var subtask: Int
    /// The policy for rows the table refuses (the sink's own, else the job's).
    public var onError: OnError
    /// The dead-letter table (in the sink's database), when `onError` is deadLetter.
    public var deadLetterTable: String?
    /// Counts and logs one rejected row. Called by the writer for every row it
    /// rejects, whatever the policy (for `fail` just before it throws).
    public var report: @Sendable (RejectedRecord) -> Void

    public init(job: String, version: Int? = nil, run: String, node: String, subtask: Int,
                onError: OnError = .skip, deadLetterTable: String? = nil,
                report: @escaping @Sendable (RejectedRecord) -> Void = { _ in }) {
        self.job = job; self.version = version; self.run = run; self.node = node; self.subtask = subtask
        self.onError = onError; self.deadLetterTable = deadLetterTable; self.report = report
    }
}

/// The job-level and per-sink error settings of a spec.
public struct ErrorPolicy: Sendable, Equatable {
    public var onError: OnError = .skip
    /// `deadLetter: { table: NAME }`.
    public var deadLetterTable: String?

    public init(onError: OnError = .skip, deadLetterTable: String? = nil) {
        self.onError = onError; self.deadLetterTable = deadLetterTable
    }
}

/// One node's handling of the records it rejects, shared by its subtasks:
/// counts per reason, a rate-limited log (the first few records in full,
/// then one summary line per interval, never a line per record), and the
/// policy: skip, pass on for the dead-letter table, or fail the job.
package final class Rejections: Sendable {
    package let node: String
    package let policy: OnError
    /// The sink node that writes this node's dead letters (the first sink downstream).
    package let deadLetterSink: String?
    private let counts: [RejectReason: Counter]
    private let metrics: JobMetrics
    private let logger: Logger
    package static let fullLogLines = 5
    package static let summaryIntervalNanos: UInt64 = 10_000_000_000

    private struct LogState {
        var logged = 0
        var suppressed: [RejectReason: Int] = [:]
        var lastSummary: UInt64 = 0
    }
    private let logState = Mutex(LogState())

    package init(node: String, policy: OnError, deadLetterSink: String?, metrics: JobMetrics, logger: Logger) {
        self.node = node; self.policy = policy; self.deadLetterSink = deadLetterSink
        self.metrics = metrics; self.logger = logger
        var c: [RejectReason: Counter] = [:]
        for r in RejectReason.allCases { c[r] = Counter() }
        counts = c
    }

    /// Rejected records so far, per reason (reasons with none left out).
    package var byReason: [RejectReason: Int] {
        var out: [RejectReason: Int] = [:]
        for (r, c) in counts where c.load > 0 { out[r] = c.load }
        return out
    }

    /// Counts and logs one rejected record; throws under `onError: fail`.
    /// Returns true when the record should travel on to the dead-letter table.
    package func reject(_ r: RejectedRecord) throws -> Bool {
        counts[r.reason]!.add(1)
        metrics.rejectedRecords.add(1)
        note(r)
        switch policy {
        case .skip: return false
        case .deadLetter: return deadLetterSink != nil
        case .fail:
            throw WeirError(.badRecord, subject: "record \(r.origin) at node '\(node)'",
                            "\(r.message) (\(r.reason.rawValue)); value: \(RejectedRecord.preview(r.value))",
                            suggestion: "fix the record upstream, or set onError: skip (count and drop bad records) or deadLetter (keep them in a table)")
        }
    }

    private func note(_ r: RejectedRecord) {
        let now = DispatchTime.now().uptimeNanoseconds
        let line: String? = logState.withLock { s in
            if s.logged < Rejections.fullLogLines {
                s.logged += 1
                if s.logged == Rejections.fullLogLines { s.lastSummary = now }
                return "\(node): rejected record \(r.origin) (\(r.reason.rawValue)): \(r.message); value: \(RejectedRecord.preview(r.value))"
                    + (s.logged == Rejections.fullLogLines ? " [further rejections are summarised every \(Rejections.summaryIntervalNanos / 1_000_000_000) s]" : "")
            }
            s.suppressed[r.reason, default: 0] += 1
            guard now &- s.lastSummary >= Rejections.summaryIntervalNanos else { return nil }
            return takeSummary(&s, now)
        }
        if let line { logger.warning("\(line)") }
    }

    private func takeSummary(_ s: inout LogState, _ now: UInt64) -> String? {
        guard !s.suppressed.isEmpty else { return nil }
        let total = s.suppressed.values.reduce(0, +)
        let parts = s.suppressed.sorted { $0.key < $1.key }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", ")
        s.suppressed = [:]
        s.lastSummary = now
        return "\(node): \(total) more record\(total == 1 ? "" : "s") rejected (\(parts)); policy \(policy.rawValue)"
    }

    /// Logs what the summary has not said yet (at the end of a run).
    package func flushLog() {
        let line = logState.withLock { s in takeSummary(&s, DispatchTime.now().uptimeNanoseconds) }
        if let line { logger.warning("\(line)") }
    }
}

extension RejectedRecord {
    /// The first 200 characters of a value, for log lines and error messages.
    package static func preview(_ v: [UInt8]) -> String {
        let s = String(decoding: v.prefix(200), as: UTF8.self)
        return v.count > 200 ? s + "…" : s
    }
}
