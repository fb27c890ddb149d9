import WeirCore

/// A drill's shadow of a sink table, and the row-by-row comparison with it.
///
/// `weir drill` proves a restore by running the same job a second time, from
/// its start offsets, into a shadow database on the same server, up to the
/// offsets the restored run stopped at; then every sink table must equal its
/// shadow, row for row.
extension MySQLSinkConnector {
    /// The same sink writing into an empty copy of its table (`CREATE TABLE …
    /// LIKE`) in `database`, created if needed; an older shadow table is replaced.
    public func shadow(database: String) throws -> MySQLSinkConnector {
        let q = MySQLConnection.quoteIdentifier
        let conn = try MySQLConnection(url: url)
        defer { conn.close() }
        try conn.execute("CREATE DATABASE IF NOT EXISTS \(q(database))")
        try conn.execute("DROP TABLE IF EXISTS \(q(database)).\(q(table))")
        try conn.execute("CREATE TABLE \(q(database)).\(q(table)) LIKE \(q(url.database)).\(q(table))")
        var s = self
        s.url.database = database
        return s
    }

    /// Every row of the table, each as its column values (NULL as nil), in a stable order.
    public func allRows() throws -> (columns: [String], rows: [[String?]]) {
        let conn = try MySQLConnection(url: url)
        defer { conn.close() }
        let columns = try loadColumns(conn).map(\.name)
        let q = MySQLConnection.quoteIdentifier
        let list = columns.map(q).joined(separator: ", ")
        let rows = try conn.query("SELECT \(list) FROM \(q(url.database)).\(q(table)) ORDER BY \(list)").rows
        return (columns, rows)
    }
}

/// The rows two tables do not share (as multisets: a row twice in one and once
/// in the other differs once).
public struct TableComparison: Sendable, Codable, Equatable {
    public var table: String
    public var columns: [String]
    public var rowsLive: Int
    public var rowsShadow: Int
    /// Rows the live table has that the shadow has not (written twice, or tampered with).
    public var onlyLive: [[String?]]
    /// Rows the shadow has that the live table has not (lost, or tampered with).
    public var onlyShadow: [[String?]]

    /// No row only on one side (stored, so the JSON report says it too).
    public var identical: Bool

    public init(table: String, live: (columns: [String], rows: [[String?]]), shadow: (columns: [String], rows: [[String?]])) {
        self.table = table
        columns = live.columns
        rowsLive = live.rows.count
        rowsShadow = shadow.rows.count
        var counts: [[String?]: Int] = [:]
        for r in live.rows { counts[r, default: 0] += 1 }
        for r in shadow.rows { counts[r, default: 0] -= 1 }
        onlyLive = []
        onlyShadow = []
        for (r, n) in counts {
            if n > 0 { onlyLive += Array(repeating: r, count: n) }
            if n < 0 { onlyShadow += Array(repeating: r, count: -n) }
        }
        func order(_ a: [String?], _ b: [String?]) -> Bool { a.map { $0 ?? "\u{0}" }.lexicographicallyPrecedes(b.map { $0 ?? "\u{0}" }) }
        onlyLive.sort(by: order)
        onlyShadow.sort(by: order)
        identical = onlyLive.isEmpty && onlyShadow.isEmpty
    }
}
