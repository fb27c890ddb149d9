import Foundation
import WeirCore
import XCTest
@testable import WeirMySQL

/// The xid encoding (no server needed).
final class MySQLXidTests: XCTestCase {
    func testShortNamesAreVerbatimAndRoundTrip() throws {
        let scope = SinkTransactionScope(job: "user-spend", run: "r42", node: "out", subtask: 3)
        let xid = try MySQLSinkConnector.xid(scope: scope, epoch: 17)
        XCTAssertEqual(xid, "weir|user-spend|r42|out|3|17")
        let p = try XCTUnwrap(MySQLSinkConnector.parseXid(xid))
        XCTAssertEqual([p.jobKey, p.run, p.nodeKey], ["user-spend", "r42", "out"])
        XCTAssertEqual(p.subtask, 3)
        XCTAssertEqual(p.epoch, 17)
        XCTAssertTrue(p.belongs(job: "user-spend", node: "out"))
        XCTAssertFalse(p.belongs(job: "user-spend", node: "out2"))
        XCTAssertFalse(p.belongs(job: "user-spen", node: "out"))
    }

    func testLongOrOddNamesAreHashedAndStayWithin64Bytes() throws {
        let longJob = String(repeating: "very-long-job-name-", count: 10)
        let cases: [(String, String, String)] = [
            (longJob, "out", "r1"),
            ("job|with|pipes", "sink", "r1"),
            ("Übersicht 日本", "sink node", "r1"),
            ("j", String(repeating: "n", count: 200), "0f8fad5b-d9cb-469f-a165-70867728950e"),
            ("orders", "out", "run|with|pipe"),
            ("orders-enrich", "sink", "20261125T105329Z-0001"), // 21 bytes: run hashed
        ]
        for (job, node, run) in cases {
            for (subtask, epoch) in [(0, Int64(0)), (9999, Int64(9_999_999_999_999)), (5, Int64(1))] {
                let scope = SinkTransactionScope(job: job, run: run, node: node, subtask: subtask)
                let xid = try MySQLSinkConnector.xid(scope: scope, epoch: epoch)
                XCTAssertLessThanOrEqual(xid.utf8.count, 64, xid)
                XCTAssertEqual(xid.split(separator: "|", omittingEmptySubsequences: false).count, 6, xid)
                let p = try XCTUnwrap(MySQLSinkConnector.parseXid(xid), xid)
                XCTAssertTrue(p.belongs(job: job, node: node), xid)
                XCTAssertFalse(p.belongs(job: job + "x", node: node), xid)
                XCTAssertFalse(p.belongs(job: job, node: node + "x"), xid)
                XCTAssertEqual(p.run, MySQLXid.runKey(run))
                XCTAssertEqual(p.subtask, subtask)
                XCTAssertEqual(p.epoch, epoch)
                // Stable: the same scope always gives the same id.
                XCTAssertEqual(try MySQLSinkConnector.xid(scope: scope, epoch: epoch), xid)
            }
        }
        // The hash form: job and node each `~` + base-32 digits of their own hash (9 and 7).
        let hashed = try MySQLSinkConnector.xid(scope: .init(job: longJob, run: "r1", node: "out", subtask: 0), epoch: 1)
        let fields = hashed.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(fields[0], "weir")
        XCTAssertTrue(MySQLXid.isShortHash(fields[1], digits: 9), hashed)
        XCTAssertEqual(fields[2], "r1")
        XCTAssertTrue(MySQLXid.isShortHash(fields[3], digits: 7), hashed)
        XCTAssertEqual(Array(fields[4...]), ["0", "1"])
        // The job's key does not depend on the node: any node of the job is found without its name.
        XCTAssertEqual(fields[1], MySQLXid.keys(job: longJob, node: "another-node").jobKey)
        let parsed = try XCTUnwrap(MySQLXid(parsing: hashed))
        XCTAssertTrue(parsed.belongs(job: longJob, node: nil))
        XCTAssertFalse(parsed.belongs(job: longJob + "x", node: nil))
        XCTAssertFalse(parsed.nodeIsVerbatim)
        XCTAssertEqual(MySQLXid.fnv1a64("a".utf8), 0xaf63_dc4c_8601_ec8c) // published FNV-1a 64 test vector
        XCTAssertEqual(MySQLXid.runKey("0f8fad5b-d9cb-469f-a165-70867728950e").count, 17)
        // Job and node are hashed together, so swapping them does not collide.
        XCTAssertNotEqual(MySQLXid.keys(job: longJob, node: "a").jobKey, MySQLXid.keys(job: "a", node: longJob).jobKey)
    }

    func testDistinctScopesGiveDistinctIds() throws {
        var seen = Set<String>()
        for run in ["r1", "r2"] {
            for subtask in 0..<3 {
                for epoch: Int64 in [1, 2, 10, 11] {
                    seen.insert(try MySQLSinkConnector.xid(scope: .init(job: "j", run: run, node: "n", subtask: subtask), epoch: epoch))
                }
            }
        }
        XCTAssertEqual(seen.count, 2 * 3 * 4)
    }

    /// Ids of the older form (job and node hashed together, node field `~`) are
    /// still parsed and matched by job and node name, not by job alone.
    func testOlderJointHashFormStillMatches() throws {
        let job = "an older job with a long name", node = "out"
        let old = "weir|\(MySQLXid.jointHashKey(job: job, node: node))|r1|~|3|42"
        XCTAssertTrue(old.hasPrefix("weir|~") && old.contains("|r1|~|3|42") && old.utf8.count <= 64, old)
        let p = try XCTUnwrap(MySQLXid(parsing: old))
        XCTAssertEqual(p.subtask, 3)
        XCTAssertEqual(p.epoch, 42)
        XCTAssertTrue(p.belongs(job: job, node: node))
        XCTAssertFalse(p.belongs(job: job, node: "out2"))
        XCTAssertFalse(p.belongs(job: job, node: nil), "the older form has no key of the job alone")
        // The current form of the same names differs (so old and new never collide).
        XCTAssertNotEqual(try MySQLSinkConnector.xid(scope: .init(job: job, run: "r1", node: node, subtask: 3), epoch: 42), old)
    }

    func testVerbatimNamesMatchAnyNodeOfTheJob() throws {
        let p = try XCTUnwrap(MySQLXid(parsing: "weir|orders|r1|out|0|7"))
        XCTAssertTrue(p.nodeIsVerbatim)
        XCTAssertTrue(p.belongs(job: "orders", node: nil))
        XCTAssertTrue(p.belongs(job: "orders", node: "out"))
        XCTAssertFalse(p.belongs(job: "orders", node: "in"))
        XCTAssertFalse(p.belongs(job: "order", node: nil))
        // A hashed id of another job never matches a verbatim name, and the reverse.
        let h = try XCTUnwrap(MySQLXid(parsing: try MySQLSinkConnector.xid(
            scope: .init(job: "orders-with-a-longer-name", run: "r1", node: "out", subtask: 0), epoch: 1)))
        XCTAssertFalse(h.belongs(job: "orders", node: nil))
        XCTAssertTrue(h.belongs(job: "orders-with-a-longer-name", node: nil))
        XCTAssertTrue(h.belongs(job: "orders-with-a-longer-name", node: "out"))
        XCTAssertFalse(h.belongs(job: "orders-with-a-longer-name", node: "out2"))
    }

    func testTooLongIsRefusedAndForeignIdsDoNotParse() {
        let scope = SinkTransactionScope(job: "job-name-ok", run: "a-run-of-twenty-byte", node: "out", subtask: Int.max)
        XCTAssertThrowsError(try MySQLSinkConnector.xid(scope: scope, epoch: .max))
        for foreign in ["", "p1", "weir|a|b|c|1", "weir|a|b|c|1|2|3", "weir|a|b|c|x|2", "weir|a|b|c|01|2",
                        "weir|~abc|r|~|1|2", "weir|a b|r|c|1|2", "other|a|b|c|1|2", "weir|~0123456789abcdef|r|n|1|2",
                        "weir||r|n|1|2", "weir|~0123456789|r|~abc|1|2", "weir|~012345678|r|~|1|2",
                        "weir|~0123456zz|r|~0123456|1|2"] {
            XCTAssertNil(MySQLSinkConnector.parseXid(foreign), foreign)
        }
    }
}

extension MySQLXidTests {
    func testServerVersionsWhosePreparedTransactionsSurviveDisconnect() {
        let cases: [(String, Bool)] = [
            ("10.11.19-MariaDB-0+deb12u1", true), ("5.5.5-10.11.6-MariaDB", true), ("10.5.0-MariaDB", true),
            ("10.4.32-MariaDB", false), ("10.3.39-MariaDB-0+deb10u1", false), ("11.4.2-MariaDB", true),
            ("8.0.36", true), ("5.7.7-log", true), ("5.7.6", false), ("5.6.51", false), ("weird", true),
        ]
        for (version, expected) in cases {
            XCTAssertEqual(MySQLSinkConnector.preparedXASurvivesDisconnect(serverVersion: version), expected, version)
        }
    }
}

/// The XA (two-phase commit) writer and recovery against the real MariaDB.
final class MySQLXATests: MySQLTestCase {
    let idName = Schema([.init("id", .int), .init("name", .string)])
    /// A job name of this test's own, so that recovery never touches other tests' (or
    /// other people's) prepared transactions on the shared server.
    let job = "xat-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
    /// (job, node) pairs whose leftovers tearDown rolls back.
    var used: [(String, String)] = []

    override func setUpWithError() throws {
        try super.setUpWithError()
        // A leftover prepared transaction holds metadata locks: never wait forever on DROP DATABASE.
        try admin.execute("SET SESSION lock_wait_timeout = 20")
    }

    override func tearDownWithError() throws {
        reader?.close()
        reader = nil
        if let admin, let xids = try? MySQLSinkConnector.preparedXids(on: admin) {
            for xid in xids {
                guard let p = MySQLXid(parsing: xid), used.contains(where: { p.belongs(job: $0.0, node: $0.1) }) else { continue }
                try? admin.execute("XA ROLLBACK '\(xid)'")
            }
        }
        try super.tearDownWithError()
    }

    func sink(_ table: String, mode: MySQLSinkConnector.Mode = .append, key: [String] = [],
              batchSize: Int = 4000, user: String = "root", password: String? = nil) throws -> MySQLSinkConnector {
        MySQLSinkConnector(url: try url(user: user, password: password), table: table, mode: mode, key: key, batchSize: batchSize)
    }

    func scope(run: String = "r1", node: String = "out", subtask: Int = 0, job: String? = nil) -> SinkTransactionScope {
        let j = job ?? self.job
        if !used.contains(where: { $0 == (j, node) }) { used.append((j, node)) }
        return SinkTransactionScope(job: j, run: run, node: node, subtask: subtask)
    }

    func writer(_ s: MySQLSinkConnector, _ scope: SinkTransactionScope, schema: Schema? = nil,
                sessionSetup: [String] = []) throws -> MySQLXASinkWriter {
        try s.openXAWriter(scope: scope, schema: schema ?? idName, sessionSetup: sessionSetup)
    }

    /// A separate READ COMMITTED session: sees exactly what is committed.
    var reader: MySQLConnection?

    func committed(_ sql: String = "SELECT id, name FROM t ORDER BY id") throws -> [[String?]] {
        if reader == nil {
            let c = try MySQLConnection(url: try url())
            try c.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            reader = c
        }
        return try reader!.query(sql).rows
    }

    func idRows(_ ids: [Int]) -> [[String?]] { ids.map { [String($0), "n\($0)"] } }
    func idBatch(_ ids: [Int]) -> RecordBatch { batch(ids.map { [.int(Int64($0)), .string("n\($0)")] }) }

    /// Prepared xids on the server belonging to this test's job.
    func ours() throws -> [String] {
        try MySQLSinkConnector.preparedXids(on: admin).filter { x in
            MySQLXid(parsing: x).map { p in used.contains { p.belongs(job: $0.0, node: $0.1) } } ?? false
        }.sorted()
    }

    // MARK: one epoch

    func testEpochInvisibleUntilCommitted() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let sc = scope()
        let w = try writer(try sink("t", batchSize: 2), sc)
        defer { w.close() }
        try w.begin(epoch: 1)
        try w.write(idBatch([1, 2, 3]))
        try w.write(idBatch([4, 5])) // two statements sent, one row buffered
        XCTAssertEqual(try committed(), [])
        try w.flush() // no commit: commits come only from prepare + commit
        XCTAssertEqual(try committed(), [])
        let xid = try w.prepare()
        XCTAssertEqual(xid, try MySQLSinkConnector.xid(scope: sc, epoch: 1))
        XCTAssertEqual(try committed(), [])
        XCTAssertEqual(try ours(), [xid!])
        try w.commit(epoch: 1)
        XCTAssertEqual(try committed(), idRows([1, 2, 3, 4, 5]))
        XCTAssertEqual(try ours(), [])
    }

    func testSeveralEpochsInFlight() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let w = try writer(try sink("t", batchSize: 2), scope())
        defer { w.close() }
        try w.begin(epoch: 1)
        try w.write(idBatch([1, 2, 3]))
        let x1 = try XCTUnwrap(try w.prepare())
        try w.begin(epoch: 2)
        try w.write(idBatch([4, 5, 6])) // sent (append mode) into epoch 2's own transaction
        XCTAssertEqual(w.preparedEpochs, [1])
        XCTAssertEqual(try committed(), [])
        try w.commit(epoch: 1)
        XCTAssertEqual(try committed(), idRows([1, 2, 3]))
        try w.write(idBatch([7]))
        let x2 = try XCTUnwrap(try w.prepare())
        XCTAssertNotEqual(x1, x2)
        XCTAssertEqual(try committed(), idRows([1, 2, 3]))
        XCTAssertEqual(try ours(), [x2])
        try w.commit(epoch: 2)
        XCTAssertEqual(try committed(), idRows([1, 2, 3, 4, 5, 6, 7]))
        // Later epochs reuse pooled connections.
        for e in Int64(3)...5 {
            try w.begin(epoch: e)
            try w.write(idBatch([Int(e) * 10]))
            _ = try w.prepare()
            try w.commit(epoch: e)
        }
        XCTAssertEqual(try committed(), idRows([1, 2, 3, 4, 5, 6, 7, 30, 40, 50]))
        XCTAssertEqual(try ours(), [])
    }

    func testEmptyEpochPreparesNothing() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let w = try writer(try sink("t"), scope())
        defer { w.close() }
        XCTAssertNil(try w.prepare()) // no epoch begun
        try w.begin(epoch: 1)
        XCTAssertNil(try w.prepare())
        try w.begin(epoch: 2)
        try w.write(RecordBatch(arity: 2))
        XCTAssertNil(try w.prepare())
        try w.begin(epoch: 3)
        try w.begin(epoch: 4) // an epoch without rows may be replaced
        XCTAssertNil(try w.prepare())
        XCTAssertEqual(try ours(), [])
        try w.commit(epoch: 1)
        try w.commit(epoch: 2)
        XCTAssertEqual(try committed(), [])
    }

    func testCommitTwiceAndMisuse() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let w = try writer(try sink("t"), scope())
        defer { w.close() }
        _ = assertWeirError(.internalError) { try w.write(self.idBatch([1])) } // before begin
        try w.begin(epoch: 1)
        try w.write(idBatch([1, 2]))
        _ = assertWeirError(.internalError) { try w.begin(epoch: 2) } // epoch 1 has rows, unprepared
        _ = try w.prepare()
        _ = assertWeirError(.internalError) { try w.begin(epoch: 1) } // already prepared
        try w.commit(epoch: 1)
        try w.commit(epoch: 1)
        try w.commit(epoch: 99)
        XCTAssertEqual(try committed(), idRows([1, 2]))
        _ = assertWeirError(.internalError) { try w.write(self.batch([[.int(1)]])) } // wrong arity
    }

    // MARK: commit when the preparing session is gone

    func testCommitReconnectsWhenPreparingSessionDies() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let w = try writer(try sink("t"), scope())
        defer { w.close() }
        try w.begin(epoch: 1)
        try w.write(idBatch([1, 2, 3]))
        let xid = try XCTUnwrap(try w.prepare())
        let id = try XCTUnwrap(w.preparedConnectionId(epoch: 1))
        try admin.execute("KILL CONNECTION \(id)")
        XCTAssertEqual(try ours(), [xid], "a prepared transaction outlives its session")
        try w.commit(epoch: 1) // the parked connection is dead: commits from a fresh one
        XCTAssertEqual(try committed(), idRows([1, 2, 3]))
        XCTAssertEqual(try ours(), [])
        // The writer carries on.
        try w.begin(epoch: 2)
        try w.write(idBatch([4]))
        _ = try w.prepare()
        try w.commit(epoch: 2)
        XCTAssertEqual(try committed(), idRows([1, 2, 3, 4]))
    }

    func testCommitOfAnAlreadyCommittedTransactionSucceeds() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let w = try writer(try sink("t"), scope())
        defer { w.close() }
        try w.begin(epoch: 1)
        try w.write(idBatch([1, 2]))
        let xid = try XCTUnwrap(try w.prepare())
        // Its session dies and someone else (say, a commit whose reply was lost) commits it.
        try admin.execute("KILL CONNECTION \(try XCTUnwrap(w.preparedConnectionId(epoch: 1)))")
        try commitWhenDetached(xid)
        try w.commit(epoch: 1) // XAER_NOTA and not listed: already committed
        XCTAssertEqual(try committed(), idRows([1, 2]))
    }

    /// `XA COMMIT` from the admin session, retrying while the xid is still
    /// attached to a session the server is tearing down (XAER_NOTA).
    func commitWhenDetached(_ xid: String) throws {
        for _ in 0..<100 {
            do { try admin.execute("XA COMMIT '\(xid)'"); return } catch {
                guard admin.lastErrorNumber == 1397 else { throw error }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        XCTFail("\(xid) stayed attached")
    }

    // MARK: recovery

    func testRecoverAfterCrash() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let s = try sink("t", batchSize: 1)
        let a = try writer(s, scope(run: "r1", subtask: 0))
        let b = try writer(s, scope(run: "r1", subtask: 1))
        let other = try writer(s, scope(run: "r1", node: "other", subtask: 0))
        try a.begin(epoch: 1); try a.write(idBatch([1, 2])); let a1 = try XCTUnwrap(try a.prepare())
        try a.begin(epoch: 2); try a.write(idBatch([3])); let a2 = try XCTUnwrap(try a.prepare())
        try a.begin(epoch: 3); try a.write(idBatch([4])) // sent, never prepared
        try b.begin(epoch: 1); try b.write(idBatch([10])); let b1 = try XCTUnwrap(try b.prepare())
        try other.begin(epoch: 1); try other.write(idBatch([20])); let o1 = try XCTUnwrap(try other.prepare())
        XCTAssertEqual(try ours(), [a1, a2, b1, o1].sorted())

        a.crashForTesting() // as kill -9: no statement sent
        b.close()           // a clean close also leaves prepared epochs prepared
        other.close()
        XCTAssertEqual(try committed(), [])

        // Checkpoint 1 completed, checkpoint 2 did not.
        var asked: [PreparedTransaction] = []
        let r = try s.recover(job: job, node: "out") { tx in asked.append(tx); return tx.epoch == 1 }
        XCTAssertEqual(asked.map(\.id), [a1, a2, b1])
        XCTAssertEqual(r.committed, [PreparedTransaction(id: a1, scope: .init(job: job, run: "r1", node: "out", subtask: 0), epoch: 1),
                                     PreparedTransaction(id: b1, scope: .init(job: job, run: "r1", node: "out", subtask: 1), epoch: 1)])
        XCTAssertEqual(r.rolledBack, [PreparedTransaction(id: a2, scope: .init(job: job, run: "r1", node: "out", subtask: 0), epoch: 2)])
        XCTAssertEqual(try committed(), idRows([1, 2, 10]))
        XCTAssertEqual(try ours(), [o1], "another node's transactions are left alone")

        let again = try s.recover(job: job, node: "out") { _ in true }
        XCTAssertEqual(again.committed.count + again.rolledBack.count, 0)
        let o = try s.recover(job: job, node: "other") { _ in false }
        XCTAssertEqual(o.rolledBack.map(\.id), [o1])
        XCTAssertEqual(try committed(), idRows([1, 2, 10]))
        XCTAssertEqual(try ours(), [])
    }

    func testRecoverMatchesLongNamesByHash() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let longJob = "\(job) | Übersicht der täglichen Umsätze pro Kunde und Region"
        let longNode = "mysql|sink-into-the-reporting-database-table"
        let run = UUID().uuidString
        let s = try sink("t")
        let w = try writer(s, scope(run: run, node: longNode, subtask: 2, job: longJob))
        let w2 = try writer(s, scope(run: run, node: longNode, subtask: 0, job: longJob + "2"))
        try w.begin(epoch: 7); try w.write(idBatch([7])); let x = try XCTUnwrap(try w.prepare())
        try w2.begin(epoch: 7); try w2.write(idBatch([8])); let x2 = try XCTUnwrap(try w2.prepare())
        XCTAssertLessThanOrEqual(x.utf8.count, 64)
        XCTAssertTrue(x.hasPrefix("weir|~"), x)
        w.close(); w2.close()
        let r = try s.recover(job: longJob, node: longNode) { $0.scope.run == MySQLXid.runKey(run) && $0.epoch == 7 }
        XCTAssertEqual(r.committed, [PreparedTransaction(id: x, scope: .init(job: longJob, run: MySQLXid.runKey(run), node: longNode, subtask: 2), epoch: 7)])
        XCTAssertEqual(try committed(), idRows([7]))
        XCTAssertEqual(try ours(), [x2])
        XCTAssertEqual(try s.recover(job: longJob + "2", node: longNode) { _ in false }.rolledBack.map(\.id), [x2])
        XCTAssertEqual(try committed(), idRows([7]))
    }

    func testRecoverNeedsNoSpecialPrivilegeOnMariaDB() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let user = "weir_t_xa_user", pw = "Xa-Recover-1"
        for host in ["%", "localhost", "127.0.0.1"] {
            try admin.execute("DROP USER IF EXISTS '\(user)'@'\(host)'")
            try admin.execute("CREATE USER '\(user)'@'\(host)' IDENTIFIED BY '\(pw)'")
            try admin.execute("GRANT SELECT, INSERT, UPDATE ON `\(database)`.* TO '\(user)'@'\(host)'")
        }
        defer { for host in ["%", "localhost", "127.0.0.1"] { try? admin.execute("DROP USER IF EXISTS '\(user)'@'\(host)'") } }
        let s = try sink("t", user: user, password: pw)
        let w = try writer(s, scope())
        try w.begin(epoch: 1); try w.write(idBatch([1])); _ = try w.prepare()
        try w.begin(epoch: 2); try w.write(idBatch([2])); _ = try w.prepare()
        w.close()
        let r = try s.recover(job: job, node: "out") { $0.epoch == 2 }
        XCTAssertEqual(r.committed.map(\.epoch), [2])
        XCTAssertEqual(r.rolledBack.map(\.epoch), [1])
        XCTAssertEqual(try committed(), idRows([2]))
    }

    // MARK: abort and failure

    func testAbortAllRollsBackEverything() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let w = try writer(try sink("t", batchSize: 1), scope())
        defer { w.close() }
        try w.begin(epoch: 1); try w.write(idBatch([1])); _ = try w.prepare()
        try w.begin(epoch: 2); try w.write(idBatch([2])); _ = try w.prepare()
        try w.begin(epoch: 3); try w.write(idBatch([3, 4]))
        // One prepared epoch lost its session: rolled back from a fresh connection.
        try admin.execute("KILL CONNECTION \(try XCTUnwrap(w.preparedConnectionId(epoch: 2)))")
        w.abortAll()
        XCTAssertEqual(try ours(), [])
        XCTAssertEqual(try committed(), [])
        XCTAssertEqual(w.preparedEpochs, [])
        // Still usable afterwards.
        try w.begin(epoch: 4); try w.write(idBatch([5])); _ = try w.prepare(); try w.commit(epoch: 4)
        XCTAssertEqual(try committed(), idRows([5]))
    }

    func testFailedStatementRollsBackEpochButPreparedOnesStillCommit() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(5))")
        let w = try writer(try sink("t", batchSize: 1), scope())
        defer { w.close() }
        try w.begin(epoch: 1); try w.write(idBatch([1, 2])); _ = try w.prepare()
        try w.begin(epoch: 2)
        try w.write(idBatch([3]))
        // Without a context, a refused row fails the writer (onError: fail), naming the column.
        let e = assertWeirError(.badRecord) { try w.write(self.batch([[.int(4), .string("far too long")]])) }
        XCTAssertEqual(e?.subject, "column 'name' of table `\(database)`.`t`")
        XCTAssertTrue(e?.message.contains("1406") ?? false, "\(String(describing: e))")
        XCTAssertThrowsError(try w.prepare())
        XCTAssertThrowsError(try w.begin(epoch: 3))
        try w.commit(epoch: 1)
        XCTAssertEqual(try committed(), idRows([1, 2]))
        XCTAssertEqual(try ours(), [])
    }

    // MARK: upsert

    func testUpsertAcrossEpochsInFlight() throws {
        try admin.execute("CREATE TABLE u (id BIGINT PRIMARY KEY, name VARCHAR(20), cnt INT)")
        let schema = Schema([.init("id", .int), .init("name", .string), .init("cnt", .int)])
        let s = try sink("u", mode: .upsert, key: ["id"], batchSize: 1)
        // A short lock wait, so that a regression fails in seconds rather than hanging.
        let w = try writer(s, scope(), schema: schema, sessionSetup: ["SET SESSION innodb_lock_wait_timeout = 2"])
        defer { w.close() }
        try w.begin(epoch: 1)
        try w.write(batch([[.int(1), .string("a"), .int(1)], [.int(2), .string("b"), .int(1)]]))
        _ = try w.prepare()
        // Epoch 2 updates key 2, which prepared epoch 1 holds locked: held back, no lock wait.
        try w.begin(epoch: 2)
        try w.write(batch([[.int(2), .string("B"), .int(2)], [.int(3), .string("c"), .int(1)], [.int(3), .string("C"), .int(2)]]))
        let select = "SELECT id, name, cnt FROM u ORDER BY id"
        XCTAssertEqual(try committed(select), [])
        try w.commit(epoch: 1)
        XCTAssertEqual(try committed(select), [["1", "a", "1"], ["2", "b", "1"]])
        try w.write(batch([[.int(1), .null, .int(9)]]))
        _ = try w.prepare()
        XCTAssertEqual(try committed(select), [["1", "a", "1"], ["2", "b", "1"]])
        try w.commit(epoch: 2)
        XCTAssertEqual(try committed(select), [["1", nil, "9"], ["2", "B", "2"], ["3", "C", "2"]])
    }

    /// The documented limit: preparing epoch n+1 before epoch n is committed,
    /// when both touch the same row, waits on n's locks until the lock wait timeout.
    func testPrepareBeforeCommitOfOverlappingUpsertTimesOut() throws {
        try admin.execute("CREATE TABLE u (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let s = try sink("u", mode: .upsert, key: ["id"])
        let w = try writer(s, scope(), sessionSetup: ["SET SESSION innodb_lock_wait_timeout = 1"])
        defer { w.close() }
        try w.begin(epoch: 1); try w.write(idBatch([1])); _ = try w.prepare()
        try w.begin(epoch: 2); try w.write(batch([[.int(1), .string("again")]]))
        _ = assertWeirError(.lockWaitTimeout) { _ = try w.prepare() }
        try w.commit(epoch: 1)
        XCTAssertEqual(try committed("SELECT id, name FROM u"), idRows([1]))
        XCTAssertEqual(try ours(), [])
    }

    /// DDL queued behind a prepared epoch's metadata lock, while the writer sends the
    /// next epoch: the INSERT queues behind the DDL, and only the sessions' bounded
    /// lock_wait_timeout (instead of the server's one-day default) ends the wait.
    func testDDLWaitingOnAPreparedEpochTimesOutInsteadOfHanging() throws {
        try admin.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let fresh = try MySQLConnection(url: try url())
        XCTAssertEqual(try fresh.query("SELECT @@SESSION.lock_wait_timeout").rows, [[String(MySQLConnection.defaultLockWaitSeconds)]])
        fresh.close()
        let w = try writer(try sink("t"), scope(), sessionSetup: ["SET SESSION lock_wait_timeout = 1"])
        defer { w.close() }
        try w.begin(epoch: 1); try w.write(idBatch([1])); _ = try w.prepare()
        let ddl = try MySQLConnection(url: try url())
        try ddl.execute("SET SESSION lock_wait_timeout = 30")
        let ddlId = try XCTUnwrap(ddl.query("SELECT CONNECTION_ID()").rows.first?.first ?? nil)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var ddlError: (any Error)?
        nonisolated(unsafe) let locker = ddl
        DispatchQueue.global().async {
            do { try locker.execute("LOCK TABLES t WRITE"); try locker.execute("UNLOCK TABLES") } catch { ddlError = error }
            done.signal()
        }
        // Wait until the LOCK TABLES is queued on epoch 1's metadata lock.
        var queued = false
        for _ in 0..<100 where !queued {
            queued = try !admin.query("SELECT id FROM information_schema.processlist WHERE id = \(ddlId) AND info LIKE 'LOCK TABLES%'").rows.isEmpty
            if !queued { Thread.sleep(forTimeInterval: 0.05) }
        }
        XCTAssertTrue(queued, "LOCK TABLES waits for the prepared epoch")
        try w.begin(epoch: 2); try w.write(idBatch([2]))
        _ = assertWeirError(.lockWaitTimeout) { _ = try w.prepare() }
        try w.commit(epoch: 1) // the run's recovery would do this; then the DDL goes through
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success)
        XCTAssertNil(ddlError)
        ddl.close()
        XCTAssertEqual(try committed(), idRows([1]))
        XCTAssertEqual(try ours(), [])
    }

    func testThroughputWithXA() throws {
        let total = 200_000, perEpoch = 4
        let (schema, batches) = try bigTable(total: total, per: 10_000)
        let w = try writer(try sink("big"), scope(), schema: schema)
        defer { w.close() }
        let start = Date()
        var epoch: Int64 = 0
        for (i, rb) in batches.enumerated() {
            if i % perEpoch == 0 { epoch += 1; try w.begin(epoch: epoch) }
            try w.write(rb)
            if i % perEpoch == perEpoch - 1 {
                _ = try w.prepare()
                // The previous epoch commits while this one is prepared: two in flight.
                if epoch > 1 { try w.commit(epoch: epoch - 1) }
            }
        }
        try w.commit(epoch: epoch)
        let secs = Date().timeIntervalSince(start)
        print("mysql XA sink throughput: \(total) rows in \(epoch) epochs in \(String(format: "%.2f", secs)) s = \(Int(Double(total) / secs)) rows/s")
        XCTAssertEqual(try committed("SELECT COUNT(*), MAX(id), SUM(ok) FROM big"), [["200000", "199999", "100000"]])
        XCTAssertEqual(try ours(), [])
    }

    func testOpenTransactionalWriterThroughTheProtocol() throws {
        let connector: any SinkConnector = try sink("nope")
        let tx = try XCTUnwrap(connector as? any TransactionalSinkConnector)
        _ = assertWeirError(.tableMissing) { _ = try tx.openTransactionalWriter(scope: self.scope(), schema: self.idName) }
        try admin.execute("CREATE TABLE nope (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        let w = try tx.openTransactionalWriter(scope: scope(), schema: idName)
        defer { w.close() }
        try w.begin(epoch: 1); try w.write(idBatch([1])); _ = try w.prepare(); try w.commit(epoch: 1)
        XCTAssertEqual(try committed("SELECT id, name FROM nope"), idRows([1]))
    }
}
