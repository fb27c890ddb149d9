#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Decodes JSON object messages straight into rows of a `RecordBatch`.
///
/// Built once per source subtask from the fields the job needs: it scans the
/// message bytes, matches top-level keys against those names and converts
/// values to the declared types, without building a dictionary or any
/// intermediate JSON tree. A message that is not a JSON object, or whose
/// values violate the declared types, is rejected (the caller counts it).
public struct JSONRowDecoder: Sendable {
    public let schema: Schema
    /// Index of the event-time field in `schema`, if the source has one.
    public let eventTimeIndex: Int?
    private let names: FieldNames
    private let types: [ValueType]
    private var row: [Value]

    /// Fields that must be present and non-null (declared without `?`).
    private let required: [Int]

    /// Event times outside this range (years 0001 to 9999, in epoch
    /// milliseconds) are rejected, so that window and watermark arithmetic on
    /// them can never overflow.
    public static let eventTimeRange: ClosedRange<Int64> = minEventTime ... maxEventTime
    /// The range's bounds as plain constants (compared inline on the hot path).
    public static let minEventTime: Int64 = -62_135_596_800_000
    public static let maxEventTime: Int64 = 253_402_300_799_999

    public init(schema: Schema, eventTimeField: String?) {
        self.schema = schema
        self.names = FieldNames(schema.fields.map(\.name))
        self.types = schema.fields.map(\.type)
        self.eventTimeIndex = eventTimeField.flatMap { schema.index(of: $0) }
        self.required = schema.fields.indices.filter { !schema.fields[$0].nullable }
        self.row = Array(repeating: .null, count: schema.count)
    }

    /// Why a message was rejected (the field is an index into `schema`).
    public enum Failure: Sendable, Equatable {
        case malformed
        case typeMismatch(field: Int)
        case outOfRange(field: Int)
        case missingField(field: Int)
        case badEventTime

        public var reason: RejectReason {
            switch self {
            case .malformed: return .malformed
            case .typeMismatch: return .typeMismatch
            case .outOfRange: return .outOfRange
            case .missingField: return .missingField
            case .badEventTime: return .badEventTime
            }
        }

        /// What is wrong, naming the field.
        public func message(schema: Schema, eventTimeField: String?) -> String {
            func name(_ i: Int) -> String { "'\(schema.fields[i].name)'" }
            switch self {
            case .malformed: return "the value is not a JSON object"
            case .typeMismatch(let f): return "field \(name(f)) is not a \(schema.fields[f].type)"
            case .outOfRange(let f): return "field \(name(f)) is out of range for a \(schema.fields[f].type) (64-bit integers)"
            case .missingField(let f): return "field \(name(f)) is missing or null (declare it as \(schema.fields[f].type)? if it may be)"
            case .badEventTime:
                return "the event time '\(eventTimeField ?? "")' is missing, not a number, or outside years 0001-9999 (epoch milliseconds)"
            }
        }
    }

    /// Decodes one message and appends it to `batch`; returns nil on success.
    public mutating func decode(_ bytes: UnsafeRawBufferPointer, into batch: inout RecordBatch) -> Failure? {
        if let f = decodeAppending(bytes, to: &batch.values) { return f }
        batch.timestamps.append(timestamp)
        return nil
    }

    /// Decodes one message straight into `values` as a new row of `schema.count`
    /// values at its end (no copy through the decoder's own row); on failure
    /// `values` is left as it was. The row's event time is `timestamp`.
    @inline(__always)
    public mutating func decodeAppending(_ bytes: UnsafeRawBufferPointer, to values: inout [Value]) -> Failure? {
        let start = values.count, arity = types.count
        values.append(contentsOf: repeatElement(Value.null, count: arity))
        let failure = values.withUnsafeMutableBufferPointer { all in
            parse(bytes, into: UnsafeMutableBufferPointer(rebasing: all[start..<(start + arity)]))
        }
        if failure != nil { values.removeLast(arity) }
        return failure
    }

    /// Event time of the row last decoded.
    public private(set) var timestamp = RecordBatch.noTimestamp

    /// The values of the row last decoded by `decodeRow` (valid until the next decode).
    /// `mutating` only so that a caller holding the decoder in a `var` (the
    /// source loop's capture) lends it in place instead of copying it per record.
    @inline(__always) public mutating func withRow<R>(_ body: (UnsafePointer<Value>) -> R) -> R {
        row.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// Decodes one message into the decoder's own row buffer (see `withRow`, `timestamp`).
    public mutating func decodeRow(_ bytes: UnsafeRawBufferPointer) -> Failure? {
        var own = row
        row = []
        defer { row = own }
        return own.withUnsafeMutableBufferPointer { r in
            for i in 0..<r.count { r[i] = .null }
            return parse(bytes, into: r)
        }
    }

    /// Parses one message into `row` (all null on entry; one access for the
    /// whole message, no per-field uniqueness check); sets `timestamp` on success.
    @inline(__always)
    private mutating func parse(_ bytes: UnsafeRawBufferPointer, into row: UnsafeMutableBufferPointer<Value>) -> Failure? {
        let names = self.names, types = self.types, required = self.required, eventTimeIndex = self.eventTimeIndex
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return .malformed }
        var s = Scanner(p: base, end: bytes.count)
        s.skipWS()
        guard s.eat(UInt8(ascii: "{")) else { return .malformed }
        s.skipWS()
        if !s.eat(UInt8(ascii: "}")) {
            var guess = 0  // producers usually write the keys in the same order: try the next one first
            while true {
                s.skipWS()
                guard let (kStart, kLen, kEscaped) = s.stringSpan() else { return .malformed }
                s.skipWS()
                guard s.eat(UInt8(ascii: ":")) else { return .malformed }
                s.skipWS()
                let field = kEscaped ? nil : names.match(s.p + kStart, kLen, guess: guess)
                if let f = field {
                    guess = f &+ 1
                    guard let v = s.value() else { return .malformed }
                    guard let converted = JSONRowDecoder.convert(v, types[f]) else {
                        if types[f] == .int, case .double(let d) = v, d.rounded() == d { return .outOfRange(field: f) }
                        return .typeMismatch(field: f)
                    }
                    row[f] = converted
                } else {
                    guard s.skipValue() else { return .malformed }
                }
                s.skipWS()
                if s.eat(UInt8(ascii: ",")) { continue }
                if s.eat(UInt8(ascii: "}")) { break }
                return .malformed
            }
        }
        s.skipWS()
        if s.i != s.end { return .malformed }
        for f in required where row[f].isNull { return .missingField(field: f) }
        guard let e = eventTimeIndex else { return nil }
        switch row[e] {
        case .int(let t) where t >= JSONRowDecoder.minEventTime && t <= JSONRowDecoder.maxEventTime: timestamp = t; return nil
        case .double(let d) where d >= Double(JSONRowDecoder.minEventTime) && d <= Double(JSONRowDecoder.maxEventTime):
            timestamp = Int64(d.rounded(.down)); return nil
        default: return .badEventTime
        }
    }

    @inline(__always) private static func convert(_ v: Value, _ t: ValueType) -> Value? {
        switch (t, v) {
        case (_, .null), (.any, _): return v
        case (.int, .int), (.double, .double), (.string, .string), (.bool, .bool): return v
        case (.int, .double(let d)): return d.rounded() == d && Swift.abs(d) < 9.2e18 ? .int(Int64(d)) : nil
        case (.double, .int(let i)): return .double(Double(i))
        case (.string, _): return .string(v.description)
        default: return nil
        }
    }
}

/// The schema's field names as one immutable byte table, so that matching a
/// key costs a length check and an inline byte compare, with the field the
/// producer usually writes next tried first. Shared by copies of a decoder.
final class FieldNames: @unchecked Sendable {
    private let bytes: UnsafeMutablePointer<UInt8>
    private let starts: [Int]
    private let lengths: [Int]

    init(_ names: [String]) {
        let utf8 = names.map { Array($0.utf8) }
        bytes = .allocate(capacity: max(1, utf8.reduce(0) { $0 + $1.count }))
        var starts: [Int] = [], at = 0
        for n in utf8 {
            starts.append(at)
            for (k, b) in n.enumerated() { (bytes + at + k).initialize(to: b) }
            at += n.count
        }
        self.starts = starts
        lengths = utf8.map(\.count)
    }

    deinit { bytes.deallocate() }

    @inline(__always) private func equals(_ i: Int, _ p: UnsafePointer<UInt8>, _ len: Int) -> Bool {
        guard lengths[i] == len else { return false }
        let n = bytes + starts[i]
        for k in 0..<len where n[k] != p[k] { return false }
        return true
    }

    /// The index of the field named by the `len` bytes at `p`, trying `guess` first.
    @inline(__always) func match(_ p: UnsafePointer<UInt8>, _ len: Int, guess: Int) -> Int? {
        if guess < lengths.count, equals(guess, p, len) { return guess }
        for i in 0..<lengths.count where i != guess && equals(i, p, len) { return i }
        return nil
    }
}

/// A cursor over JSON bytes. Kept minimal: the decoder only needs spans of
/// keys, scalar values, and the ability to skip nested values.
package struct Scanner {
    package let p: UnsafePointer<UInt8>
    package let end: Int
    package var i = 0

    package init(p: UnsafePointer<UInt8>, end: Int) { self.p = p; self.end = end }

    @inline(__always) package mutating func skipWS() {
        while i < end {
            let c = p[i]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 } else { return }
        }
    }

    @inline(__always) package mutating func eat(_ c: UInt8) -> Bool {
        if i < end && p[i] == c { i += 1; return true }
        return false
    }

    /// Consumes a string; returns the span of its raw content and whether it contains escapes.
    @inline(__always) package mutating func stringSpan() -> (Int, Int, Bool)? {
        guard eat(UInt8(ascii: "\"")) else { return nil }
        let start = i
        var escaped = false
        while i < end {
            let c = p[i]
            if c == UInt8(ascii: "\"") { let len = i - start; i += 1; return (start, len, escaped) }
            if c == UInt8(ascii: "\\") { escaped = true; i += 2; continue }
            if c < 0x20 { return nil }
            i += 1
        }
        return nil
    }

    package mutating func value() -> Value? {
        guard i < end else { return nil }
        switch p[i] {
        case UInt8(ascii: "\""):
            guard let (s, n, esc) = stringSpan() else { return nil }
            let buf = UnsafeBufferPointer(start: p + s, count: n)
            if !esc { return .string(String(decoding: buf, as: UTF8.self)) }
            guard let str = unescape(buf) else { return nil }
            return .string(str)
        case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
        case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
        case UInt8(ascii: "n"): return literal("null") ? .null : nil
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            // Nested values are kept as their JSON text.
            let start = i
            guard skipValue() else { return nil }
            return .string(String(decoding: UnsafeBufferPointer(start: p + start, count: i - start), as: UTF8.self))
        default: return number()
        }
    }

    @inline(__always) package mutating func literal(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard i + n <= end, memcmp(p + i, word.utf8Start, n) == 0 else { return false }
        i += n
        return true
    }

    @inline(__always) package mutating func number() -> Value? {
        let start = i
        var neg = false
        if i < end && p[i] == UInt8(ascii: "-") { neg = true; i += 1 }
        var v: Int64 = 0
        var digits = 0
        var overflow = false
        while i < end, p[i] &- 48 < 10 {
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(p[i] &- 48))
            overflow = overflow || o1 || o2
            v = a; digits += 1; i += 1
        }
        guard digits > 0 else { return nil }
        if i < end, p[i] == UInt8(ascii: ".") || p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E") || overflow {
            while i < end, (p[i] &- 48 < 10) || p[i] == UInt8(ascii: ".") || p[i] == UInt8(ascii: "e")
                    || p[i] == UInt8(ascii: "E") || p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-") { i += 1 }
            // strtod needs a NUL-terminated copy: on the stack (a number's text is short), not an array per number.
            let n = i - start
            let d = withUnsafeTemporaryAllocation(of: CChar.self, capacity: n + 1) { b -> Double? in
                for k in 0..<n { b[k] = CChar(bitPattern: p[start + k]) }
                b[n] = 0
                var endp: UnsafeMutablePointer<CChar>?
                let r = strtod(b.baseAddress!, &endp)
                return endp == b.baseAddress! + n ? r : nil
            }
            return d.map { .double($0) }
        }
        return .int(neg ? -v : v)
    }

    /// Skips any JSON value; false if malformed.
    package mutating func skipValue() -> Bool {
        guard i < end else { return false }
        let c = p[i]
        if c == UInt8(ascii: "\"") { return stringSpan() != nil }
        if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") {
            var depth = 0
            while i < end {
                let ch = p[i]
                if ch == UInt8(ascii: "\"") { guard stringSpan() != nil else { return false }; continue }
                if ch == UInt8(ascii: "{") || ch == UInt8(ascii: "[") { depth += 1 }
                else if ch == UInt8(ascii: "}") || ch == UInt8(ascii: "]") {
                    depth -= 1
                    if depth == 0 { i += 1; return true }
                }
                i += 1
            }
            return false
        }
        return value() != nil
    }

    package func unescape(_ b: UnsafeBufferPointer<UInt8>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var k = 0
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= b.count else { return nil }
            var v: UInt32 = 0
            for j in at..<(at + 4) {
                let c = b[j]
                let d: UInt32
                switch c {
                case 48...57: d = UInt32(c - 48)
                case 65...70: d = UInt32(c - 55)
                case 97...102: d = UInt32(c - 87)
                default: return nil
                }
                v = v << 4 | d
            }
            return v
        }
        while k < b.count {
            let c = b[k]
            if c != UInt8(ascii: "\\") { out.append(c); k += 1; continue }
            guard k + 1 < b.count else { return nil }
            let e = b[k + 1]
            k += 2
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                guard var cp = hex4(k) else { return nil }
                k += 4
                if cp >= 0xD800 && cp < 0xDC00, k + 6 <= b.count, b[k] == UInt8(ascii: "\\"), b[k + 1] == UInt8(ascii: "u"),
                   let lo = hex4(k + 2), lo >= 0xDC00 && lo < 0xE000 {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                    k += 6
                }
                guard let scalar = Unicode.Scalar(cp) else { out.append(contentsOf: [0xEF, 0xBF, 0xBD]); continue }
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: out.append(e)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
