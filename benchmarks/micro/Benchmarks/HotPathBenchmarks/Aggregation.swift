import Benchmark
@_spi(Benchmarks) import WeirCore

/// Aggregation: a decoded batch folded into the keyed aggregate operator, as
/// the engine builds it for `keyBy user_id` + `aggregate`, in steady state
/// (every key already has its accumulators: the batch was folded once before
/// measuring; the watermark does not move, so no window fires).
/// - tumbling: W1's `window: { tumbling: 10s }`, `cnt: count()`, `total: sum(amount)`
/// - session: `window: { session: 30s }` with the same aggregates
/// - continuous: no window (the state benchmark's job); emits each touched key's new result per batch
/// - tumbling, doubles: `sum`, `max` and `avg` of a double field
func aggregationBenchmarks() {
    struct Case {
        var name: String
        var shape: Shape
        var window: WindowSpec?
        var aggregates: [(String, String)]
    }
    let w1 = [("cnt", "count()"), ("total", "sum(amount)")]
    let cases = [
        Case(name: "tumbling-10s-w1", shape: .w1, window: .tumbling(size: 10_000), aggregates: w1),
        Case(name: "session-30s-w1", shape: .w1, window: .session(gap: 30_000), aggregates: w1),
        Case(name: "continuous-w1", shape: .w1, window: nil, aggregates: w1),
        Case(name: "tumbling-10s-doubles", shape: .mixed, window: .tumbling(size: 10_000),
             aggregates: [("cnt", "count()"), ("total", "sum(amount)"), ("biggest", "max(amount)"), ("mean", "avg(amount)")]),
    ]
    for c in cases {
        for n in MicroBench.batchSizes {
            let schema = c.shape.schema
            let aggregates = try! c.aggregates.map { try AggregateSpec.compile(name: $0.0, $0.1, schema: schema) }
            let outArity = 1 + (c.window == nil ? 0 : 2) + aggregates.count
            let op = HotPath.aggregateOperator(keyFields: [0], window: c.window, aggregates: aggregates,
                                               outArity: outArity, metrics: JobMetrics())
            let out = Output()
            let batch = try! Inputs.batch(c.shape, count: n)
            try! op.process(batch, out)
            Benchmark("Aggregation.\(c.name).\(n)", configuration: MicroBench.configuration) { benchmark in
                try op.process(batch, out)
            }
        }
    }
}
