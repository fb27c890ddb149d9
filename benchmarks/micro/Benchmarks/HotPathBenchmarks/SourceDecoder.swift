import Benchmark
@_spi(Benchmarks) import WeirCore

/// The source decoder: one poll's JSON messages into a `RecordBatch`, through
/// the per-record path a source subtask runs (`SourceDecoding`: the JSON row
/// decoder, per-split event times, the batch append), and the batch taken.
func sourceDecoderBenchmarks() {
    for shape in Shape.allCases {
        for n in MicroBench.batchSizes {
            let reader = MessageReader(Inputs.messages(shape, count: n))
            var decoding = HotPath.Decoding(schema: shape.schema, eventTimeField: "ts", splits: reader.splitNames.count,
                                            maxOutOfOrdernessMillis: 1000, batchCapacity: n)
            Benchmark("SourceDecoder.\(shape.name).\(n)", configuration: MicroBench.configuration) { benchmark in
                reader.rewind()
                benchmark.startMeasurement()
                let (got, bad) = try decoding.poll(reader, maxMessages: n)
                let batch = decoding.takeBatch()
                benchmark.stopMeasurement()
                guard got == n, bad == 0, batch.count == n else {
                    benchmark.error("decoded \(batch.count) of \(got) messages, \(bad) refused")
                    return
                }
                blackHole(batch)
            }
        }
    }
}
