import WeirCore

/// How Weir's types, names, literals and durations are spelled in Flink SQL.
///
/// It exists so that every piece of the script quotes and types things the
/// same way: identifiers in backticks, string literals that cannot break a
/// statement apart, numbers that Flink reads as the same value and type.
enum FlinkSQL {
    /// The Flink column type of a Weir type; nil for `any` (no faithful type).
    static func type(_ t: ValueType) -> String? {
        switch t {
        case .int: return "BIGINT"
        case .double: return "DOUBLE"
        case .string: return "STRING"
        case .bool: return "BOOLEAN"
        case .any: return nil
        }
    }

    /// Whether a name can be written into the script at all (no control characters).
    static func isWritable(_ s: String) -> Bool {
        !s.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || $0 == "\u{2028}" || $0 == "\u{2029}" }
    }

    /// A back-quoted identifier (a back quote inside is doubled).
    static func ident(_ name: String) -> String {
        "`" + name.replacingOccurrences(of: "`", with: "``") + "`"
    }

    /// A quoted SQL string for a `WITH` option or `SET` value (a quote inside is doubled).
    /// Callers check `isWritable` first: option values never hold control characters.
    static func quoted(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// A string value as a STRING expression. Control characters (a newline,
    /// say) are written as `CHR(n)` pieces joined with CONCAT, so that no
    /// statement of the script ever spans a raw line break inside a literal.
    /// `bare`: a plain CHAR literal is enough (inside CONCAT); otherwise the
    /// literal is cast to STRING, because Flink types `'ab'` as CHAR(2) and
    /// pads CHAR values of different lengths (`if(c, 'a', 'bcd')` would give `'a  '`).
    static func string(_ s: String, bare: Bool = false) -> String {
        var pieces: [String] = []
        var run = ""
        for u in s.unicodeScalars {
            if u.value < 0x20 || u.value == 0x7F {
                if !run.isEmpty { pieces.append(quoted(run)); run = "" }
                pieces.append("CHR(\(u.value))")
            } else {
                run.unicodeScalars.append(u)
            }
        }
        if !run.isEmpty || pieces.isEmpty { pieces.append(quoted(run)) }
        if pieces.count == 1 { return bare ? pieces[0] : "CAST(\(pieces[0]) AS STRING)" }
        return "CONCAT(" + pieces.joined(separator: ", ") + ")"
    }

    /// A double as an approximate-numeric literal (`1.5E0`), which Flink types
    /// DOUBLE (`1.5` alone would be a DECIMAL). Swift prints the shortest
    /// decimal that reads back as the same double; Flink reads it back the
    /// same way. nil for infinities and NaN, which have no literal.
    static func double(_ d: Double) -> String? {
        guard d.isFinite else { return nil }
        var text = "\(d)"
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            var exp = String(text[text.index(after: e)...])
            if exp.hasPrefix("+") { exp.removeFirst() }
            text = String(text[..<e]) + "E" + exp
        } else {
            text += "E0"
        }
        return text.hasPrefix("-") ? "(\(text))" : text
    }

    /// A duration for a configuration option (`5000 ms`).
    static func duration(_ millis: Int64) -> String { "\(millis) ms" }

    /// A day-time interval literal of exactly `millis` milliseconds. Flink's
    /// interval fields take two digits unless told otherwise (and at most
    /// three), so the unit is the largest one that fits in two digits, or the
    /// full `DAY(3) TO SECOND(3)` form. nil beyond 999 days, which no Flink
    /// interval literal holds.
    static func interval(_ millis: Int64) -> String? {
        let ms = millis % 1000, s = millis / 1000
        if ms == 0 {
            for (unit, size) in [("DAY", Int64(86_400)), ("HOUR", 3600), ("MINUTE", 60), ("SECOND", 1)]
            where s % size == 0 && s / size <= 99 {
                return "INTERVAL '\(s / size)' \(unit)"
            }
        } else if s <= 99 {
            return "INTERVAL '\(s).\(pad(ms, 3))' SECOND"
        }
        let days = s / 86_400, rest = s % 86_400
        guard days <= 999 else { return nil }
        return "INTERVAL '\(days) \(pad(rest / 3600, 2)):\(pad(rest % 3600 / 60, 2)):\(pad(rest % 60, 2)).\(pad(ms, 3))' DAY(3) TO SECOND(3)"
    }

    /// `interval(millis)`, or a refusal of `node` naming what the duration is.
    static func interval(_ millis: Int64, node: String, what: String) throws(ExportRefusal) -> String {
        guard let i = interval(millis) else {
            throw ExportRefusal(node, "\(what) is \(millis) ms, more than the 999 days a Flink interval literal can hold")
        }
        return i
    }

    private static func pad(_ n: Int64, _ width: Int) -> String {
        let t = String(n)
        return String(repeating: "0", count: max(0, width - t.count)) + t
    }
}
