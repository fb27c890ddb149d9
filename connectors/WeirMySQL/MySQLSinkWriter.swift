import WeirCore

/// Writes one sink subtask's rows into the table over its own connection.
///
/// Rows are rendered by an `InsertStatementBuilder` into multi-row
/// `INSERT INTO `t` (...) VALUES (...),(...)` statements (plus
/// `ON DUPLICATE KEY UPDATE` for upsert), each sent as soon as it holds
/// `batchSize` rows (or half the server's max_allowed_packet). Autocommit is
/// off: nothing is visible until `flush()` commits, and `close()` rolls back.
///
/// Rows the table refuses are isolated by a `RowIsolation` (checked before
/// rendering; a statement the server refuses with a data error is narrowed to
/// its offending rows within the same transaction) and handled by the
/// context's `onError`; `deadLetter` rows, and records rejected upstream
/// (`writeDeadLetters`), are inserted into the dead-letter table in the same
/// transaction, committed by the same `flush()`.
///
/// If a statement or commit fails otherwise (or a row is refused under
/// `onError: fail`), everything uncommitted is rolled back and the writer
/// refuses further work (rethrowing that error), so a flush is all or nothing;
/// the engine should close it and replay from its last checkpoint.
final class MySQLSinkWriter: SinkWriter {
    private let conn: MySQLConnection
    /// The plan, builder and isolation, checked against the table once per transaction.
    private let table: TableWriterPlan
    private var statements: InsertStatementBuilder { table.statements }
    private var isolation: RowIsolation { table.isolation }
    private let tableSubject: String
    private var uncommitted = false
    private var failure: WeirError?
    private var closed = false

    init(connection: MySQLConnection, plan: MySQLSinkConnector.Plan, batchSize: Int, tableSubject: String,
         context: SinkContext = MySQLSinkConnector.defaultContext(subtask: 0), deadLetters: DeadLetterTable? = nil,
         replan: ((MySQLConnection) throws -> MySQLSinkConnector.Plan)? = nil) throws {
        conn = connection
        self.tableSubject = tableSubject
        let statements = try InsertStatementBuilder(plan: plan, batchSize: batchSize, settingsFrom: connection)
        table = TableWriterPlan(plan: plan, statements: statements,
                                isolation: RowIsolation(context: context, plan: plan, tableSubject: tableSubject,
                                                        builder: statements, deadLetters: deadLetters),
                                tableSubject: tableSubject, replan: replan)
        try connection.setAutocommit(false)
    }

    deinit { close() }

    /// Rows rejected so far, and statements narrowed (tests).
    var rejectedRows: Int { isolation.rejectedRows }
    var narrowedStatements: Int { isolation.narrowedStatements }

    private func ensureUsable() throws {
        if let failure {
            throw WeirError(failure.code, subject: failure.subject,
                            "an earlier write failed and its uncommitted rows were rolled back: \(failure.message)",
                            suggestion: failure.suggestion)
        }
        if closed { throw WeirError(.internalError, subject: tableSubject, "the writer is closed") }
    }

    func write(_ batch: RecordBatch) throws {
        try ensureUsable()
        try statements.checkArity(batch, subject: tableSubject)
        do {
            if table.isCheckDue && batch.count > 0 { try table.checkTable(on: conn) }
            try statements.append(batch, emit: send, reject: isolation.rejectChecked)
            try writePendingDeadLetters()
        } catch {
            throw fail(error)
        }
    }

    /// Sends one finished statement (narrowed if the server refuses some of its rows).
    private func send(_ statement: UnsafeRawBufferPointer, _ rows: [RowSlice]) throws {
        uncommitted = true
        try isolation.execute(statement, rows: rows, on: conn)
    }

    /// Inserts the dead-letter rows the isolation queued, in the open transaction.
    private func writePendingDeadLetters() throws {
        let records = isolation.takePending()
        guard !records.isEmpty else { return }
        try insertDeadLetters(records)
    }

    private func insertDeadLetters(_ records: [RejectedRecord]) throws {
        guard let table = isolation.deadLetters else {
            throw MySQLSinkConnector.noDeadLetterTable(records[0], tableSubject: tableSubject)
        }
        uncommitted = true
        try table.write(records, context: isolation.context, backslashEscapes: statements.backslashEscapes,
                        maxStatementBytes: statements.maxStatementBytes) { try conn.execute(bytes: $0) }
    }

    /// Inserts records rejected upstream into the dead-letter table, in the
    /// open transaction (committed by the next `flush()`).
    func writeDeadLetters(_ records: [RejectedRecord]) throws {
        guard !records.isEmpty else { return }
        try ensureUsable()
        do { try insertDeadLetters(records) } catch { throw fail(error) }
    }

    /// Rolls back, poisons the writer, and returns the error to throw.
    private func fail(_ error: any Error) -> WeirError {
        if let failure { return failure }
        let e = MySQLSinkWriter.tableError(error, tableSubject: tableSubject)
        try? conn.rollback()
        uncommitted = false
        statements.discard()
        isolation.discardPending()
        failure = e
        return e
    }

    /// `error` as a `WeirError` whose subject names the table (for the kinds
    /// of errors a statement against it can cause).
    static func tableError(_ error: any Error, tableSubject: String) -> WeirError {
        var e = (error as? WeirError) ?? WeirError(.mysql, subject: tableSubject, "\(error)")
        if e.code == .tableMissing || e.code == .columnMismatch || e.code == .lockWaitTimeout || e.code == .mysql {
            if e.subject.hasPrefix("MySQL server") { e.subject = "\(tableSubject) on \(e.subject.dropFirst("MySQL ".count))" }
        }
        // The table was checked against the job's output when the run started: a table or
        // column missing now was dropped or renamed while the job ran. A restart cannot fix it.
        if e.code == .tableMissing || e.code == .columnMismatch {
            e = WeirError(.sinkSchemaChanged, subject: e.subject,
                          "changed while the job wrote to it: \(e.message)",
                          suggestion: "restore the table's columns (or the table), or publish a version whose output matches the new table; then run from the latest snapshot (output is exactly-once up to it)")
        }
        return e
    }

    func flush() throws {
        try ensureUsable()
        do {
            try statements.finish(emit: send)
            try writePendingDeadLetters()
            if uncommitted { try conn.commit() }
        } catch {
            throw fail(error)
        }
        uncommitted = false
        table.epochEnded()
    }

    func close() {
        if closed { return }
        closed = true
        if (uncommitted || statements.rowsInStatement > 0) && conn.isOpen { try? conn.rollback() }
        uncommitted = false
        statements.discard()
        isolation.discardPending()
        conn.close()
    }
}

/// A growable byte buffer with unchecked appends, for building SQL statements.
/// A plain struct over a raw allocation (not copy-on-write): the owner copies
/// it into a local for a hot loop, writes it back, and deallocates it once.
struct SQLBuffer {
    var base: UnsafeMutablePointer<UInt8>
    var count = 0
    var capacity: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 256)
        base = .allocate(capacity: self.capacity)
    }

    func deallocate() { base.deallocate() }

    @inline(__always) mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    @inline(never) mutating func grow(_ needed: Int) {
        var cap = capacity * 2
        while cap < needed { cap *= 2 }
        let nb = UnsafeMutablePointer<UInt8>.allocate(capacity: cap)
        nb.update(from: base, count: count)
        base.deallocate()
        base = nb
        capacity = cap
    }

    @inline(__always) mutating func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    @inline(__always) mutating func append2(_ a: UInt8, _ b: UInt8) {
        reserve(2)
        base[count] = a
        base[count + 1] = b
        count += 2
    }

    @inline(__always) mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let src = bytes.baseAddress, bytes.count > 0 else { return }
        reserve(bytes.count)
        UnsafeMutableRawPointer(base + count).copyMemory(from: src, byteCount: bytes.count)
        count += bytes.count
    }

    mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    @inline(__always) mutating func appendNull() {
        reserve(4)
        base[count] = 78; base[count + 1] = 85; base[count + 2] = 76; base[count + 3] = 76 // NULL
        count += 4
    }

    /// Decimal digits of `v` (no Foundation, no allocation).
    @inline(__always) mutating func appendInt(_ v: Int64) {
        reserve(20)
        var m = v.magnitude
        if v < 0 { base[count] = UInt8(ascii: "-"); count += 1 }
        if m < 10 { base[count] = UInt8(truncatingIfNeeded: m) &+ 48; count += 1; return }
        var digits = 0
        var t = m
        while t > 0 { digits += 1; t /= 10 }
        var i = count + digits - 1
        while m > 0 {
            let (q, r) = m.quotientAndRemainder(dividingBy: 10)
            base[i] = UInt8(truncatingIfNeeded: r) &+ 48
            i -= 1
            m = q
        }
        count += digits
    }

    /// Exactly `width` digits of a non-negative `v` (zero padded).
    @inline(__always) mutating func appendPadded(_ v: Int, width: Int) {
        var x = v
        var i = count + width - 1
        while i >= count { base[i] = UInt8(truncatingIfNeeded: x % 10) &+ 48; x /= 10; i -= 1 }
        count += width
    }

    /// Shortest round-trip text of a finite double (Swift's `description`,
    /// e.g. `0.1`, `1e-05`, `1.5e+300`, all valid MySQL literals).
    mutating func appendDouble(_ d: Double) {
        var s = d.description
        s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// `'YYYY-MM-DD HH:MM:SS[.mmm]'` (or `'YYYY-MM-DD'`) of an epoch-millisecond
    /// instant in UTC, proleptic Gregorian (H. Hinnant's civil_from_days).
    mutating func appendEpochMillis(_ ms: Int64, time: Bool, fractional: Bool) {
        let (days, msOfDay) = floorDivMod(ms, 86_400_000)
        let (y, m, d) = civilFromDays(days)
        reserve(40)
        base[count] = 39; count += 1
        if y >= 0 && y <= 9999 { appendPadded(Int(y), width: 4) } else { appendInt(y) }
        base[count] = 45; count += 1
        appendPadded(m, width: 2)
        base[count] = 45; count += 1
        appendPadded(d, width: 2)
        if time {
            let secs = Int(msOfDay / 1000)
            base[count] = 32; count += 1
            appendPadded(secs / 3600, width: 2)
            base[count] = 58; count += 1
            appendPadded(secs / 60 % 60, width: 2)
            base[count] = 58; count += 1
            appendPadded(secs % 60, width: 2)
            if fractional {
                base[count] = 46; count += 1
                appendPadded(Int(msOfDay % 1000), width: 3)
            }
        }
        base[count] = 39; count += 1
    }

    /// A single-quoted string literal. With backslash escapes, escapes
    /// ' \ " NUL LF CR and ^Z like mysql_real_escape_string; under
    /// NO_BACKSLASH_ESCAPES only doubles the quote.
    @inline(__always) mutating func appendQuoted(_ s: String, backslashEscapes: Bool) {
        var s = s
        s.withUTF8 { p in
            reserve(p.count * 2 + 2)
            var o = base + count
            o.pointee = 39; o += 1
            if backslashEscapes {
                for byte in p {
                    let esc: UInt8
                    switch byte {
                    case 0: esc = 48          // \0
                    case 10: esc = 110        // \n
                    case 13: esc = 114        // \r
                    case 26: esc = 90         // \Z
                    case 34, 39, 92: esc = byte
                    default:
                        o.pointee = byte; o += 1
                        continue
                    }
                    o[0] = 92; o[1] = esc; o += 2
                }
            } else {
                for byte in p {
                    o.pointee = byte; o += 1
                    if byte == 39 { o.pointee = 39; o += 1 }
                }
            }
            o.pointee = 39; o += 1
            count = o - base
        }
    }

    @inline(__always) mutating func appendQuotedInt(_ v: Int64) {
        append(39); appendInt(v); append(39)
    }

    /// Renders one value for a column of the given encoding.
    @inline(__always) mutating func appendValue(_ v: Value, _ enc: ColumnEncoding, backslashEscapes: Bool) {
        switch v {
        case .null:
            appendNull()
        case .int(let i):
            switch enc {
            case .integer, .numeric, .other: appendInt(i)
            case .datetime(let frac): appendEpochMillis(i, time: true, fractional: frac)
            case .date: appendEpochMillis(i, time: false, fractional: false)
            case .text: appendQuotedInt(i)
            }
        case .double(let d):
            // MySQL has no NaN or infinity; such values are written as NULL.
            guard d.isFinite else { appendNull(); return }
            switch enc {
            case .integer:
                if d.rounded(.towardZero) == d && abs(d) < 9.2e18 { appendInt(Int64(d)) } else { appendDouble(d) }
            case .numeric, .other:
                appendDouble(d)
            case .datetime, .date:
                let r = d.rounded(.down)
                if abs(r) < 9.2e18 {
                    if case .datetime(let frac) = enc { appendEpochMillis(Int64(r), time: true, fractional: frac) }
                    else { appendEpochMillis(Int64(r), time: false, fractional: false) }
                } else { appendNull() }
            case .text:
                append(39); appendDouble(d); append(39)
            }
        case .bool(let b):
            if enc == .text { append(39); append(b ? 49 : 48); append(39) } else { append(b ? 49 : 48) }
        case .string(let s):
            appendQuoted(s, backslashEscapes: backslashEscapes)
        }
    }
}

@inline(__always) func floorDivMod(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
    var q = a / b, r = a % b
    if r < 0 { q -= 1; r += b }
    return (q, r)
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01.
@inline(__always) func civilFromDays(_ days: Int64) -> (Int64, Int, Int) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097                                          // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365       // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)                    // [0, 365]
    let mp = (5 * doy + 2) / 153                                         // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1                                 // [1, 31]
    let m = mp < 10 ? mp + 3 : mp - 9                                    // [1, 12]
    let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
    return (y, Int(m), Int(d))
}
