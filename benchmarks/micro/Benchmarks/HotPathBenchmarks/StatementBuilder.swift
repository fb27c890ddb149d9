import Benchmark
@_spi(Benchmarks) import WeirCore
@_spi(Benchmarks) import WeirMySQL

/// The MySQL statement builder: a batch rendered into multi-row INSERT
/// statements (4,000 rows each, the sink's default `batchSize`) with the
/// per-row column checks, as a writer's `write` and flush do; no database.
/// - upsert-w1-windows: W1's output rows into `(user_id BIGINT, window_start
///   DATETIME(3), window_end DATETIME(3), cnt BIGINT, total BIGINT)`,
///   ON DUPLICATE KEY UPDATE on `(user_id, window_start)`
/// - append-doubles-strings: decoded mixed records into `(user_id BIGINT,
///   amount DOUBLE, country VARCHAR(32) utf8mb4, ts BIGINT)`
func statementBuilderBenchmarks() {
    typealias Column = StatementRendering.Column
    func register(_ name: String, _ rendering: StatementRendering, _ batch: RecordBatch) {
        Benchmark(name, configuration: MicroBench.configuration) { benchmark in
            var bytes = 0
            let refused = try rendering.render(batch) { bytes &+= $0.count }
            guard refused == 0, bytes > 0 else {
                benchmark.error("\(refused) rows refused, \(bytes) bytes rendered")
                return
            }
            blackHole(bytes)
        }
    }

    for n in MicroBench.batchSizes {
        // W1's window results: one row per user and window.
        var windows = RecordBatch(arity: 5, capacity: n)
        for i in 0..<n {
            let start = Inputs.baseTime + Int64(i / Inputs.users) * 10_000
            windows.append(row: [.int(Int64(i % Inputs.users)), .int(start), .int(start + 10_000),
                                 .int(Int64(100 + i % 37)), .int(Int64(50_000 + i % 9_973))],
                           timestamp: start + 9_999)
        }
        let upsert = StatementRendering(
            table: "w1_user_spend",
            schema: Schema([.init("user_id", .int), .init("window_start", .int), .init("window_end", .int),
                            .init("cnt", .int), .init("total", .int)]),
            columns: [Column("user_id", dataType: "bigint", columnType: "bigint(20)", nullable: false),
                      Column("window_start", dataType: "datetime", columnType: "datetime(3)", nullable: false, fractionalDigits: 3),
                      Column("window_end", dataType: "datetime", columnType: "datetime(3)", fractionalDigits: 3),
                      Column("cnt", dataType: "bigint", columnType: "bigint(20)"),
                      Column("total", dataType: "bigint", columnType: "bigint(20)")],
            upsertKey: [0, 1])
        register("StatementBuilder.upsert-w1-windows.\(n)", upsert, windows)

        let mixed = try! Inputs.batch(.mixed, count: n)
        let append = StatementRendering(
            table: "events",
            schema: Shape.mixed.schema,
            columns: [Column("user_id", dataType: "bigint", columnType: "bigint(20)", nullable: false),
                      Column("amount", dataType: "double", nullable: false),
                      Column("country", dataType: "varchar", columnType: "varchar(32)", characterMaximumLength: 32,
                             characterOctetLength: 128, charset: "utf8mb4"),
                      Column("ts", dataType: "bigint", columnType: "bigint(20)", nullable: false)],
            upsertKey: nil)
        register("StatementBuilder.append-doubles-strings.\(n)", append, mixed)
    }
}
