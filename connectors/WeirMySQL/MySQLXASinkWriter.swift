import WeirCore

/// Writes one sink subtask's rows with XA two-phase commit, one XA transaction per epoch.
///
/// The engine's checkpoints need a sink that can *prepare* what it wrote
/// between two barriers (so it survives a crash) and *commit* it only once the
/// whole checkpoint is complete. MariaDB/MySQL XA transactions give exactly
/// that: a prepared XA transaction survives the client's disconnect and a
/// server crash, and can be committed or rolled back later from any session.
///
/// How an epoch goes:
/// - `begin(epoch:)` fixes the epoch and its xid (see `MySQLXid`); nothing is sent yet.
/// - `write` renders rows with the same `InsertStatementBuilder` as the plain
///   writer. When the first statement is sent, a connection is taken from this
///   writer's small pool (or opened; autocommit off) and `XA START 'xid'` issued.
/// - `prepare()` sends what is buffered, then `XA END` and `XA PREPARE`, and parks
///   that connection (an XA transaction is tied to its session until it ends)
///   until `commit(epoch:)`; the next epoch uses another connection. An epoch that
///   wrote no rows starts no XA transaction and `prepare()` returns nil.
/// - `commit(epoch:)` sends `XA COMMIT` on the parked connection, or, if that
///   connection is broken, from a fresh one (once its session ends, a prepared
///   transaction detaches from it and any session can commit it).
///
/// Upsert statements of an epoch are held back while an earlier epoch is
/// prepared and not yet committed: that epoch holds row locks on the keys it
/// wrote, and an upsert of the same key (the normal case for a continuously
/// updated aggregate) would wait for a commit that cannot come while this
/// single-threaded writer is blocked. They are sent at the first `write` after
/// the commit, or at `prepare()`. The wait that remains: if `prepare(n+1)` comes
/// before `commit(n)` and epoch n+1 touches rows epoch n wrote, it blocks until
/// innodb_lock_wait_timeout and fails with `.lockWaitTimeout`. Held-back
/// statements are capped at 64 MiB, beyond which they are sent anyway.
///
/// Rows the table refuses are isolated as in the plain writer (`RowIsolation`):
/// checked before rendering, and a statement the server refuses with a data
/// error (held back or not) is narrowed to its offending rows inside the
/// epoch's XA transaction (MariaDB rolls back just the failed statement, the XA
/// transaction goes on). `deadLetter` rows, and records rejected upstream
/// (`writeDeadLetters`), are inserted into the dead-letter table inside the
/// open epoch's XA transaction (starting it if no data row did), so they are
/// prepared, committed or rolled back with the epoch, exactly once. An epoch
/// holding only dead letters is prepared like any other.
///
/// If a statement fails otherwise (or a row is refused under `onError: fail`),
/// the open epoch is rolled back and the writer refuses `begin`, `write` and
/// `prepare` from then on (rethrowing that error), as the plain writer does;
/// prepared epochs can still be committed or aborted. Never re-sends rows a
/// transaction holds: a failure while writing or preparing loses the epoch,
/// and the engine replays it from its checkpoint.
///
/// Used from one thread (not thread-safe), like every `SinkWriter`.
final class MySQLXASinkWriter: TransactionalSinkWriter {
    private let url: MySQLURL
    private let lockWaitSeconds: Int
    private let scope: SinkTransactionScope
    /// The plan, builder and isolation, checked against the table once per epoch.
    private let table: TableWriterPlan
    private var statements: InsertStatementBuilder { table.statements }
    private var isolation: RowIsolation { table.isolation }
    private let tableSubject: String
    /// Hold statements back while an earlier epoch is prepared (upsert).
    private let holdBackWhilePrepared: Bool
    /// Extra session statements for every connection (tests use it to shorten lock waits).
    private let sessionSetup: [String]

    /// Idle connections: no transaction, autocommit off.
    private var idle: [MySQLConnection] = []
    static let maxIdle = 4
    /// Attempts (with backoff, about 4 s in all) at resolving a transaction from a fresh connection.
    static let resolveAttempts = 8
    static let maxHeldBackBytes = 64 << 20

    private struct OpenEpoch {
        var epoch: Int64
        var xid: String
        /// Set once `XA START` was sent on it.
        var conn: MySQLConnection?
        var hasRows = false
    }
    private var open: OpenEpoch?
    /// Statements held back (upsert while an epoch is prepared), with their rows for narrowing.
    private var heldBack: [(statement: [UInt8], rows: [RowSlice])] = []
    private var heldBackBytes = 0

    private struct Prepared {
        var xid: String
        /// The session that prepared it; nil once that session is known broken.
        var conn: MySQLConnection?
    }
    private var prepared: [Int64: Prepared] = [:]
    /// Xids whose XA PREPARE may have happened although it reported failure
    /// (the connection dropped), so that `abortAll` can roll them back.
    private var uncertain: Set<String> = []
    private var failure: WeirError?
    private var closed = false

    /// A writer over `connection` (already validated against the plan), which
    /// becomes the first pooled connection.
    init(url: MySQLURL, lockWaitSeconds: Int = MySQLConnection.defaultLockWaitSeconds, scope: SinkTransactionScope, plan: MySQLSinkConnector.Plan, batchSize: Int,
         tableSubject: String, connection: MySQLConnection, sessionSetup: [String] = [],
         context: SinkContext? = nil, deadLetters: DeadLetterTable? = nil,
         replan: ((MySQLConnection) throws -> MySQLSinkConnector.Plan)? = nil) throws {
        self.url = url
        self.lockWaitSeconds = lockWaitSeconds
        self.scope = scope
        self.tableSubject = tableSubject
        self.sessionSetup = sessionSetup
        holdBackWhilePrepared = plan.mode == .upsert
        _ = try MySQLXid(scope: scope, epoch: 0) // refuses a scope whose ids cannot fit
        try MySQLXASinkWriter.prepareSession(connection, sessionSetup)
        let statements = try InsertStatementBuilder(plan: plan, batchSize: batchSize, settingsFrom: connection)
        let isolation = RowIsolation(context: context ?? MySQLSinkConnector.defaultContext(subtask: scope.subtask, node: scope.node,
                                                                                           job: scope.job, run: scope.run),
                                     plan: plan, tableSubject: tableSubject, builder: statements, deadLetters: deadLetters)
        table = TableWriterPlan(plan: plan, statements: statements, isolation: isolation, tableSubject: tableSubject,
                                replan: replan)
        idle = [connection]
    }

    /// Rows rejected so far, and statements narrowed (tests).
    var rejectedRows: Int { isolation.rejectedRows }
    var narrowedStatements: Int { isolation.narrowedStatements }

    deinit { close() }

    // MARK: connections

    /// Autocommit off, and no transaction open (a table read under autocommit=0
    /// would have opened one, and `XA START` then fails with XAER_OUTSIDE).
    private static func prepareSession(_ c: MySQLConnection, _ sessionSetup: [String]) throws {
        try c.setAutocommit(false)
        for s in sessionSetup { try c.execute(s) }
        try c.rollback()
    }

    private func newConnection() throws -> MySQLConnection {
        let c = try MySQLConnection(url: url, lockWaitSeconds: lockWaitSeconds)
        do { try MySQLXASinkWriter.prepareSession(c, sessionSetup) } catch { c.close(); throw error }
        return c
    }

    private func release(_ c: MySQLConnection) {
        if c.isOpen && idle.count < MySQLXASinkWriter.maxIdle && !closed { idle.append(c) } else { c.close() }
    }

    private static func quoted(_ xid: String) -> String { "'\(MySQLConnection.escapeLiteral(xid))'" }

    // MARK: SinkWriter / TransactionalSinkWriter

    private func ensureUsable() throws {
        if let failure {
            throw WeirError(failure.code, subject: failure.subject,
                            "an earlier write failed and its epoch was rolled back: \(failure.message)",
                            suggestion: failure.suggestion)
        }
        if closed { throw WeirError(.internalError, subject: tableSubject, "the writer is closed") }
    }

    func begin(epoch: Int64) throws {
        try ensureUsable()
        if let o = open, o.hasRows {
            throw WeirError(.internalError, subject: tableSubject,
                            "begin(epoch: \(epoch)) while epoch \(o.epoch) has unprepared rows; prepare() it first")
        }
        if prepared[epoch] != nil {
            throw WeirError(.internalError, subject: tableSubject, "epoch \(epoch) is already prepared")
        }
        open = OpenEpoch(epoch: epoch, xid: try MySQLXid(scope: scope, epoch: epoch).description)
    }

    func write(_ batch: RecordBatch) throws {
        try ensureUsable()
        try statements.checkArity(batch, subject: tableSubject)
        if batch.count == 0 { return }
        guard open != nil else {
            throw WeirError(.internalError, subject: tableSubject, "rows written outside an epoch; call begin(epoch:) first")
        }
        open!.hasRows = true
        do {
            if prepared.isEmpty { try sendHeldBack() }
            // Statements held back were built by the current plan: check the table once they are out.
            if table.isCheckDue && heldBack.isEmpty { try checkTable() }
            try statements.append(batch, emit: emit, reject: isolation.rejectChecked)
            try writePendingDeadLetters()
        } catch {
            throw fail(error)
        }
    }

    /// A finished statement: held back (see the type's comment) or sent.
    private func emit(_ statement: UnsafeRawBufferPointer, _ rows: [RowSlice]) throws {
        if holdBackWhilePrepared && !prepared.isEmpty && heldBackBytes < MySQLXASinkWriter.maxHeldBackBytes {
            heldBack.append((Array(statement), rows))
            heldBackBytes += statement.count
            return
        }
        try sendHeldBack()
        try execute(statement, rows)
    }

    private func sendHeldBack() throws {
        guard !heldBack.isEmpty else { return }
        for h in heldBack { try h.statement.withUnsafeBytes { try execute($0, h.rows) } }
        heldBack = []
        heldBackBytes = 0
        try writePendingDeadLetters()
    }

    /// Runs a statement inside the open epoch's XA transaction, starting it first
    /// if needed; a data error narrows it to the rows the table refuses.
    private func execute(_ statement: UnsafeRawBufferPointer, _ rows: [RowSlice]) throws {
        try isolation.execute(statement, rows: rows, on: try startedConnection())
    }

    /// Inserts the dead-letter rows the isolation queued, in the open epoch.
    private func writePendingDeadLetters() throws {
        let records = isolation.takePending()
        guard !records.isEmpty else { return }
        try insertDeadLetters(records)
    }

    private func insertDeadLetters(_ records: [RejectedRecord]) throws {
        guard let table = isolation.deadLetters else {
            throw MySQLSinkConnector.noDeadLetterTable(records[0], tableSubject: tableSubject)
        }
        open!.hasRows = true
        let conn = try startedConnection()
        try table.write(records, context: isolation.context, backslashEscapes: statements.backslashEscapes,
                        maxStatementBytes: statements.maxStatementBytes) { try conn.execute(bytes: $0) }
    }

    /// Inserts records rejected upstream into the dead-letter table, inside the
    /// open epoch's XA transaction (starting it if needed): they are prepared
    /// and committed (or rolled back) with the epoch's rows.
    func writeDeadLetters(_ records: [RejectedRecord]) throws {
        guard !records.isEmpty else { return }
        try ensureUsable()
        guard open != nil else {
            throw WeirError(.internalError, subject: tableSubject, "dead letters written outside an epoch; call begin(epoch:) first")
        }
        do { try insertDeadLetters(records) } catch { throw fail(error) }
    }

    /// Looks at the table on the epoch's session once its XA transaction has
    /// started, or on an idle one (which must not be left in a transaction).
    private func checkTable() throws {
        if let c = open?.conn { return try table.checkTable(on: c) }
        let c = try idle.popLast() ?? newConnection()
        do {
            try table.checkTable(on: c)
            try c.rollback()
            release(c)
        } catch {
            c.close()
            throw error
        }
    }

    private func startedConnection() throws -> MySQLConnection {
        if let c = open!.conn { return c }
        let xid = open!.xid
        var attempt = 0
        while true {
            let c = try idle.popLast() ?? newConnection()
            do {
                try c.execute("XA START \(MySQLXASinkWriter.quoted(xid))")
                open!.conn = c
                return c
            } catch {
                let lost = c.lastErrorIsConnectionLoss, errno = c.lastErrorNumber
                c.close()
                // A pooled connection may have gone stale while idle; nothing was sent on it yet.
                if lost && attempt < 2 { attempt += 1; continue }
                if errno == 1440 {
                    throw WeirError(.mysql, subject: "XA transaction \(MySQLXASinkWriter.quoted(xid)) on MySQL server \(url.endpoint)",
                                    "already exists (error 1440, XAER_DUPID)",
                                    suggestion: "a prepared transaction of an earlier run with the same run id is still pending: resolve leftovers with recovery (or XA ROLLBACK it) before starting the run")
                }
                throw error
            }
        }
    }

    func prepare() throws -> String? {
        try ensureUsable()
        guard let o = open else { return nil }
        guard o.hasRows else { open = nil; return nil }
        let conn: MySQLConnection
        do {
            try sendHeldBack()
            try statements.finish(emit: execute)
            try writePendingDeadLetters()
            // Every row refused (and skipped): nothing was sent, nothing to prepare.
            guard let c = open?.conn else { open = nil; return nil }
            conn = c
            try conn.execute("XA END \(MySQLXASinkWriter.quoted(o.xid))")
        } catch {
            throw fail(error)
        }
        do {
            try conn.execute("XA PREPARE \(MySQLXASinkWriter.quoted(o.xid))")
        } catch {
            if conn.lastErrorIsConnectionLoss { uncertain.insert(o.xid) }
            throw fail(error)
        }
        prepared[o.epoch] = Prepared(xid: o.xid, conn: conn)
        open = nil
        table.epochEnded()
        return o.xid
    }

    /// Rolls back the open epoch, poisons the writer, and returns the error to throw.
    private func fail(_ error: any Error) -> WeirError {
        if let failure { return failure }
        let e = MySQLSinkWriter.tableError(error, tableSubject: tableSubject)
        rollbackOpen()
        failure = e
        return e
    }

    /// Rolls back the open epoch's XA transaction (if started) and drops its rows.
    private func rollbackOpen() {
        statements.discard()
        isolation.discardPending()
        heldBack = []
        heldBackBytes = 0
        guard let o = open else { return }
        open = nil
        guard let c = o.conn else { return }
        var rolledBack = false
        if c.isOpen && !c.lastErrorIsConnectionLoss {
            try? c.execute("XA END \(MySQLXASinkWriter.quoted(o.xid))") // fails harmlessly if already ended
            do {
                try c.execute("XA ROLLBACK \(MySQLXASinkWriter.quoted(o.xid))")
                rolledBack = true
            } catch {
                rolledBack = c.lastErrorNumber == 1397
            }
        }
        // Otherwise closing the session rolls back the unprepared XA transaction.
        // (One that may have been prepared, when XA PREPARE lost its connection,
        // is already in `uncertain`: abortAll or recovery rolls it back.)
        if rolledBack { release(c) } else { c.close() }
    }

    func commit(epoch: Int64) throws {
        if closed { throw WeirError(.internalError, subject: tableSubject, "the writer is closed") }
        // Not prepared by this writer: already committed, or the epoch wrote nothing.
        guard let p = prepared[epoch] else { return }
        if let c = p.conn {
            do {
                try c.execute("XA COMMIT \(MySQLXASinkWriter.quoted(p.xid))")
                prepared[epoch] = nil
                release(c)
                return
            } catch {
                if c.lastErrorNumber == 1397 {
                    // The very session that prepared it no longer has it prepared:
                    // it was resolved, and (see commitFromFreshConnection) that
                    // can only have been a commit.
                    prepared[epoch] = nil
                    release(c)
                    return
                }
                guard c.lastErrorIsConnectionLoss else { throw MySQLSinkWriter.tableError(error, tableSubject: tableSubject) }
                c.close()
                prepared[epoch]?.conn = nil
            }
        }
        try commitFromFreshConnection(epoch: epoch, xid: p.xid)
    }

    /// Commits a prepared epoch whose session is gone, from a new connection.
    private func commitFromFreshConnection(epoch: Int64, xid: String) throws {
        do {
            try resolveFromFreshConnection(xid: xid, commit: true)
            prepared[epoch] = nil
        } catch var e as WeirError {
            e.message = "committing epoch \(epoch) (XA transaction \(MySQLXASinkWriter.quoted(xid))) failed: \(e.message)"
            e.suggestion = "the transaction stays prepared; it is committed by recovery when the job restarts from its checkpoint"
                + (e.suggestion.map { "; \($0)" } ?? "")
            throw e
        }
    }

    /// Commits or rolls back a prepared transaction whose session is gone (or
    /// may be), from a new connection, retrying connection failures with
    /// backoff. Never re-sends rows.
    ///
    /// XA COMMIT/ROLLBACK failing with 1397 (XAER_NOTA) means the xid is not
    /// prepared from this session's point of view, which has two causes, told
    /// apart by `XA RECOVER`:
    /// - it is still listed: it is prepared but still attached to the old
    ///   session, which the server has not yet finished tearing down. Retry.
    /// - it is not listed: it was committed or rolled back. For a rollback that
    ///   is all we wanted. For a commit: the engine only commits epochs whose
    ///   checkpoint completed and only rolls back (by `abortAll`, or by recovery)
    ///   those whose checkpoint did not; this epoch's checkpoint completed, so
    ///   nobody rolled it back, and it was committed — typically by our own
    ///   earlier XA COMMIT whose reply was lost with the connection, or by a
    ///   recovery run. So it counts as committed. (The one other way an xid
    ///   disappears is the server losing a prepared transaction, e.g. an OS crash
    ///   under innodb_flush_log_at_trx_commit=2; that cannot be told apart here
    ///   and would lose the epoch.)
    private func resolveFromFreshConnection(xid: String, commit: Bool) throws {
        let sql = (commit ? "XA COMMIT " : "XA ROLLBACK ") + MySQLXASinkWriter.quoted(xid)
        var delay = 0.05
        var lastError: WeirError?
        for attempt in 0..<MySQLXASinkWriter.resolveAttempts {
            if attempt > 0 {
                MySQLConnection.sleep(seconds: delay)
                delay = min(delay * 2, 1.0)
            }
            // A plain session, autocommit on: MariaDB refuses to resolve a detached xid
            // from an autocommit=0 session (error 1400, XAER_OUTSIDE), so not a pooled one.
            let c: MySQLConnection
            do { c = try MySQLConnection(url: url) } catch let e as WeirError where e.code == .mysqlUnreachable {
                lastError = e
                continue
            }
            defer { c.close() }
            do {
                try c.setAutocommit(true) // in case the server's default is off
                try c.execute(sql)
                return
            } catch {
                if c.lastErrorNumber == 1397 {
                    let listed: Bool
                    do { listed = try MySQLSinkConnector.preparedXids(on: c).contains(xid) } catch {
                        lastError = error as? WeirError
                        continue
                    }
                    if !listed { return }
                    lastError = WeirError(.mysql, subject: "MySQL server \(url.endpoint)",
                                          "the transaction is prepared but still attached to the session that prepared it (XAER_NOTA)")
                    continue
                }
                if c.lastErrorIsConnectionLoss {
                    lastError = error as? WeirError
                    continue
                }
                throw MySQLSinkWriter.tableError(error, tableSubject: tableSubject)
            }
        }
        var e = lastError ?? WeirError(.mysqlUnreachable, subject: "MySQL server \(url.endpoint)", "could not connect")
        e.message = "gave up after \(MySQLXASinkWriter.resolveAttempts) attempts: \(e.message)"
        throw e
    }

    /// Commits happen only through `prepare()` and `commit(epoch:)`, so a flush
    /// makes nothing durable or visible: buffered rows stay buffered and belong
    /// to the open epoch. It only rethrows an earlier failure.
    func flush() throws {
        try ensureUsable()
    }

    func abortAll() {
        rollbackOpen()
        for epoch in prepared.keys.sorted() {
            let p = prepared[epoch]!
            if let c = p.conn, c.isOpen {
                do {
                    try c.execute("XA ROLLBACK \(MySQLXASinkWriter.quoted(p.xid))")
                    release(c)
                    continue
                } catch {
                    if c.lastErrorNumber == 1397 { release(c); continue }
                    c.close()
                }
            }
            uncertain.insert(p.xid)
        }
        prepared = [:]
        // Transactions whose session is gone: roll back from a fresh connection.
        // Best effort; recovery rolls back any left (their checkpoint is incomplete).
        for xid in uncertain.sorted() {
            try? resolveFromFreshConnection(xid: xid, commit: false)
        }
        uncertain = []
    }

    /// Rolls back the open epoch and closes every connection. Prepared epochs
    /// stay prepared (their sessions end, so they detach): whether they commit is
    /// decided by recovery, from whether their checkpoint completed.
    func close() {
        if closed { return }
        rollbackOpen()
        closed = true
        for p in prepared.values { p.conn?.close() }
        prepared = [:]
        for c in idle { c.close() }
        idle = []
    }

    // MARK: test hooks

    /// Drops every connection without a word to the server, as a killed process
    /// would: the open epoch is rolled back by the server, prepared ones detach.
    func crashForTesting() {
        open?.conn?.close()
        open = nil
        statements.discard()
        isolation.discardPending()
        heldBack = []
        closed = true
        for p in prepared.values { p.conn?.close() }
        prepared = [:]
        for c in idle { c.close() }
        idle = []
    }

    /// The server connection id of the session holding prepared epoch `epoch`.
    func preparedConnectionId(epoch: Int64) -> UInt64? {
        prepared[epoch]?.conn?.serverConnectionId
    }

    /// The epochs prepared and not yet committed.
    var preparedEpochs: [Int64] { prepared.keys.sorted() }
}
