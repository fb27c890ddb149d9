import Foundation
import WeirCore
import XCTest
@testable import WeirMySQL

/// Collects what a writer reports (the `report` closure is `@Sendable`).
final class ReportLog: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [RejectedRecord] = []
    var records: [RejectedRecord] { lock.lock(); defer { lock.unlock() }; return list }
    func add(_ r: RejectedRecord) { lock.lock(); list.append(r); lock.unlock() }
    /// The `id` field of each reported row (rows are rendered as JSON objects).
    var ids: [Int] {
        records.compactMap { r in
            (try? JSONSerialization.jsonObject(with: Data(r.value))).flatMap { ($0 as? [String: Any])?["id"] as? Int }
        }
    }
}

/// Sink writers against the real MariaDB (see MySQLTestCase): a job id of
/// their own, prepared leftovers rolled back, and helpers to open writers.
class MySQLSinkTestCase: MySQLTestCase {
    let job = "iso-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
    var used: [String] = []

    override func setUpWithError() throws {
        try super.setUpWithError()
        try admin.execute("SET SESSION lock_wait_timeout = 20")
    }

    override func tearDownWithError() throws {
        if let admin, let xids = try? MySQLSinkConnector.preparedXids(on: admin) {
            for xid in xids where MySQLXid(parsing: xid).map({ p in used.contains { p.belongs(job: $0, node: nil) || p.belongs(job: $0, node: "out") } }) ?? false {
                try? admin.execute("XA ROLLBACK '\(xid)'")
            }
        }
        try super.tearDownWithError()
    }

    func sink(_ table: String, mode: MySQLSinkConnector.Mode = .append, key: [String] = [],
              batchSize: Int = 4000) throws -> MySQLSinkConnector {
        MySQLSinkConnector(url: try url(), table: table, mode: mode, key: key, batchSize: batchSize)
    }

    func context(_ onError: OnError, deadLetter: String? = nil, node: String = "out", log: ReportLog? = nil,
                 job: String? = nil, version: Int? = nil) -> SinkContext {
        SinkContext(job: job ?? self.job, version: version, run: "r1", node: node, subtask: 0, onError: onError,
                    deadLetterTable: deadLetter, report: { r in log?.add(r) })
    }

    func scope(node: String = "out", job: String? = nil, run: String = "r1") -> SinkTransactionScope {
        let j = job ?? self.job
        if !used.contains(j) { used.append(j) }
        return SinkTransactionScope(job: j, run: run, node: node, subtask: 0)
    }

    /// A READ COMMITTED session of its own: sees exactly what is committed.
    func committed(_ sql: String) throws -> [[String?]] {
        let c = try MySQLConnection(url: try url())
        defer { c.close() }
        try c.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return try c.query(sql).rows
    }
}

/// Rows the table refuses: pre-validation, narrowing, the onError policies and
/// the dead-letter table, against the real MariaDB (see MySQLTestCase).
final class MySQLRowIsolationTests: MySQLSinkTestCase {
    // MARK: pre-validation

    /// A table with one column per kind of refusal, and a batch mixing good rows with
    /// one bad row of each kind. Returns the schema, the batch and (id, column) of each bad row.
    func mixedBatch() throws -> (Schema, RecordBatch, [(Int, String)]) {
        try admin.execute("""
            CREATE TABLE t (id INT PRIMARY KEY, user_id BIGINT NOT NULL, small TINYINT UNSIGNED, name VARCHAR(5),
                            ts DATETIME(3), m VARCHAR(10) CHARACTER SET utf8mb3, d INT NOT NULL DEFAULT 0,
                            tz TIMESTAMP(3) NULL, l VARCHAR(10) CHARACTER SET latin1, amount DECIMAL(5,2), n INT)
            """)
        let schema = Schema([.init("id", .int), .init("user_id", .any), .init("small", .int), .init("name", .string),
                             .init("ts", .int), .init("m", .string), .init("d", .int), .init("tz", .int),
                             .init("l", .string), .init("amount", .double), .init("n", .any)])
        func row(_ id: Int, user: Value = .int(7), small: Value = .int(1), name: Value = .string("ann"),
                 ts: Value = .int(1_700_000_000_123), m: Value = .string("héllo"), d: Value = .int(0),
                 tz: Value = .int(1_700_000_000_123), l: Value = .string("café €"), amount: Value = .double(1.5),
                 n: Value = .string(" 42 ")) -> [Value] {
            [.int(Int64(id)), user, small, name, ts, m, d, tz, l, amount, n]
        }
        let rows: [[Value]] = [
            row(1),
            row(2, user: .null),                                  // NULL into NOT NULL
            row(3, name: .string("abcde   ")),                    // trailing spaces are dropped by the server: fine
            row(4, user: .double(1e30)),                          // out of range for BIGINT
            row(5, small: .int(300)),                             // TINYINT UNSIGNED holds 0...255
            row(6, name: .string("abcdef")),                      // too long for VARCHAR(5)
            row(7, ts: .int(253_402_300_800_000)),                // 10000-01-01: out of DATETIME's range
            row(8, m: .string("smile 😀")),                       // 4-byte UTF-8 into utf8mb3
            row(9, name: .string("日本語テキ")),                    // 5 characters (15 bytes): fits
            row(10, d: .null),                                    // NOT NULL with a default still refuses NULL
            row(11, small: .int(-1)),                             // unsigned
            row(12, tz: .int(2_147_483_648_000)),                 // TIMESTAMP ends 2038-01-19 03:14:07
            row(13, l: .string("Ā")),                             // latin1 has no U+0100
            row(14, amount: .double(1000)),                       // DECIMAL(5,2) holds < 1000
            row(15, n: .string("12abc")),                         // not a number
            row(16, user: .double(.nan)),                         // NaN is written as NULL: NOT NULL refuses it
            row(17, user: .double(2.5)),                          // not an integer
            row(18, user: .string("9223372036854775807")),        // the largest BIGINT, as a string: fine
        ]
        let bad: [(Int, String)] = [(2, "user_id"), (4, "user_id"), (5, "small"), (6, "name"), (7, "ts"), (8, "m"),
                                    (10, "d"), (11, "small"), (12, "tz"), (13, "l"), (14, "amount"), (15, "n"),
                                    (16, "user_id"), (17, "user_id")]
        return (schema, batch(rows), bad)
    }

    func testPrevalidationSkipWritesExactlyTheGoodRows() throws {
        let (schema, input, bad) = try mixedBatch()
        let log = ReportLog()
        let w = try sink("t", batchSize: 4).openWriter(context: context(.skip, log: log), schema: schema)
        defer { w.close() }
        try w.write(input)
        try w.flush()
        XCTAssertEqual(try rows("SELECT id FROM t ORDER BY id").map { $0[0] }, ["1", "3", "9", "18"])
        XCTAssertEqual(try rows("SELECT name, user_id FROM t WHERE id IN (3, 9, 18) ORDER BY id"),
                       [["abcde", "7"], ["日本語テキ", "7"], ["ann", "9223372036854775807"]])
        let reports = log.records
        XCTAssertEqual(log.ids, bad.map(\.0))
        for (r, (id, column)) in zip(reports, bad) {
            XCTAssertEqual(r.node, "out")
            XCTAssertEqual(r.reason, .sinkRejected)
            XCTAssertTrue(r.message.hasPrefix("column '\(column)' of table `\(database)`.`t`: "), "row \(id): \(r.message)")
        }
        XCTAssertEqual(reports.first?.message, "column 'user_id' of table `\(database)`.`t`: NULL into NOT NULL (MySQL error 1048)")
        XCTAssertTrue(reports[5].message.contains("U+1F600") && reports[5].message.contains("utf8mb3"), reports[5].message)
        XCTAssertTrue(reports[4].message.contains("10000-01-01"), reports[4].message)
        // Everything was caught before the server saw it: no statement had to be narrowed.
        XCTAssertEqual((w as? MySQLSinkWriter)?.narrowedStatements, 0)
        XCTAssertEqual((w as? MySQLSinkWriter)?.rejectedRows, bad.count)
    }

    func testPrevalidationDeadLetterKeepsExactlyTheBadRows() throws {
        let (schema, input, bad) = try mixedBatch()
        let log = ReportLog()
        let ctx = context(.deadLetter, deadLetter: "dead", log: log, version: 3)
        let w = try sink("t").openWriter(context: ctx, schema: schema)
        defer { w.close() }
        try w.write(input)
        // Written in the writer's transaction: nothing visible before the flush.
        XCTAssertEqual(try rows("SELECT COUNT(*) FROM dead"), [["0"]])
        try w.flush()
        XCTAssertEqual(try rows("SELECT id FROM t ORDER BY id").map { $0[0] }, ["1", "3", "9", "18"])
        let dead = try rows("""
            SELECT job, version, run, node, topic, kafka_partition, kafka_offset, CAST(raw_value AS CHAR), error_code,
                   error_message, created_at IS NOT NULL FROM dead ORDER BY id
            """)
        XCTAssertEqual(dead.count, bad.count)
        for (d, (id, column)) in zip(dead, bad) {
            XCTAssertEqual(Array(d[0..<7]), [job, "3", "r1", "out", nil, nil, nil])
            let raw = try XCTUnwrap(d[7])
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: Any])
            XCTAssertEqual(obj["id"] as? Int, id)
            XCTAssertEqual(d[8], "sink_rejected")
            XCTAssertTrue(d[9]?.hasPrefix("column '\(column)' of table `\(database)`.`t`") ?? false, "\(d)")
            XCTAssertEqual(d[10], "1")
        }
        XCTAssertEqual(log.records.count, bad.count, "dead-lettered rows are reported too")
    }

    func testPrevalidationFailThrowsNamingColumnAndRow() throws {
        let (schema, input, _) = try mixedBatch()
        let log = ReportLog()
        let w = try sink("t", batchSize: 1).openWriter(context: context(.fail, log: log), schema: schema)
        defer { w.close() }
        let e = assertWeirError(.badRecord) { try w.write(input) }
        XCTAssertEqual(e?.subject, "column 'user_id' of table `\(database)`.`t`")
        XCTAssertTrue(e?.message.contains("\"id\":2") ?? false, "\(String(describing: e))")
        XCTAssertTrue(e?.message.contains("NULL into NOT NULL") ?? false, "\(String(describing: e))")
        XCTAssertTrue(e?.suggestion?.contains("onError: skip") ?? false, "\(String(describing: e))")
        XCTAssertEqual(log.ids, [2], "reported just before failing")
        // Row 1 had been sent (batchSize 1): rolled back with the rest; the writer is done.
        _ = assertWeirError(.badRecord) { try w.flush() }
        XCTAssertEqual(try rows("SELECT COUNT(*) FROM t"), [["0"]])
    }

    /// Every rule against the server itself: for each (column, value), the rule
    /// refuses the value exactly when a one-row INSERT of it fails (apart from
    /// the documented stricter case: doubles with a fraction into integer columns).
    func testRulesAgreeWithTheServer() throws {
        let columns: [(String, String)] = [
            ("ti", "TINYINT"), ("tiu", "TINYINT UNSIGNED"), ("si", "SMALLINT"), ("mi", "MEDIUMINT UNSIGNED"),
            ("i", "INT"), ("bi", "BIGINT"), ("biu", "BIGINT UNSIGNED"), ("y", "YEAR"), ("b", "BIT(3)"),
            ("dec", "DECIMAL(5,2)"), ("decu", "DECIMAL(4,0) UNSIGNED"), ("f", "FLOAT"), ("dbl", "DOUBLE"),
            ("dt", "DATETIME"), ("dt3", "DATETIME(3)"), ("d", "DATE"), ("ts", "TIMESTAMP NULL"), ("ts3", "TIMESTAMP(3) NULL"),
            ("v", "VARCHAR(4)"), ("c", "CHAR(3)"), ("tt", "TINYTEXT"), ("v3", "VARCHAR(8) CHARACTER SET utf8mb3"),
            ("l1", "VARCHAR(8) CHARACTER SET latin1"), ("a", "VARCHAR(8) CHARACTER SET ascii"), ("vb", "VARBINARY(4)"),
            ("nn", "INT NOT NULL DEFAULT 5"),
        ]
        try admin.execute("CREATE TABLE r (" + columns.map { "`\($0.0)` \($0.1)" }.joined(separator: ", ") + ", `nn2` INT NULL)")
        let values: [Value] = [
            .null, .int(0), .int(-1), .int(99), .int(100), .int(127), .int(128), .int(255), .int(256), .int(1000), .int(1901), .int(2155),
            .int(2156), .int(9999), .int(10000), .int(8_388_607), .int(16_777_215), .int(16_777_216), .int(2_147_483_647),
            .int(2_147_483_648), .int(.max), .int(.min), .int(999), .int(1000), .int(1_000_000), .int(2_147_483_647_999),
            .int(2_147_483_648_000), .int(-62_167_219_200_000), .int(-62_167_219_200_001), .int(253_402_300_799_999),
            .int(253_402_300_800_000), .int(1), .int(1000), .int(999),
            .double(0), .double(-0.5), .double(127), .double(128), .double(999.99), .double(999.994), .double(999.996),
            .double(-999.99), .double(9999.4), .double(3.4e38), .double(3.5e38), .double(1e19), .double(1.9e19),
            .double(-9.223372036854775808e18), .double(9.223372036854775808e18), .double(.infinity),
            .string("7"), .string(" 17 "), .string("+5"), .string(".5"), .string("1."), .string("1e3"), .string("1e"),
            .string("0x10"), .string("12abc"), .string(""), .string("  "), .string("-"), .string("1e400"), .string("127.4"),
            .string("127.5"), .string("-128.5"), .string("18446744073709551615"), .string("18446744073709551616"),
            .string("abcd"), .string("abcde"), .string("abcd  "), .string("abc\t"), .string("日本語テ"), .string("日本語テキ"),
            .string("é€Š"), .string("Ā"), .string("ü"), .string("😀"), .string("\u{85}"), .string("\u{81}"),
            .string(String(repeating: "é", count: 127)), .string(String(repeating: "é", count: 128)),
            .string(String(repeating: "a", count: 255) + "  "), .bool(true),
        ]
        let conn = try MySQLConnection(url: try url())
        defer { conn.close() }
        let plan = try sink("r").plan(conn: conn, schema: Schema(columns.map { Schema.Field($0.0, .any) }))
        var b = SQLBuffer(capacity: 4096)
        defer { b.deallocate() }
        var mismatches: [String] = []
        var checkedCases = 0, refusals = 0, leftToServer = 0
        for (ci, col) in columns.enumerated() {
            let rule = plan.rules[ci]
            for v in values {
                // Strings into temporal, YEAR and BIT columns, and bools, are left to the server (narrowing).
                if case .string = v, ["y", "b", "dt", "dt3", "d", "ts", "ts3"].contains(col.0) { continue }
                if case .bool = v { continue }
                b.count = 0
                b.append(Array("INSERT INTO r (`\(col.0)`) VALUES (".utf8))
                b.appendValue(v, plan.encodings[ci], backslashEscapes: true)
                b.append(UInt8(ascii: ")"))
                var serverRefuses = false
                do { try conn.execute(bytes: UnsafeRawBufferPointer(start: b.base, count: b.count)) } catch {
                    serverRefuses = true
                    XCTAssertTrue(RowIsolation.isDataError(conn.lastErrorNumber), "\(col.0) \(v): \(error)")
                }
                let problem = rule.check(v)
                checkedCases += 1
                if problem != nil { refusals += 1 }
                // Deliberately stricter than the server: a fraction into an integer column (the server
                // rounds it), an instant no DATETIME can hold as a double (the renderer writes NULL).
                if problem == .notIntegral { continue }
                if case .double(let d) = v, d.isFinite, rule.kind == .temporal, abs(d.rounded(.down)) >= 9.2e18 {
                    XCTAssertEqual(problem, .temporalRange)
                    continue
                }
                // 2^63 into a signed BIGINT: the server stores 2^63-1 without a word.
                if case .double(let d) = v, rule.kind == .integer, rule.hi == .max, !rule.unsigned, d == 9.223372036854775808e18 {
                    XCTAssertEqual(problem, .outOfRange)
                    XCTAssertFalse(serverRefuses)
                    continue
                }
                // Left to the server (and narrowing): a double into a binary column is written as a
                // number literal, which the server turns into text of its own.
                if problem == nil, serverRefuses, case .double = v, rule.kind == .binary { leftToServer += 1; continue }
                if (problem != nil) != serverRefuses {
                    mismatches.append("\(col.1) \(v): rule \(problem.map { "\($0)" } ?? "accepts"), server \(serverRefuses ? "refuses" : "accepts")")
                }
            }
        }
        XCTAssertEqual(mismatches, [])
        XCTAssertGreaterThan(checkedCases, 1500)
        XCTAssertGreaterThan(refusals, 300)
        XCTAssertLessThan(leftToServer, 20)
    }

    // MARK: narrowing

    func testNarrowingCheckConstraintDuplicateAndForeignKey() throws {
        try admin.execute("CREATE TABLE parent (id INT PRIMARY KEY)")
        try admin.execute("INSERT INTO parent VALUES (1), (2)")
        try admin.execute("""
            CREATE TABLE c (id INT PRIMARY KEY, amount INT CHECK (amount >= 0), parent INT,
                            FOREIGN KEY (parent) REFERENCES parent (id))
            """)
        try admin.execute("INSERT INTO c VALUES (100, 1, 1)")
        let schema = Schema([.init("id", .int), .init("amount", .int), .init("parent", .int)])
        let log = ReportLog()
        let w = try sink("c", batchSize: 8).openWriter(context: context(.skip, log: log), schema: schema)
        defer { w.close() }
        var input: [[Value]] = []
        for i in 1...20 { input.append([.int(Int64(i)), .int(i % 7 == 0 ? -1 : Int64(i)), .int(1)]) }
        input.append([.int(100), .int(5), .int(2)])   // duplicate of a committed row
        input.append([.int(3), .int(5), .int(2)])     // duplicate within the batch
        input.append([.int(21), .int(5), .int(9)])    // no such parent
        input.append([.int(22), .int(5), .null])
        try w.write(batch(input))
        try w.flush()
        let expected = (1...22).filter { $0 % 7 != 0 && $0 != 21 }
        XCTAssertEqual(try rows("SELECT id FROM c WHERE id < 100 ORDER BY id").map { Int($0[0]!)! }, expected)
        XCTAssertEqual(try rows("SELECT amount, parent FROM c WHERE id IN (3, 100) ORDER BY id"), [["3", "1"], ["1", "1"]])
        XCTAssertEqual(log.ids, [7, 14, 100, 3, 21])
        let messages = log.records.map(\.message)
        XCTAssertTrue(messages[0].hasPrefix("table `\(database)`.`c`: CONSTRAINT `c.amount` failed"), messages[0])
        XCTAssertTrue(messages[0].hasSuffix("(error 4025)"), messages[0])
        XCTAssertTrue(messages[2].contains("Duplicate entry '100'") && messages[2].hasSuffix("(error 1062)"), messages[2])
        XCTAssertTrue(messages[4].hasSuffix("(error 1452)"), messages[4])
        XCTAssertFalse(messages.contains { $0.contains(" at row ") }, "\(messages)")
        XCTAssertGreaterThanOrEqual((w as? MySQLSinkWriter)?.narrowedStatements ?? 0, 3)
    }

    func testNarrowedRowsFailUnderOnErrorFail() throws {
        try admin.execute("CREATE TABLE c (id INT PRIMARY KEY, amount INT CHECK (amount >= 0))")
        let schema = Schema([.init("id", .int), .init("amount", .int)])
        let w = try sink("c").openWriter(context: context(.fail), schema: schema)
        defer { w.close() }
        let e = assertWeirError(.badRecord) { try w.write(self.batch([[.int(1), .int(1)], [.int(2), .int(-5)], [.int(3), .int(1)]])); try w.flush() }
        XCTAssertEqual(e?.subject, "table `\(database)`.`c`")
        XCTAssertTrue(e?.message.contains("{\"id\":2,\"amount\":-5}") ?? false, "\(String(describing: e))")
        XCTAssertTrue(e?.message.contains("error 4025") ?? false, "\(String(describing: e))")
        XCTAssertEqual(try rows("SELECT COUNT(*) FROM c"), [["0"]])
    }

    func testOtherErrorsStillFailTheWriter() throws {
        try admin.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        let schema = Schema([.init("id", .int), .init("v", .int)])
        let w = try sink("t").openWriter(context: context(.skip), schema: schema)
        defer { w.close() }
        try w.write(batch([[.int(1), .int(1)]]))
        try admin.execute("DROP TABLE t")
        // The table existed when the writer opened: dropped while writing is a changed sink, not a missing one.
        let e = assertWeirError(.sinkSchemaChanged) { try w.flush() }
        XCTAssertTrue(e?.message.contains("doesn't exist") ?? false, "\(String(describing: e))")
        _ = assertWeirError(.sinkSchemaChanged) { try w.write(self.batch([[.int(2), .int(2)]])) }
    }

    /// MariaDB rolls back only the failed statement of an XA transaction: the
    /// statements before and after it are prepared and committed.
    func testFailedStatementInsideXATransactionRollsBackOnlyItself() throws {
        try admin.execute("CREATE TABLE c (id INT PRIMARY KEY, amount INT CHECK (amount >= 0))")
        let c = try MySQLConnection(url: try url())
        defer { c.close() }
        let xid = "weir-test-\(job)"
        defer { try? admin.execute("XA ROLLBACK '\(xid)'") }
        try c.execute("XA START '\(xid)'")
        try c.execute("INSERT INTO c VALUES (1, 1), (2, 2)")
        XCTAssertThrowsError(try c.execute("INSERT INTO c VALUES (3, 3), (4, -4)"))
        XCTAssertEqual(c.lastErrorNumber, 4025)
        XCTAssertThrowsError(try c.execute("INSERT INTO c VALUES (5, 5), (1, 1)"))
        XCTAssertEqual(c.lastErrorNumber, 1062)
        try c.execute("INSERT INTO c VALUES (6, 6)")
        try c.execute("XA END '\(xid)'")
        try c.execute("XA PREPARE '\(xid)'")
        XCTAssertEqual(try committed("SELECT COUNT(*) FROM c"), [["0"]])
        try c.execute("XA COMMIT '\(xid)'")
        XCTAssertEqual(try committed("SELECT id FROM c ORDER BY id").map { $0[0] }, ["1", "2", "6"])
    }

    func testNarrowingInXAEpochWithDeadLetters() throws {
        try admin.execute("CREATE TABLE c (id INT PRIMARY KEY, amount INT CHECK (amount >= 0))")
        let schema = Schema([.init("id", .int), .init("amount", .int)])
        let log = ReportLog()
        let w = try sink("c", batchSize: 16).openXAWriter(scope: scope(), schema: schema,
                                                           context: context(.deadLetter, deadLetter: "dead", log: log))
        defer { w.close() }
        try w.begin(epoch: 1)
        try w.write(batch((1...40).map { [.int(Int64($0)), .int($0 % 9 == 0 ? -1 : Int64($0))] }))
        let xid = try XCTUnwrap(try w.prepare())
        XCTAssertEqual(try committed("SELECT COUNT(*) FROM c"), [["0"]])
        XCTAssertEqual(try committed("SELECT COUNT(*) FROM dead"), [["0"]])
        XCTAssertTrue(try MySQLSinkConnector.preparedXids(on: admin).contains(xid))
        try w.commit(epoch: 1)
        let good = (1...40).filter { $0 % 9 != 0 }
        XCTAssertEqual(try committed("SELECT id, COUNT(*) FROM c GROUP BY id ORDER BY id").map { Int($0[0]!)! }, good)
        XCTAssertEqual(try committed("SELECT COUNT(*), COUNT(DISTINCT id) FROM c"), [[String(good.count), String(good.count)]])
        XCTAssertEqual(try committed("SELECT CAST(raw_value AS CHAR), error_code FROM dead ORDER BY id"),
                       [9, 18, 27, 36].map { ["{\"id\":\($0),\"amount\":-1}", "sink_rejected"] })
        XCTAssertEqual(log.ids, [9, 18, 27, 36])
        XCTAssertGreaterThanOrEqual(w.narrowedStatements, 3)
        // Committing again is harmless and changes nothing.
        try w.commit(epoch: 1)
        XCTAssertEqual(try committed("SELECT COUNT(*) FROM dead"), [["4"]])
    }

    /// Upsert statements held back while an epoch is prepared are narrowed when finally sent.
    func testHeldBackUpsertStatementsAreNarrowed() throws {
        try admin.execute("CREATE TABLE u (id INT PRIMARY KEY, amount INT CHECK (amount >= 0))")
        let schema = Schema([.init("id", .int), .init("amount", .int)])
        let log = ReportLog()
        let w = try sink("u", mode: .upsert, key: ["id"], batchSize: 2)
            .openXAWriter(scope: scope(), schema: schema, sessionSetup: ["SET SESSION innodb_lock_wait_timeout = 2"],
                          context: context(.skip, log: log))
        defer { w.close() }
        try w.begin(epoch: 1)
        try w.write(batch([[.int(1), .int(1)], [.int(2), .int(1)]]))
        _ = try w.prepare()
        try w.begin(epoch: 2)
        // Held back (epoch 1 is prepared): key 2 is locked by epoch 1.
        try w.write(batch([[.int(2), .int(-2)], [.int(3), .int(3)], [.int(1), .int(10)], [.int(4), .int(-4)]]))
        XCTAssertEqual(log.records.count, 0, "not sent yet")
        try w.commit(epoch: 1)
        try w.write(batch([[.int(5), .int(5)]])) // sends the held-back statements first
        XCTAssertEqual(log.ids, [2, 4])
        _ = try XCTUnwrap(try w.prepare())
        try w.commit(epoch: 2)
        XCTAssertEqual(try committed("SELECT id, amount FROM u ORDER BY id"),
                       [["1", "10"], ["2", "1"], ["3", "3"], ["5", "5"]])
    }

    /// An epoch whose every row is refused: before sending (nothing to prepare), or by the
    /// server (an XA transaction without rows, prepared and committed like any other).
    func testEpochWhoseRowsAreAllRefused() throws {
        try admin.execute("CREATE TABLE c (id INT PRIMARY KEY, amount INT CHECK (amount >= 0), name VARCHAR(2))")
        let schema = Schema([.init("id", .int), .init("amount", .int), .init("name", .string)])
        let log = ReportLog()
        let w = try sink("c").openXAWriter(scope: scope(), schema: schema, context: context(.skip, log: log))
        defer { w.close() }
        try w.begin(epoch: 1)
        try w.write(batch([[.int(1), .int(1), .string("long")], [.int(2), .int(1), .string("longer")]]))
        XCTAssertNil(try w.prepare(), "nothing was sent")
        try w.begin(epoch: 2)
        try w.write(batch([[.int(3), .int(-1), .string("a")], [.int(4), .int(-2), .string("b")]]))
        let x2 = try w.prepare()
        try w.commit(epoch: 2)
        XCTAssertEqual(log.ids, [1, 2, 3, 4])
        XCTAssertEqual(try committed("SELECT COUNT(*) FROM c"), [["0"]])
        if let x2 { XCTAssertFalse(try MySQLSinkConnector.preparedXids(on: admin).contains(x2)) }
        XCTAssertEqual(w.preparedEpochs, [])
        // And the writer goes on.
        try w.begin(epoch: 3)
        try w.write(batch([[.int(5), .int(5), .string("ok")]]))
        _ = try XCTUnwrap(try w.prepare())
        try w.commit(epoch: 3)
        XCTAssertEqual(try committed("SELECT id FROM c"), [["5"]])
    }

    // MARK: dead letters

    func deadLetter(_ i: Int) -> RejectedRecord {
        RejectedRecord(node: "events", reason: .malformed, message: "not a JSON object: 'it''s' \\ \(i)",
                       topic: "events", partition: 3, offset: Int64(1000 + i), value: Array("{bad \(i)\u{0}\u{FF}".utf8) + [0xFF, 0x00])
    }

    func testWriteDeadLettersInXAEpochCommitAndAbort() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let s = try sink("t")
        let w = try s.openXAWriter(scope: scope(), schema: Schema([.init("id", .int), .init("name", .string)]),
                                   context: context(.deadLetter, deadLetter: "dead", version: 7))
        defer { w.close() }
        // An epoch with dead letters only still prepares; abortAll rolls it back.
        try w.begin(epoch: 1)
        try w.writeDeadLetters([deadLetter(1), deadLetter(2)])
        let x1 = try XCTUnwrap(try w.prepare(), "an epoch holding only dead letters prepares")
        XCTAssertTrue(try MySQLSinkConnector.preparedXids(on: admin).contains(x1))
        XCTAssertEqual(try committed("SELECT COUNT(*) FROM dead"), [["0"]])
        w.abortAll()
        XCTAssertFalse(try MySQLSinkConnector.preparedXids(on: admin).contains(x1))
        XCTAssertEqual(try committed("SELECT COUNT(*) FROM dead"), [["0"]])
        // Dead letters and rows of one epoch: invisible until committed, then exactly once.
        try w.begin(epoch: 2)
        try w.write(batch([[.int(1), .string("a")]]))
        try w.writeDeadLetters([deadLetter(3)])
        try w.writeDeadLetters([deadLetter(4)])
        _ = try XCTUnwrap(try w.prepare())
        XCTAssertEqual(try committed("SELECT COUNT(*) FROM dead"), [["0"]])
        try w.commit(epoch: 2)
        XCTAssertEqual(try committed("SELECT COUNT(*) FROM t"), [["1"]])
        let dead = try committed("""
            SELECT job, version, run, node, topic, kafka_partition, kafka_offset, HEX(raw_value), error_code, error_message
            FROM dead ORDER BY id
            """)
        XCTAssertEqual(dead.count, 2)
        for (d, i) in zip(dead, [3, 4]) {
            let hex = (Array("{bad \(i)\u{0}\u{FF}".utf8) + [0xFF, 0x00]).map { String(format: "%02X", $0) }.joined()
            XCTAssertEqual(d, [job, "7", "r1", "events", "events", "3", String(1000 + i), hex, "malformed",
                               "not a JSON object: 'it''s' \\ \(i)"])
        }
        // Outside an epoch: refused.
        _ = assertWeirError(.internalError) { try w.writeDeadLetters([self.deadLetter(5)]) }
    }

    func testWriteDeadLettersPlainWriterCommitsWithFlush() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let schema = Schema([.init("id", .int), .init("name", .string)])
        let s = try sink("t")
        let w = try s.openWriter(context: context(.skip, deadLetter: "dead"), schema: schema)
        try w.writeDeadLetters([deadLetter(1)])
        XCTAssertEqual(try rows("SELECT COUNT(*) FROM dead"), [["0"]])
        try w.flush()
        XCTAssertEqual(try rows("SELECT node, error_code FROM dead"), [["events", "malformed"]])
        try w.writeDeadLetters([deadLetter(2)])
        w.close() // never flushed: rolled back
        XCTAssertEqual(try rows("SELECT COUNT(*) FROM dead"), [["1"]])
        // A writer without a dead-letter table refuses them.
        let plain = try s.openWriter(context: context(.skip), schema: schema)
        defer { plain.close() }
        let e = assertWeirError(.invalidSpec) { try plain.writeDeadLetters([self.deadLetter(3)]) }
        XCTAssertTrue(e?.subject.contains("events/3@1003") ?? false, "\(String(describing: e))")
    }

    func testDeadLetterTableIsCreatedOrChecked() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let schema = Schema([.init("id", .int), .init("name", .string)])
        let s = try sink("t")
        // Created with the documented columns.
        try s.openWriter(context: context(.deadLetter, deadLetter: "dl"), schema: schema).close()
        XCTAssertEqual(try rows("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '\(database)' AND TABLE_NAME = 'dl' ORDER BY ORDINAL_POSITION").map { $0[0]! },
                       DeadLetterTable.columns.map(\.name))
        XCTAssertEqual(try rows("SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = '\(database)' AND TABLE_NAME = 'dl'"), [["InnoDB"]])
        // Opening again reuses it.
        try s.openWriter(context: context(.deadLetter, deadLetter: "dl"), schema: schema).close()

        // An existing table without a column Weir writes is refused, naming both.
        try admin.execute("CREATE TABLE dl2 (id BIGINT AUTO_INCREMENT PRIMARY KEY, job VARCHAR(255), version INT, run VARCHAR(64), node VARCHAR(255), topic VARCHAR(255), kafka_partition INT, kafka_offset BIGINT, raw_value BLOB, error_message TEXT, created_at DATETIME(3))")
        let e = assertWeirError(.columnMismatch) { _ = try s.openWriter(context: self.context(.deadLetter, deadLetter: "dl2"), schema: schema) }
        XCTAssertEqual(e?.subject, "dead-letter table `\(database)`.`dl2`")
        XCTAssertTrue(e?.message.contains("'error_code'") ?? false, "\(String(describing: e))")
        XCTAssertTrue(e?.suggestion?.contains("ADD COLUMN `error_code` VARCHAR(64) NOT NULL") ?? false, "\(String(describing: e))")
        // A required column Weir does not write is refused too.
        try admin.execute("ALTER TABLE dl2 ADD COLUMN error_code VARCHAR(64), ADD COLUMN owner VARCHAR(10) NOT NULL")
        let e2 = assertWeirError(.columnMismatch) { _ = try s.openXAWriter(scope: self.scope(), schema: schema, context: self.context(.deadLetter, deadLetter: "dl2")) }
        XCTAssertEqual(e2?.subject, "column 'owner' of dead-letter table `\(database)`.`dl2`")
        // A column of the wrong kind.
        try admin.execute("ALTER TABLE dl2 DROP COLUMN owner, MODIFY created_at INT")
        let e3 = assertWeirError(.columnMismatch) { _ = try s.openWriter(context: self.context(.skip, deadLetter: "dl2"), schema: schema) }
        XCTAssertEqual(e3?.subject, "column 'created_at' of dead-letter table `\(database)`.`dl2`")
        // Character columns must be utf8mb4.
        try admin.execute("ALTER TABLE dl2 MODIFY created_at DATETIME(3), MODIFY node VARCHAR(255) CHARACTER SET latin1")
        let e4 = assertWeirError(.columnMismatch) { _ = try s.openWriter(context: self.context(.skip, deadLetter: "dl2"), schema: schema) }
        XCTAssertEqual(e4?.subject, "column 'node' of dead-letter table `\(database)`.`dl2`")
        XCTAssertTrue(e4?.suggestion?.contains("MODIFY `node` VARCHAR(255) CHARACTER SET utf8mb4 NOT NULL") ?? false, "\(String(describing: e4))")
        // A table of the user's own with shorter columns and a TEXT raw_value: values are cut to fit.
        try admin.execute("ALTER TABLE dl2 MODIFY node VARCHAR(255) CHARACTER SET utf8mb4, MODIFY job VARCHAR(5) CHARACTER SET utf8mb4, MODIFY raw_value MEDIUMTEXT CHARACTER SET utf8mb4")
        let w = try s.openWriter(context: context(.skip, deadLetter: "dl2", job: "a-long-job-name"), schema: schema)
        try w.writeDeadLetters([deadLetter(1)])
        try w.flush()
        w.close()
        XCTAssertEqual(try rows("SELECT job, raw_value FROM dl2"), [["a-lon", "{bad 1\u{0}\u{FF}\u{FFFD}\u{0}"]])
        // deadLetter without a table, or the sink's own table.
        _ = assertWeirError(.invalidSpec) { _ = try s.openWriter(context: self.context(.deadLetter), schema: schema) }
        _ = assertWeirError(.invalidSpec) { _ = try s.openWriter(context: self.context(.deadLetter, deadLetter: "T"), schema: schema) }
    }

    /// Creating the table needs CREATE; writing into an existing one needs INSERT only.
    func testDeadLetterTableAndPrivileges() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let user = "weir_t_dl_user", pw = "Dead-Letters-1"
        for host in ["%", "localhost", "127.0.0.1"] {
            try admin.execute("DROP USER IF EXISTS '\(user)'@'\(host)'")
            try admin.execute("CREATE USER '\(user)'@'\(host)' IDENTIFIED BY '\(pw)'")
            try admin.execute("GRANT SELECT, INSERT, UPDATE ON `\(database)`.* TO '\(user)'@'\(host)'")
        }
        defer { for host in ["%", "localhost", "127.0.0.1"] { try? admin.execute("DROP USER IF EXISTS '\(user)'@'\(host)'") } }
        let schema = Schema([.init("id", .int), .init("name", .string)])
        let s = MySQLSinkConnector(url: try url(user: user, password: pw), table: "t")
        let e = assertWeirError(.accessDenied) { _ = try s.openWriter(context: self.context(.deadLetter, deadLetter: "dead"), schema: schema) }
        XCTAssertTrue(e?.message.contains("cannot be created") ?? false, "\(String(describing: e))")
        XCTAssertTrue(e?.suggestion?.contains(DeadLetterTable.ddl("dead")) ?? false, "\(String(describing: e))")
        try admin.execute(DeadLetterTable.ddl("dead"))
        let w = try s.openWriter(context: context(.deadLetter, deadLetter: "dead"), schema: schema)
        defer { w.close() }
        try w.write(batch([[.int(1), .string("a")], [.int(2), .string(String(repeating: "x", count: 21))]]))
        try w.flush()
        XCTAssertEqual(try rows("SELECT id FROM t"), [["1"]])
        XCTAssertEqual(try rows("SELECT CAST(raw_value AS CHAR) FROM dead"), [["{\"id\":2,\"name\":\"\(String(repeating: "x", count: 21))\"}"]])
    }

    func testDeadLettersWhileAnEarlierEpochIsPrepared() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(3))")
        let schema = Schema([.init("id", .int), .init("name", .string)])
        let w = try sink("t").openXAWriter(scope: scope(), schema: schema,
                                           sessionSetup: ["SET SESSION innodb_lock_wait_timeout = 2"],
                                           context: context(.deadLetter, deadLetter: "dead"))
        defer { w.close() }
        try w.begin(epoch: 1)
        try w.write(batch([[.int(1), .string("a")], [.int(2), .string("long")]]))
        _ = try w.prepare()
        // Epoch 2 inserts dead letters while epoch 1 (holding some) is prepared: no lock wait.
        try w.begin(epoch: 2)
        try w.write(batch([[.int(3), .string("b")], [.int(4), .string("longer")]]))
        try w.writeDeadLetters([deadLetter(1)])
        _ = try w.prepare()
        try w.commit(epoch: 1)
        try w.commit(epoch: 2)
        XCTAssertEqual(try committed("SELECT id FROM t ORDER BY id").map { $0[0] }, ["1", "3"])
        XCTAssertEqual(try committed("SELECT CAST(raw_value AS CHAR) FROM dead WHERE error_code = 'sink_rejected' ORDER BY id").map { $0[0] },
                       ["{\"id\":2,\"name\":\"long\"}", "{\"id\":4,\"name\":\"longer\"}"])
        XCTAssertEqual(try committed("SELECT COUNT(*) FROM dead"), [["3"]])
    }

    // MARK: recovery of every node of a job

    func testRecoverWithoutNodeResolvesRenamedNodes() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let s = try sink("t")
        let schema = Schema([.init("id", .int), .init("name", .string)])
        let longNode = "a sink node with a long name"
        let other = "o" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let a = try s.openXAWriter(scope: scope(node: "old"), schema: schema)
        let b = try s.openXAWriter(scope: scope(node: longNode), schema: schema)
        let c = try s.openXAWriter(scope: scope(node: "old", job: other), schema: schema)
        try a.begin(epoch: 1); try a.write(batch([[.int(1), .string("a")]])); let xa = try XCTUnwrap(try a.prepare())
        try b.begin(epoch: 1); try b.write(batch([[.int(2), .string("b")]])); let xb = try XCTUnwrap(try b.prepare())
        try b.begin(epoch: 2); try b.write(batch([[.int(3), .string("b")]])); let xb2 = try XCTUnwrap(try b.prepare())
        try c.begin(epoch: 1); try c.write(batch([[.int(4), .string("c")]])); let xc = try XCTUnwrap(try c.prepare())
        a.close(); b.close(); c.close()
        XCTAssertTrue(xb.contains("|~"), "long names are hashed: \(xb)")

        // The job now has a sink node called "new": recovery by job alone finds both old nodes' leftovers.
        var asked: [PreparedTransaction] = []
        let r = try s.recover(job: job, node: nil) { tx in asked.append(tx); return tx.epoch == 1 }
        XCTAssertEqual(Set(asked.map(\.id)), [xa, xb, xb2])
        XCTAssertEqual(Set(r.committed.map(\.id)), [xa, xb])
        XCTAssertEqual(r.rolledBack.map(\.id), [xb2])
        XCTAssertEqual(asked.first { $0.id == xa }?.scope, SinkTransactionScope(job: job, run: "r1", node: "old", subtask: 0))
        XCTAssertEqual(asked.first { $0.id == xb }?.scope.node, MySQLXid.keys(job: job, node: longNode).nodeKey)
        XCTAssertEqual(try committed("SELECT id FROM t ORDER BY id").map { $0[0] }, ["1", "2"])
        // Another job's transaction is left alone.
        XCTAssertEqual(try MySQLSinkConnector.preparedXids(on: admin).filter { $0.contains("|\(other)|") }, [xc])
        let o = try s.recover(job: other, node: "new") { _ in true }
        XCTAssertEqual(o.committed.count + o.rolledBack.count, 0, "a named node matches only its own")
        XCTAssertEqual(try s.recover(job: other, node: nil) { _ in false }.rolledBack.map(\.id), [xc])
    }

    /// A prepared transaction left by an older version (job and node hashed together) is still recovered by name.
    func testRecoverOlderJointHashTransaction() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
        let longJob = job + " with a name too long for the id"
        used.append(longJob)
        let xid = "weir|\(MySQLXid.jointHashKey(job: longJob, node: "out"))|r0|~|0|5"
        let c = try MySQLConnection(url: try url())
        try c.execute("XA START '\(xid)'")
        try c.execute("INSERT INTO t VALUES (1)")
        try c.execute("XA END '\(xid)'")
        try c.execute("XA PREPARE '\(xid)'")
        c.close()
        let s = try sink("t")
        XCTAssertEqual(try s.recover(job: longJob, node: nil) { _ in true }.committed.count, 0)
        let r = try s.recover(job: longJob, node: "out") { _ in true }
        XCTAssertEqual(r.committed.map(\.id), [xid])
        XCTAssertEqual(r.committed.first?.scope.node, "out")
        XCTAssertEqual(try committed("SELECT id FROM t"), [["1"]])
    }

    // MARK: connector surface, timeouts

    func testRowKeyAndOldEntryPoints() throws {
        XCTAssertEqual(try sink("u", mode: .upsert, key: ["day", "user"]).rowKey, ["day", "user"])
        XCTAssertEqual(try sink("t").rowKey, [])
        let viaProtocol: any SinkConnector = try sink("u", mode: .upsert, key: ["id"])
        XCTAssertEqual(viaProtocol.rowKey, ["id"])
    }

    func testReadTimeoutEndsAStalledStatement() throws {
        XCTAssertGreaterThan(MySQLConnection.defaultReadTimeoutSeconds, UInt32(MySQLConnection.defaultLockWaitSeconds))
        XCTAssertGreaterThan(MySQLConnection.defaultWriteTimeoutSeconds, UInt32(MySQLConnection.defaultLockWaitSeconds))
        let quick = try MySQLConnection(url: try url(), readTimeoutSeconds: 1)
        defer { quick.close() }
        let start = Date()
        XCTAssertThrowsError(try quick.execute("DO SLEEP(4)"))
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertTrue(quick.lastErrorIsConnectionLoss, "error \(quick.lastErrorNumber)")
        XCTAssertGreaterThan(elapsed, 0.8)
        XCTAssertLessThan(elapsed, 3.5, "the read timeout, not the statement, ended the wait")
        // The default rides out a statement that takes a while.
        let normal = try MySQLConnection(url: try url())
        defer { normal.close() }
        XCTAssertEqual(normal.readTimeoutSeconds, MySQLConnection.defaultReadTimeoutSeconds)
        try normal.execute("DO SLEEP(2)")
    }
}

/// The value checks on their own (no server).
final class ColumnRuleTests: XCTestCase {
    func info(_ type: String, _ columnType: String, nullable: Bool = true, chars: Int? = nil, octets: Int? = nil,
              precision: Int? = nil, scale: Int? = nil, charset: String? = nil, fractional: Int = 0) -> ColumnRule {
        var c = MySQLSinkConnector.ColumnInfo(name: "c", dataType: type, nullable: nullable, hasDefault: false,
                                              autoIncrement: false, generated: false, fractionalDigits: fractional)
        c.columnType = columnType; c.characterMaximumLength = chars; c.characterOctetLength = octets
        c.numericPrecision = precision; c.numericScale = scale; c.charset = charset
        return ColumnRule(c, timestampMaxSeconds: 2_147_483_647)
    }

    func testNumbersInStrings() {
        let i = info("int", "int(11)")
        for ok in ["7", " 17 ", "+5", "-5", ".5", "1.", "1e3", "\t5\n", "2147483647", "-2147483648", "2147483647.4"] {
            XCTAssertNil(i.check(.string(ok)), ok)
        }
        for (bad, p) in [("", ValueProblem.notANumber), ("  ", .notANumber), ("-", .notANumber), ("0x10", .notANumber),
                         ("1e", .notANumber), ("12abc", .notANumber), ("1,5", .notANumber), (" \u{301}5", .notANumber),
                         ("+-5", .notANumber), ("2147483648", .outOfRange), ("2147483647.5", .outOfRange),
                         ("-2147483648.5", .outOfRange), ("1e400", .outOfRange)] {
            XCTAssertEqual(i.check(.string(bad)), p, bad)
        }
        let u = info("bigint", "bigint(20) unsigned")
        XCTAssertNil(u.check(.string("18446744073709551615")))
        XCTAssertEqual(u.check(.string("18446744073709551616")), .outOfRange)
        XCTAssertEqual(u.check(.string("-1")), .outOfRange)
        XCTAssertEqual(info("bigint", "bigint(20)").check(.string("9223372036854775808")), .outOfRange)
        let d = info("decimal", "decimal(5,2)", precision: 5, scale: 2)
        XCTAssertNil(d.check(.string("999.994")))
        XCTAssertEqual(d.check(.string("999.996")), .outOfRange)
        XCTAssertEqual(d.check(.string("abc")), .notANumber)
    }

    func testNullsAndDefaults() {
        XCTAssertEqual(info("int", "int(11)", nullable: false).check(.null), .null)
        XCTAssertEqual(info("int", "int(11)", nullable: false).check(.double(.nan)), .nonFinite)
        XCTAssertNil(info("int", "int(11)").check(.double(.nan)), "NULL into a nullable column")
        XCTAssertNil(info("timestamp", "timestamp", nullable: false).check(.null), "NULL into TIMESTAMP NOT NULL means now")
        var auto = MySQLSinkConnector.ColumnInfo(name: "id", dataType: "bigint", nullable: false, hasDefault: false,
                                                 autoIncrement: true, generated: false, fractionalDigits: 0)
        auto.columnType = "bigint(20)"
        XCTAssertNil(ColumnRule(auto, timestampMaxSeconds: 0).check(.null), "NULL into AUTO_INCREMENT means next")
    }

    func testTextLengthAndCharsets() {
        let v = info("varchar", "varchar(3)", chars: 3, octets: 12, charset: "utf8mb4")
        XCTAssertNil(v.check(.string("日本語")))
        XCTAssertNil(v.check(.string("abc   ")))
        XCTAssertEqual(v.check(.string("日本語x")), .tooLong(4))
        XCTAssertEqual(v.check(.int(1000)), .tooLong(4))
        XCTAssertEqual(v.check(.int(-10)), nil)
        XCTAssertEqual(v.check(.double(0.25)), .tooLong(4))
        let t = info("tinytext", "tinytext", chars: 63, octets: 255, charset: "utf8mb4")
        XCTAssertNil(t.check(.string(String(repeating: "é", count: 127))))
        XCTAssertEqual(t.check(.string(String(repeating: "é", count: 128))), .tooLong(256))
        let m3 = info("varchar", "varchar(9)", chars: 9, octets: 27, charset: "utf8mb3")
        XCTAssertNil(m3.check(.string("héllo €")))
        XCTAssertEqual(m3.check(.string("a😀")), .charset(0x1F600))
        let l1 = info("varchar", "varchar(9)", chars: 9, octets: 9, charset: "latin1")
        XCTAssertNil(l1.check(.string("café €Ÿ")))
        XCTAssertEqual(l1.check(.string("Ā")), .charset(0x100))
        XCTAssertEqual(l1.check(.string("\u{80}")), .charset(0x80))
        let a = info("char", "char(4)", chars: 4, octets: 4, charset: "ascii")
        XCTAssertEqual(a.check(.string("é")), .charset(0xE9))
        let b = info("varbinary", "varbinary(2)", chars: 2, octets: 2)
        XCTAssertEqual(b.check(.string("ab ")), .tooLong(3), "binary strings keep trailing spaces")
    }

    func testTemporalRanges() {
        let dt = info("datetime", "datetime")
        XCTAssertNil(dt.check(.int(-62_167_219_200_000)))
        XCTAssertEqual(dt.check(.int(-62_167_219_200_001)), .temporalRange)
        XCTAssertNil(dt.check(.int(253_402_300_799_999)))
        XCTAssertEqual(dt.check(.int(253_402_300_800_000)), .temporalRange)
        XCTAssertEqual(dt.check(.double(1e300)), .temporalRange)
        let ts = info("timestamp", "timestamp")
        XCTAssertEqual(ts.check(.int(999)), .temporalRange)
        XCTAssertNil(ts.check(.int(1000)))
        XCTAssertNil(ts.check(.int(2_147_483_647_999)))
        XCTAssertEqual(ts.check(.int(2_147_483_648_000)), .temporalRange)
        XCTAssertNil(info("timestamp", "timestamp(3)", fractional: 3).check(.int(1)))
        XCTAssertEqual(info("timestamp", "timestamp(1)", fractional: 1).check(.int(99)), .temporalRange)
        XCTAssertEqual(MySQLSinkConnector.timestampMaxSeconds(serverVersion: "10.11.19-MariaDB-0+deb12u1"), 2_147_483_647)
        XCTAssertEqual(MySQLSinkConnector.timestampMaxSeconds(serverVersion: "11.8.2-MariaDB"), 4_294_967_295)
        XCTAssertEqual(MySQLSinkConnector.timestampMaxSeconds(serverVersion: "8.0.36"), 2_147_483_647)
    }

    func testServerMessagesLoseTheirRowNumber() {
        XCTAssertEqual(RowIsolation.withoutRowNumber("Data too long for column 'v' at row 17"), "Data too long for column 'v'")
        XCTAssertEqual(RowIsolation.withoutRowNumber("Duplicate entry '1' for key 'PRIMARY'"), "Duplicate entry '1' for key 'PRIMARY'")
        XCTAssertEqual(RowIsolation.withoutRowNumber("value 'x at row y'"), "value 'x at row y'")
        XCTAssertTrue(RowIsolation.isDataError(4025) && RowIsolation.isDataError(1048) && RowIsolation.isDataError(1062))
        XCTAssertFalse(RowIsolation.isDataError(1205) || RowIsolation.isDataError(1213) || RowIsolation.isDataError(2013)
                       || RowIsolation.isDataError(1146))
    }
}

/// Cost of pre-validation on the writer's hot path (no server).
final class MySQLValidationBenchmark: XCTestCase {
    func testValidationOverhead() {
        let rows = 200_000
        var rb = RecordBatch(arity: 5, capacity: rows)
        for i in 0..<rows {
            let id = Int64(i)
            rb.append(row: [.int(id), .string("user-\(id % 977)"), .double(Double(id) * 0.25),
                            .int(1_700_000_000_000 + id), .bool(id % 2 == 0)])
        }
        func info(_ name: String, _ type: String, _ columnType: String, chars: Int? = nil, charset: String? = nil) -> MySQLSinkConnector.ColumnInfo {
            var c = MySQLSinkConnector.ColumnInfo(name: name, dataType: type, nullable: name != "id", hasDefault: false,
                                                  autoIncrement: false, generated: false, fractionalDigits: type == "datetime" ? 3 : 0)
            c.columnType = columnType; c.characterMaximumLength = chars; c.characterOctetLength = chars.map { $0 * 4 }
            c.charset = charset
            return c
        }
        let infos = [info("id", "bigint", "bigint(20)"), info("name", "varchar", "varchar(40)", chars: 40, charset: "utf8mb4"),
                     info("v", "double", "double"), info("ts", "datetime", "datetime(3)"), info("ok", "tinyint", "tinyint(1)")]
        var plan = MySQLSinkConnector.Plan(table: "big", columns: infos.map(\.name), encodings: infos.map(ColumnEncoding.init),
                                           keyFields: [], mode: .append)
        func run(_ p: MySQLSinkConnector.Plan) -> (Double, Int, Int) {
            let b = InsertStatementBuilder(plan: p, batchSize: 4000, maxAllowedPacket: 64 << 20, backslashEscapes: true)
            var bytes = 0, statementRows = 0, rejected = 0
            let start = Date()
            try? b.append(rb, emit: { s, slices in bytes += s.count; statementRows += slices.reduce(0) { $0 + $1.rows.count } },
                          reject: { _, _, _, _ in rejected += 1 })
            try? b.finish(emit: { s, slices in bytes += s.count; statementRows += slices.reduce(0) { $0 + $1.rows.count } })
            return (Date().timeIntervalSince(start), statementRows, rejected)
        }
        let (plain, plainRows, _) = run(plan)
        plan.rules = infos.map { ColumnRule($0, timestampMaxSeconds: 2_147_483_647) }
        let (checked, checkedRows, rejected) = run(plan)
        print("mysql sink rendering of \(rows) rows: \(String(format: "%.3f", plain)) s unchecked, \(String(format: "%.3f", checked)) s with pre-validation")
        XCTAssertEqual(plainRows, rows)
        XCTAssertEqual(checkedRows, rows)
        XCTAssertEqual(rejected, 0)
        XCTAssertLessThan(checked, plain * 2 + 0.05, "pre-validation must stay cheap next to rendering")
    }
}
