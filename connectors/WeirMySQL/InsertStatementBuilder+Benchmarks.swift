import WeirCore

/// The MySQL sink's statement building (`InsertStatementBuilder`, with the
/// per-row column checks) without a database, for the allocation
/// micro-benchmarks (`benchmarks/micro`). The table's columns are described
/// as `information_schema.COLUMNS` would; the plan is derived from them by
/// the same code as a writer's.
///
/// Not API: visible only to `@_spi(Benchmarks) import WeirMySQL`.
@_spi(Benchmarks) public final class StatementRendering {
    /// A column as `information_schema.COLUMNS` describes it.
    public struct Column: Sendable {
        public var name: String
        /// DATA_TYPE: `bigint`, `double`, `varchar`, `datetime`...
        public var dataType: String
        /// COLUMN_TYPE: `bigint(20)`, `varchar(32)`, `datetime(3)`...
        public var columnType: String
        public var nullable: Bool
        public var fractionalDigits: Int
        public var characterMaximumLength: Int?
        public var characterOctetLength: Int?
        public var charset: String?

        public init(_ name: String, dataType: String, columnType: String? = nil, nullable: Bool = true,
                    fractionalDigits: Int = 0, characterMaximumLength: Int? = nil, characterOctetLength: Int? = nil,
                    charset: String? = nil) {
            self.name = name; self.dataType = dataType; self.columnType = columnType ?? dataType
            self.nullable = nullable; self.fractionalDigits = fractionalDigits
            self.characterMaximumLength = characterMaximumLength; self.characterOctetLength = characterOctetLength
            self.charset = charset
        }
    }

    private let builder: InsertStatementBuilder

    /// - Parameters:
    ///   - columns: one per schema field, in schema order.
    ///   - upsertKey: schema positions of the upsert key; nil for append.
    ///   - batchSize: rows per statement (the sink's `batchSize`).
    public init(table: String, schema: Schema, columns: [Column], upsertKey: [Int]?, batchSize: Int = MySQLSinkConnector.defaultBatchSize,
                maxAllowedPacket: Int = 16 << 20, backslashEscapes: Bool = true) {
        let picked = columns.map { c in
            MySQLSinkConnector.ColumnInfo(name: c.name, dataType: c.dataType, nullable: c.nullable, hasDefault: false,
                                          autoIncrement: false, generated: false, fractionalDigits: c.fractionalDigits,
                                          columnType: c.columnType, characterMaximumLength: c.characterMaximumLength,
                                          characterOctetLength: c.characterOctetLength, charset: c.charset)
        }
        let plan = MySQLSinkConnector.Plan(table: table, picked: picked, keyFields: upsertKey ?? [],
                                           mode: upsertKey == nil ? .append : .upsert, schema: schema,
                                           timestampMaxSeconds: 2_147_483_647)
        builder = InsertStatementBuilder(plan: plan, batchSize: batchSize, maxAllowedPacket: maxAllowedPacket,
                                         backslashEscapes: backslashEscapes)
    }

    /// Renders `batch` as a writer's `write` does, then finishes the pending
    /// statement as a flush does; `statement` gets each statement's bytes
    /// (valid during the call). Returns how many rows a column refused.
    public func render(_ batch: RecordBatch, statement: (UnsafeRawBufferPointer) -> Void) throws -> Int {
        var refused = 0
        try builder.append(batch, emit: { bytes, _ in statement(bytes) }, reject: { _, _, _, _ in refused += 1 })
        try builder.finish(emit: { bytes, _ in statement(bytes) })
        return refused
    }
}
