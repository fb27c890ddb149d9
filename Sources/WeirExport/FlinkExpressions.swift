import WeirCore

/// A field as Flink SQL sees it: its type, and whether Weir may hold integer
/// values in it although it is typed double (the result of `coalesce()` or
/// `if()` mixing int and double: Weir keeps each value's own kind).
struct FlinkField: Sendable, Equatable {
    var type: ValueType
    var mixed: Bool = false
}

/// Writes Weir expressions as Flink SQL expressions that compute the same
/// values, or refuses them.
///
/// It exists so that expressions are never re-parsed by hand: it walks the
/// AST of Weir's own `ExprParser`, and mirrors `ExprCompiler`'s typing and
/// null rules operator by operator (SQL's three-valued logic for `and`, `or`,
/// `not` and comparisons is Weir's too; `/` is always a double and `x / 0`
/// and `x % 0` are null; `concat` skips nulls). Whatever Flink computes
/// differently is refused, naming the node and the expression.
struct FlinkExpressions {
    /// The node the expressions belong to (the subject of refusals).
    let node: String
    /// The fields of the node's input, by name.
    let fields: [String: FlinkField]

    init(node: String, fields: [String: FlinkField]) {
        self.node = node
        self.fields = fields
    }

    init(node: String, schema: [Schema.Field], mixed: Set<String>) {
        self.node = node
        var f: [String: FlinkField] = [:]
        for field in schema where f[field.name] == nil { f[field.name] = FlinkField(type: field.type, mixed: mixed.contains(field.name)) }
        self.fields = f
    }

    /// A rendered expression: SQL text, its type on Flink, and whether it may
    /// carry integers while typed double (see `FlinkField.mixed`).
    struct Rendered: Equatable {
        var sql: String
        var type: ValueType
        var mixed: Bool
    }

    // MARK: Scalar expressions

    /// Renders one expression of the spec. `want` types an expression that is
    /// always null (`null`, `null + 1`), which Flink needs a type for.
    func render(_ text: String, want: ValueType? = nil) throws(ExportRefusal) -> Rendered {
        let e = try parse(text)
        let r = Renderer(owner: self, text: text)
        return Rendered(sql: try r.render(e, want: want), type: r.infer(e), mixed: r.mixed(e))
    }

    /// A filter condition: it must be a boolean on Flink.
    func condition(_ text: String) throws(ExportRefusal) -> String {
        let e = try parse(text)
        let r = Renderer(owner: self, text: text)
        let t = r.infer(e)
        guard t == .bool || t == .any else {
            throw refusal(text, "is a \(t) on Flink, and a filter needs a condition (Weir accepts it only because a null leaves it untyped)")
        }
        return try r.render(e, want: .bool)
    }

    // MARK: Aggregates

    /// One aggregate of an `aggregate:` mapping (`count()`, `sum(amount)`, ...):
    /// its SQL and its output type. Empty groups do not exist (a group is made
    /// by its first record), so Weir's and SQL's results agree except for
    /// `sum` over only null values (Weir: 0, SQL: NULL), which is written out.
    func aggregate(_ name: String, _ text: String) throws(ExportRefusal) -> Rendered {
        let e = try parse(text)
        guard case .call(let fn, let args) = e else { throw refusal(text, "is not an aggregate") }
        let r = Renderer(owner: self, text: text)
        if fn == "count" && args.isEmpty { return Rendered(sql: "COUNT(*)", type: .int, mixed: false) }
        guard args.count == 1 else { throw refusal(text, "takes one argument") }
        let arg = args[0]
        let t = r.infer(arg)
        func typed(_ what: String) throws(ExportRefusal) -> ValueType {
            guard t != .any else {
                throw refusal(text, "\(what) of a value that is always null has no type (Weir leaves it untyped); Flink needs one for the column '\(name)'")
            }
            return t
        }
        switch fn {
        case "count":
            return Rendered(sql: "COUNT(\(try r.render(arg, want: .int)))", type: .int, mixed: false)
        case "count_distinct":
            if r.mixed(arg) {
                throw refusal(text, "counts distinct values of an expression that mixes int and double: Weir counts 1 and 1.0 as two values, Flink as one",
                              hint: "make both sides of the coalesce()/if() the same type (write 1.0 for 1)")
            }
            return Rendered(sql: "COUNT(DISTINCT \(try r.render(arg, want: .int)))", type: .int, mixed: false)
        case "sum":
            let ty = try typed("sum()")
            try r.requireNumeric(ty, arg)
            let zero = ty == .int ? "CAST(0 AS BIGINT)" : "0E0"
            return Rendered(sql: "COALESCE(SUM(\(try r.render(arg, want: ty))), \(zero))", type: ty, mixed: r.mixed(arg))
        case "min", "max":
            let ty = try typed("\(fn)()")
            return Rendered(sql: "\(fn.uppercased())(\(try r.render(arg, want: ty)))", type: ty, mixed: r.mixed(arg))
        case "avg":
            try r.requireNumeric(t, arg)
            // Flink's AVG of a BIGINT is a BIGINT (integer division); Weir's avg is a double.
            return Rendered(sql: "AVG(\(r.asDouble(try r.render(arg, want: .double), t)))", type: .double, mixed: false)
        default:
            throw refusal(text, "'\(fn)' is not an aggregate Weir knows")
        }
    }

    // MARK: Helpers

    private func parse(_ text: String) throws(ExportRefusal) -> Expr {
        do { return try ExprParser.parse(text) } catch {
            throw ExportRefusal(node, "'\(text)' does not parse: \(error)")
        }
    }

    func refusal(_ text: String, _ why: String, hint: String? = nil) -> ExportRefusal {
        ExportRefusal(node, "'\(text)' \(why)", hint: hint)
    }

    /// One walk over one expression (the text is kept for refusals).
    struct Renderer {
        let owner: FlinkExpressions
        let text: String

        func refuse(_ why: String, hint: String? = nil) -> ExportRefusal { owner.refusal(text, why, hint: hint) }

        static func isNumeric(_ t: ValueType) -> Bool { t == .int || t == .double || t == .any }

        func requireNumeric(_ t: ValueType, _ e: Expr) throws(ExportRefusal) {
            guard Renderer.isNumeric(t) else {
                throw refuse("uses \(e) (a \(t) on Flink) as a number; Weir accepts it only because a null leaves it untyped, Flink refuses it")
            }
        }

        /// The type the expression has on Flink: Weir's static type, except
        /// that a branch which is always null takes the type of the others
        /// (`if(c, x, null)` is typed like `x`). `any`: always null.
        func infer(_ e: Expr) -> ValueType {
            switch e {
            case .literal(let v): return v.isNull ? .any : v.type
            case .field(let f): return owner.fields[f]?.type ?? .any
            case .unary(.neg, let x): return infer(x)
            case .unary(.not, _): return .bool
            case .binary(let op, let l, let r):
                switch op {
                case .and, .or, .eq, .ne, .lt, .le, .gt, .ge: return .bool
                case .div: return .double
                case .add, .sub, .mul, .mod:
                    let a = infer(l), b = infer(r)
                    if a == .double || b == .double { return .double }
                    if a == .any && b == .any { return .any }
                    return a == .any ? b : a
                }
            case .call(let name, let args):
                switch name {
                case "lower", "upper", "concat": return .string
                case "coalesce": return common(args.map(infer))
                case "if": return args.count == 3 ? common([infer(args[1]), infer(args[2])]) : .any
                case "abs", "round": return args.first.map(infer) ?? .any
                default: return .any
                }
            }
        }

        /// The common type of branches (`any` ones left out); int and double give double.
        func common(_ ts: [ValueType]) -> ValueType {
            let known = Set(ts.filter { $0 != .any })
            if known.isEmpty { return .any }
            if known == [.int, .double] { return .double }
            return known.count == 1 ? known.first! : .any
        }

        /// Whether the value may be an integer although typed double (see `FlinkField.mixed`).
        func mixed(_ e: Expr) -> Bool {
            switch e {
            case .literal: return false
            case .field(let f): return owner.fields[f]?.mixed ?? false
            case .unary(.neg, let x): return mixed(x)
            case .unary(.not, _): return false
            case .binary(let op, let l, let r):
                switch op {
                case .add, .sub, .mul, .mod: return mixed(l) || mixed(r)
                default: return false
                }
            case .call(let name, let args):
                switch name {
                case "abs", "round": return args.first.map(mixed) ?? false
                case "coalesce", "if":
                    let branches = name == "if" ? Array(args.dropFirst()) : args
                    let kinds = Set(branches.map(infer))
                    return (kinds.contains(.int) && kinds.contains(.double)) || branches.contains(where: mixed)
                default: return false
                }
            }
        }

        func asDouble(_ sql: String, _ t: ValueType) -> String { t == .double ? sql : "CAST(\(sql) AS DOUBLE)" }

        /// An operand of `/`, as a double (Weir divides the operands' double values).
        func doubleOperand(_ e: Expr, _ t: ValueType) throws(ExportRefusal) -> String {
            if case .literal(.int(let i)) = e, let d = FlinkSQL.double(Double(i)) { return d }
            return asDouble(try render(e, want: .double), t == .any ? .double : t)
        }

        /// Renders `e`; `want` types it when it is always null.
        func render(_ e: Expr, want: ValueType?, inComparison: Bool = false) throws(ExportRefusal) -> String {
            let t = infer(e)
            if t == .any {
                guard let want, let type = FlinkSQL.type(want) else {
                    throw refuse("has a part that is always null (\(e)) and no type Flink could give it")
                }
                return "CAST(NULL AS \(type))"
            }
            switch e {
            case .literal(let v):
                switch v {
                case .int(let i):
                    // INT literals would make `2000000000 * 2` overflow 32 bits; compared, they are widened anyway.
                    return inComparison ? (i < 0 ? "(\(i))" : "\(i)") : "CAST(\(i) AS BIGINT)"
                case .double(let d):
                    guard let lit = FlinkSQL.double(d) else { throw refuse("holds the number \(d), which has no Flink literal") }
                    return lit
                case .string(let s): return FlinkSQL.string(s)
                case .bool(let b): return b ? "TRUE" : "FALSE"
                case .null: return "NULL"  // unreachable: typed above
                }
            case .field(let f):
                return FlinkSQL.ident(f)
            case .unary(.neg, let x):
                try requireNumeric(t, x)
                return "(- \(try render(x, want: t)))"
            case .unary(.not, let x):
                let xt = infer(x)
                guard xt == .bool || xt == .any else { throw refuse("applies 'not' to \(x), a \(xt) on Flink") }
                return "(NOT \(try render(x, want: .bool)))"
            case .binary(let op, let l, let r):
                return try binary(op, l, r, t)
            case .call(let name, let args):
                return try call(name, args, t)
            }
        }

        private func binary(_ op: Expr.BinaryOp, _ l: Expr, _ r: Expr, _ t: ValueType) throws(ExportRefusal) -> String {
            let lt = infer(l), rt = infer(r)
            switch op {
            case .and, .or:
                for (x, xt) in [(l, lt), (r, rt)] where !(xt == .bool || xt == .any) {
                    throw refuse("uses \(x) (a \(xt) on Flink) in '\(op.rawValue)'; Weir accepts it only because a null leaves it untyped")
                }
                return "(\(try render(l, want: .bool)) \(op == .and ? "AND" : "OR") \(try render(r, want: .bool)))"
            case .eq, .ne, .lt, .le, .gt, .ge:
                let comparable = lt == .any || rt == .any || lt == rt || (Renderer.isNumeric(lt) && Renderer.isNumeric(rt))
                guard comparable else {
                    throw refuse("compares a \(lt) with a \(rt) on Flink (Weir gives null there; Flink refuses the comparison)")
                }
                let sym: String
                switch op {
                case .eq: sym = "="
                case .ne: sym = "<>"
                case .lt: sym = "<"
                case .le: sym = "<="
                case .gt: sym = ">"
                default: sym = ">="
                }
                // An untyped null compared with anything is null: type it like the other side.
                let lw = lt == .any ? (rt == .any ? ValueType.int : rt) : lt
                let rw = rt == .any ? lw : rt
                return "(\(try render(l, want: lw, inComparison: true)) \(sym) \(try render(r, want: rw, inComparison: true)))"
            case .div:
                try requireNumeric(lt, l); try requireNumeric(rt, r)
                return "(\(try doubleOperand(l, lt)) / NULLIF(\(try doubleOperand(r, rt)), 0E0))"
            case .mod:
                try requireNumeric(lt, l); try requireNumeric(rt, r)
                guard lt != .double && rt != .double else {
                    throw refuse("takes % of a double: Weir computes the floating-point remainder, Flink's MOD takes integers only",
                                 hint: "keep % to int operands")
                }
                return "MOD(\(try render(l, want: .int)), NULLIF(\(try render(r, want: .int)), 0))"
            case .add, .sub, .mul:
                try requireNumeric(lt, l); try requireNumeric(rt, r)
                return "(\(try render(l, want: t)) \(op.rawValue) \(try render(r, want: t)))"
            }
        }

        private func call(_ name: String, _ args: [Expr], _ t: ValueType) throws(ExportRefusal) -> String {
            switch name {
            case "lower", "upper":
                guard args.count == 1 else { throw refuse("\(name)() takes one argument") }
                let at = infer(args[0])
                guard at == .string || at == .any else {
                    throw refuse("applies \(name)() to a \(at) (Weir gives null there; Flink refuses it)")
                }
                return "\(name.uppercased())(\(try render(args[0], want: .string)))"
            case "concat":
                var parts: [String] = []
                for a in args {
                    switch infer(a) {
                    case .any: continue  // always null: concat skips it
                    case .string:
                        if case .literal(.string(let s)) = a { parts.append(FlinkSQL.string(s, bare: true)) }
                        else { parts.append("COALESCE(\(try render(a, want: .string)), '')") }
                    case .int:
                        parts.append("COALESCE(CAST(\(try render(a, want: .int)) AS STRING), '')")
                    case .bool:
                        // Flink spells booleans TRUE/FALSE as text, Weir true/false.
                        parts.append("COALESCE(LOWER(CAST(\(try render(a, want: .bool)) AS STRING)), '')")
                    case .double:
                        throw refuse("concatenates a double (\(a)): Weir writes doubles as text the way Swift does (1e+20, 1e-05), Flink the way Java does (1.0E20, 1.0E-5)",
                                     hint: "concatenate an int (round() it first) or keep the number in its own column")
                    }
                }
                if parts.isEmpty { return "CAST('' AS STRING)" }
                if parts.count == 1 {
                    if args.count == 1, case .literal(.string(let s)) = args[0] { return FlinkSQL.string(s) }
                    return parts[0].hasPrefix("'") ? "CAST(\(parts[0]) AS STRING)" : parts[0]
                }
                return "CONCAT(\(parts.joined(separator: ", ")))"
            case "coalesce":
                let rendered = try branches(args, t)
                return rendered.count == 1 ? rendered[0] : "COALESCE(\(rendered.joined(separator: ", ")))"
            case "abs":
                guard args.count == 1 else { throw refuse("abs() takes one argument") }
                try requireNumeric(t, args[0])
                return "ABS(\(try render(args[0], want: t)))"
            case "round":
                guard args.count == 1 || args.count == 2 else { throw refuse("round() takes one or two arguments") }
                try requireNumeric(t, args[0])
                let x = try render(args[0], want: t)
                if t == .int { return x }  // Weir returns an integer unchanged, whatever the digits
                if args.count == 2, case .literal(.int(let d)) = args[1], d != 0 {
                    throw refuse("rounds a double to \(d) digits: Weir rounds the binary value times 10^\(d), Flink its decimal text (round(1.005, 2) is 1.0 in Weir, 1.01 in Flink)",
                                 hint: "round to whole numbers (round(x)), which both do alike, or round in the database")
                }
                return "ROUND(\(x), 0)"
            case "if":
                guard args.count == 3 else { throw refuse("if() takes three arguments") }
                let ct = infer(args[0])
                guard ct == .bool || ct == .any else { throw refuse("uses a \(ct) as the condition of if()") }
                let b = try branches(Array(args.dropFirst()), t)
                return "(CASE WHEN \(try render(args[0], want: .bool)) THEN \(b[0]) ELSE \(b[1]) END)"
            default:
                throw refuse("calls \(name)(), which has no Flink translation")
            }
        }

        /// The branches of coalesce()/if(), each of the common type (ints widened to double when the other is a double).
        private func branches(_ args: [Expr], _ t: ValueType) throws(ExportRefusal) -> [String] {
            var out: [String] = []
            for a in args {
                let at = infer(a)
                if at != .any && at != t && !(at == .int && t == .double) {
                    throw refuse("mixes a \(at) and a \(t) on Flink (Weir accepts it only because a null leaves it untyped)")
                }
                let sql = try render(a, want: t)
                out.append(at == .int && t == .double ? "CAST(\(sql) AS DOUBLE)" : sql)
            }
            return out
        }
    }
}
