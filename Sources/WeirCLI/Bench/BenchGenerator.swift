import WeirCore

/// The events `weir bench` generates for one source, from the source's
/// declared schema: deterministic for a seed, so that the same stream can be
/// produced into Kafka and replayed into the reference without storing it.
///
/// Per field (documented in the README's `weir bench` section):
/// - the event-time field: epoch ms advancing `eventsPerSecond` per second of event time;
/// - a key field (a `keyBy` or upsert key downstream): uniform over `keys` values
///   (int 0..<keys, string `k<n>`, double n, bool n % 2 == 0);
/// - other int: uniform 1...1000; double: uniform 0.00...999.99 (two decimals);
///   string: 8 lowercase letters; bool: true or false.
/// A share `badShare` of the records is bad, in turn: cut-off JSON, a required
/// field missing (when the schema has one), a number field holding text.
struct BenchGenerator {
    enum Kind: Equatable { case eventTime, key(ValueType), int, double, string, bool }
    struct Field { var name: String; var kind: Kind; var nullable: Bool }
    enum Record { case good(values: [Value], timestamp: Int64), bad }

    let fields: [Field]
    let keys: UInt64
    let eventsPerSecond: Int64
    let baseTimestamp: Int64
    let badEvery: UInt64   // a record is bad when its draw % 1_000_000 < badEvery
    private var state: UInt64
    private(set) var index: Int64 = 0
    private var badCount = 0

    static let defaultBaseTimestamp: Int64 = 1_700_000_000_000

    init(schema: Schema, eventTimeField: String?, keyFields: Set<String>, keys: Int, seed: UInt64,
         eventsPerSecond: Int, badShare: Double, baseTimestamp: Int64 = BenchGenerator.defaultBaseTimestamp) {
        fields = schema.fields.map { f in
            let kind: Kind
            if f.name == eventTimeField { kind = .eventTime }
            else if keyFields.contains(f.name) { kind = .key(f.type) }
            else {
                switch f.type {
                case .int, .any: kind = .int
                case .double: kind = .double
                case .string: kind = .string
                case .bool: kind = .bool
                }
            }
            return Field(name: f.name, kind: kind, nullable: f.nullable)
        }
        self.keys = UInt64(max(1, keys))
        self.eventsPerSecond = Int64(max(1, eventsPerSecond))
        self.baseTimestamp = baseTimestamp
        self.badEvery = UInt64((min(max(badShare, 0), 1) * 1_000_000).rounded())
        state = seed
    }

    /// SplitMix64 (the finaliser is the one key groups use).
    private mutating func random() -> UInt64 {
        defer { state &+= 0x9E37_79B9_7F4A_7C15 }
        return KeyGroups.mix(state)
    }

    /// The next record's JSON in `buf`, and what it holds.
    mutating func next(into buf: inout [UInt8]) -> Record {
        let ts = baseTimestamp &+ index &* 1000 / eventsPerSecond
        index += 1
        buf.removeAll(keepingCapacity: true)
        if badEvery > 0 && random() % 1_000_000 < badEvery {
            writeBad(into: &buf, ts: ts)
            return .bad
        }
        var values: [Value] = []
        values.reserveCapacity(fields.count)
        buf.append(UInt8(ascii: "{"))
        for (i, f) in fields.enumerated() {
            if i > 0 { buf.append(UInt8(ascii: ",")) }
            appendName(f.name, into: &buf)
            let v = value(f, ts: ts)
            append(v, into: &buf)
            values.append(v)
        }
        buf.append(UInt8(ascii: "}"))
        return .good(values: values, timestamp: ts)
    }

    private mutating func value(_ f: Field, ts: Int64) -> Value {
        switch f.kind {
        case .eventTime: return .int(ts)
        case .key(let type):
            let n = random() % keys
            switch type {
            case .string: return .string("k\(n)")
            case .double: return .double(Double(n))
            case .bool: return .bool(n % 2 == 0)
            case .int, .any: return .int(Int64(n))
            }
        case .int: return .int(Int64(random() % 1000 + 1))
        case .double:
            // Written with Swift's shortest round-trip form, so the source decodes exactly this value.
            return .double(Double(random() % 100_000) / 100)
        case .string:
            var s = ""
            for _ in 0..<8 { s.unicodeScalars.append(Unicode.Scalar(UInt8(97 + random() % 26))) }
            return .string(s)
        case .bool: return .bool(random() % 2 == 0)
        }
    }

    private mutating func writeBad(into buf: inout [UInt8], ts: Int64) {
        badCount += 1
        let required = fields.firstIndex { !$0.nullable && $0.kind != .eventTime }
        let numeric = fields.firstIndex { f in
            switch f.kind { case .int, .double, .eventTime, .key(.int), .key(.double): return true; default: return false }
        }
        switch badCount % 3 {
        case 1 where required != nil || numeric != nil:
            // A required field missing, or else a number field holding text.
            buf.append(UInt8(ascii: "{"))
            var first = true
            for (i, f) in fields.enumerated() where i != (required ?? -1) {
                if !first { buf.append(UInt8(ascii: ",")) }
                first = false
                appendName(f.name, into: &buf)
                if required == nil && i == numeric { buf.append(contentsOf: "\"oops\"".utf8) } else { append(value(f, ts: ts), into: &buf) }
            }
            buf.append(UInt8(ascii: "}"))
        case 2 where numeric != nil:
            buf.append(UInt8(ascii: "{"))
            for (i, f) in fields.enumerated() {
                if i > 0 { buf.append(UInt8(ascii: ",")) }
                appendName(f.name, into: &buf)
                if i == numeric { buf.append(contentsOf: "\"oops\"".utf8) } else { append(value(f, ts: ts), into: &buf) }
            }
            buf.append(UInt8(ascii: "}"))
        default:
            buf.append(contentsOf: "{\"\(fields.first?.name ?? "x")\":".utf8)   // cut off: not JSON
        }
    }

    private func appendName(_ name: String, into buf: inout [UInt8]) {
        append(.string(name), into: &buf)
        buf.append(UInt8(ascii: ":"))
    }

    private func append(_ v: Value, into buf: inout [UInt8]) {
        switch v {
        case .null: buf.append(contentsOf: "null".utf8)
        case .bool(let b): buf.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let i): buf.append(contentsOf: String(i).utf8)
        case .double(let d): buf.append(contentsOf: String(d).utf8)
        case .string(let s):
            buf.append(UInt8(ascii: "\""))
            for b in s.utf8 {
                if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") { buf.append(UInt8(ascii: "\\")) }
                buf.append(b)
            }
            buf.append(UInt8(ascii: "\""))
        }
    }
}
