import Benchmark

/// Allocation micro-benchmarks of the per-record hot path, one group per
/// stage (names are `Stage.case.records-per-batch`, without
/// spaces or slashes: the benchmark tool reads a threshold file by the name as is):
/// - `SourceDecoder`: JSON messages decoded into a batch (SourceDecoder.swift)
/// - `KeyExchange`: a batch split by key group among downstream subtasks (KeyExchange.swift)
/// - `Aggregation`: a batch folded into window and continuous aggregates (Aggregation.swift)
/// - `StatementBuilder`: a batch rendered into MySQL INSERT statements (StatementBuilder.swift)
/// One executable for all four: each `swift package benchmark` build step is per target.
let benchmarks: @Sendable () -> Void = {
    sourceDecoderBenchmarks()
    keyExchangeBenchmarks()
    aggregationBenchmarks()
    statementBuilderBenchmarks()
}
