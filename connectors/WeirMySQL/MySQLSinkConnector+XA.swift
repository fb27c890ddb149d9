import WeirCore

/// Two-phase commit for the `mysql:` sink: XA transactions, one per epoch and sink subtask.
extension MySQLSinkConnector {
    /// How long `recover` waits for a prepared transaction to detach from its session.
    static let attachedWaitSeconds = 3.0

    /// Opens the checkpointing writer of one sink subtask (after the same table
    /// validation as `check`). See `MySQLXASinkWriter` for how epochs map to XA
    /// transactions; the ids are described by `MySQLXid`.
    /// Rows the table refuses fail the writer, naming the row (`onError: fail`).
    public func openTransactionalWriter(scope: SinkTransactionScope, schema: Schema) throws -> any TransactionalSinkWriter {
        try openXAWriter(scope: scope, schema: schema)
    }

    /// Opens the checkpointing writer of one sink subtask that isolates the rows
    /// the table refuses and handles them by `context.onError` (dead letters are
    /// written in the epoch's XA transaction). With a dead-letter table in the
    /// context, creates it if missing (and checks its columns) first.
    public func openTransactionalWriter(scope: SinkTransactionScope, context: SinkContext, schema: Schema) throws
        -> any TransactionalSinkWriter {
        try openXAWriter(scope: scope, schema: schema, context: context)
    }

    /// `openTransactionalWriter`, typed, with extra session statements run on
    /// every connection it opens (tests use this to shorten lock waits).
    /// Without a context, refused rows fail the writer.
    func openXAWriter(scope: SinkTransactionScope, schema: Schema, sessionSetup: [String] = [],
                      context: SinkContext? = nil) throws -> MySQLXASinkWriter {
        let conn = try connect()
        do {
            let version = conn.serverVersion
            if !MySQLSinkConnector.preparedXASurvivesDisconnect(serverVersion: version) {
                throw WeirError(.unsupportedLibrary, subject: "MySQL server \(url.endpoint) (\(version))",
                                "rolls back a prepared XA transaction when its client disconnects, so checkpoints could not be exactly-once",
                                suggestion: "use MariaDB 10.5 or later, or MySQL 5.7.7 or later")
            }
            let plan = try plan(conn: conn, schema: schema)
            // DDL before the session takes part in any (XA) transaction.
            let deadLetters = try context.flatMap { try openDeadLetters(conn, context: $0) }
            return try MySQLXASinkWriter(url: url, lockWaitSeconds: lockWaitSeconds, scope: scope, plan: plan, batchSize: batchSize,
                                         tableSubject: tableSubject, connection: conn, sessionSetup: sessionSetup,
                                         context: context, deadLetters: deadLetters,
                                         replan: { [self] in try self.plan(conn: $0, schema: schema) })
        } catch {
            conn.close()
            throw error
        }
    }

    /// Whether a server of this version keeps a prepared XA transaction when the
    /// client that prepared it disconnects (MariaDB 10.5+, MDEV-742; MySQL 5.7.7+).
    /// Older servers roll it back, which would silently undo prepared epochs.
    /// Unparseable versions are given the benefit of the doubt.
    static func preparedXASurvivesDisconnect(serverVersion: String) -> Bool {
        var v = Substring(serverVersion)
        if v.hasPrefix("5.5.5-") { v = v.dropFirst(6) } // MariaDB's replication-compatibility prefix
        let nums = v.prefix { $0.isNumber || $0 == "." }.split(separator: ".").compactMap { Int($0) }
        guard nums.count >= 2 else { return true }
        let version = (nums[0], nums[1], nums.count > 2 ? nums[2] : 0)
        if serverVersion.lowercased().contains("mariadb") { return version >= (10, 5, 0) }
        return version >= (5, 7, 7)
    }

    /// The XA transaction id (gtrid) of `epoch` of the subtask `scope`
    /// (`weir|<job>|<run>|<node>|<subtask>|<epoch>`, at most 64 bytes; see `MySQLXid`).
    /// Throws when it cannot fit in 64 bytes.
    public static func xid(scope: SinkTransactionScope, epoch: Int64) throws -> String {
        try MySQLXid(scope: scope, epoch: epoch).description
    }

    /// The parts of a Weir xid (job/node as keys: verbatim or hashed), or nil
    /// when `text` is not one.
    public static func parseXid(_ text: String) -> MySQLXid? {
        MySQLXid(parsing: text)
    }

    /// The gtrids of every prepared XA transaction on the server with
    /// formatID 1 and an empty bqual (the only kind Weir creates).
    ///
    /// `XA RECOVER` returns formatID, gtrid_length, bqual_length and data (the
    /// gtrid followed by the bqual).
    static func preparedXids(on conn: MySQLConnection) throws -> [String] {
        let rows: [[String?]]
        do {
            rows = try conn.query("XA RECOVER").rows
        } catch let e as WeirError where conn.lastErrorNumber == 1227 || e.code == .accessDenied {
            throw WeirError(.accessDenied, subject: "MySQL user '\(conn.url.user)'@\(conn.url.host)",
                            "may not list prepared XA transactions (XA RECOVER): \(e.message)",
                            suggestion: "on MySQL 8 grant it: GRANT XA_RECOVER_ADMIN ON *.* TO '\(conn.url.user)'@'%'")
        }
        return rows.compactMap { row in
            guard row.count >= 4, row[0] == "1", row[2] == "0", let g = Int(row[1] ?? ""),
                  let bytes = row[3].map({ Array($0.utf8) }), g <= bytes.count else { return nil }
            return String(decoding: bytes[0..<g], as: UTF8.self)
        }
    }

    /// The prepared XA transactions of `job` (of sink node `node`, or of every
    /// node), in run, node, subtask and epoch order, as `recover` names them.
    static func prepared(job: String, node: String?, on conn: MySQLConnection) throws -> [PreparedTransaction] {
        try MySQLSinkConnector.preparedXids(on: conn)
            .compactMap { id in MySQLXid(parsing: id).flatMap { $0.belongs(job: job, node: node) ? (id, $0) : nil } }
            .sorted { a, b in (a.1.run, a.1.nodeKey, a.1.subtask, a.1.epoch) < (b.1.run, b.1.nodeKey, b.1.subtask, b.1.epoch) }
            .map { id, x in
                PreparedTransaction(id: id, scope: SinkTransactionScope(job: job, run: x.run, node: x.nodeIsVerbatim ? x.nodeKey : (node ?? x.nodeKey),
                                                                        subtask: x.subtask), epoch: x.epoch)
            }
    }

    /// The prepared XA transactions of every sink node of `job`, left as they are.
    public func prepared(job: String) throws -> [PreparedTransaction] {
        let conn = try MySQLConnection(url: url)
        defer { conn.close() }
        return try MySQLSinkConnector.prepared(job: job, node: nil, on: conn)
    }

    /// Resolves the prepared XA transactions that earlier runs of sink node
    /// `node` of job `job` left behind (after a crash, or a `close()` between
    /// prepare and commit): each one `shouldCommit` approves is committed
    /// (`XA COMMIT`), every other one rolled back (`XA ROLLBACK`). With `node`
    /// nil, those of every sink node of the job, renamed or removed ones
    /// included (except ids of the older joint-hash form, see `MySQLXid`, which
    /// are found only by their node's name).
    ///
    /// Call it before the new run opens its writers: transactions are found by
    /// job and node only, whatever their run. Each `PreparedTransaction` has the
    /// job given here, the node as encoded in its id when it appears verbatim
    /// (else the `node` given here, or with nil the node's hash key), and the
    /// run, subtask and epoch read from its id; `scope.run` is the run id as
    /// encoded, i.e. `MySQLXid.runKey(run)` (the id itself when it is simple
    /// and at most 20 bytes, else a hash).
    ///
    /// A transaction that turns out to be resolved already (XA error 1397,
    /// XAER_NOTA, and no longer listed by XA RECOVER) is skipped and appears in
    /// neither list, unless this call had sent the statement before losing its
    /// connection (then it is listed as sent). 1397 for one that *is* still
    /// listed means it is attached to a live session (MariaDB refuses to resolve
    /// those): a just-closed writer's, which the server tears down within
    /// moments, so this waits up to 3 s; after that (another process of the job
    /// still running, or a dead client the server has not noticed) it is an
    /// error rather than skipped, since it would keep its row locks and its fate
    /// undecided.
    ///
    /// Privileges: MariaDB 10.11 needs none for this. Its `XA RECOVER` lists
    /// every prepared XA transaction on the server, whoever prepared it, and
    /// any user may `XA COMMIT`/`XA ROLLBACK` any of them (checked on 10.11.19
    /// with a user holding only SELECT, INSERT, UPDATE on one database). MySQL
    /// 8.0 requires `XA_RECOVER_ADMIN` for `XA RECOVER` (error 1227 otherwise,
    /// reported as `.accessDenied` with the GRANT to run).
    public func recover(job: String, node: String?, shouldCommit: (PreparedTransaction) -> Bool) throws
        -> (committed: [PreparedTransaction], rolledBack: [PreparedTransaction]) {
        // Autocommit on: MariaDB refuses XA COMMIT/ROLLBACK of a detached xid in an
        // autocommit=0 session (error 1400, XAER_OUTSIDE).
        func connect() throws -> MySQLConnection {
            let c = try MySQLConnection(url: url)
            do { try c.setAutocommit(true) } catch { c.close(); throw error }
            return c
        }
        var conn = try connect()
        defer { conn.close() }
        var committed: [PreparedTransaction] = [], rolledBack: [PreparedTransaction] = []
        for tx in try MySQLSinkConnector.prepared(job: job, node: node, on: conn) {
            let id = tx.id
            let commit = shouldCommit(tx)
            let sql = (commit ? "XA COMMIT '" : "XA ROLLBACK '") + MySQLConnection.escapeLiteral(id) + "'"
            var reconnects = 0, sentBefore = false, delay = 0.05, waited = 0.0
            while true {
                do {
                    try conn.execute(sql)
                } catch {
                    if conn.lastErrorNumber == 1397 {
                        if try !MySQLSinkConnector.preparedXids(on: conn).contains(id) {
                            // Resolved: by this call's own statement when it was sent before a
                            // lost connection, else by someone else (then skipped).
                            if sentBefore { if commit { committed.append(tx) } else { rolledBack.append(tx) } }
                            break
                        }
                        // Still prepared, but attached to a session: typically the writer's,
                        // just closed, which the server has not finished tearing down.
                        if waited < MySQLSinkConnector.attachedWaitSeconds {
                            MySQLConnection.sleep(seconds: delay)
                            waited += delay
                            delay = min(delay * 2, 0.5)
                            continue
                        }
                        throw WeirError(.mysql, subject: "XA transaction '\(id)' on MySQL server \(url.endpoint)",
                                        "is prepared but attached to a live session, so it cannot be resolved now (XAER_NOTA)",
                                        suggestion: "another process may still be running job '\(job)': stop it (or KILL its MySQL connection, see SHOW PROCESSLIST), then retry")
                    }
                    if conn.lastErrorIsConnectionLoss && reconnects < 4 {
                        // The statement may have run before the connection dropped; retrying is
                        // safe (it then fails with 1397) and never re-sends rows.
                        sentBefore = true
                        reconnects += 1
                        conn.close()
                        MySQLConnection.sleep(seconds: 0.1 * Double(reconnects))
                        conn = try connect()
                        continue
                    }
                    var e = (error as? WeirError) ?? WeirError(.mysql, subject: "MySQL server \(url.endpoint)", "\(error)")
                    e.message = "\(commit ? "committing" : "rolling back") prepared XA transaction '\(id)' failed: \(e.message)"
                    throw e
                }
                if commit { committed.append(tx) } else { rolledBack.append(tx) }
                break
            }
        }
        return (committed, rolledBack)
    }
}
