import Foundation
import WeirCore
import XCTest
@testable import WeirMySQL

/// A sink table altered while the writers write to it (TableWriterPlan): a
/// change within a column's kind is taken at the next epoch, a change of kind
/// or a dropped column stops the writer with sink_schema_changed.
final class MySQLTableDriftTests: MySQLSinkTestCase {
    let schema = Schema([.init("id", .int), .init("name", .string)])

    func rows(_ ids: ClosedRange<Int>, nameLength: Int) -> RecordBatch {
        batch(ids.map { [.int(Int64($0)), .string(String(repeating: "x", count: nameLength))] })
    }

    func testAWidenedColumnIsTakenAtTheNextEpochWithoutRejectingRows() throws {
        try admin.execute("CREATE TABLE w (id INT PRIMARY KEY, name VARCHAR(5))")
        let log = ReportLog()
        let w = try sink("w").openXAWriter(scope: scope(), schema: schema, context: context(.skip, log: log))
        defer { w.close() }
        try w.begin(epoch: 1)
        try w.write(rows(1...2, nameLength: 8))   // too long for VARCHAR(5): refused
        try w.write(rows(3...4, nameLength: 3))
        _ = try w.prepare()
        try w.commit(epoch: 1)
        XCTAssertEqual(log.ids, [1, 2])

        try admin.execute("ALTER TABLE w MODIFY name VARCHAR(20)")
        try w.begin(epoch: 2)
        try w.write(rows(5...6, nameLength: 8))
        _ = try w.prepare()
        try w.commit(epoch: 2)
        XCTAssertEqual(log.ids, [1, 2], "the wider column takes them")
        XCTAssertEqual(try committed("SELECT id FROM w ORDER BY id").map { $0[0]! }, ["3", "4", "5", "6"])

        // Narrowed again, and made NOT NULL: what it now refuses goes through the policy.
        try admin.execute("ALTER TABLE w MODIFY name VARCHAR(8) NOT NULL")
        try w.begin(epoch: 3)
        try w.write(batch([[.int(7), .string("abcdefghij")], [.int(8), .null], [.int(9), .string("ok")]]))
        _ = try w.prepare()
        try w.commit(epoch: 3)
        XCTAssertEqual(log.ids, [1, 2, 7, 8])
        XCTAssertEqual(try committed("SELECT id FROM w ORDER BY id").map { $0[0]! }, ["3", "4", "5", "6", "9"])
    }

    func testAColumnWhoseKindChangesStopsTheWriterNamingIt() throws {
        try admin.execute("CREATE TABLE k (id INT PRIMARY KEY, name VARCHAR(20))")
        let w = try sink("k").openXAWriter(scope: scope(), schema: schema, context: context(.skip))
        defer { w.close() }
        try w.begin(epoch: 1)
        try w.write(rows(1...2, nameLength: 3))
        _ = try w.prepare()
        try w.commit(epoch: 1)
        // An integer column made DECIMAL is a widening: taken.
        try admin.execute("ALTER TABLE k MODIFY id DECIMAL(12,0)")
        try w.begin(epoch: 2)
        try w.write(rows(3...3, nameLength: 3))
        _ = try w.prepare()
        try w.commit(epoch: 2)

        try admin.execute("DELETE FROM k")   // so the ALTER can convert the column
        try admin.execute("ALTER TABLE k MODIFY name DATETIME")
        try w.begin(epoch: 3)
        let e = assertWeirError(.sinkSchemaChanged) { try w.write(self.rows(4...4, nameLength: 3)) }
        XCTAssertTrue(e?.subject.contains("column 'name' of table") ?? false, "\(String(describing: e))")
        XCTAssertTrue(e?.message.contains("from varchar(20) to datetime") ?? false, "\(String(describing: e))")
        XCTAssertEqual(try committed("SELECT COUNT(*) FROM k"), [["0"]], "nothing written after the change")
    }

    func testADroppedColumnStopsThePlainWriterBeforeItsNextRows() throws {
        try admin.execute("CREATE TABLE d (id INT PRIMARY KEY, name VARCHAR(20))")
        let w = try sink("d").openWriter(context: context(.skip), schema: schema)
        defer { w.close() }
        try w.write(rows(1...2, nameLength: 3))
        try w.flush()
        try admin.execute("ALTER TABLE d DROP COLUMN name")
        let e = assertWeirError(.sinkSchemaChanged) { try w.write(self.rows(3...3, nameLength: 3)) }
        XCTAssertTrue(e?.subject.contains("column 'name'") ?? false, "\(String(describing: e))")
        XCTAssertEqual(try committed("SELECT COUNT(*) FROM d"), [["2"]])
    }

    func testLockWaitIsTheSinksBound() throws {
        try admin.execute("CREATE TABLE l (id INT PRIMARY KEY, name VARCHAR(20))")
        var s = try sink("l")
        s.lockWaitSeconds = 1
        let w = try s.openXAWriter(scope: scope(), schema: schema, context: context(.skip))
        defer { w.close() }
        let locker = try MySQLConnection(url: try url())
        defer { locker.close() }
        try locker.execute("LOCK TABLES l WRITE")
        try w.begin(epoch: 1)
        let start = Date()
        let e = assertWeirError(.lockWaitTimeout) { try w.write(self.rows(1...1, nameLength: 3)); _ = try w.prepare() }
        XCTAssertLessThan(Date().timeIntervalSince(start), 20, "waited about lockWait (1 s), not the 50 s default")
        XCTAssertNotNil(e)
        try locker.execute("UNLOCK TABLES")
    }
}
