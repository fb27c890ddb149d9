import WeirCore
import WeirMySQL

/// Writes one `mysql:` sink node as a Flink JDBC table and the INSERT that
/// feeds it.
///
/// It exists to hold the rules that make Flink's JDBC sink write what Weir's
/// would: the columns typed from the fields that arrive, the upsert key as a
/// primary key (so the MySQL dialect writes `INSERT … ON DUPLICATE KEY
/// UPDATE`), and the connection taken from Weir's URL.
struct FlinkJDBCSink {
    let id: String
    let mysql: MySQLSinkConnector
    let input: FlinkView
    let policy: ErrorPolicy

    /// The JDBC URL: MariaDB Connector/J (and MySQL's) read `jdbc:mysql://`;
    /// batched rewriting turns the sink's batches into multi-row INSERTs as Weir's are.
    /// Without a password the user goes into the URL: Flink's JDBC table
    /// takes `username` and `password` both or neither.
    var jdbcURL: String {
        let host = mysql.url.host.contains(":") ? "[\(mysql.url.host)]" : mysql.url.host
        var url = "jdbc:mysql://\(host):\(mysql.url.port)/\(FlinkJDBCSink.percentEncoded(mysql.url.database))?"
        if mysql.url.password == nil { url += "user=\(FlinkJDBCSink.percentEncoded(mysql.url.user))&" }
        return url + "rewriteBatchedStatements=true"
    }

    static func percentEncoded(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            let c = Character(Unicode.Scalar(b))
            if b < 0x80, c.isLetter || c.isNumber || "-_.~".contains(c) { out.append(c) }
            else { out += "%" + String(b, radix: 16, uppercase: true).leftPadded(2) }
        }
        return out
    }

    /// The key columns, spelled as the fields are (MySQL matches names case-insensitively, as Weir does).
    func keyFields() throws(ExportRefusal) -> [String] {
        var out: [String] = []
        for k in mysql.key {
            guard let f = input.fields.first(where: { $0.name.lowercased() == k.lowercased() }) else {
                throw ExportRefusal(id, "upsert key column '\(k)' is not among the fields that reach the sink (\(input.fields.map(\.name).joined(separator: ", ")))",
                                    hint: "key the sink by fields its input has")
            }
            out.append(f.name)
        }
        return out
    }

    func check() throws(ExportRefusal) {
        if let socket = mysql.url.socket {
            throw ExportRefusal(id, "connects through the Unix socket \(socket), which a JDBC URL cannot name",
                                hint: "use a TCP URL (mysql://user@host:port/db) for the export")
        }
        for text in [mysql.url.host, mysql.url.user, mysql.url.password ?? "", mysql.table, mysql.url.database] where !FlinkSQL.isWritable(text) {
            throw ExportRefusal(id, "the sink's URL or table name has control characters")
        }
        for f in input.fields where f.type == .any {
            throw ExportRefusal(id, "field '\(f.name)' reaching the sink has no single type (in Weir it is untyped); Flink needs a column type",
                                hint: "give the inputs of the union the same field types, or select the field into one type")
        }
        if let agg = input.updatedBy {
            if mysql.mode == .append {
                throw ExportRefusal(id, "appends the updates of continuous aggregate '\(agg)': Weir appends a row per update, Flink's JDBC sink without a primary key cannot take updates",
                                    hint: "use mode: upsert keyed by the aggregate's keys, or a window")
            }
        }
    }

    /// `CREATE TEMPORARY TABLE` for the sink.
    func table() throws(ExportRefusal) -> String {
        try check()
        var cols = input.fields.map { "  \(FlinkSQL.ident($0.name)) \(FlinkSQL.type($0.type)!)" }
        if mysql.mode == .upsert {
            cols.append("  PRIMARY KEY (\(try keyFields().map(FlinkSQL.ident).joined(separator: ", "))) NOT ENFORCED")
        }
        var options: [String] = [
            "  'connector' = 'jdbc'",
            "  'url' = \(FlinkSQL.quoted(jdbcURL))",
            "  'table-name' = \(FlinkSQL.quoted(mysql.table))",
        ]
        if let password = mysql.url.password {
            options.append("  'username' = \(FlinkSQL.quoted(mysql.url.user))")
            options.append("  -- The password of the spec's MySQL URL: this script holds it; keep the file private.\n"
                           + "  'password' = \(FlinkSQL.quoted(password))")
        }
        options.append("  'sink.buffer-flush.max-rows' = '\(mysql.batchSize)'")
        // Weir commits at least every second.
        options.append("  'sink.buffer-flush.interval' = '1 s'")
        return "CREATE TEMPORARY TABLE \(FlinkSQL.ident(id)) (\n" + cols.joined(separator: ",\n") + "\n) WITH (\n"
            + options.joined(separator: ",\n") + "\n);"
    }

    /// The INSERT of the statement set.
    var insert: String {
        "INSERT INTO \(FlinkSQL.ident(id)) (\(input.columnList))\nSELECT \(input.columnList) FROM \(FlinkSQL.ident(input.name));"
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
