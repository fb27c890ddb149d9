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
    private let encodings: [ColumnEncoding]
    private let prefix: [UInt8]
    private let suffix: [UInt8]
    private var buf: SQLBuffer
    /// Rows in the statement being built (0: none started).
    private(set) var rowsInStatement = 0

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
        self.batchSize = batchSize
        self.backslashEscapes = backslashEscapes
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

    deinit { buf.deallocate() }

    /// Throws (an internal error naming `subject`) unless `batch` has the opened arity.
    func checkArity(_ batch: RecordBatch, subject: String) throws {
        guard batch.arity == arity else {
            throw WeirError(.internalError, subject: subject,
                            "batch has \(batch.arity) fields per row, the writer was opened for \(arity)")
        }
    }

    /// Renders the rows of `batch` (arity already checked), calling `emit` with
    /// each statement that fills up.
    func append(_ batch: RecordBatch, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        let count = batch.count
        if count == 0 { return }
        var b = buf
        var rows = rowsInStatement
        defer { buf = b; rowsInStatement = rows }
        let arity = self.arity, batchSize = self.batchSize, limit = maxStatementBytes, bs = backslashEscapes
        try batch.values.withUnsafeBufferPointer { vals in
            try encodings.withUnsafeBufferPointer { enc in
                try prefix.withUnsafeBufferPointer { pre in
                    var base = 0
                    for _ in 0..<count {
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
                            try emitStatement(&b, emit)
                        }
                    }
                }
            }
        }
    }

    /// Hands the partial statement (if any rows are pending) to `emit`.
    func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard rowsInStatement > 0 else { return }
        var b = buf
        defer { buf = b; rowsInStatement = 0 }
        try emitStatement(&b, emit)
    }

    /// Drops the statement being built.
    func discard() {
        buf.count = 0
        rowsInStatement = 0
    }

    private func emitStatement(_ b: inout SQLBuffer, _ emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        b.append(suffix)
        defer { b.count = 0 }
        try emit(UnsafeRawBufferPointer(start: b.base, count: b.count))
    }
}
