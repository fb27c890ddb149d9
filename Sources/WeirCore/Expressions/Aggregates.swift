/// One aggregate of an `aggregate:` mapping, e.g. `total: "sum(amount)"`,
/// compiled once: which function, which argument, what it outputs.
public struct AggregateSpec: Sendable {
    public enum Function: String, Sendable { case count, sum, min, max, avg, countDistinct = "count_distinct" }
    public let name: String
    public let function: Function
    /// The compiled argument (nil for `count()`).
    public let argument: CompiledExpr?
    public let outputType: ValueType

    /// Parses and type-checks `text` (which must be a single aggregate call) against `schema`.
    public static func compile(name: String, _ text: String, schema: Schema) throws(ExprError) -> AggregateSpec {
        let e = try ExprParser.parse(text)
        guard case .call(let fname, let args) = e else {
            throw ExprError("'\(text)' is not an aggregate; use one of \(ExprCompiler.aggregateFunctions.map { $0 + "()" }.joined(separator: ", "))")
        }
        guard let f = Function(rawValue: fname) else {
            var msg = "unknown aggregate '\(fname)'"
            if let best = closestMatch(fname, in: ExprCompiler.aggregateFunctions) { msg += " (did you mean '\(best)'?)" }
            throw ExprError(msg)
        }
        if f == .count && args.isEmpty {
            return AggregateSpec(name: name, function: f, argument: nil, outputType: .int)
        }
        guard args.count == 1 else { throw ExprError("\(fname)() takes one argument, got \(args.count)") }
        let arg = try ExprCompiler.compile(args[0], schema: schema)
        let out: ValueType
        switch f {
        case .count, .countDistinct: out = .int
        case .sum:
            guard arg.type.isNumeric else { throw ExprError("sum() needs a number, got \(arg.type) in \(args[0])") }
            out = arg.type
        case .avg:
            guard arg.type.isNumeric else { throw ExprError("avg() needs a number, got \(arg.type) in \(args[0])") }
            out = .double
        case .min, .max: out = arg.type
        }
        return AggregateSpec(name: name, function: f, argument: arg, outputType: out)
    }
}

/// Running state of one aggregate for one key (and window). Small value type
/// so a key's accumulators sit in one contiguous array.
public enum Accumulator: Sendable, Equatable {
    case count(Int64)
    case sumInt(Int64)
    case sumDouble(Double)
    case minMax(Value)
    case avg(sum: Double, count: Int64)
    case distinct(Set<Value>)
    /// An integer `sum` that left Int64's range: an error for that key (and
    /// window), never a wrapped value. The row that would carry it is rejected.
    case overflowed

    public var isOverflowed: Bool { if case .overflowed = self { return true } else { return false } }

    public static func initial(_ f: AggregateSpec.Function, type: ValueType) -> Accumulator {
        switch f {
        case .count: return .count(0)
        case .sum: return type == .int ? .sumInt(0) : .sumDouble(0)
        case .min, .max: return .minMax(.null)
        case .avg: return .avg(sum: 0, count: 0)
        case .countDistinct: return .distinct([])
        }
    }

    /// Folds one input value in (`count()` passes `.bool(true)`). Nulls are ignored, as in SQL.
    @inline(__always) public mutating func add(_ v: Value, _ f: AggregateSpec.Function) {
        if v.isNull { return }
        switch self {
        case .count(let c): self = .count(c &+ 1)
        case .overflowed: return
        case .sumInt(let s):
            if case .int(let i) = v {
                let (r, o) = s.addingReportingOverflow(i)
                self = o ? .overflowed : .sumInt(r)
            } else if let d = v.asDouble { self = .sumDouble(Double(s) + d) }
        case .sumDouble(let s): if let d = v.asDouble { self = .sumDouble(s + d) }
        case .minMax(let cur):
            if cur.isNull { self = .minMax(v); return }
            if let c = compareValues(v, cur), (f == .min ? c < 0 : c > 0) { self = .minMax(v) }
        case .avg(let s, let c): if let d = v.asDouble { self = .avg(sum: s + d, count: c + 1) }
        case .distinct(var set):
            self = .count(0)  // release the reference so the insert does not copy
            set.insert(v)
            self = .distinct(set)
        }
    }

    /// Combines another partial result into this one (session window merges).
    public mutating func merge(_ o: Accumulator, _ f: AggregateSpec.Function) {
        switch (self, o) {
        case (.count(let a), .count(let b)): self = .count(a + b)
        case (.sumInt(let a), .sumInt(let b)):
            let (r, o) = a.addingReportingOverflow(b)
            self = o ? .overflowed : .sumInt(r)
        case (_, .overflowed): self = .overflowed
        case (.sumInt(let a), .sumDouble(let b)): self = .sumDouble(Double(a) + b)
        case (.sumDouble(let a), .sumInt(let b)): self = .sumDouble(a + Double(b))
        case (.sumDouble(let a), .sumDouble(let b)): self = .sumDouble(a + b)
        case (.minMax, .minMax(let b)): add(b, f)
        case (.avg(let s1, let c1), .avg(let s2, let c2)): self = .avg(sum: s1 + s2, count: c1 + c2)
        case (.distinct(let a), .distinct(let b)): self = .distinct(a.union(b))
        default: break
        }
    }

    public var result: Value {
        switch self {
        case .count(let c): return .int(c)
        case .sumInt(let s): return .int(s)
        case .sumDouble(let s): return .double(s)
        case .minMax(let v): return v
        case .avg(let s, let c): return c == 0 ? .null : .double(s / Double(c))
        case .distinct(let set): return .int(Int64(set.count))
        case .overflowed: return .null
        }
    }
}
