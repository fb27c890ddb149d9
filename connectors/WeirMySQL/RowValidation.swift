import WeirCore

/// What one target column refuses, decided once from its information_schema
/// row, so that a row the table would refuse is caught before it is rendered
/// into a multi-row INSERT (where it would make the whole statement fail).
///
/// It predicts the server's own refusals under strict mode (STRICT_TRANS_TABLES,
/// the default): NULL into NOT NULL (1048), numbers out of the column's range
/// (1264), strings that are not numbers (1366/1265), strings too long (1406),
/// characters the column's character set cannot hold (1366), epoch-millisecond
/// instants outside the temporal type's range (1292). It also refuses doubles
/// with a fractional part for integer columns (the server would silently round
/// them). Where it cannot tell (ENUM members, JSON, a string into a temporal
/// column, a CHECK constraint, a foreign key, a duplicate key), it lets the row
/// through and the writer narrows a statement the server refuses down to its
/// offending rows (see `RowIsolation`). When in doubt it lets a row through:
/// a row it wrongly refused would be lost, one it wrongly let through only
/// costs a narrowing.
///
/// A plain struct of numbers (no references, so reading it costs no
/// retain/release) read in the writer's per-row loop: no allocation, no
/// dictionary, only comparisons against bounds computed here. Names for
/// messages are kept apart (`ColumnRule.Label`).
struct ColumnRule: Sendable {
    enum Kind: UInt8, Sendable {
        /// Nothing checked beyond NULL.
        case none
        /// TINYINT..BIGINT, signed or unsigned: integers in [lo, hi]; doubles integral and in [dLo, dHi).
        case integer
        /// YEAR: 0...99 or 1901...2155.
        case year
        /// BIT(n): 0..<2^n.
        case bit
        /// DECIMAL(p,s): |value rounded to s decimals| < 10^(p-s): integers in [lo, hi], doubles |d| < dHi.
        case decimal
        /// FLOAT / DOUBLE: |d| <= dHi.
        case float
        /// DATETIME / TIMESTAMP / DATE: epoch milliseconds in [lo, hi].
        case temporal
        /// Character types: length in characters or bytes, and the character set.
        case text
        /// BINARY / VARBINARY / BLOB: length in bytes.
        case binary
    }

    /// The character sets whose repertoire is checked (others are left to the server).
    enum Charset: UInt8, Sendable {
        /// utf8mb4, binary, or one not checked.
        case any
        /// utf8mb3 (`utf8` before MariaDB 10.6): no 4-byte UTF-8 (no emoji, no supplementary planes).
        case utf8mb3
        /// latin1, which in MySQL is Windows-1252 (plus the 5 code points it leaves undefined).
        case latin1
        /// ascii: U+0000...U+007F.
        case ascii
    }

    var kind: Kind = .none
    /// An explicit NULL is refused: NOT NULL, whether or not the column has a
    /// default, except TIMESTAMP and AUTO_INCREMENT columns (NULL means "now" / "next").
    var refusesNull = false
    var unsigned = false
    var lo: Int64 = .min
    var hi: Int64 = .max
    var dLo: Double = -.infinity
    var dHi: Double = .infinity
    /// Text and binary: the most characters (`lengthInBytes` false) or bytes.
    var maxLength = Int.max
    var lengthInBytes = false
    var charset: Charset = .any

    /// What messages say about a column: its declared type (`VARCHAR(5)`) and character set.
    struct Label: Sendable {
        var typeName: String
        var charsetName: String?

        init(_ c: MySQLSinkConnector.ColumnInfo) {
            typeName = c.columnType.uppercased()
            charsetName = c.charset
        }

        init(typeName: String = "", charsetName: String? = nil) {
            self.typeName = typeName
            self.charsetName = charsetName
        }
    }

    /// True when the rule checks anything at all.
    var checksSomething: Bool { refusesNull || kind != .none || charset != .any }

    /// The rule for a column; `timestampMaxSeconds` is the server's last TIMESTAMP second.
    init(_ c: MySQLSinkConnector.ColumnInfo, timestampMaxSeconds: Int64) {
        unsigned = c.columnType.contains("unsigned")
        refusesNull = !c.nullable && !c.autoIncrement && c.dataType != "timestamp"
        switch c.dataType {
        case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "bool", "boolean":
            kind = .integer
            let bits: Int64
            switch c.dataType {
            case "tinyint", "bool", "boolean": bits = 8
            case "smallint": bits = 16
            case "mediumint": bits = 24
            case "bigint": bits = 64
            default: bits = 32
            }
            if bits == 64 {
                lo = unsigned ? 0 : .min
                hi = .max
                dLo = unsigned ? 0 : -9_223_372_036_854_775_808.0
                dHi = unsigned ? 18_446_744_073_709_551_616.0 : 9_223_372_036_854_775_808.0
            } else {
                lo = unsigned ? 0 : -(1 << (bits - 1))
                hi = unsigned ? (1 << bits) - 1 : (1 << (bits - 1)) - 1
                dLo = Double(lo)
                dHi = Double(hi) + 1
            }
        case "year":
            kind = .year
        case "bit":
            kind = .bit
            let n = min(max(c.numericPrecision ?? 1, 1), 64)
            lo = n >= 64 ? .min : 0 // BIT(64) takes a negative integer's 64 bits
            hi = n >= 63 ? .max : (1 << Int64(n)) - 1
            dLo = 0
            dHi = n >= 63 ? 18_446_744_073_709_551_616.0 : Double(hi) + 1
        case "decimal", "numeric", "fixed", "dec":
            kind = .decimal
            let p = c.numericPrecision ?? 10, s = c.numericScale ?? 0
            let intDigits = max(p - s, 0)
            if intDigits <= 18 {
                var limit: Int64 = 1
                for _ in 0..<intDigits { limit *= 10 }
                hi = limit - 1
                lo = unsigned ? 0 : -hi
                // A double is rounded to s decimals: it must stay below 10^(p-s).
                var half = 0.5
                for _ in 0..<s { half /= 10 }
                dHi = Double(limit) - half
            } else {
                lo = unsigned ? 0 : .min
            }
        case "float", "real":
            kind = .float
            dHi = c.dataType == "float" ? 3.402823466e38 : .greatestFiniteMagnitude
            if unsigned { lo = 0 }
        case "double", "double precision":
            kind = .float
            dHi = .greatestFiniteMagnitude
            if unsigned { lo = 0 }
        case "datetime", "date":
            kind = .temporal
            // What MariaDB and MySQL store: years 0000 to 9999 (the manuals promise 1000 to 9999).
            lo = -62_167_219_200_000            // 0000-01-01 00:00:00.000 UTC
            hi = 253_402_300_799_999            // 9999-12-31 23:59:59.999 UTC
        case "timestamp":
            kind = .temporal
            // 1970-01-01 00:00:01 UTC (the zero instant is the "zero date", refused), to the
            // server's last second; with fractional digits, the first tick after the zero instant.
            let digits = c.fractionalDigits
            lo = digits >= 3 ? 1 : (digits == 2 ? 10 : (digits == 1 ? 100 : 1000))
            hi = timestampMaxSeconds * 1000 + 999
        case "char", "varchar":
            kind = .text
            maxLength = c.characterMaximumLength ?? Int.max
        case "tinytext", "text", "mediumtext", "longtext":
            kind = .text
            // TEXT limits are in bytes of the column's character set.
            maxLength = c.characterOctetLength ?? Int.max
            lengthInBytes = true
        case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
            kind = .binary
            maxLength = c.characterOctetLength ?? c.characterMaximumLength ?? Int.max
            lengthInBytes = true
        default:
            kind = .none
        }
        if kind == .text {
            switch (c.charset ?? "").lowercased() {
            case "utf8mb3", "utf8": charset = .utf8mb3
            case "latin1": charset = .latin1; lengthInBytes = false // one byte per character
            case "ascii": charset = .ascii; lengthInBytes = false
            case "utf8mb4", "binary": charset = .any
            default:
                // Another character set (ucs2, sjis, ...): bytes per character unknown here.
                charset = .any
                if lengthInBytes { maxLength = Int.max }
            }
        }
    }

    /// An unchecked rule (columns without metadata).
    init() {}
}

/// What is wrong with one value for its column (a small payload, no allocation).
enum ValueProblem: Equatable, Sendable {
    /// NULL into NOT NULL.
    case null
    /// NaN or an infinity (written as NULL) into NOT NULL.
    case nonFinite
    /// A number outside the column's range.
    case outOfRange
    /// A double with a fractional part for an integer column.
    case notIntegral
    /// A string that is not a number, for a numeric column.
    case notANumber
    /// Longer than the column holds: the length in characters or bytes.
    case tooLong(Int)
    /// A character the column's character set cannot hold.
    case charset(UInt32)
    /// An instant outside the temporal type's range.
    case temporalRange

    /// The MySQL error the server would have refused the row with.
    var mysqlError: Int {
        switch self {
        case .null, .nonFinite: return 1048
        case .outOfRange: return 1264
        case .notIntegral: return 1264
        case .notANumber, .charset: return 1366
        case .tooLong: return 1406
        case .temporalRange: return 1292
        }
    }
}

extension ColumnRule {
    /// The problem with writing `v` into this column, or nil.
    @inline(__always)
    func check(_ v: Value) -> ValueProblem? {
        switch v {
        case .null:
            return refusesNull ? .null : nil
        case .int(let i):
            switch kind {
            case .none: return nil
            case .integer, .bit, .decimal, .float:
                return i < lo || i > hi ? .outOfRange : nil
            case .year:
                return (i >= 0 && i <= 99) || (i >= 1901 && i <= 2155) ? nil : .outOfRange
            case .temporal:
                return i < lo || i > hi ? .temporalRange : nil
            case .text, .binary:
                guard maxLength < 20 else { return nil }
                let n = ColumnRule.decimalLength(i)
                return n > maxLength ? .tooLong(n) : nil
            }
        case .double(let d):
            // Written as NULL (MySQL has no NaN or infinity).
            guard d.isFinite else { return refusesNull ? .nonFinite : nil }
            switch kind {
            case .none: return nil
            case .integer, .bit:
                if d.rounded(.towardZero) != d { return .notIntegral }
                return d >= dLo && d < dHi ? nil : .outOfRange
            case .year:
                if d.rounded(.towardZero) != d { return .notIntegral }
                return (d >= 0 && d <= 99) || (d >= 1901 && d <= 2155) ? nil : .outOfRange
            case .decimal:
                if unsigned && d < 0 { return .outOfRange }
                return abs(d) < dHi ? nil : .outOfRange
            case .float:
                if unsigned && d < 0 { return .outOfRange }
                return abs(d) <= dHi ? nil : .outOfRange
            case .temporal:
                let f = d.rounded(.down)
                return f >= Double(lo) && f <= Double(hi) ? nil : .temporalRange
            case .text:
                // Written quoted, as Swift's shortest text (`1e+19`). (Into a binary column it is
                // written as a number, which the server turns into text of its own: left to it.)
                guard maxLength < 32 else { return nil }
                let n = d.description.utf8.count
                return n > maxLength ? .tooLong(n) : nil
            case .binary:
                return nil
            }
        case .bool:
            return nil
        case .string(let s):
            switch kind {
            case .text: return checkText(s)
            case .binary:
                // Binary strings keep trailing spaces: no byte may be cut.
                let n = s.utf8.count
                return n > maxLength ? .tooLong(n) : nil
            case .integer, .decimal, .float: return checkNumber(s)
            case .none, .year, .bit, .temporal: return nil
            }
        }
    }

    /// Length and character set of a string for a character column.
    @inline(__always)
    func checkText(_ s: String) -> ValueProblem? {
        let bytes = s.utf8.count
        if bytes > maxLength {
            // Characters never outnumber bytes, so only a long string needs counting.
            let n = lengthInBytes ? bytes : ColumnRule.scalarCount(s)
            if n > maxLength && !ColumnRule.excessIsWhitespace(s, keeping: maxLength, bytes: lengthInBytes) {
                return .tooLong(n)
            }
        }
        switch charset {
        case .any:
            return nil
        case .utf8mb3:
            // Only a 4-byte sequence (lead byte 0xF0 and up) is outside the BMP.
            for b in s.utf8 where b >= 0xF0 { return ColumnRule.firstScalar(s) { $0 > 0xFFFF }.map { .charset($0) } }
            return nil
        case .ascii:
            for b in s.utf8 where b >= 0x80 { return ColumnRule.firstScalar(s) { $0 > 0x7F }.map { .charset($0) } }
            return nil
        case .latin1:
            for b in s.utf8 where b >= 0x80 { return ColumnRule.firstScalar(s) { !ColumnRule.latin1Holds($0) }.map { .charset($0) } }
            return nil
        }
    }

    /// A string for a numeric column: the server takes `[ws][+-]digits[.digits][e[+-]digits][ws]`
    /// (at least one digit) and refuses anything else; then the value must be in range.
    func checkNumber(_ s: String) -> ValueProblem? {
        // The common case, a plain integer, without allocating.
        if let i = ColumnRule.plainInteger(s) { return i < lo || i > hi ? .outOfRange : nil }
        guard let (exact, isPlainInteger) = ColumnRule.parseNumber(s) else { return .notANumber }
        // Beyond Int64: only BIGINT UNSIGNED (up to 2^64-1) among the integer types holds it.
        if isPlainInteger, kind == .integer, ColumnRule.plainUnsigned(s) != nil { return dHi > 9.3e18 ? nil : .outOfRange }
        guard exact.isFinite else { return .outOfRange }
        switch kind {
        case .integer:
            // The server rounds half away from zero.
            let r = exact.rounded(.toNearestOrAwayFromZero)
            return r >= dLo && r < dHi ? nil : .outOfRange
        case .decimal:
            if unsigned && exact < 0 { return .outOfRange }
            return abs(exact) < dHi ? nil : .outOfRange
        case .float:
            if unsigned && exact < 0 { return .outOfRange }
            return abs(exact) <= dHi ? nil : .outOfRange
        default:
            return nil
        }
    }

    // MARK: helpers

    @inline(__always) static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }

    /// Parses the numeric syntax the server accepts; returns the value (as a
    /// double) and whether it is a plain integer (no point, no exponent).
    static func parseNumber(_ s: String) -> (Double, Bool)? {
        var sawDigit = false, sawPoint = false, sawExp = false
        var i = s.utf8.startIndex
        let u = s.utf8
        while i < u.endIndex, isSpace(u[i]) { i = u.index(after: i) }
        let start = i
        if i < u.endIndex, u[i] == UInt8(ascii: "+") || u[i] == UInt8(ascii: "-") { i = u.index(after: i) }
        while i < u.endIndex {
            let b = u[i]
            if b >= 0x30 && b <= 0x39 { sawDigit = true }
            else if b == UInt8(ascii: ".") && !sawPoint { sawPoint = true }
            else { break }
            i = u.index(after: i)
        }
        guard sawDigit else { return nil }
        if i < u.endIndex, u[i] == UInt8(ascii: "e") || u[i] == UInt8(ascii: "E") {
            sawExp = true
            i = u.index(after: i)
            if i < u.endIndex, u[i] == UInt8(ascii: "+") || u[i] == UInt8(ascii: "-") { i = u.index(after: i) }
            var expDigit = false
            while i < u.endIndex, u[i] >= 0x30 && u[i] <= 0x39 { expDigit = true; i = u.index(after: i) }
            guard expDigit else { return nil }
        }
        let end = i
        while i < u.endIndex, isSpace(u[i]) { i = u.index(after: i) }
        guard i == u.endIndex else { return nil }
        var text = String(s[start..<end])
        if text.hasSuffix(".") { text.removeLast() }       // `1.` (Double() refuses it)
        if text.hasPrefix(".") { text = "0" + text }       // `.5`
        else if text.hasPrefix("-.") || text.hasPrefix("+.") { text.insert("0", at: text.index(after: text.startIndex)) }
        guard let d = Double(text) else { return nil }
        return (d, !sawPoint && !sawExp)
    }

    /// The exact value of a plain integer string (`  -17 `, `+5`), when it fits an Int64.
    static func plainInteger(_ s: String) -> Int64? { Int64(trimmed(s)) }

    /// The exact value of a plain non-negative integer string, when it fits a UInt64.
    static func plainUnsigned(_ s: String) -> UInt64? { UInt64(trimmed(s)) }

    /// `s` without leading and trailing ASCII whitespace (byte-wise: a space
    /// starting a grapheme cluster is not taken with its combining marks).
    static func trimmed(_ s: String) -> Substring {
        let u = s.utf8
        var a = u.startIndex, b = u.endIndex
        while a < b, isSpace(u[a]) { a = u.index(after: a) }
        while b > a, isSpace(u[u.index(before: b)]) { b = u.index(before: b) }
        return Substring(u[a..<b])
    }

    /// Characters (code points, as MySQL counts them) in a string.
    static func scalarCount(_ s: String) -> Int {
        var n = 0
        for b in s.utf8 where b & 0xC0 != 0x80 { n += 1 }
        return n
    }

    /// True when every character (or byte) after the first `keeping` is
    /// whitespace: the server drops trailing spaces that do not fit with a note, not an error.
    static func excessIsWhitespace(_ s: String, keeping: Int, bytes: Bool) -> Bool {
        var n = 0
        if bytes {
            for b in s.utf8 {
                if n >= keeping && !isSpace(b) { return false }
                n += 1
            }
        } else {
            for u in s.unicodeScalars {
                if n >= keeping && !(u.value < 0x80 && isSpace(UInt8(u.value))) { return false }
                n += 1
            }
        }
        return true
    }

    /// The first code point of `s` for which `bad` holds.
    static func firstScalar(_ s: String, _ bad: (UInt32) -> Bool) -> UInt32? {
        for u in s.unicodeScalars where bad(u.value) { return u.value }
        return nil
    }

    /// Whether MySQL's latin1 (Windows-1252, with 0x81 0x8D 0x8F 0x90 0x9D mapped to
    /// U+0081 U+008D U+008F U+0090 U+009D) can hold the code point.
    static func latin1Holds(_ c: UInt32) -> Bool {
        if c < 0x80 || (c >= 0xA0 && c <= 0xFF) { return true }
        switch c {
        case 0x81, 0x8D, 0x8F, 0x90, 0x9D,
             0x20AC, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152,
             0x017D, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
             0x0153, 0x017E, 0x0178:
            return true
        default:
            return false
        }
    }

    /// Characters of an integer's decimal text.
    static func decimalLength(_ i: Int64) -> Int {
        var n = i < 0 ? 2 : 1
        var m = i.magnitude
        while m >= 10 { m /= 10; n += 1 }
        return n
    }

    /// What is wrong, in words, naming the value (for reports and errors).
    func describe(_ p: ValueProblem, _ v: Value, _ label: Label) -> String {
        let type = label.typeName.isEmpty ? "the column" : label.typeName
        let shown: String
        switch v {
        case .string(let s):
            let cut = s.unicodeScalars.count > 60 ? String(String.UnicodeScalarView(s.unicodeScalars.prefix(60))) + "…" : s
            shown = "'\(cut)'"
        case .int(let i):
            shown = String(i)
        case .double(let d):
            shown = String(d)
        case .bool(let b):
            shown = b ? "true" : "false"
        case .null:
            shown = "NULL"
        }
        switch p {
        case .null:
            return "NULL into NOT NULL (MySQL error 1048)"
        case .nonFinite:
            return "\(shown) is not a finite number (written as NULL) into NOT NULL (MySQL error 1048)"
        case .outOfRange:
            return "\(shown) is out of range for \(type) (MySQL error 1264)"
        case .notIntegral:
            return "\(shown) is not an integer, for \(type) (which would round it)"
        case .notANumber:
            return "\(shown) is not a number, for \(type) (MySQL error 1366)"
        case .tooLong(let n):
            return "\(shown) is \(n) \(lengthInBytes ? "bytes" : "characters"), more than \(type) holds (MySQL error 1406)"
        case .charset(let c):
            let hex = String(c, radix: 16, uppercase: true)
            return "character U+\(String(repeating: "0", count: max(0, 4 - hex.count)))\(hex) cannot be stored in the column's character set \(label.charsetName ?? "") (MySQL error 1366)"
        case .temporalRange:
            var instant = ""
            if let ms = v.asDouble, ms.isFinite, abs(ms) < 9e15 {
                var b = SQLBuffer(capacity: 64)
                b.appendEpochMillis(Int64(ms.rounded(.down)), time: true, fractional: true)
                let text = String(decoding: UnsafeRawBufferPointer(start: b.base, count: b.count), as: UTF8.self)
                instant = " (" + text.filter { $0 != "'" } + " UTC)"
                b.deallocate()
            }
            return "\(shown) ms since the epoch\(instant) is outside the range of \(type) (MySQL error 1292)"
        }
    }
}
