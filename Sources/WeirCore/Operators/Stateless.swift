/// `filter`: keeps the records whose compiled condition is true.
package final class FilterOperator: StreamOperator {
    package let condition: CompiledExpr
    package init(_ c: CompiledExpr) { condition = c }

    package func process(_ batch: RecordBatch, _ out: Output) throws {
        var kept = RecordBatch(arity: batch.arity, capacity: batch.count)
        let eval = condition.eval, arity = batch.arity
        batch.values.withUnsafeBufferPointer { vals in
            for r in 0..<batch.count where eval(vals.baseAddress! + r * arity).isTrue {
                kept.append(rowOf: batch, r)
            }
        }
        try out.emit(kept)
    }
}

/// `select`: computes a new row from compiled expressions (projection when
/// they are plain field references). Event timestamps are carried along.
package final class SelectOperator: StreamOperator {
    package let exprs: [CompiledExpr]
    package let fieldOnly: [Int]?
    package init(_ e: [CompiledExpr]) {
        exprs = e
        let idx = e.compactMap(\.fieldIndex)
        fieldOnly = idx.count == e.count ? idx : nil
    }

    package func process(_ batch: RecordBatch, _ out: Output) throws {
        let arity = batch.arity, n = exprs.count
        var res = RecordBatch(arity: n, capacity: batch.count)
        res.timestamps = batch.timestamps
        res.values.reserveCapacity(batch.count * n)
        batch.values.withUnsafeBufferPointer { vals in
            if let f = fieldOnly {
                for r in 0..<batch.count {
                    let base = r * arity
                    for i in f { res.values.append(vals[base + i]) }
                }
            } else {
                for r in 0..<batch.count {
                    let row = vals.baseAddress! + r * arity
                    for e in exprs { res.values.append(e.eval(row)) }
                }
            }
        }
        try out.emit(res)
    }
}

/// `union`: several inputs, one output (the inbox already merged them).
package final class UnionOperator: StreamOperator {
    package init() {}
    package func process(_ batch: RecordBatch, _ out: Output) throws { try out.emit(batch) }
}

/// Terminal operator handing batches to a connector's sink writer.
package final class SinkOperator: StreamOperator {
    package let writer: any SinkWriter
    package let metrics: JobMetrics
    /// Rows written and not yet committed, by arrival (only when latency is measured).
    package var latency: SinkLatencyTracker?
    package init(writer: any SinkWriter, metrics: JobMetrics) { self.writer = writer; self.metrics = metrics }

    package func process(_ batch: RecordBatch, _ out: Output) throws {
        try writer.write(batch)
        latency?.wrote(rows: batch.count, arrival: batch.arrivalNanos)
        metrics.recordsOut.add(batch.count)
        out.count(batch.count)
    }
    /// Nothing downstream: only shown as the sink's watermark.
    package func watermark(_ wm: Int64, _ out: Output) throws { out.emitWatermark(wm) }
    package func finish(_ out: Output) throws { try writer.flush() }
}
