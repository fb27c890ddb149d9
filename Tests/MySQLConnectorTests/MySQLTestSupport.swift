import Foundation
import WeirCore
import XCTest
@testable import WeirMySQL

/// Shared setup for the tests that run against the real MariaDB started by
/// `scripts/servers.sh start` (127.0.0.1, port WEIR_MYSQL_PORT or 13306, root
/// without password). An unreachable server fails the tests; it never skips them.
class MySQLTestCase: XCTestCase {
    static var port: Int { Int(ProcessInfo.processInfo.environment["WEIR_MYSQL_PORT"] ?? "") ?? 13306 }

    /// The database this test owns (created empty in setUp, dropped in tearDown).
    var database: String { "weir_t_" + String(name.split(separator: " ").last!.filter { $0.isLetter || $0.isNumber }).lowercased().prefix(50) }

    var admin: MySQLConnection!

    func url(user: String = "root", password: String? = nil, db: String? = nil, port: Int? = nil) throws -> MySQLURL {
        let pw = password.map { ":" + $0.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! } ?? ""
        return try MySQLURL("mysql://\(user)\(pw)@127.0.0.1:\(port ?? Self.port)/\(db ?? database)")
    }

    override func setUpWithError() throws {
        try super.setUpWithError()
        let root = try MySQLURL("mysql://root@127.0.0.1:\(Self.port)/mysql")
        do {
            admin = try MySQLConnection(url: root)
        } catch {
            let msg = "MariaDB is not reachable at 127.0.0.1:\(Self.port) (\(error)); run `bash scripts/servers.sh start` first"
            XCTFail(msg)
            throw ServerUnavailable(description: msg) // a failure, never a skip
        }
        try admin.execute("DROP DATABASE IF EXISTS `\(database)`")
        try admin.execute("CREATE DATABASE `\(database)` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        try admin.execute("USE `\(database)`")
    }

    override func tearDownWithError() throws {
        if let admin {
            try? admin.execute("DROP DATABASE IF EXISTS `\(database)`")
            admin.close()
        }
        admin = nil
        try super.tearDownWithError()
    }

    func rows(_ sql: String) throws -> [[String?]] { try admin.query(sql).rows }

    func batch(_ rows: [[Value]]) -> RecordBatch {
        var b = RecordBatch(arity: rows.first?.count ?? 0)
        for r in rows { b.append(row: r) }
        return b
    }

    /// The throughput tests' table `big`: creates it and returns its schema and
    /// `total` rows (ids 0..<total, half of them ok) in batches of `per`.
    func bigTable(total: Int, per: Int) throws -> (Schema, [RecordBatch]) {
        try admin.execute("CREATE TABLE big (id BIGINT, name VARCHAR(40), v DOUBLE, ts DATETIME(3), ok BOOLEAN)")
        let schema = Schema([.init("id", .int), .init("name", .string), .init("v", .double),
                             .init("ts", .int), .init("ok", .bool)])
        var batches: [RecordBatch] = []
        for b in 0..<(total / per) {
            var rb = RecordBatch(arity: 5, capacity: per)
            for i in 0..<per {
                let id = Int64(b * per + i)
                rb.append(row: [.int(id), .string("user-\(id % 977)"), .double(Double(id) * 0.25),
                                .int(1_700_000_000_000 + id), .bool(id % 2 == 0)])
            }
            batches.append(rb)
        }
        return (schema, batches)
    }

    func assertWeirError(_ code: WeirError.Code, file: StaticString = #filePath, line: UInt = #line,
                         _ body: () throws -> Void) -> WeirError? {
        do {
            try body()
            XCTFail("expected a \(code) error, got success", file: file, line: line)
            return nil
        } catch let e as WeirError {
            XCTAssertEqual(e.code, code, "unexpected error: \(e)", file: file, line: line)
            return e
        } catch {
            XCTFail("expected a WeirError \(code), got \(error)", file: file, line: line)
            return nil
        }
    }
}

struct ServerUnavailable: Error, CustomStringConvertible { var description: String }
