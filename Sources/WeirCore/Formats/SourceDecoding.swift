/// The per-record half of a source task: one poll's messages decoded into a
/// batch, through the filters and selects chained behind the source, with
/// each split's event time noted. It lives in the core, beside the decoder,
/// tracker and pipeline it drives, so the whole per-record path compiles
/// (and inlines) as one unit; the engine's source loop calls it once per poll.
package struct SourceDecoding {
    /// A message the decoder refused, as noted inside the poll.
    package struct BadMessage {
        package var split: Int
        package var failure: JSONRowDecoder.Failure
        package var offset: Int64?
        package var bytes: [UInt8]
    }

    package var decoder: JSONRowDecoder
    /// Per-split watermarks and idleness (decided from lag, not silence).
    package var watermarks: PartitionWatermarkTracker
    /// Filters/selects chained behind the source, run inside the decode loop.
    package var pipeline: RowPipeline?
    /// The rows decoded so far (taken by `takeBatch`).
    package private(set) var batch: RecordBatch
    /// Messages refused since the last `takeFailures`.
    package private(set) var failures: [BadMessage] = []
    private let arity: Int
    private let batchArity: Int
    private let capacity: Int

    package init(schema: Schema, eventTimeField: String?, watermarks: PartitionWatermarkTracker, output: Output, batchCapacity: Int) {
        decoder = JSONRowDecoder(schema: schema, eventTimeField: eventTimeField)
        self.watermarks = watermarks
        arity = schema.count
        pipeline = RowPipeline(from: output, sourceArity: arity)
        batchArity = pipeline?.outArity ?? arity
        capacity = batchCapacity
        batch = RecordBatch(arity: batchArity, capacity: batchCapacity)
    }

    /// One poll of `reader`: returns the messages delivered and how many were refused.
    package mutating func poll(_ reader: any SourceReader, maxMessages: Int, timeoutMillis: Int) throws -> (got: Int, bad: Int) {
        var bad = 0
        let got = try reader.poll(maxMessages: maxMessages, timeoutMillis: timeoutMillis) { idx, bytes in
            // Without a fused pipeline the row is decoded straight into the batch.
            let failure = pipeline == nil ? decoder.decodeAppending(bytes, to: &batch.values) : decoder.decodeRow(bytes)
            if let failure {
                // Kept minimal here (the hot closure); handled after the poll.
                bad += 1
                watermarks.touch(idx)
                failures.append(BadMessage(split: idx, failure: failure, offset: reader.offsetOfLastDelivered(split: idx), bytes: Array(bytes)))
                return
            }
            let ts = decoder.timestamp
            watermarks.observe(idx, timestamp: ts)
            if pipeline != nil {
                decoder.withRow { pipeline!.push($0, timestamp: ts, into: &batch) }
            } else {
                batch.timestamps.append(ts)
            }
        }
        if pipeline != nil { pipeline!.countBatch(rows: got - bad) }
        return (got, bad)
    }

    /// The rows decoded since the last call (a fresh batch takes their place).
    package mutating func takeBatch() -> RecordBatch {
        let b = batch
        batch = RecordBatch(arity: batchArity, capacity: capacity)
        return b
    }

    package mutating func takeFailures() -> [BadMessage] {
        let f = failures
        failures.removeAll()
        return f
    }
}
