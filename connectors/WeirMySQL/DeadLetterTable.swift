import WeirCore

/// The dead-letter table of a `mysql:` sink: where rejected records go under
/// `onError: deadLetter`, in the sink's database, written in the same
/// transaction (or XA epoch) as the rows around them, so each appears exactly
/// once whatever crashes and restores happen.
///
/// Created when missing, when a writer opens (before any transaction: DDL
/// commits implicitly and is not allowed inside an XA transaction), with `ddl`
/// (which needs the CREATE privilege; an existing table needs only INSERT).
/// An existing table must have every column Weir writes, of a fitting type
/// (character columns in utf8mb4; `raw_value` a BLOB or TEXT type; `kafka_offset`
/// a BIGINT) and extra columns must be nullable or have a default; otherwise
/// opening fails, naming the column. Strings longer than an existing table's
/// column are cut to fit.
///
/// Columns: `id` (auto-increment key), `job`, `version` (the published job
/// version, when known), `run`, `node` (the node that rejected the record),
/// `topic`, `kafka_partition`, `kafka_offset` (the record's origin in Kafka,
/// when it is a source message), `raw_value` (the message as received, or the
/// row as JSON; at most 16 KiB), `error_code` (the reason: `malformed`,
/// `type_mismatch`, `missing_field`, `out_of_range`, `bad_event_time`,
/// `overflow`, `sink_rejected`), `error_message` (what exactly is wrong),
/// `created_at` (the server's `NOW(3)` at insert, UTC).
struct DeadLetterTable: Sendable {
    let name: String
    let database: String
    /// Characters each string column holds (job, run, node, topic, error_code, error_message).
    var limits: [String: Int] = [:]
    /// `raw_value` is a TEXT type (the value is then written as UTF-8 text, invalid bytes replaced).
    var rawValueIsText = false

    enum Family: Sendable { case integer, bigint, text, bytes, datetime }

    /// The columns Weir writes (all but `id`) and the one it creates, in order.
    static let columns: [(name: String, type: String, null: String, family: Family)] = [
        ("id", "BIGINT", "NOT NULL AUTO_INCREMENT PRIMARY KEY", .integer),
        ("job", "VARCHAR(255)", "NOT NULL", .text),
        ("version", "INT", "NULL", .integer),
        ("run", "VARCHAR(64)", "NOT NULL", .text),
        ("node", "VARCHAR(255)", "NOT NULL", .text),
        ("topic", "VARCHAR(255)", "NULL", .text),
        ("kafka_partition", "INT", "NULL", .integer),
        ("kafka_offset", "BIGINT", "NULL", .bigint),
        ("raw_value", "MEDIUMBLOB", "NULL", .bytes),
        ("error_code", "VARCHAR(64)", "NOT NULL", .text),
        ("error_message", "TEXT", "NOT NULL", .text),
        ("created_at", "DATETIME(3)", "NOT NULL", .datetime),
    ]

    var subject: String { "dead-letter table `\(database)`.`\(name)`" }

    /// `CREATE TABLE IF NOT EXISTS` of a dead-letter table named `name`.
    static func ddl(_ name: String) -> String {
        let q = MySQLConnection.quoteIdentifier
        return "CREATE TABLE IF NOT EXISTS \(q(name)) ("
            + columns.map { "\(q($0.name)) \($0.type) \($0.null)" }.joined(separator: ", ")
            + ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    }

    /// Creates the table if missing and checks its columns, on `conn` (which
    /// must have no transaction open: the DDL commits implicitly).
    static func open(_ name: String, on conn: MySQLConnection, database: String, sinkTable: String) throws -> DeadLetterTable {
        var t = DeadLetterTable(name: name, database: database)
        if name.isEmpty || name.utf8.count > 64 {
            throw WeirError(.invalidSpec, subject: t.subject, name.isEmpty ? "the table name is empty" : "the table name is longer than 64 characters",
                            suggestion: "set deadLetter: { table: NAME } to a table name of at most 64 characters")
        }
        if name.lowercased() == sinkTable.lowercased() {
            throw WeirError(.invalidSpec, subject: t.subject, "is the sink's own table",
                            suggestion: "name another table for the dead letters, e.g. \(sinkTable)_dead_letters")
        }
        let sql = """
            SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, COLUMN_DEFAULT IS NOT NULL, EXTRA, \
            CHARACTER_MAXIMUM_LENGTH, CHARACTER_OCTET_LENGTH, CHARACTER_SET_NAME \
            FROM information_schema.COLUMNS \
            WHERE TABLE_SCHEMA = '\(conn.escape(database))' AND TABLE_NAME = '\(conn.escape(name))' \
            ORDER BY ORDINAL_POSITION
            """
        var rows = try conn.query(sql).rows
        if rows.isEmpty {
            // Only when missing: a user with INSERT alone on an existing table may not run CREATE.
            do {
                try conn.execute(ddl(name))
            } catch var e as WeirError {
                if e.subject.hasPrefix("MySQL server") { e.subject = "\(t.subject) on \(e.subject.dropFirst("MySQL ".count))" }
                e.message = "does not exist and cannot be created: \(e.message)"
                if e.code == .accessDenied {
                    e.suggestion = "create it beforehand (\(ddl(name))), or grant the user CREATE on `\(database)`"
                }
                throw e
            }
            rows = try conn.query(sql).rows
        }
        let have = rows.map { ($0[0] ?? "").lowercased() }
        for c in columns where c.name != "id" {
            guard let i = have.firstIndex(of: c.name) else {
                throw WeirError(.columnMismatch, subject: t.subject,
                                "exists without the column '\(c.name)' (it has: \(rows.map { $0[0] ?? "" }.joined(separator: ", ")))",
                                suggestion: "ALTER TABLE \(MySQLConnection.quoteIdentifier(name)) ADD COLUMN \(MySQLConnection.quoteIdentifier(c.name)) \(c.type) \(c.null), or drop the table so that Weir creates it")
            }
            let type = (rows[i][1] ?? "").lowercased()
            let charset = (rows[i][7] ?? "").lowercased()
            let isText = family(.text, holds: type)
            if !family(c.family, holds: type) || (isText && charset != "utf8mb4") {
                let what = family(c.family, holds: type) ? "\(type.uppercased()) in character set \(charset)" : type.uppercased()
                throw WeirError(.columnMismatch, subject: "column '\(c.name)' of \(t.subject)",
                                "is \(what), which cannot hold what Weir writes there",
                                suggestion: "ALTER TABLE \(MySQLConnection.quoteIdentifier(name)) MODIFY \(MySQLConnection.quoteIdentifier(c.name)) \(c.type)\(c.family == .text ? " CHARACTER SET utf8mb4" : "") \(c.null)")
            }
            if isText {
                // Characters that surely fit: the declared length, and the bytes at 4 per character (TEXT).
                let chars = rows[i][5].flatMap { Int($0) } ?? Int.max
                let bytes = rows[i][6].flatMap { Int($0) } ?? Int.max
                let cap = c.name == "raw_value" ? RejectedRecord.maxValueBytes : (c.name == "error_message" ? 16_000 : 4096)
                t.limits[c.name] = max(1, min(chars, bytes / 4, cap))
                if c.name == "raw_value" { t.rawValueIsText = true }
            }
        }
        let known = Set(columns.map(\.name))
        for r in rows where !known.contains((r[0] ?? "").lowercased()) {
            let extra = (r[4] ?? "").lowercased()
            let required = r[2] != "YES" && r[3] != "1" && !extra.contains("auto_increment")
                && !extra.contains("generated") && !extra.contains("virtual") && !extra.contains("persistent")
            if required {
                throw WeirError(.columnMismatch, subject: "column '\(r[0] ?? "")' of \(t.subject)",
                                "is NOT NULL without a default, and Weir does not write it",
                                suggestion: "give it a default or make it NULL, or drop the table so that Weir creates it")
            }
        }
        return t
    }

    static func family(_ f: Family, holds type: String) -> Bool {
        switch f {
        case .integer: return ["int", "integer", "bigint", "decimal", "numeric"].contains(type)
        case .bigint: return ["bigint", "decimal", "numeric"].contains(type)
        case .text: return ["char", "varchar", "tinytext", "text", "mediumtext", "longtext"].contains(type)
        case .bytes: return ["blob", "mediumblob", "longblob", "text", "mediumtext", "longtext"].contains(type)
        case .datetime: return type == "datetime" || type == "timestamp"
        }
    }

    /// Writes `records` as multi-row INSERTs through `execute` (in the caller's
    /// transaction), each statement at most about `maxStatementBytes`.
    func write(_ records: [RejectedRecord], context: SinkContext, backslashEscapes: Bool, maxStatementBytes: Int,
               execute: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !records.isEmpty else { return }
        let q = MySQLConnection.quoteIdentifier
        let prefix = Array(("INSERT INTO \(q(name)) ("
            + DeadLetterTable.columns.dropFirst().map { q($0.name) }.joined(separator: ",") + ") VALUES ").utf8)
        var b = SQLBuffer(capacity: 64 << 10)
        defer { b.deallocate() }
        func limit(_ column: String, _ fallback: Int) -> Int { limits[column] ?? fallback }
        let job = DeadLetterTable.truncate(context.job, limit("job", 255))
        let run = DeadLetterTable.truncate(context.run, limit("run", 64))
        var rows = 0
        for r in records {
            let size = r.value.count * 2 + r.message.utf8.count * 2 + 2048
            if rows > 0 && b.count + size > maxStatementBytes {
                try execute(UnsafeRawBufferPointer(start: b.base, count: b.count))
                b.count = 0
                rows = 0
            }
            if rows == 0 { b.append(prefix) } else { b.append(UInt8(ascii: ",")) }
            b.append(UInt8(ascii: "("))
            b.appendQuoted(job, backslashEscapes: backslashEscapes)
            b.append(UInt8(ascii: ","))
            if let v = context.version { b.appendInt(Int64(v)) } else { b.appendNull() }
            b.append(UInt8(ascii: ","))
            b.appendQuoted(run, backslashEscapes: backslashEscapes)
            b.append(UInt8(ascii: ","))
            b.appendQuoted(DeadLetterTable.truncate(r.node, limit("node", 255)), backslashEscapes: backslashEscapes)
            b.append(UInt8(ascii: ","))
            if let t = r.topic { b.appendQuoted(DeadLetterTable.truncate(t, limit("topic", 255)), backslashEscapes: backslashEscapes) } else { b.appendNull() }
            b.append(UInt8(ascii: ","))
            if let p = r.partition { b.appendInt(Int64(p)) } else { b.appendNull() }
            b.append(UInt8(ascii: ","))
            if let o = r.offset { b.appendInt(o) } else { b.appendNull() }
            b.append(UInt8(ascii: ","))
            if rawValueIsText {
                b.appendQuoted(DeadLetterTable.truncate(String(decoding: r.value, as: UTF8.self), limit("raw_value", 16_000)),
                               backslashEscapes: backslashEscapes)
            } else {
                b.appendHexLiteral(r.value)
            }
            b.append(UInt8(ascii: ","))
            b.appendQuoted(DeadLetterTable.truncate(r.reason.rawValue, limit("error_code", 64)), backslashEscapes: backslashEscapes)
            b.append(UInt8(ascii: ","))
            b.appendQuoted(DeadLetterTable.truncate(r.message, limit("error_message", 16_000)), backslashEscapes: backslashEscapes)
            b.append(Array(",NOW(3))".utf8))
            rows += 1
        }
        try execute(UnsafeRawBufferPointer(start: b.base, count: b.count))
    }

    /// At most `n` characters (code points, as MySQL counts them) of `s`.
    static func truncate(_ s: String, _ n: Int) -> String {
        if s.utf8.count <= n { return s }
        var out = String.UnicodeScalarView()
        for (i, u) in s.unicodeScalars.enumerated() {
            if i == n { break }
            out.append(u)
        }
        return String(out)
    }
}

extension SQLBuffer {
    /// `X'…'`, the hex literal of `bytes` (a binary string; `X''` when empty).
    mutating func appendHexLiteral(_ bytes: [UInt8]) {
        reserve(bytes.count * 2 + 3)
        let digits: StaticString = "0123456789ABCDEF"
        base[count] = UInt8(ascii: "X"); base[count + 1] = 39; count += 2
        digits.withUTF8Buffer { d in
            for x in bytes {
                base[count] = d[Int(x >> 4)]
                base[count + 1] = d[Int(x & 0xF)]
                count += 2
            }
        }
        base[count] = 39; count += 1
    }
}
