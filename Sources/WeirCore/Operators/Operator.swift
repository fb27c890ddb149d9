/// A step of a pipeline, run by one subtask on one thread. Operators get
/// whole batches and emit whole batches; control signals arrive as calls.
public protocol StreamOperator: AnyObject {
    /// Processes one batch, emitting results into `out`.
    func process(_ batch: RecordBatch, _ out: Output) throws
    /// The combined watermark of this subtask's inputs advanced to `wm`.
    func watermark(_ wm: Int64, _ out: Output) throws
    /// All inputs ended: emit what remains (open windows fire).
    func finish(_ out: Output) throws
}

extension StreamOperator {
    public func watermark(_ wm: Int64, _ out: Output) throws { out.emitWatermark(wm) }
    public func finish(_ out: Output) throws {}
}

/// Where a subtask's results go: operators chained into the same thread,
/// or channels to other subtasks (forward or partitioned by key group).
public final class Output {
    package enum Target {
        case chained(any StreamOperator, Output)
        case forward(any ElementQueue, input: Int)
        case keyed(KeyedExchange)
    }

    package var targets: [Target] = []
    /// Records out of the node this output belongs to (one add per batch).
    package var counter: Counter?
    /// Where the node's watermark is shown, and which subtask this output belongs to.
    package var watermarkGauge: WatermarkGauge?
    package var subtask = 0
    /// Arrival of the batch this subtask's thread is working on, stamped on
    /// batches that leave the thread (nil: not tracked, as in unit tests).
    package var arrival: ArrivalStamp?

    public init() {}

    /// Counts records the node produced without emitting them here (a sink's
    /// writes, or rows a fused pipeline passed on for it).
    @inline(__always) package func count(_ n: Int) { if n > 0 { counter?.add(n) } }

    /// Emits `batch` to every target. It is taken (`consuming`): a keyed
    /// exchange that is the last target gets the only reference, so it can move
    /// the rows into their parts instead of copying them.
    public func emit(_ batch: consuming RecordBatch) throws {
        if batch.isEmpty { return }
        counter?.add(batch.count)
        if let arrival { batch.arrivalNanos = arrival.nanos }
        let last = targets.count - 1
        for (k, t) in targets.enumerated() {
            switch t {
            case .chained(let op, let out): try op.process(batch, out)
            case .forward(let ch, let input): if !ch.send(input, .batch(copy batch)) { throw CancellationError() }
            case .keyed(let ex):
                if k == last {
                    var taken = RecordBatch(arity: batch.arity)
                    swap(&taken, &batch)
                    try ex.send(taken)
                } else {
                    try ex.send(copy batch)
                }
            }
        }
    }

    public func emitWatermark(_ wm: Int64) {
        watermarkGauge?.set(subtask, wm)
        for t in targets {
            switch t {
            case .chained(let op, let out): try? op.watermark(wm, out)
            case .forward(let ch, let input): ch.send(input, .watermark(wm))
            case .keyed(let ex): ex.broadcast(.watermark(wm))
            }
        }
    }

    public func emitIdle() {
        for t in targets {
            switch t {
            case .chained(_, let out): out.emitIdle()
            case .forward(let ch, let input): ch.send(input, .idle)
            case .keyed(let ex): ex.broadcast(.idle)
            }
        }
    }

    /// Barriers and stops pass through chained (stateless) operators unchanged.
    public func emitControl(_ e: StreamElement) throws {
        for t in targets {
            switch t {
            case .chained(_, let out): try out.emitControl(e)
            case .forward(let ch, let input): if !ch.send(input, e) { throw CancellationError() }
            case .keyed(let ex): ex.broadcast(e)
            }
        }
    }

    /// Rejected records for the dead-letter table: passed through chained
    /// operators; a keyed exchange sends them to one subtask only.
    public func emitRejects(_ rs: [RejectedRecord]) throws {
        if rs.isEmpty { return }
        for t in targets {
            switch t {
            case .chained(_, let out): try out.emitRejects(rs)
            case .forward(let ch, let input): if !ch.send(input, .rejects(rs)) { throw CancellationError() }
            case .keyed(let ex):
                if !ex.channels[ex.input % ex.channels.count].send(ex.input, .rejects(rs)) { throw CancellationError() }
            }
        }
    }

    /// End of stream: chained operators finish first, then channels get `.end`.
    public func emitEnd() throws {
        for t in targets {
            switch t {
            case .chained(let op, let out):
                try op.finish(out)
                try out.emitEnd()
            case .forward(let ch, let input): ch.send(input, .end)
            case .keyed(let ex): ex.broadcast(.end)
            }
        }
    }
}

/// Splits batches by key group and sends each part to the subtask that owns it.
///
/// Two passes per batch: the first hashes each row's key once and notes its
/// subtask (and how many rows each gets), the second moves each part's rows
/// into arrays allocated at their exact size (copies them when the caller
/// still shares the batch). No per-row growth checks, no per-row access to
/// this object's properties, no per-value retain/release on the way.
public final class KeyedExchange {
    package let channels: [any ElementQueue]
    package let input: Int
    package let keyFields: [Int]
    package let maxParallelism: Int
    /// The subtask of each row of the batch being split, and how many rows each
    /// subtask gets (both reused between batches: nothing allocated per batch).
    private var targets: [UInt32] = []
    private var counts: [Int] = []
    /// The parts of the batch being split, one per subtask (the array reused).
    private var parts: [RecordBatch] = []

    package init(channels: [any ElementQueue], input: Int, keyFields: [Int], maxParallelism: Int, arity: Int) {
        self.channels = channels
        self.input = input
        self.keyFields = keyFields
        self.maxParallelism = maxParallelism
    }

    package func send(_ batch: consuming RecordBatch) throws {
        let n = channels.count
        if n == 1 {
            if !channels[0].send(input, .batch(batch)) { throw CancellationError() }
            return
        }
        let arity = batch.arity, rows = batch.count
        if rows == 0 { return }
        let keyFields = self.keyFields, maxParallelism = self.maxParallelism
        var targets = self.targets, counts = self.counts, parts = self.parts
        self.targets = []
        self.counts = []
        self.parts = []
        defer { parts.removeAll(keepingCapacity: true); self.targets = targets; self.counts = counts; self.parts = parts }
        targets.removeAll(keepingCapacity: true)
        targets.reserveCapacity(rows)
        counts.removeAll(keepingCapacity: true)
        counts.append(contentsOf: repeatElement(0, count: n))
        batch.values.withUnsafeBufferPointer { vals in
            guard let base = vals.baseAddress else { return }
            for r in 0..<rows {
                let h = KeyGroups.keyHash(base + r * arity, keyFields)
                let kg = KeyGroups.keyGroup(hash: h, maxParallelism: maxParallelism)
                let t = KeyGroups.subtask(keyGroup: kg, parallelism: n, maxParallelism: maxParallelism)
                targets.append(UInt32(truncatingIfNeeded: t))
                counts[t] += 1
            }
        }
        if let whole = counts.firstIndex(of: rows) {
            // Every row goes to one subtask: the batch goes as it is.
            if !channels[whole].send(input, .batch(batch)) { throw CancellationError() }
            return
        }
        // Each row's values are moved (not copied) into its part; the emptied
        // slots are then filled with nulls, so that the batch's array frees
        // without releasing anything twice. The array is unique here when the
        // caller handed it over (`Output.emit`); otherwise this copies it first.
        batch.values.withUnsafeMutableBufferPointer { vals in
            guard let v = vals.baseAddress else { return }
            targets.withUnsafeBufferPointer { tg in
                batch.timestamps.withUnsafeBufferPointer { ts in
                    for i in 0..<n {
                        let want = UInt32(truncatingIfNeeded: i), count = counts[i]
                        var part = RecordBatch(arity: arity)
                        part.arrivalNanos = batch.arrivalNanos
                        if count > 0 {
                            part.values = Array(unsafeUninitializedCapacity: count * arity) { out, initialized in
                                guard var o = out.baseAddress else { return }
                                for r in 0..<rows where tg[r] == want {
                                    o.moveInitialize(from: v + r * arity, count: arity)
                                    o += arity
                                }
                                initialized = count * arity
                            }
                            part.timestamps = Array(unsafeUninitializedCapacity: count) { out, initialized in
                                var k = 0
                                for r in 0..<rows where tg[r] == want { out[k] = ts[r]; k += 1 }
                                initialized = count
                            }
                        }
                        parts.append(part)
                    }
                }
            }
            v.initialize(repeating: .null, count: rows * arity)
        }
        for i in 0..<n where counts[i] > 0 {
            if !channels[i].send(input, .batch(parts[i])) { throw CancellationError() }
        }
    }

    package func broadcast(_ e: StreamElement) {
        for c in channels { c.send(input, e) }
    }
}

package struct CancellationError: Error {}
