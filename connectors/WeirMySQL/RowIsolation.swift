import WeirCore

/// Isolates the rows the sink's table refuses, so that one bad row never
/// stops the job nor holds back the good rows around it (used by both writers).
///
/// A row is refused at one of two points:
/// - before it is rendered, by a column's rule (`ColumnRule`: NULL into NOT
///   NULL, out of range, too long, charset, ...; `rejectChecked`);
/// - by the server, when a statement fails with a *data error* (`isDataError`:
///   a CHECK constraint, a foreign key, a duplicate key, or anything the rules
///   did not foresee). MariaDB and MySQL roll back just that statement, not the
///   transaction (nor the XA transaction), so `execute` sends the statement's
///   rows again in halves, recursively, within the same transaction, until
///   every good row is written and each refused row is alone in a refused
///   one-row statement (`rejectRefused`, with the server's message).
///
/// Each refused row is reported through `context.report`, then handled by
/// `context.onError`: `skip` drops it, `deadLetter` queues it for the
/// dead-letter table (the writer writes `takePending()` in the same transaction
/// as the data), `fail` throws a `.badRecord` error naming the column, the
/// table and the row.
///
/// Errors that are not data errors (lock wait timeout, deadlock, lost
/// connection, missing table, ...) are thrown as they are: the writer fails.
final class RowIsolation {
    let context: SinkContext
    let schema: Schema
    let tableSubject: String
    /// The table's column for each schema field, and its type (for messages).
    let columnNames: [String]
    let labels: [ColumnRule.Label]
    let builder: InsertStatementBuilder
    /// Where `deadLetter` rows (and upstream dead letters) go; nil when none is configured.
    let deadLetters: DeadLetterTable?
    /// Rejected rows waiting to be written into the dead-letter table (`deadLetter` only).
    private var pending: [RejectedRecord] = []
    /// Rows rejected so far (both kinds).
    private(set) var rejectedRows = 0
    /// Statements the server refused with a data error, then narrowed.
    private(set) var narrowedStatements = 0

    init(context: SinkContext, plan: MySQLSinkConnector.Plan, tableSubject: String,
         builder: InsertStatementBuilder, deadLetters: DeadLetterTable?) {
        self.context = context
        self.schema = plan.schema.count == plan.columns.count
            ? plan.schema : Schema(plan.columns.map { Schema.Field($0, .any) })
        self.tableSubject = tableSubject
        self.columnNames = plan.columns
        self.labels = plan.labels.count == plan.columns.count ? plan.labels : plan.columns.map { _ in ColumnRule.Label() }
        self.builder = builder
        self.deadLetters = deadLetters
    }

    /// The isolation of the table's new plan, keeping the context, the
    /// dead-letter table and the counts (taken between epochs).
    func replanned(_ plan: MySQLSinkConnector.Plan, builder: InsertStatementBuilder) -> RowIsolation {
        let next = RowIsolation(context: context, plan: plan, tableSubject: tableSubject, builder: builder, deadLetters: deadLetters)
        next.pending = pending
        next.rejectedRows = rejectedRows
        next.narrowedStatements = narrowedStatements
        return next
    }

    /// Server errors that concern the values of the rows of a statement (MariaDB
    /// and MySQL numbers): the statement is rolled back alone and can be narrowed.
    /// 1048 NULL into NOT NULL; 1062/1586 duplicate key; 1216/1452 foreign key (child row);
    /// 1264 out of range; 1265 data truncated; 1292 incorrect date/time value; 1366 incorrect
    /// value (number, string charset); 1406 data too long; 1690 value out of range (BIGINT
    /// arithmetic); 3140 invalid JSON (MySQL); 3819 CHECK constraint (MySQL); 4025 CHECK
    /// constraint (MariaDB).
    static func isDataError(_ errno: UInt32) -> Bool {
        switch errno {
        case 1048, 1062, 1216, 1264, 1265, 1292, 1366, 1406, 1452, 1586, 1690, 3140, 3819, 4025: return true
        default: return false
        }
    }

    /// A row refused by a column's rule (the builder's `reject`).
    func rejectChecked(_ batch: RecordBatch, _ row: Int, _ column: Int, _ problem: ValueProblem) throws {
        let rule = builder.rules[column]
        let what = rule.describe(problem, batch.value(row: row, field: column), labels[column])
        try reject(batch, row, subject: "column '\(columnNames[column])' of \(tableSubject)", what: what)
    }

    /// A row the server refused on its own (after narrowing), with its error.
    func rejectRefused(_ batch: RecordBatch, _ row: Int, errno: UInt32, message: String) throws {
        try reject(batch, row, subject: tableSubject, what: "\(RowIsolation.withoutRowNumber(message)) (error \(errno))")
    }

    private func reject(_ batch: RecordBatch, _ row: Int, subject: String, what: String) throws {
        rejectedRows += 1
        let json = batch.values.withUnsafeBufferPointer { vals in
            RejectedRecord.json(row: vals.baseAddress! + row * batch.arity, schema: schema)
        }
        let record = RejectedRecord(node: context.node, reason: .sinkRejected, message: "\(subject): \(what)", value: json)
        context.report(record)
        switch context.onError {
        case .skip:
            return
        case .deadLetter:
            pending.append(record)
        case .fail:
            throw WeirError(.badRecord, subject: subject, "refuses the row \(RowIsolation.preview(json)): \(what)",
                            suggestion: "fix the data upstream (a filter or select before the sink), or set onError: skip (count and drop such rows) or deadLetter (keep them in a table)")
        }
    }

    /// The queued dead-letter rows, which the caller now writes.
    func takePending() -> [RejectedRecord] {
        defer { pending.removeAll() }
        return pending
    }

    /// Drops the queued dead-letter rows (their transaction was rolled back).
    func discardPending() { pending.removeAll() }

    /// Runs `statement`, which holds `rows`, on `conn`. If the server refuses it
    /// with a data error (the statement alone is rolled back), narrows it: the
    /// rows are sent again in halves, recursively, in order, each refused one-row
    /// statement's row rejected. Throws other errors, and `fail`'s error.
    func execute(_ statement: UnsafeRawBufferPointer, rows: [RowSlice], on conn: MySQLConnection) throws {
        do {
            try conn.execute(bytes: statement)
            return
        } catch {
            guard RowIsolation.isDataError(conn.lastErrorNumber), !rows.isEmpty else { throw error }
        }
        narrowedStatements += 1
        let refs = RowRef.all(rows)
        try narrow(refs[...], of: rows, failure: (conn.lastErrorNumber, conn.lastErrorMessage), on: conn)
    }

    /// `refs` is known to fail with `failure` as one statement, or (nil) not known yet.
    private func narrow(_ refs: ArraySlice<RowRef>, of slices: [RowSlice], failure: (UInt32, String)?,
                        on conn: MySQLConnection) throws {
        guard !refs.isEmpty else { return }
        var failure = failure
        if failure == nil {
            let statement = builder.renderStatement(refs, of: slices)
            do {
                try conn.execute(bytes: statement)
                return
            } catch {
                guard RowIsolation.isDataError(conn.lastErrorNumber) else { throw error }
                failure = (conn.lastErrorNumber, conn.lastErrorMessage)
            }
        }
        if refs.count == 1 {
            let r = refs.first!
            try rejectRefused(slices[r.slice].batch, r.row, errno: failure!.0, message: failure!.1)
            return
        }
        let mid = refs.startIndex + refs.count / 2
        try narrow(refs[..<mid], of: slices, failure: nil, on: conn)
        try narrow(refs[mid...], of: slices, failure: nil, on: conn)
    }

    /// The server's message without its trailing ` at row N` (the row is named otherwise).
    static func withoutRowNumber(_ message: String) -> String {
        guard let r = message.ranges(of: " at row ").last,
              !message[r.upperBound...].isEmpty, message[r.upperBound...].allSatisfy(\.isNumber) else { return message }
        return String(message[..<r.lowerBound])
    }

    /// The first 300 bytes of a rendered row, for error messages.
    static func preview(_ v: [UInt8]) -> String {
        let s = String(decoding: v.prefix(300), as: UTF8.self)
        return v.count > 300 ? s + "…" : s
    }
}
