import WeirCore

/// The `mysql:` sink: writes the records reaching it into one MySQL/MariaDB
/// table, either appending rows or upserting them by a key.
///
/// It exists to hold the validated configuration of one sink node (it is
/// `Sendable` and cheap to copy); the real work happens in `check(schema:)`,
/// which validates the table against the records before the job starts, and
/// in the writers returned by `openWriter`, one per sink subtask, each with
/// its own connection and transaction.
///
/// Spec keys: `url` (required), `table` (required), `mode` (`append` default,
/// or `upsert`), `key` (list of column names; required for upsert),
/// `batchSize` (rows per INSERT statement, default 4000), `lockWait` (how long
/// a statement waits for a lock on the table before its epoch fails, default 50 s).
///
/// Upsert needs a PRIMARY KEY or UNIQUE index whose columns are all key
/// columns; without one `ON DUPLICATE KEY UPDATE` would silently append
/// duplicates, so `check` reports it as an error (with the ALTER TABLE to run)
/// rather than a warning.
///
/// A row the table refuses (NULL into NOT NULL, out of range, too long,
/// invalid date, a character the column's charset lacks, a CHECK constraint, a
/// foreign key, a duplicate key in append mode) never fails the whole statement
/// it is in: writers opened with a `SinkContext` check each row against the
/// columns (`ColumnRule`), narrow a statement the server still refuses to its
/// offending rows (`RowIsolation`), and handle those by `onError` (skip, write
/// to the dead-letter table in the same transaction, see `DeadLetterTable`, or
/// fail naming the row). Writers opened without a context fail on such a row.
///
/// It is also a `TransactionalSinkConnector`: `openTransactionalWriter` gives
/// the checkpointing writer (one XA transaction per epoch, see
/// `MySQLXASinkWriter`) and `recover` resolves prepared leftovers after a crash
/// (see MySQLSinkConnector+XA.swift).
public struct MySQLSinkConnector: TransactionalSinkConnector {
    /// How rows are written.
    public enum Mode: String, Sendable, CaseIterable {
        /// Plain INSERTs.
        case append
        /// INSERT ... ON DUPLICATE KEY UPDATE of the non-key columns.
        case upsert
    }

    /// Rows per INSERT statement when the spec does not say.
    public static let defaultBatchSize = 4000

    /// Server, credentials and database (the table is looked up in it).
    public var url: MySQLURL
    /// The target table, in the URL's database.
    public var table: String
    /// Append or upsert.
    public var mode: Mode
    /// The columns identifying a row (upsert); also used for the suggested DDL.
    public var key: [String]
    /// Rows per multi-row INSERT statement.
    public var batchSize: Int
    /// Seconds a writer's statement waits for the table's metadata lock (`LOCK
    /// TABLES`, DDL) or a row lock before it fails with `lock_wait_timeout`.
    public var lockWaitSeconds: Int

    /// A sink writing into `table` of the URL's database. For `.upsert`,
    /// `key` names the columns identifying a row (validated by `check`).
    public init(url: MySQLURL, table: String, mode: Mode = .append, key: [String] = [],
                batchSize: Int = MySQLSinkConnector.defaultBatchSize,
                lockWaitSeconds: Int = MySQLConnection.defaultLockWaitSeconds) {
        self.url = url
        self.table = table
        self.mode = mode
        self.key = key
        self.batchSize = max(1, batchSize)
        self.lockWaitSeconds = lockWaitSeconds
    }

    /// A connection for writing, with the sink's lock wait.
    func connect() throws -> MySQLConnection { try MySQLConnection(url: url, lockWaitSeconds: lockWaitSeconds) }

    /// The `mysql` connector kind, reading `url`, `table`, `mode`, `key` and
    /// `batchSize` from the node's configuration (the caller rejects unknown keys).
    public static let kind: ConnectorKind = .sink(name: "mysql") { reader in
        let urlText = reader.string("url", required: true)
        let table = reader.string("table", required: true)
        let modeText = reader.string("mode")
        let key = reader.stringList("key")
        let batchSize = reader.int("batchSize")
        var ok = urlText != nil && table != nil
        var lockWait = MySQLConnection.defaultLockWaitSeconds
        if reader.has("lockWait") {
            if let ms = reader.durationMillis("lockWait"), ms >= 1000, ms <= Int64(MySQLConnection.maxLockWaitSeconds) * 1000 {
                lockWait = Int((ms + 999) / 1000)
            } else {
                if reader.errors.last?.subject != "\(reader.path).lockWait" {
                    reader.fail("lockWait", "must be between 1s and \(MySQLConnection.maxLockWaitSeconds / 60)m")
                }
                ok = false
            }
        }

        var url: MySQLURL?
        if let urlText {
            do { url = try MySQLURL(urlText) } catch let e as WeirError {
                // The message never contains the password (see MySQLURL.init).
                reader.fail("url", e.suggestion.map { "\(e.message) (\($0))" } ?? e.message)
                ok = false
            } catch {
                reader.fail("url", "not a valid MySQL URL")
                ok = false
            }
        }
        if let table, table.isEmpty || table.utf8.count > 64 {
            reader.fail("table", table.isEmpty ? "the table name is empty" : "the table name is longer than 64 characters")
            ok = false
        }
        var mode = Mode.append
        if let modeText {
            if let m = Mode(rawValue: modeText) { mode = m } else {
                var msg = "unknown mode '\(modeText)' (expected append or upsert)"
                if let best = closestMatch(modeText, in: Mode.allCases.map(\.rawValue)) { msg += "; did you mean '\(best)'?" }
                reader.fail("mode", msg)
                ok = false
            }
        }
        if let key {
            if key.isEmpty || key.contains(where: \.isEmpty) {
                reader.fail("key", "the key must list one or more column names")
                ok = false
            } else if Set(key.map { $0.lowercased() }).count != key.count {
                reader.fail("key", "the key lists a column more than once")
                ok = false
            }
        }
        if mode == .upsert && key == nil {
            reader.fail("key", "mode upsert needs 'key': the columns identifying a row, e.g. key: [id]")
            ok = false
        }
        if let batchSize, batchSize < 1 || batchSize > 1_000_000 {
            reader.fail("batchSize", "batchSize must be between 1 and 1000000 (got \(batchSize))")
            ok = false
        }
        guard ok, let url, let table else { return nil }
        return MySQLSinkConnector(url: url, table: table, mode: mode, key: key ?? [],
                                  batchSize: batchSize ?? defaultBatchSize, lockWaitSeconds: lockWait)
    }

    /// `table `db`.`t``, the subject of table-level errors.
    public var tableSubject: String { "table `\(url.database)`.`\(table)`" }

    /// Connects and validates the table against `schema`: the table exists,
    /// every field is a column, no NOT NULL column without default is left
    /// unwritten, and (upsert) a PRIMARY/UNIQUE key lies within `key`.
    public func check(schema: Schema) throws {
        let conn = try MySQLConnection(url: url)
        defer { conn.close() }
        _ = try plan(conn: conn, schema: schema)
    }

    /// The fields identifying a row: the upsert key (none for append).
    public var rowKey: [String] { mode == .upsert ? key : [] }

    /// Opens a writer with its own connection (autocommit off), after the same
    /// validation as `check`, with value converters fixed from the column types.
    /// Rows the table refuses fail the writer, naming the row (`onError: fail`;
    /// see `openWriter(context:schema:)`).
    public func openWriter(subtask: Int, schema: Schema) throws -> any SinkWriter {
        try openWriter(context: MySQLSinkConnector.defaultContext(subtask: subtask), schema: schema)
    }

    /// Opens a writer (as `openWriter(subtask:schema:)`) that isolates the rows
    /// the table refuses and handles them by `context.onError`. With a
    /// dead-letter table in the context, creates it if missing (and checks its
    /// columns) first.
    public func openWriter(context: SinkContext, schema: Schema) throws -> any SinkWriter {
        let conn = try connect()
        do {
            let plan = try plan(conn: conn, schema: schema)
            let deadLetters = try openDeadLetters(conn, context: context)
            return try MySQLSinkWriter(connection: conn, plan: plan, batchSize: batchSize,
                                       tableSubject: tableSubject, context: context, deadLetters: deadLetters,
                                       replan: { [self] in try self.plan(conn: $0, schema: schema) })
        } catch {
            conn.close()
            throw error
        }
    }

    /// The context of writers opened without one: refused rows fail the writer
    /// (as before record-level isolation existed), nothing is reported.
    static func defaultContext(subtask: Int, node: String = "", job: String = "", run: String = "") -> SinkContext {
        SinkContext(job: job, run: run, node: node, subtask: subtask, onError: .fail)
    }

    /// The context's dead-letter table, created if missing and checked (nil when
    /// it names none). Runs DDL: call it before any transaction on `conn`.
    func openDeadLetters(_ conn: MySQLConnection, context: SinkContext) throws -> DeadLetterTable? {
        guard let name = context.deadLetterTable else {
            if context.onError == .deadLetter {
                throw WeirError(.invalidSpec, subject: "mysql sink '\(context.node)' into \(tableSubject)",
                                "onError is deadLetter but no dead-letter table is named",
                                suggestion: "add deadLetter: { table: NAME } (a table in the sink's database, created if missing)")
            }
            return nil
        }
        return try DeadLetterTable.open(name, on: conn, database: url.database, sinkTable: table)
    }

    /// The error for dead letters sent to a writer without a dead-letter table.
    static func noDeadLetterTable(_ first: RejectedRecord, tableSubject: String) -> WeirError {
        WeirError(.invalidSpec, subject: "dead-letter record from \(first.origin)",
                  "the mysql sink into \(tableSubject) has no dead-letter table",
                  suggestion: "add deadLetter: { table: NAME }, or use onError: skip or fail")
    }

    // MARK: - Table validation

    /// One column of the target table, from information_schema.COLUMNS.
    struct ColumnInfo: Equatable {
        var name: String
        var dataType: String
        var nullable: Bool
        var hasDefault: Bool
        var autoIncrement: Bool
        var generated: Bool
        var fractionalDigits: Int
        /// COLUMN_TYPE, lowercased: `tinyint(3) unsigned`, `varchar(5)`, `decimal(5,2)`.
        var columnType: String = ""
        /// Characters (CHAR/VARCHAR) a character column holds.
        var characterMaximumLength: Int? = nil
        /// Bytes a character or binary column holds.
        var characterOctetLength: Int? = nil
        /// Digits (DECIMAL), bits (BIT), or binary digits (integer, float types).
        var numericPrecision: Int? = nil
        var numericScale: Int? = nil
        /// The character set of a character column (`utf8mb4`, `utf8mb3`, `latin1`...).
        var charset: String? = nil
    }

    /// Everything a writer needs, decided once from the table and the schema.
    struct Plan {
        var table: String
        /// The table's name for each schema field, in schema order.
        var columns: [String]
        var encodings: [ColumnEncoding]
        /// Schema positions of the upsert key (empty for append).
        var keyFields: [Int]
        var mode: Mode
        /// What each column (in schema order) refuses, checked per row before it is rendered.
        var rules: [ColumnRule] = []
        /// Each column's type and character set, for messages about refused rows.
        var labels: [ColumnRule.Label] = []
        /// The records' schema (for rendering a rejected row).
        var schema = Schema([])
        /// The written columns as found, in schema order (to notice the table changing).
        var columnInfos: [ColumnInfo] = []
    }

    func loadColumns(_ conn: MySQLConnection) throws -> [ColumnInfo] {
        let sql = """
            SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, COLUMN_DEFAULT IS NOT NULL, EXTRA, \
            COALESCE(DATETIME_PRECISION, 0), COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, CHARACTER_OCTET_LENGTH, \
            NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_SET_NAME FROM information_schema.COLUMNS \
            WHERE TABLE_SCHEMA = '\(conn.escape(url.database))' AND TABLE_NAME = '\(conn.escape(table))' \
            ORDER BY ORDINAL_POSITION
            """
        return try MySQLSinkConnector.columns(from: conn.query(sql).rows)
    }

    /// ColumnInfo from rows of the information_schema.COLUMNS query of `loadColumns`.
    static func columns(from rows: [[String?]]) -> [ColumnInfo] {
        rows.map { r in
            let extra = (r[4] ?? "").lowercased()
            return ColumnInfo(name: r[0] ?? "", dataType: (r[1] ?? "").lowercased(),
                              nullable: r[2] == "YES", hasDefault: r[3] == "1",
                              autoIncrement: extra.contains("auto_increment"),
                              generated: extra.contains("generated") || extra.contains("virtual") || extra.contains("persistent"),
                              fractionalDigits: Int(r[5] ?? "0") ?? 0,
                              columnType: (r[6] ?? "").lowercased(),
                              characterMaximumLength: r[7].flatMap { Int($0) },
                              characterOctetLength: r[8].flatMap { Int($0) },
                              numericPrecision: r[9].flatMap { Int($0) },
                              numericScale: r[10].flatMap { Int($0) },
                              charset: r[11])
        }
    }

    /// The last second a TIMESTAMP holds on this server: 2038-01-19 03:14:07 UTC,
    /// or 2106-02-07 06:28:15 UTC on MariaDB 11.5 and later (64-bit platforms).
    static func timestampMaxSeconds(serverVersion: String) -> Int64 {
        var v = Substring(serverVersion)
        if v.hasPrefix("5.5.5-") { v = v.dropFirst(6) }
        let nums = v.prefix { $0.isNumber || $0 == "." }.split(separator: ".").compactMap { Int($0) }
        if serverVersion.lowercased().contains("mariadb"), nums.count >= 2, (nums[0], nums[1]) >= (11, 5) {
            return 4_294_967_295
        }
        return 2_147_483_647
    }

    /// PRIMARY KEY and UNIQUE indexes: name and columns (in index order).
    func loadUniqueIndexes(_ conn: MySQLConnection) throws -> [(name: String, columns: [String])] {
        let sql = """
            SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
            WHERE TABLE_SCHEMA = '\(conn.escape(url.database))' AND TABLE_NAME = '\(conn.escape(table))' \
            AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX
            """
        var out: [(name: String, columns: [String])] = []
        for r in try conn.query(sql).rows {
            let name = r[0] ?? "", col = r[1] ?? ""
            if out.last?.name == name { out[out.count - 1].columns.append(col) } else { out.append((name, [col])) }
        }
        return out
    }

    func columnSubject(_ name: String) -> String { "column '\(name)' of \(tableSubject)" }

    /// Validates the table against the schema and the key, and derives the writer plan.
    func plan(conn: MySQLConnection, schema: Schema) throws -> Plan {
        let q = MySQLConnection.quoteIdentifier
        if mode == .upsert && key.isEmpty {
            throw WeirError(.invalidSpec, subject: "\(tableSubject) (mode upsert)", "upsert needs a key",
                            suggestion: "set key: to the columns identifying a row, e.g. key: [id]")
        }
        // Key columns must be fields of the records.
        for k in key where schema.index(of: k) == nil && !schema.names.contains(where: { $0.lowercased() == k.lowercased() }) {
            var msg = "is not a field of the records reaching the sink (fields: \(schema.names.joined(separator: ", ")))"
            if let best = closestMatch(k, in: schema.names) { msg += "; did you mean '\(best)'?" }
            throw WeirError(.invalidSpec, subject: "key column '\(k)' of the mysql sink into \(tableSubject)", msg,
                            suggestion: "list in key: only fields the records have")
        }
        if schema.fields.isEmpty {
            throw WeirError(.invalidSpec, subject: tableSubject, "the records reaching the sink have no fields")
        }

        let columns = try loadColumns(conn)
        if columns.isEmpty {
            throw WeirError(.tableMissing, subject: tableSubject, "does not exist",
                            suggestion: "create it, e.g. \(suggestedDDL(schema: schema))")
        }
        let tableNames = columns.map(\.name)

        // Every schema field must be a column (exact name first, else case-insensitive like MySQL).
        var picked: [ColumnInfo] = []
        var missing: [String] = []
        var used = Set<String>()
        for f in schema.fields {
            let c = columns.first(where: { $0.name == f.name })
                ?? columns.first(where: { $0.name.lowercased() == f.name.lowercased() })
            guard let c else { missing.append(f.name); continue }
            if !used.insert(c.name.lowercased()).inserted {
                throw WeirError(.columnMismatch, subject: columnSubject(c.name),
                                "is written by two fields of the records (names differing only in case)",
                                suggestion: "rename one of the fields before the sink")
            }
            if c.generated {
                throw WeirError(.columnMismatch, subject: columnSubject(c.name),
                                "is a generated column and cannot be written",
                                suggestion: "drop the field '\(f.name)' before the sink (select the other fields)")
            }
            picked.append(c)
        }
        if let first = missing.first {
            var msg = "does not exist (the table has columns: \(tableNames.joined(separator: ", ")))"
            if let best = closestMatch(first, in: tableNames) { msg += "; did you mean '\(best)'?" }
            if missing.count > 1 { msg += "; fields also missing from the table: \(missing.dropFirst().joined(separator: ", "))" }
            let adds = missing.map { name in
                "ADD COLUMN \(q(name)) \(sqlType(schema.fields[schema.index(of: name)!].type, isKey: false))"
            }.joined(separator: ", ")
            throw WeirError(.columnMismatch, subject: columnSubject(first), msg,
                            suggestion: "rename the field to a column of the table, or ALTER TABLE \(q(table)) \(adds)")
        }

        // Columns that need a value but get none would fail every insert.
        let written = Set(picked.map { $0.name.lowercased() })
        if let c = columns.first(where: { !$0.nullable && !$0.hasDefault && !$0.autoIncrement && !$0.generated
                                          && !written.contains($0.name.lowercased()) }) {
            throw WeirError(.columnMismatch, subject: columnSubject(c.name),
                            "is NOT NULL without a default, but the records have no field for it (fields: \(schema.names.joined(separator: ", ")))",
                            suggestion: "add a field '\(c.name)' to the records, or give the column a default")
        }

        var keyFields: [Int] = []
        if mode == .upsert {
            for k in key {
                let i = schema.index(of: k) ?? schema.names.firstIndex(where: { $0.lowercased() == k.lowercased() })!
                keyFields.append(i)
            }
            let keyColumns = Set(keyFields.map { picked[$0].name.lowercased() })
            let indexes = try loadUniqueIndexes(conn)
            let covered = indexes.contains { idx in idx.columns.allSatisfy { keyColumns.contains($0.lowercased()) } }
            if !covered {
                let keyList = keyFields.map { q(picked[$0].name) }.joined(separator: ", ")
                let existing = indexes.isEmpty ? "it has none"
                    : "it has: " + indexes.map { "\($0.name) (\($0.columns.joined(separator: ", ")))" }.joined(separator: "; ")
                throw WeirError(.columnMismatch, subject: tableSubject,
                                "has no PRIMARY KEY or UNIQUE index over the upsert key (\(keyFields.map { picked[$0].name }.joined(separator: ", "))); \(existing). ON DUPLICATE KEY UPDATE would append duplicates instead of overwriting",
                                suggestion: "ALTER TABLE \(q(table)) ADD \(indexes.contains { $0.name == "PRIMARY" } ? "UNIQUE KEY" : "PRIMARY KEY") (\(keyList))")
            }
        }

        let tsMax = MySQLSinkConnector.timestampMaxSeconds(serverVersion: conn.serverVersion)
        return Plan(table: table, picked: picked, keyFields: keyFields, mode: mode, schema: schema, timestampMaxSeconds: tsMax)
    }

    /// A CREATE TABLE matching the schema (and key), for the "table missing" suggestion.
    public func suggestedDDL(schema: Schema) -> String {
        let q = MySQLConnection.quoteIdentifier
        let keyLower = Set(key.map { $0.lowercased() })
        var parts = schema.fields.map { f -> String in
            let isKey = keyLower.contains(f.name.lowercased())
            return "\(q(f.name)) \(sqlType(f.type, isKey: isKey))\(isKey ? " NOT NULL" : "")"
        }
        if !key.isEmpty { parts.append("PRIMARY KEY (\(key.map(q).joined(separator: ", ")))") }
        return "CREATE TABLE \(q(table)) (\(parts.joined(separator: ", ")))"
    }

    func sqlType(_ t: ValueType, isKey: Bool) -> String {
        switch t {
        case .int: return "BIGINT"
        case .double: return "DOUBLE"
        case .bool: return "BOOLEAN"
        case .string, .any: return isKey ? "VARCHAR(255)" : "TEXT"
        }
    }
}

/// How values are rendered for one target column, decided once from its type.
enum ColumnEncoding: Sendable, Equatable {
    /// TINYINT..BIGINT, YEAR, BIT: integers as is, integral doubles as integers.
    case integer
    /// DECIMAL, FLOAT, DOUBLE: numbers in full precision.
    case numeric
    /// DATETIME / TIMESTAMP: integers are epoch milliseconds, written as the UTC
    /// instant (with `.mmm` when the column keeps fractional seconds).
    case datetime(fractional: Bool)
    /// DATE: integers are epoch milliseconds, written as the UTC date.
    case date
    /// Character types, ENUM, SET: everything quoted (an unquoted number
    /// would be taken as an ENUM index).
    case text
    /// Anything else (TIME, BLOB, JSON, UUID...): literals left to the server.
    case other

    init(_ c: MySQLSinkConnector.ColumnInfo) {
        switch c.dataType {
        case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year", "bit", "bool", "boolean":
            self = .integer
        case "decimal", "numeric", "float", "double", "real", "double precision", "fixed", "dec":
            self = .numeric
        case "datetime", "timestamp":
            self = .datetime(fractional: c.fractionalDigits > 0)
        case "date":
            self = .date
        case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json":
            self = .text
        default:
            self = .other
        }
    }
}

extension MySQLSinkConnector.Plan {
    /// The plan for the table columns `picked` (one per schema field, in
    /// schema order): how each is rendered and what each refuses.
    init(table: String, picked: [MySQLSinkConnector.ColumnInfo], keyFields: [Int], mode: MySQLSinkConnector.Mode,
         schema: Schema, timestampMaxSeconds: Int64) {
        self.init(table: table, columns: picked.map(\.name), encodings: picked.map(ColumnEncoding.init),
                  keyFields: keyFields, mode: mode,
                  rules: picked.map { ColumnRule($0, timestampMaxSeconds: timestampMaxSeconds) },
                  labels: picked.map(ColumnRule.Label.init), schema: schema, columnInfos: picked)
    }
}
