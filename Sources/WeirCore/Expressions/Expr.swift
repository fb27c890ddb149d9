/// The parsed form of an expression, before type checking and compilation.
///
/// Expressions are parsed once when a spec is validated; the runtime only
/// ever sees the compiled closures produced by `ExprCompiler`.
public indirect enum Expr: Sendable, Equatable, CustomStringConvertible {
    case literal(Value)
    case field(String)
    case unary(UnaryOp, Expr)
    case binary(BinaryOp, Expr, Expr)
    case call(String, [Expr])

    public enum UnaryOp: String, Sendable { case neg = "-", not = "not" }
    public enum BinaryOp: String, Sendable {
        case add = "+", sub = "-", mul = "*", div = "/", mod = "%"
        case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">="
        case and = "and", or = "or"
    }

    public var description: String {
        switch self {
        case .literal(.string(let s)): return "'\(s)'"
        case .literal(let v): return v.description
        case .field(let f): return f
        case .unary(let op, let e): return op == .neg ? "-\(e)" : "not \(e)"
        case .binary(let op, let l, let r): return "(\(l) \(op.rawValue) \(r))"
        case .call(let f, let args): return "\(f)(\(args.map(\.description).joined(separator: ", ")))"
        }
    }

    /// Every field name the expression reads.
    public var fieldReferences: [String] {
        switch self {
        case .literal: return []
        case .field(let f): return [f]
        case .unary(_, let e): return e.fieldReferences
        case .binary(_, let l, let r): return l.fieldReferences + r.fieldReferences
        case .call(_, let args): return args.flatMap(\.fieldReferences)
        }
    }
}

/// A syntax or type error inside one expression, with the character offset.
public struct ExprError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var offset: Int?
    public init(_ message: String, at offset: Int? = nil) { self.message = message; self.offset = offset }
    public var description: String { offset.map { "\(message) at column \($0 + 1)" } ?? message }
}
