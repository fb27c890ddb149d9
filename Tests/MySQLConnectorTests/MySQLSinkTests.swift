import Foundation
import WeirCore
import XCTest
@testable import WeirMySQL

/// The sink against the real MariaDB (see MySQLTestCase).
final class MySQLSinkTests: MySQLTestCase {
    let idName = Schema([.init("id", .int), .init("name", .string)])

    func sink(_ table: String, mode: MySQLSinkConnector.Mode = .append, key: [String] = [],
              batchSize: Int = 4000) throws -> MySQLSinkConnector {
        MySQLSinkConnector(url: try url(), table: table, mode: mode, key: key, batchSize: batchSize)
    }

    // MARK: connection basics

    func testConnectionSessionAndQuery() throws {
        let c = try MySQLConnection(url: try url())
        defer { c.close() }
        let r = try c.query("SELECT @@session.time_zone AS tz, @@character_set_client AS cs, NULL AS n")
        XCTAssertEqual(r.columns, ["tz", "cs", "n"])
        XCTAssertEqual(r.rows, [["+00:00", "utf8mb4", nil]])
        XCTAssertEqual(c.escape("a'b\\c\n"), "a\\'b\\\\c\\n")
        XCTAssertEqual(MySQLConnection.quoteIdentifier("we`ird"), "`we``ird`")
        XCTAssertTrue(c.serverVersion.contains("MariaDB"), c.serverVersion)
        let empty = try c.query("DO 1")
        XCTAssertEqual(empty.columns, [])
    }

    func testSocketConnection() throws {
        let sock = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".run/mariadb.sock").path
        guard FileManager.default.fileExists(atPath: sock), Self.port == 13306 else { return }
        let c = try MySQLConnection(url: try MySQLURL("mysql://root@localhost/\(database)?socket=\(sock)"))
        defer { c.close() }
        XCTAssertEqual(try c.query("SELECT DATABASE()").rows, [[database]])
    }

    // MARK: append

    func testAppendSeveralBatchesThenFlush() throws {
        try admin.execute("CREATE TABLE t (id BIGINT, name VARCHAR(50), note VARCHAR(10) DEFAULT 'dflt')")
        let s = try sink("t", batchSize: 3)
        try s.check(schema: idName)
        let w = try s.openWriter(subtask: 0, schema: idName)
        defer { w.close() }
        var expected: [[String?]] = []
        var id = 0
        for size in [4, 1, 0, 7] {
            var rows: [[Value]] = []
            for _ in 0..<size {
                id += 1
                rows.append([.int(Int64(id)), id % 5 == 0 ? .null : .string("n\(id)")])
                expected.append([String(id), id % 5 == 0 ? nil : "n\(id)", "dflt"])
            }
            try w.write(size == 0 ? RecordBatch(arity: 2) : batch(rows))
        }
        // Statements of 3 rows were sent but nothing is committed yet.
        XCTAssertEqual(try rows("SELECT COUNT(*) FROM t"), [["0"]])
        try w.flush()
        XCTAssertEqual(try rows("SELECT id, name, note FROM t ORDER BY id"), expected)
        // A flush with nothing new is harmless, and more rows append.
        try w.flush()
        try w.write(batch([[.int(100), .string("last")]]))
        try w.flush()
        XCTAssertEqual(try rows("SELECT COUNT(*), MAX(id) FROM t"), [["13", "100"]])
    }

    func testTwoSubtasksWriteIndependently() throws {
        try admin.execute("CREATE TABLE t (id BIGINT, name TEXT)")
        let s = try sink("t")
        let w0 = try s.openWriter(subtask: 0, schema: idName)
        let w1 = try s.openWriter(subtask: 1, schema: idName)
        try w0.write(batch([[.int(1), .string("a")]]))
        try w1.write(batch([[.int(2), .string("b")]]))
        try w0.flush()
        w1.close() // never flushed: rolled back
        w0.close()
        XCTAssertEqual(try rows("SELECT id, name FROM t"), [["1", "a"]])
    }

    // MARK: upsert

    func testUpsertOverwritesByKeyAcrossAndWithinStatements() throws {
        try admin.execute("CREATE TABLE u (id BIGINT PRIMARY KEY, name VARCHAR(50), cnt INT)")
        let schema = Schema([.init("id", .int), .init("name", .string), .init("cnt", .int)])
        let s = try sink("u", mode: .upsert, key: ["id"], batchSize: 100)
        try s.check(schema: schema)
        let w = try s.openWriter(subtask: 0, schema: schema)
        defer { w.close() }
        try w.write(batch([[.int(1), .string("a"), .int(1)], [.int(2), .string("b"), .int(1)]]))
        try w.flush()
        // id 2 overwritten from an earlier committed statement; id 3 twice inside one statement.
        try w.write(batch([[.int(2), .string("B"), .int(2)], [.int(3), .string("c"), .int(1)],
                           [.int(3), .string("C"), .int(2)]]))
        try w.write(batch([[.int(1), .null, .int(9)]]))
        try w.flush()
        XCTAssertEqual(try rows("SELECT id, name, cnt FROM u ORDER BY id"),
                       [["1", nil, "9"], ["2", "B", "2"], ["3", "C", "2"]])
    }

    func testUpsertCompositeKeyOverUniqueIndex() throws {
        try admin.execute("CREATE TABLE agg (id INT AUTO_INCREMENT PRIMARY KEY, day DATE NOT NULL, `user` VARCHAR(20) NOT NULL, total DOUBLE, UNIQUE KEY uk (day, `user`))")
        let schema = Schema([.init("day", .int), .init("user", .string), .init("total", .double)])
        let s = try sink("agg", mode: .upsert, key: ["day", "user"], batchSize: 2)
        try s.check(schema: schema)
        let w = try s.openWriter(subtask: 0, schema: schema)
        defer { w.close() }
        let d1: Int64 = 1_700_000_000_123, d2 = d1 + 86_400_000
        try w.write(batch([[.int(d1), .string("ann"), .double(1.5)], [.int(d1), .string("bob"), .double(2)],
                           [.int(d2), .string("ann"), .double(3)], [.int(d1 + 5), .string("ann"), .double(4.25)]]))
        try w.flush()
        XCTAssertEqual(try rows("SELECT day, `user`, total FROM agg ORDER BY day, `user`"),
                       [["2023-11-14", "ann", "4.25"], ["2023-11-14", "bob", "2"], ["2023-11-15", "ann", "3"]])
    }

    func testUpsertWithoutUniqueKeyIsRejected() throws {
        try admin.execute("CREATE TABLE nk (id BIGINT, name TEXT, KEY (id))")
        let e = assertWeirError(.columnMismatch) { try sink("nk", mode: .upsert, key: ["id"]).check(schema: idName) }
        XCTAssertTrue(e?.subject.contains("`nk`") ?? false, "\(String(describing: e))")
        XCTAssertTrue(e?.suggestion?.contains("ADD PRIMARY KEY (`id`)") ?? false, "\(String(describing: e))")

        let k = assertWeirError(.invalidSpec) { try sink("nk", mode: .upsert, key: ["idd"]).check(schema: idName) }
        XCTAssertTrue(k?.description.contains("did you mean 'id'") ?? false, "\(String(describing: k))")
    }

    // MARK: value conversion

    func testEpochMillisIntoDatetimeBigintDateTimestamp() throws {
        try admin.execute("""
            CREATE TABLE ev (k INT, ts DATETIME(3), raw BIGINT, ts0 DATETIME, d DATE, tsz TIMESTAMP(3) NULL)
            """)
        let schema = Schema([.init("k", .int), .init("ts", .int), .init("raw", .int), .init("ts0", .int),
                             .init("d", .int), .init("tsz", .int)])
        let s = try sink("ev")
        try s.check(schema: schema)
        let w = try s.openWriter(subtask: 0, schema: schema)
        defer { w.close() }
        let instants: [Int64] = [0, 1_700_000_000_123, -1, 1_709_210_096_789, 951_782_400_000, 253_402_300_799_999]
        try w.write(batch(instants.enumerated().map { i, ms in
            [.int(Int64(i)), .int(ms), .int(ms), .int(ms), .int(ms),
             ms > 0 && ms < 2_000_000_000_000 ? .int(ms) : .null]
        }))
        try w.flush()
        XCTAssertEqual(try rows("SELECT ts, raw, ts0, d, tsz FROM ev ORDER BY k"), [
            ["1970-01-01 00:00:00.000", "0", "1970-01-01 00:00:00", "1970-01-01", nil],
            ["2023-11-14 22:13:20.123", "1700000000123", "2023-11-14 22:13:20", "2023-11-14", "2023-11-14 22:13:20.123"],
            ["1969-12-31 23:59:59.999", "-1", "1969-12-31 23:59:59", "1969-12-31", nil],
            ["2024-02-29 12:34:56.789", "1709210096789", "2024-02-29 12:34:56", "2024-02-29", "2024-02-29 12:34:56.789"],
            ["2000-02-29 00:00:00.000", "951782400000", "2000-02-29 00:00:00", "2000-02-29", "2000-02-29 00:00:00.000"],
            ["9999-12-31 23:59:59.999", "253402300799999", "9999-12-31 23:59:59", "9999-12-31", nil],
        ])
        // TIMESTAMP really holds the UTC instant.
        XCTAssertEqual(try rows("SELECT UNIX_TIMESTAMP(tsz) FROM ev WHERE k = 1"), [["1700000000.123"]])
    }

    func testNumbersBoolsAndStringsIntoTypedColumns() throws {
        try admin.execute("""
            CREATE TABLE num (k INT, i BIGINT, dbl DOUBLE, dec2 DECIMAL(12,2), flag BOOLEAN, s VARCHAR(20),
                              e ENUM('x','y','1'), fromstr INT)
            """)
        let schema = Schema([.init("k", .int), .init("i", .any), .init("dbl", .any), .init("dec2", .double),
                             .init("flag", .bool), .init("s", .any), .init("e", .any), .init("fromstr", .string)])
        let s = try sink("num")
        let w = try s.openWriter(subtask: 0, schema: schema)
        defer { w.close() }
        try w.write(batch([
            [.int(1), .double(42.0), .double(0.1 + 0.2), .double(1234.5), .bool(true), .int(7), .int(1), .string("42")],
            [.int(2), .int(-9_223_372_036_854_775_808), .double(-1.5e-300), .int(3), .bool(false), .double(2.5), .string("y"), .string(" 17")],
            [.int(3), .null, .double(.infinity), .null, .null, .bool(true), .null, .null],
        ]))
        try w.flush()
        XCTAssertEqual(try rows("SELECT i, dbl, dec2, flag, s, e, fromstr FROM num ORDER BY k"), [
            ["42", "0.30000000000000004", "1234.50", "1", "7", "1", "42"],
            ["-9223372036854775808", "-1.5e-300", "3.00", "0", "2.5", "y", "17"],
            [nil, nil, nil, nil, "1", nil, nil],
        ])
    }

    func testStringsRoundTrip() throws {
        try admin.execute("CREATE TABLE s (id INT PRIMARY KEY, v TEXT, b VARBINARY(100))")
        let samples = ["plain", "it's", "say \"hi\"", #"back\slash\\"#, "tab\tnew\nline\rcr", "nul\0byte",
                       "ctrl-z \u{1A}", "héllo wörld", "日本語テキスト", "emoji 🌍🚀👩‍👩‍👧", "'; DROP TABLE s; --",
                       "\\'", "", String(repeating: "ab'\\", count: 500)]
        let schema = Schema([.init("id", .int), .init("v", .string), .init("b", .string)])
        let w = try sink("s", batchSize: 5).openWriter(subtask: 0, schema: schema)
        defer { w.close() }
        try w.write(batch(samples.enumerated().map { [.int(Int64($0)), .string($1), .string(String($1.prefix(20)))] }))
        try w.flush()
        let got = try rows("SELECT v, b FROM s ORDER BY id")
        XCTAssertEqual(got.count, samples.count)
        for (i, s) in samples.enumerated() {
            XCTAssertEqual(got[i][0], s, "sample \(i)")
            XCTAssertEqual(got[i][1], String(s.prefix(20)), "sample \(i) (binary)")
        }
    }

    /// A writer whose session has `setup` applied before it reads its settings
    /// (session-level, so other users of the shared server are unaffected).
    func writer(_ s: MySQLSinkConnector, schema: Schema, setup: String) throws -> any SinkWriter {
        let conn = try MySQLConnection(url: s.url)
        try conn.execute(setup)
        let plan = try s.plan(conn: conn, schema: schema)
        return try MySQLSinkWriter(connection: conn, plan: plan, batchSize: s.batchSize, tableSubject: s.tableSubject)
    }

    func testNoBackslashEscapesMode() throws {
        try admin.execute("CREATE TABLE s (id INT, v TEXT)")
        let schema = Schema([.init("id", .int), .init("v", .string)])
        let w = try writer(try sink("s"), schema: schema,
                           setup: "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES')")
        defer { w.close() }
        let samples = [#"a\'b"#, "it's", #"\n\0"#, "x\ny", "''"]
        try w.write(batch(samples.enumerated().map { [.int(Int64($0)), .string($1)] }))
        try w.flush()
        XCTAssertEqual(try rows("SELECT v FROM s ORDER BY id").map { $0[0] }, samples)
    }

    // MARK: transactions

    func testCloseWithoutFlushRollsBack() throws {
        try admin.execute("CREATE TABLE t (id BIGINT, name TEXT)")
        let s = try sink("t", batchSize: 2)
        let w = try s.openWriter(subtask: 0, schema: idName)
        try w.write(batch([[.int(1), .string("a")], [.int(2), .string("b")]]))
        try w.flush()
        // 5 more rows: two statements executed, one row still buffered; none committed.
        try w.write(batch((3...7).map { [.int(Int64($0)), .string("x")] }))
        w.close()
        w.close() // idempotent
        XCTAssertEqual(try rows("SELECT id FROM t ORDER BY id"), [["1"], ["2"]])
        XCTAssertThrowsError(try w.write(batch([[.int(9), .string("z")]])))
    }

    func testFailedStatementRollsBackAndPoisonsWriter() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(5))")
        let w = try sink("t", batchSize: 2).openWriter(subtask: 0, schema: idName)
        defer { w.close() }
        try w.write(batch([[.int(1), .string("a")], [.int(2), .string("b")]])) // executed, uncommitted
        // Without a context, a refused row fails the writer (onError: fail), naming the column.
        let e = assertWeirError(.badRecord) {
            try w.write(batch([[.int(3), .string("c")], [.int(4), .string("too long for it")]]))
        }
        XCTAssertEqual(e?.subject, "column 'name' of table `\(database)`.`t`")
        XCTAssertTrue(e?.message.contains("\"id\":4") ?? false, "\(String(describing: e))")
        XCTAssertTrue(e?.message.contains("1406") ?? false, "\(String(describing: e))")
        XCTAssertThrowsError(try w.flush())
        XCTAssertEqual(try rows("SELECT COUNT(*) FROM t"), [["0"]])
    }

    func testLockWaitTimeout() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT)")
        try admin.execute("INSERT INTO t VALUES (1, 'held')")
        let other = try MySQLConnection(url: try url())
        defer { other.close() }
        try other.setAutocommit(false)
        try other.execute("SELECT * FROM t WHERE id = 1 FOR UPDATE")
        let w = try writer(try sink("t", mode: .upsert, key: ["id"]), schema: idName,
                           setup: "SET SESSION innodb_lock_wait_timeout = 1")
        defer { w.close() }
        try w.write(batch([[.int(1), .string("mine")]]))
        let e = assertWeirError(.lockWaitTimeout) { try w.flush() }
        XCTAssertTrue(e?.subject.contains("`t`") ?? false, "\(String(describing: e))")
        XCTAssertNotNil(e?.suggestion)
        try other.rollback()
        XCTAssertEqual(try rows("SELECT name FROM t"), [["held"]])
    }

    // MARK: check() errors

    func testMissingTable() throws {
        let e = assertWeirError(.tableMissing) {
            try sink("nope", mode: .upsert, key: ["id"]).check(schema: idName)
        }
        XCTAssertEqual(e?.subject, "table `\(database)`.`nope`")
        XCTAssertTrue(e?.suggestion?.contains("CREATE TABLE `nope` (`id` BIGINT NOT NULL, `name` TEXT, PRIMARY KEY (`id`))") ?? false,
                      "\(String(describing: e))")
        // The suggested DDL really works.
        try admin.execute(try sink("nope", mode: .upsert, key: ["id"]).suggestedDDL(schema: idName))
        try sink("nope", mode: .upsert, key: ["id"]).check(schema: idName)
    }

    func testSchemaFieldNotInTable() throws {
        try admin.execute("CREATE TABLE t (id BIGINT, full_name TEXT, created DATETIME)")
        let schema = Schema([.init("id", .int), .init("ful_name", .string)])
        let e = assertWeirError(.columnMismatch) { try sink("t").check(schema: schema) }
        XCTAssertEqual(e?.subject, "column 'ful_name' of table `\(database)`.`t`")
        XCTAssertTrue(e?.message.contains("id, full_name, created") ?? false, "\(String(describing: e))")
        XCTAssertTrue(e?.message.contains("did you mean 'full_name'") ?? false, "\(String(describing: e))")
        XCTAssertThrowsError(try sink("t").openWriter(subtask: 0, schema: schema))
        // Case-insensitive match like MySQL's own column names.
        try sink("t").check(schema: Schema([.init("ID", .int), .init("Full_Name", .string)]))
    }

    func testRequiredColumnWithoutField() throws {
        try admin.execute("CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, name TEXT, region VARCHAR(5) NOT NULL)")
        let e = assertWeirError(.columnMismatch) { try sink("t").check(schema: Schema([.init("name", .string)])) }
        XCTAssertEqual(e?.subject, "column 'region' of table `\(database)`.`t`")
    }

    func testUnknownDatabase() throws {
        let e = assertWeirError(.mysql) { _ = try MySQLConnection(url: try url(db: "weir_no_such_db")) }
        XCTAssertTrue(e?.subject.contains("weir_no_such_db") ?? false, "\(String(describing: e))")
    }

    func testAccessDenied() throws {
        let user = "weir_t_user"
        let good = "Correct-Horse-1", wrong = "S3cret!Wrong#Pw"
        for host in ["%", "localhost", "127.0.0.1"] {
            try admin.execute("DROP USER IF EXISTS '\(user)'@'\(host)'")
            try admin.execute("CREATE USER '\(user)'@'\(host)' IDENTIFIED BY '\(good)'")
            try admin.execute("GRANT ALL ON `\(database)`.* TO '\(user)'@'\(host)'")
        }
        defer { for host in ["%", "localhost", "127.0.0.1"] { try? admin.execute("DROP USER IF EXISTS '\(user)'@'\(host)'") } }
        // The right password works...
        try MySQLConnection(url: try url(user: user, password: good)).close()
        // ...a wrong one is access denied, and no password appears in the error.
        for (u, pw) in [(user, wrong), ("weir_nobody", wrong)] {
            let e = assertWeirError(.accessDenied) { _ = try MySQLConnection(url: try url(user: u, password: pw)) }
            XCTAssertEqual(e?.subject, "MySQL user '\(u)'@127.0.0.1")
            XCTAssertNotNil(e?.suggestion)
            let text = String(describing: e)
            XCTAssertFalse(text.contains(wrong) || text.contains(good) || text.contains("S3cret"), text)
        }
        // Through the sink as well.
        let s = MySQLSinkConnector(url: try url(user: user, password: wrong), table: "t")
        let e = assertWeirError(.accessDenied) { try s.check(schema: idName) }
        XCTAssertFalse(String(describing: e).contains(wrong))
        XCTAssertFalse(String(describing: s).contains(wrong), String(describing: s))
    }

    func testUnreachablePort() throws {
        // Find a loopback port nobody listens on.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        close(fd)

        let start = Date()
        let e = assertWeirError(.mysqlUnreachable) { _ = try MySQLConnection(url: try url(port: port)) }
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertEqual(e?.subject, "MySQL server 127.0.0.1:\(port)")
        XCTAssertTrue(e?.suggestion?.contains("running") ?? false)
        XCTAssertGreaterThan(elapsed, 0.5, "a refused connection is retried")
        XCTAssertLessThan(elapsed, 4.5, "retries stay within ~3 s")
        _ = assertWeirError(.mysqlUnreachable) { try MySQLSinkConnector(url: try url(port: port), table: "t").check(schema: idName) }
    }

    // MARK: throughput

    func testThroughput() throws {
        let total = 200_000
        let (schema, batches) = try bigTable(total: total, per: 10_000)
        let w = try sink("big").openWriter(subtask: 0, schema: schema)
        defer { w.close() }
        let start = Date()
        for rb in batches { try w.write(rb) }
        try w.flush()
        let secs = Date().timeIntervalSince(start)
        print("mysql sink throughput: \(total) rows in \(String(format: "%.2f", secs)) s = \(Int(Double(total) / secs)) rows/s")
        XCTAssertEqual(try rows("SELECT COUNT(*), MAX(id), SUM(ok) FROM big"), [["200000", "199999", "100000"]])
    }
}
