/// Recursive-descent parser for Weir's expression language:
/// literals, field references (bare or `back-quoted`), arithmetic,
/// comparisons, `and`/`or`/`not` and function calls.
public struct ExprParser {
    package enum Token: Equatable {
        case number(String), string(String), ident(String), quotedIdent(String)
        case op(String), lparen, rparen, comma, end
    }

    private var tokens: [(Token, Int)] = []
    private var pos = 0

    public static func parse(_ text: String) throws(ExprError) -> Expr {
        var p = ExprParser()
        p.tokens = try tokenize(text)
        let e = try p.parseOr()
        if p.peek != .end { throw ExprError("unexpected '\(p.tokenText(p.peek))'", at: p.offset) }
        return e
    }

    private var peek: Token { tokens[pos].0 }
    private var offset: Int { tokens[pos].1 }
    private mutating func advance() { if pos < tokens.count - 1 { pos += 1 } }

    private func tokenText(_ t: Token) -> String {
        switch t {
        case .number(let s), .ident(let s), .op(let s): return s
        case .quotedIdent(let s): return "`\(s)`"
        case .string(let s): return "'\(s)'"
        case .lparen: return "("
        case .rparen: return ")"
        case .comma: return ","
        case .end: return "end of expression"
        }
    }

    private func isKeyword(_ w: String) -> Bool {
        if case .ident(let s) = peek { return s.lowercased() == w }
        return false
    }

    private mutating func parseOr() throws(ExprError) -> Expr {
        var l = try parseAnd()
        while isKeyword("or") || peek == .op("||") { advance(); l = .binary(.or, l, try parseAnd()) }
        return l
    }

    private mutating func parseAnd() throws(ExprError) -> Expr {
        var l = try parseNot()
        while isKeyword("and") || peek == .op("&&") { advance(); l = .binary(.and, l, try parseNot()) }
        return l
    }

    private mutating func parseNot() throws(ExprError) -> Expr {
        if isKeyword("not") || peek == .op("!") { advance(); return .unary(.not, try parseNot()) }
        return try parseComparison()
    }

    private mutating func parseComparison() throws(ExprError) -> Expr {
        let l = try parseAdditive()
        if case .op(let o) = peek {
            let op: Expr.BinaryOp?
            switch o {
            case "==", "=": op = .eq
            case "!=", "<>": op = .ne
            case "<": op = .lt
            case "<=": op = .le
            case ">": op = .gt
            case ">=": op = .ge
            default: op = nil
            }
            if let op { advance(); return .binary(op, l, try parseAdditive()) }
        }
        return l
    }

    private mutating func parseAdditive() throws(ExprError) -> Expr {
        var l = try parseMultiplicative()
        while case .op(let o) = peek, o == "+" || o == "-" {
            advance()
            l = .binary(o == "+" ? .add : .sub, l, try parseMultiplicative())
        }
        return l
    }

    private mutating func parseMultiplicative() throws(ExprError) -> Expr {
        var l = try parseUnary()
        while case .op(let o) = peek, o == "*" || o == "/" || o == "%" {
            advance()
            l = .binary(o == "*" ? .mul : (o == "/" ? .div : .mod), l, try parseUnary())
        }
        return l
    }

    private mutating func parseUnary() throws(ExprError) -> Expr {
        if peek == .op("-") {
            advance()
            let e = try parseUnary()
            if case .literal(.int(let i)) = e { return .literal(.int(-i)) }
            if case .literal(.double(let d)) = e { return .literal(.double(-d)) }
            return .unary(.neg, e)
        }
        return try parsePrimary()
    }

    private mutating func parsePrimary() throws(ExprError) -> Expr {
        let at = offset
        switch peek {
        case .number(let s):
            advance()
            if let i = Int64(s) { return .literal(.int(i)) }
            if let d = Double(s) { return .literal(.double(d)) }
            throw ExprError("bad number '\(s)'", at: at)
        case .string(let s):
            advance()
            return .literal(.string(s))
        case .quotedIdent(let s):
            advance()
            return .field(s)
        case .ident(let s):
            advance()
            switch s.lowercased() {
            case "true": return .literal(.bool(true))
            case "false": return .literal(.bool(false))
            case "null": return .literal(.null)
            default: break
            }
            if peek == .lparen {
                advance()
                var args: [Expr] = []
                if peek != .rparen {
                    args.append(try parseOr())
                    while peek == .comma { advance(); args.append(try parseOr()) }
                }
                guard peek == .rparen else { throw ExprError("expected ')' to close \(s)(", at: offset) }
                advance()
                return .call(s.lowercased(), args)
            }
            return .field(s)
        case .lparen:
            advance()
            let e = try parseOr()
            guard peek == .rparen else { throw ExprError("expected ')'", at: offset) }
            advance()
            return e
        default:
            throw ExprError(peek == .end ? "expression is incomplete" : "unexpected '\(tokenText(peek))'", at: at)
        }
    }

    package static func tokenize(_ text: String) throws(ExprError) -> [(Token, Int)] {
        let c = Array(text.unicodeScalars)
        var out: [(Token, Int)] = []
        var i = 0
        func isIdentStart(_ u: Unicode.Scalar) -> Bool { u == "_" || u.properties.isAlphabetic }
        func isIdent(_ u: Unicode.Scalar) -> Bool { isIdentStart(u) || ("0"..."9").contains(u) || u == "." }
        while i < c.count {
            let u = c[i]
            if u == " " || u == "\t" || u == "\n" || u == "\r" { i += 1; continue }
            let start = i
            if ("0"..."9").contains(u) {
                while i < c.count, ("0"..."9").contains(c[i]) || c[i] == "." || c[i] == "e" || c[i] == "E"
                        || ((c[i] == "+" || c[i] == "-") && (c[i - 1] == "e" || c[i - 1] == "E")) { i += 1 }
                out.append((.number(String(String.UnicodeScalarView(c[start..<i]))), start))
            } else if isIdentStart(u) {
                while i < c.count, isIdent(c[i]) { i += 1 }
                out.append((.ident(String(String.UnicodeScalarView(c[start..<i]))), start))
            } else if u == "'" || u == "\"" || u == "`" {
                i += 1
                var s = String.UnicodeScalarView()
                var closed = false
                while i < c.count {
                    if c[i] == u {
                        if i + 1 < c.count, c[i + 1] == u { s.append(u); i += 2; continue }  // doubled quote
                        closed = true; i += 1; break
                    }
                    if c[i] == "\\", i + 1 < c.count, u != "`" {
                        let n = c[i + 1]
                        s.append(n == "n" ? "\n" : (n == "t" ? "\t" : n)); i += 2; continue
                    }
                    s.append(c[i]); i += 1
                }
                if !closed { throw ExprError("unterminated \(u == "`" ? "quoted name" : "string")", at: start) }
                out.append((u == "`" ? .quotedIdent(String(s)) : .string(String(s)), start))
            } else if u == "(" { out.append((.lparen, i)); i += 1 }
            else if u == ")" { out.append((.rparen, i)); i += 1 }
            else if u == "," { out.append((.comma, i)); i += 1 }
            else {
                let two = i + 1 < c.count ? String(String.UnicodeScalarView([u, c[i + 1]])) : ""
                if ["==", "!=", "<>", "<=", ">=", "&&", "||"].contains(two) {
                    out.append((.op(two), i)); i += 2
                } else if "+-*/%<>=!".unicodeScalars.contains(u) {
                    out.append((.op(String(u)), i)); i += 1
                } else {
                    throw ExprError("unexpected character '\(u)'", at: i)
                }
            }
        }
        out.append((.end, c.count))
        return out
    }
}
