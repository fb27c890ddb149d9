/// Entry points for the allocation micro-benchmarks (`benchmarks/micro`), a
/// separate package that cannot see `package` declarations. Each wraps the
/// very type the engine runs, built as the engine builds it; none copies its
/// logic, so what the benchmarks count is what a job does per batch.
///
/// Not API: visible only to `@_spi(Benchmarks) import WeirCore`.
@_spi(Benchmarks) public enum HotPath {
    /// A source subtask's per-record path (`SourceDecoding`, as `SourceLoop`
    /// drives it): messages decoded into a batch, event times noted per split.
    /// No filters or selects are chained behind it (the W1 shape).
    public struct Decoding {
        private var decoding: SourceDecoding

        public init(schema: Schema, eventTimeField: String?, splits: Int, maxOutOfOrdernessMillis: Int64, batchCapacity: Int) {
            let watermarks = PartitionWatermarkTracker(restored: Array(repeating: .min, count: splits),
                                                       maxOutOfOrdernessMillis: maxOutOfOrdernessMillis, idleTimeoutMillis: 0)
            decoding = SourceDecoding(schema: schema, eventTimeField: eventTimeField, watermarks: watermarks,
                                      output: Output(), batchCapacity: batchCapacity)
        }

        /// One poll of `reader`: the messages delivered and how many were refused.
        public mutating func poll(_ reader: any SourceReader, maxMessages: Int) throws -> (got: Int, bad: Int) {
            try decoding.poll(reader, maxMessages: maxMessages, timeoutMillis: 0)
        }

        /// The rows decoded since the last call (a fresh batch takes their place).
        public mutating func takeBatch() -> RecordBatch { decoding.takeBatch() }
    }

    /// The key exchange between a node and its keyed downstream (`KeyedExchange`):
    /// a batch split by key group among `channels`, one part per subtask.
    public struct Exchange {
        private let exchange: KeyedExchange

        public init(channels: [any ElementQueue], keyFields: [Int], maxParallelism: Int, arity: Int) {
            exchange = KeyedExchange(channels: channels, input: 0, keyFields: keyFields, maxParallelism: maxParallelism, arity: arity)
        }

        /// Takes `batch` as the engine hands it over: rows are moved when no one else holds it.
        public func send(_ batch: consuming RecordBatch) throws { try exchange.send(batch) }
    }

    /// The operator of a `keyBy` + `aggregate` node, as `JobRunner.aggregateOperator`
    /// builds it: a `WindowAggregateOperator` with a window, else a `ContinuousAggregateOperator`.
    public static func aggregateOperator(keyFields: [Int], window: WindowSpec?, aggregates: [AggregateSpec],
                                         outArity: Int, metrics: JobMetrics) -> any StreamOperator {
        if let window {
            return WindowAggregateOperator(keyFields: keyFields, window: window, aggregates: aggregates, outArity: outArity, metrics: metrics)
        }
        return ContinuousAggregateOperator(keyFields: keyFields, aggregates: aggregates, outArity: outArity)
    }
}
