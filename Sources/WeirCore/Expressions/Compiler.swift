import Foundation

/// Evaluates a compiled expression against one row (a pointer to its first value).
public typealias RowEval = @Sendable (UnsafePointer<Value>) -> Value

/// A type-checked, compiled expression: built once per job, called per record.
public struct CompiledExpr: Sendable {
    public let type: ValueType
    public let eval: RowEval
    /// The field index when the expression is a bare field reference (lets operators skip a call).
    public let fieldIndex: Int?
    /// The value when the expression is a constant.
    public let constant: Value?
}

/// Type-checks an `Expr` against a schema and compiles it into closures.
///
/// Field names are resolved to row positions here, and common shapes
/// (`field <op> literal`) get specialised closures, so evaluating a record
/// never involves a name lookup or re-parsing.
public enum ExprCompiler {
    public static let scalarFunctions = ["lower", "upper", "concat", "coalesce", "abs", "round", "if"]
    public static let aggregateFunctions = ["count", "sum", "min", "max", "avg", "count_distinct"]

    /// Parses, checks and compiles `text` against `schema`.
    public static func compile(_ text: String, schema: Schema) throws(ExprError) -> CompiledExpr {
        try compile(try ExprParser.parse(text), schema: schema)
    }

    public static func compile(_ e: Expr, schema: Schema) throws(ExprError) -> CompiledExpr {
        switch e {
        case .literal(let v):
            return CompiledExpr(type: v.isNull ? .any : v.type, eval: { _ in v }, fieldIndex: nil, constant: v)
        case .field(let name):
            guard let i = schema.index(of: name) else {
                var msg = "unknown field '\(name)'"
                if let best = closestMatch(name, in: schema.names) { msg += " (did you mean '\(best)'?)" }
                else if !schema.fields.isEmpty { msg += " (fields: \(schema.names.joined(separator: ", ")))" }
                throw ExprError(msg)
            }
            return CompiledExpr(type: schema.fields[i].type, eval: { $0[i] }, fieldIndex: i, constant: nil)
        case .unary(let op, let inner):
            let c = try compile(inner, schema: schema)
            let f = c.eval
            switch op {
            case .neg:
                guard c.type.isNumeric else { throw ExprError("'-' needs a number, got \(c.type) in \(inner)") }
                return make(c.type) { row in negate(f(row)) }
            case .not:
                guard c.type == .bool || c.type == .any else { throw ExprError("'not' needs a boolean, got \(c.type) in \(inner)") }
                return make(.bool) { row in
                    switch f(row) { case .bool(let b): return .bool(!b); default: return .null }
                }
            }
        case .binary(let op, let l, let r):
            return try compileBinary(op, l, r, schema: schema)
        case .call(let name, let args):
            if aggregateFunctions.contains(name) {
                throw ExprError("aggregate '\(name)' can only be used inside 'aggregate'")
            }
            return try compileCall(name, args, schema: schema)
        }
    }

    private static func make(_ t: ValueType, _ f: @escaping RowEval) -> CompiledExpr {
        CompiledExpr(type: t, eval: f, fieldIndex: nil, constant: nil)
    }

    private static func compileBinary(_ op: Expr.BinaryOp, _ l: Expr, _ r: Expr, schema: Schema) throws(ExprError) -> CompiledExpr {
        let a = try compile(l, schema: schema), b = try compile(r, schema: schema)
        let fa = a.eval, fb = b.eval
        switch op {
        case .and, .or:
            for (c, e) in [(a, l), (b, r)] where !(c.type == .bool || c.type == .any) {
                throw ExprError("'\(op.rawValue)' needs booleans, got \(c.type) in \(e)")
            }
            if op == .and {
                return make(.bool) { row in
                    let x = fa(row)
                    if case .bool(false) = x { return .bool(false) }
                    let y = fb(row)
                    if case .bool(false) = y { return .bool(false) }
                    if case .bool(true) = x, case .bool(true) = y { return .bool(true) }
                    return .null
                }
            }
            return make(.bool) { row in
                let x = fa(row)
                if case .bool(true) = x { return .bool(true) }
                let y = fb(row)
                if case .bool(true) = y { return .bool(true) }
                if case .bool(false) = x, case .bool(false) = y { return .bool(false) }
                return .null
            }
        case .eq, .ne, .lt, .le, .gt, .ge:
            let comparable = a.type == .any || b.type == .any || a.type == b.type || (a.type.isNumeric && b.type.isNumeric)
            guard comparable else { throw ExprError("cannot compare \(a.type) with \(b.type) in \(l) \(op.rawValue) \(r)") }
            let test: @Sendable (Int) -> Bool
            switch op {
            case .eq: test = { $0 == 0 }
            case .ne: test = { $0 != 0 }
            case .lt: test = { $0 < 0 }
            case .le: test = { $0 <= 0 }
            case .gt: test = { $0 > 0 }
            default: test = { $0 >= 0 }
            }
            // Fast path: integer field compared with an integer literal.
            if let i = a.fieldIndex, case .int(let k)? = b.constant {
                return make(.bool) { row in
                    if case .int(let x) = row[i] { return .bool(test(x < k ? -1 : (x == k ? 0 : 1))) }
                    guard let c = compareValues(row[i], .int(k)), !row[i].isNull else { return .null }
                    return .bool(test(c))
                }
            }
            return make(.bool) { row in
                let x = fa(row), y = fb(row)
                if x.isNull || y.isNull { return .null }
                guard let c = compareValues(x, y) else { return .null }
                return .bool(test(c))
            }
        case .add, .sub, .mul, .div, .mod:
            for (c, e) in [(a, l), (b, r)] where !c.type.isNumeric {
                throw ExprError("'\(op.rawValue)' needs numbers, got \(c.type) in \(e)"
                                + (op == .add && c.type == .string ? " (use concat() to join strings)" : ""))
            }
            let t: ValueType
            if a.type == .any || b.type == .any { t = .any }
            else if op == .div || a.type == .double || b.type == .double { t = .double }
            else { t = .int }
            return make(t) { row in arithmetic(op, fa(row), fb(row)) }
        }
    }

    private static func compileCall(_ name: String, _ args: [Expr], schema: Schema) throws(ExprError) -> CompiledExpr {
        var cs: [CompiledExpr] = []
        for a in args { cs.append(try compile(a, schema: schema)) }
        func arity(_ n: ClosedRange<Int>) throws(ExprError) {
            guard n.contains(cs.count) else {
                throw ExprError("\(name)() takes \(n.lowerBound == n.upperBound ? "\(n.lowerBound)" : "\(n.lowerBound) to \(n.upperBound)") argument(s), got \(cs.count)")
            }
        }
        let fs = cs.map(\.eval)
        switch name {
        case "lower", "upper":
            try arity(1...1)
            guard cs[0].type == .string || cs[0].type == .any else { throw ExprError("\(name)() needs a string, got \(cs[0].type)") }
            let f = fs[0], up = name == "upper"
            return make(.string) { row in
                guard case .string(let s) = f(row) else { return .null }
                return .string(up ? s.uppercased() : s.lowercased())
            }
        case "concat":
            try arity(1...64)
            return make(.string) { row in
                var s = ""
                for f in fs { let v = f(row); if !v.isNull { s += v.description } }
                return .string(s)
            }
        case "coalesce":
            try arity(1...64)
            let t = try commonType(cs.map(\.type), context: "coalesce()")
            return make(t) { row in
                for f in fs { let v = f(row); if !v.isNull { return v } }
                return .null
            }
        case "abs":
            try arity(1...1)
            guard cs[0].type.isNumeric else { throw ExprError("abs() needs a number, got \(cs[0].type)") }
            let f = fs[0]
            return make(cs[0].type) { row in
                switch f(row) {
                case .int(let i): return i == .min ? .double(-Double(i)) : .int(i < 0 ? -i : i)
                case .double(let d): return .double(Swift.abs(d))
                default: return .null
                }
            }
        case "round":
            try arity(1...2)
            guard cs[0].type.isNumeric else { throw ExprError("round() needs a number, got \(cs[0].type)") }
            var digits = 0
            if cs.count == 2 {
                guard case .int(let d)? = cs[1].constant, d >= 0, d <= 15 else {
                    throw ExprError("round()'s second argument must be an integer literal from 0 to 15")
                }
                digits = Int(d)
            }
            let f = fs[0], scale = pow(10.0, Double(digits))
            return make(cs[0].type == .int ? .int : (cs[0].type == .any ? .any : .double)) { row in
                switch f(row) {
                case .int(let i): return .int(i)
                case .double(let d): return .double((d * scale).rounded(.toNearestOrAwayFromZero) / scale)
                default: return .null
                }
            }
        case "if":
            try arity(3...3)
            guard cs[0].type == .bool || cs[0].type == .any else { throw ExprError("if()'s first argument must be a condition, got \(cs[0].type)") }
            let t = try commonType([cs[1].type, cs[2].type], context: "if()")
            let c = fs[0], x = fs[1], y = fs[2]
            return make(t) { row in c(row).isTrue ? x(row) : y(row) }
        default:
            var msg = "unknown function '\(name)'"
            if let best = closestMatch(name, in: scalarFunctions + aggregateFunctions) { msg += " (did you mean '\(best)'?)" }
            throw ExprError(msg)
        }
    }

    package static func commonType(_ ts: [ValueType], context: String) throws(ExprError) -> ValueType {
        let known = Set(ts.filter { $0 != .any })
        if known.isEmpty { return .any }
        if known.count == 1 { return ts.contains(.any) ? .any : known.first! }
        if known == [.int, .double] { return .double }
        throw ExprError("\(context) mixes \(known.map(\.rawValue).sorted().joined(separator: " and "))")
    }
}

@inline(__always) package func negate(_ v: Value) -> Value {
    switch v {
    case .int(let i): return i == .min ? .double(-Double(i)) : .int(-i)
    case .double(let d): return .double(-d)
    default: return .null
    }
}

@inline(__always) package func arithmetic(_ op: Expr.BinaryOp, _ x: Value, _ y: Value) -> Value {
    if case .int(let a) = x, case .int(let b) = y, op != .div {
        // Integer results that do not fit 64 bits are computed in double
        // precision instead: never a wrapped value, never a trap.
        switch op {
        case .add: let (r, o) = a.addingReportingOverflow(b); return o ? .double(Double(a) + Double(b)) : .int(r)
        case .sub: let (r, o) = a.subtractingReportingOverflow(b); return o ? .double(Double(a) - Double(b)) : .int(r)
        case .mul: let (r, o) = a.multipliedReportingOverflow(by: b); return o ? .double(Double(a) * Double(b)) : .int(r)
        case .mod: return b == 0 ? .null : (b == -1 ? .int(0) : .int(a % b))
        default: break
        }
    }
    guard let a = x.asDouble, let b = y.asDouble else { return .null }
    switch op {
    case .add: return .double(a + b)
    case .sub: return .double(a - b)
    case .mul: return .double(a * b)
    case .div: return b == 0 ? .null : .double(a / b)
    case .mod: return b == 0 ? .null : .double(a.truncatingRemainder(dividingBy: b))
    default: return .null
    }
}
