import Benchmark
@_spi(Benchmarks) import WeirCore

/// The key exchange: a decoded batch split by key group (`keyBy user_id`,
/// maxParallelism 128) into one part per downstream subtask, each part sent
/// to that subtask's inbox (here a queue that only counts rows). As in the
/// engine, the exchange is handed a batch no one else holds (its rows are
/// moved into the parts); that fresh copy is made outside the measurement.
func keyExchangeBenchmarks() {
    for subtasks in [2, 4] {
        for n in MicroBench.batchSizes {
            let batch = try! Inputs.batch(.w1, count: n)
            let queues = (0..<subtasks).map { _ in DropQueue() }
            let exchange = HotPath.Exchange(channels: queues, keyFields: [0], maxParallelism: 128, arity: batch.arity)
            Benchmark("KeyExchange.w1-to-\(subtasks)-subtasks.\(n)", configuration: MicroBench.configuration) { benchmark in
                var own = batch
                own.values = batch.values.withUnsafeBufferPointer { Array($0) }
                own.timestamps = batch.timestamps.withUnsafeBufferPointer { Array($0) }
                var slot: RecordBatch? = own
                own = RecordBatch(arity: batch.arity)
                benchmark.startMeasurement()
                try exchange.send(slot.take()!)   // handed over, as Output.emit does
                benchmark.stopMeasurement()
            }
        }
    }
}
