/// A single field value flowing through a job.
///
/// Records are positional rows of `Value`s whose layout is fixed by a `Schema`
/// when the job is compiled, so the hot path never looks fields up by name.
public enum Value: Hashable, Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)

    /// The value as a double when it is numeric.
    @inlinable public var asDouble: Double? {
        switch self {
        case .int(let v): return Double(v)
        case .double(let v): return v
        default: return nil
        }
    }

    /// The value as an integer when it is an integer (or an integral double).
    @inlinable public var asInt: Int64? {
        switch self {
        case .int(let v): return v
        case .double(let v): return v.rounded() == v && abs(v) < 9.2e18 ? Int64(v) : nil
        default: return nil
        }
    }

    @inlinable public var isNull: Bool { if case .null = self { return true } else { return false } }

    /// SQL-like truthiness: only `true` is true.
    @inlinable public var isTrue: Bool { if case .bool(true) = self { return true } else { return false } }

    public var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .string(let s): return s
        }
    }

    /// The runtime type of this value.
    public var type: ValueType {
        switch self {
        case .null: return .any
        case .bool: return .bool
        case .int: return .int
        case .double: return .double
        case .string: return .string
        }
    }
}

/// Static types used by the expression type checker. `any` is a field whose
/// type is not declared (the source has no schema for it).
public enum ValueType: String, Sendable, CaseIterable, CustomStringConvertible {
    case any, bool, int, double, string

    public var description: String { rawValue }
    public var isNumeric: Bool { self == .int || self == .double || self == .any }

    /// Parses a schema type name (`int`, `long`, `bigint`, `double`, `float`, `string`, `bool`, ...).
    public init?(name: String) {
        switch name.lowercased() {
        case "int", "integer", "long", "bigint": self = .int
        case "double", "float", "number", "decimal": self = .double
        case "string", "text", "varchar": self = .string
        case "bool", "boolean": self = .bool
        case "any": self = .any
        default: return nil
        }
    }
}

/// Total order used by `min`/`max` and comparisons: numbers compare numerically,
/// strings lexicographically; null sorts first.
@inlinable public func compareValues(_ a: Value, _ b: Value) -> Int? {
    switch (a, b) {
    case (.int(let x), .int(let y)): return x < y ? -1 : (x == y ? 0 : 1)
    case (.string(let x), .string(let y)): return x < y ? -1 : (x == y ? 0 : 1)
    case (.bool(let x), .bool(let y)): return x == y ? 0 : (!x ? -1 : 1)
    case (.null, .null): return 0
    case (.null, _): return -1
    case (_, .null): return 1
    default:
        if let x = a.asDouble, let y = b.asDouble { return x < y ? -1 : (x == y ? 0 : 1) }
        return nil
    }
}
