import WeirCore

/// Renders rows into multi-row `INSERT INTO `t` (...) VALUES (...),(...)`
/// statements (plus `ON DUPLICATE KEY UPDATE` for upsert).
///
/// It exists so that the plain writer (`MySQLSinkWriter`) and the XA writer
/// (`MySQLXASinkWriter`) build exactly the same statements from one piece of
/// code; they differ only in what they do with a finished statement, which they
/// pass in as the `emit` closure.
///
/// Rows are rendered straight into one reusable byte buffer. A statement is
/// finished (and handed to `emit`) when it holds `batchSize` rows or reaches
/// half the server's max_allowed_packet (at most 16 MiB); `finish` hands over
/// the last, partial one. The bytes given to `emit` are only valid during the
/// call. If `emit` throws, the statement being built is dropped (the rest of
/// that batch is not rendered) and the error is rethrown.
///
/// Before a row is rendered it is checked against the columns' rules
/// (`ColumnRule`); a row some column refuses is not rendered but handed to
/// `reject`. With each statement `emit` also gets the rows it holds, as slices
/// of the batches they came from (`RowSlice`: the batch is kept by reference,
/// not copied), so that a statement the server refuses can be narrowed down to
/// its offending rows, re-rendered in smaller statements by `renderStatement`.
///
/// Not thread-safe: owned by one writer.
final class InsertStatementBuilder {
    /// Fields per row.
    let arity: Int
    /// Rows per statement.
    let batchSize: Int
    /// A statement is finished once it is this long.
    let maxStatementBytes: Int
    /// Whether the session lets backslashes escape in string literals (no NO_BACKSLASH_ESCAPES).
    let backslashEscapes: Bool
    private let maxAllowedPacket: Int
    private let encodings: [ColumnEncoding]
    private let prefix: [UInt8]
    private let suffix: [UInt8]
    private var buf: SQLBuffer
    /// Rows in the statement being built (0: none started).
    private(set) var rowsInStatement = 0
    /// Per column, what it refuses.
    let rules: [ColumnRule]
    /// Columns whose rule checks anything (the per-row loop visits only these).
    private let checked: [Int]
    /// The rows of the statement being built.
    private var slices: [RowSlice] = []
    /// For statements of a subset of rows (narrowing); allocated on first use.
    private var subsetBuf: SQLBuffer?

    /// Receives a finished statement and the rows it holds.
    typealias Emit = (UnsafeRawBufferPointer, [RowSlice]) throws -> Void
    /// Receives a row a column's rule refuses: batch, row, column (schema position), problem.
    typealias Reject = (RecordBatch, Int, Int, ValueProblem) throws -> Void

    /// A builder for `plan`, with the statement size limit and escaping style
    /// read from `connection`'s session (`@@max_allowed_packet`, `@@sql_mode`).
    convenience init(plan: MySQLSinkConnector.Plan, batchSize: Int, settingsFrom connection: MySQLConnection) throws {
        let vars = try connection.query("SELECT @@max_allowed_packet, @@sql_mode").rows.first
        let packet = Int(vars?[0] ?? "") ?? 16 << 20
        let noBackslash = (vars?[1] ?? "").uppercased().contains("NO_BACKSLASH_ESCAPES")
        self.init(plan: plan, batchSize: batchSize, maxAllowedPacket: packet, backslashEscapes: !noBackslash)
    }

    init(plan: MySQLSinkConnector.Plan, batchSize: Int, maxAllowedPacket: Int, backslashEscapes: Bool) {
        encodings = plan.encodings
        arity = plan.columns.count
        let rules = plan.rules.count == plan.columns.count ? plan.rules : plan.columns.map { _ in ColumnRule() }
        self.rules = rules
        checked = rules.indices.filter { rules[$0].checksSomething }
        self.batchSize = batchSize
        self.backslashEscapes = backslashEscapes
        self.maxAllowedPacket = maxAllowedPacket
        let q = MySQLConnection.quoteIdentifier
        prefix = Array("INSERT INTO \(q(plan.table)) (\(plan.columns.map(q).joined(separator: ","))) VALUES ".utf8)
        if plan.mode == .upsert {
            let keySet = Set(plan.keyFields)
            var updates = plan.columns.indices.filter { !keySet.contains($0) }
                .map { "\(q(plan.columns[$0]))=VALUES(\(q(plan.columns[$0])))" }
            if updates.isEmpty { updates = ["\(q(plan.columns[plan.keyFields[0]]))=\(q(plan.columns[plan.keyFields[0]]))"] }
            suffix = Array(" ON DUPLICATE KEY UPDATE \(updates.joined(separator: ","))".utf8)
        } else {
            suffix = []
        }
        maxStatementBytes = max(64 << 10, min(maxAllowedPacket / 2, 16 << 20))
        buf = SQLBuffer(capacity: min(maxStatementBytes + 4096, 1 << 20))
    }

    /// A builder for the table's new plan, with this one's session settings
    /// (taken between epochs, when no statement is being built).
    func replanned(_ plan: MySQLSinkConnector.Plan) -> InsertStatementBuilder {
        InsertStatementBuilder(plan: plan, batchSize: batchSize, maxAllowedPacket: maxAllowedPacket,
                               backslashEscapes: backslashEscapes)
    }

    deinit {
        buf.deallocate()
        subsetBuf?.deallocate()
    }

    /// Throws (an internal error naming `subject`) unless `batch` has the opened arity.
    func checkArity(_ batch: RecordBatch, subject: String) throws {
        guard batch.arity == arity else {
            throw WeirError(.internalError, subject: subject,
                            "batch has \(batch.arity) fields per row, the writer was opened for \(arity)")
        }
    }

    /// Renders the rows of `batch` (arity already checked), calling `emit` with
    /// each statement that fills up, and `reject` with each row a column refuses
    /// (if `reject` throws, the statement being built is left as it is; the
    /// caller discards it).
    func append(_ batch: RecordBatch, emit: Emit, reject: Reject) throws {
        let count = batch.count
        if count == 0 { return }
        var b = buf
        var rows = rowsInStatement
        defer { buf = b; rowsInStatement = rows }
        let arity = self.arity, batchSize = self.batchSize, limit = maxStatementBytes, bs = backslashEscapes
        let validate = !checked.isEmpty
        // First row of the current run of rendered rows of this batch (-1: none).
        var runStart = -1
        try batch.values.withUnsafeBufferPointer { vals in
            try encodings.withUnsafeBufferPointer { enc in
                try prefix.withUnsafeBufferPointer { pre in
                    try rules.withUnsafeBufferPointer { rule in
                        try checked.withUnsafeBufferPointer { chk in
                            var base = 0
                            for r in 0..<count {
                                if validate {
                                    var bad = -1
                                    var problem: ValueProblem?
                                    for c in chk {
                                        if let p = rule[c].check(vals[base + c]) { bad = c; problem = p; break }
                                    }
                                    if bad >= 0 {
                                        if runStart >= 0 { slices.append(RowSlice(batch: batch, rows: runStart..<r)); runStart = -1 }
                                        base += arity
                                        try reject(batch, r, bad, problem!)
                                        continue
                                    }
                                }
                                if runStart < 0 { runStart = r }
                                if rows == 0 { b.append(UnsafeRawBufferPointer(pre)); b.append(UInt8(ascii: "(")) }
                                else { b.append2(UInt8(ascii: ","), UInt8(ascii: "(")) }
                                for f in 0..<arity {
                                    if f > 0 { b.append(UInt8(ascii: ",")) }
                                    b.appendValue(vals[base + f], enc[f], backslashEscapes: bs)
                                }
                                b.append(UInt8(ascii: ")"))
                                base += arity
                                rows += 1
                                if rows >= batchSize || b.count >= limit {
                                    rows = 0
                                    slices.append(RowSlice(batch: batch, rows: runStart..<(r + 1)))
                                    runStart = -1
                                    try emitStatement(&b, emit)
                                }
                            }
                        }
                    }
                }
            }
        }
        if runStart >= 0 { slices.append(RowSlice(batch: batch, rows: runStart..<count)) }
    }

    /// Hands the partial statement (if any rows are pending) to `emit`.
    func finish(emit: Emit) throws {
        guard rowsInStatement > 0 else { return }
        var b = buf
        defer { buf = b; rowsInStatement = 0 }
        try emitStatement(&b, emit)
    }

    /// Drops the statement being built.
    func discard() {
        buf.count = 0
        rowsInStatement = 0
        slices.removeAll()
    }

    private func emitStatement(_ b: inout SQLBuffer, _ emit: Emit) throws {
        b.append(suffix)
        let rows = slices
        slices.removeAll(keepingCapacity: true)
        defer { b.count = 0 }
        try emit(UnsafeRawBufferPointer(start: b.base, count: b.count), rows)
    }

    /// Renders one statement (same columns, same ON DUPLICATE KEY clause) of
    /// the given rows, in order, into a buffer of its own; the bytes are valid
    /// until the next call. Rows are not checked again.
    func renderStatement(_ rows: ArraySlice<RowRef>, of slices: [RowSlice]) -> UnsafeRawBufferPointer {
        var b = subsetBuf ?? SQLBuffer(capacity: 64 << 10)
        defer { subsetBuf = b }
        b.count = 0
        b.append(prefix)
        let arity = self.arity, bs = backslashEscapes
        var first = true
        encodings.withUnsafeBufferPointer { enc in
            for ref in rows {
                slices[ref.slice].batch.values.withUnsafeBufferPointer { vals in
                    let base = ref.row * arity
                    b.append(first ? UInt8(ascii: "(") : UInt8(ascii: ","))
                    if !first { b.append(UInt8(ascii: "(")) }
                    first = false
                    for f in 0..<arity {
                        if f > 0 { b.append(UInt8(ascii: ",")) }
                        b.appendValue(vals[base + f], enc[f], backslashEscapes: bs)
                    }
                    b.append(UInt8(ascii: ")"))
                }
            }
        }
        b.append(suffix)
        return UnsafeRawBufferPointer(start: b.base, count: b.count)
    }
}

/// A run of rows of one batch that went into a statement (the batch is
/// copy-on-write, so keeping it costs a reference, not a copy).
struct RowSlice {
    let batch: RecordBatch
    let rows: Range<Int>
}

/// One row of a statement: which slice, which row of its batch.
struct RowRef: Equatable {
    let slice: Int
    let row: Int

    /// Every row of `slices`, in statement order.
    static func all(_ slices: [RowSlice]) -> [RowRef] {
        var out: [RowRef] = []
        out.reserveCapacity(slices.reduce(0) { $0 + $1.rows.count })
        for (i, s) in slices.enumerated() { for r in s.rows { out.append(RowRef(slice: i, row: r)) } }
        return out
    }
}
