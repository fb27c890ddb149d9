import Foundation
import Synchronization

/// How a run behaves; defaults suit production, tests and benchmarks tune them.
public struct RunOptions: Sendable {
    /// End the run once every split has been at its end for this long (the
    /// input is then complete: every open window fires and sinks commit).
    public var untilIdleMillis: Int64?
    /// Batches each subtask inbox holds before producers block.
    public var channelCapacity = 8
    /// Messages a source asks its reader for per poll (the batch size).
    public var pollBatchSize = 4096
    /// How often sinks commit what they have written.
    public var sinkFlushIntervalMillis: Int64 = 1_000
    /// Receives human-readable log lines (decode errors, lifecycle).
    public var log: @Sendable (String) -> Void = { _ in }

    public init() {}
}

/// How a run ended.
public enum RunOutcome: Sendable, Equatable {
    /// The input was complete (`untilIdle`) and all output is committed.
    case finished
    /// `cancel()` was called; uncommitted output was rolled back.
    case cancelled
}

/// Executes a `JobPlan`: every node as `parallelism` subtasks on their own
/// threads, stateless operators chained into their input's thread, bounded
/// channels between the rest, keyed exchanges partitioned by key group.
///
/// The runner knows connectors only through `SourceConnector`/`SinkConnector`.
public final class JobRunner: Sendable {
    public let plan: JobPlan
    public let options: RunOptions
    public let metrics = JobMetrics()

    private struct State {
        var error: (any Error)?
        var cancelled = false
        var channels: [Channel] = []
    }
    private let state = Mutex(State())
    private let stopFlag = Atomic<Bool>(false)

    public init(plan: JobPlan, options: RunOptions = RunOptions()) {
        self.plan = plan
        self.options = options
    }

    /// Stops the run as soon as possible without committing pending output.
    public func cancel() {
        let chans = state.withLock { s -> [Channel] in s.cancelled = true; return s.channels }
        stopFlag.store(true, ordering: .relaxed)
        chans.forEach { $0.cancel() }
    }

    private func fail(_ e: any Error) {
        let chans = state.withLock { s -> [Channel] in
            if s.error == nil && !(e is CancellationError) { s.error = e }
            return s.channels
        }
        stopFlag.store(true, ordering: .relaxed)
        chans.forEach { $0.cancel() }
    }

    /// Runs the job on the calling thread until it finishes, is cancelled or fails.
    public func run() throws -> RunOutcome {
        let p = plan.parallelism
        // 1. Check sinks and discover source splits before starting anything.
        var splitsBySource: [Int: [String]] = [:]
        for (i, n) in plan.nodes.enumerated() {
            switch n.kind {
            case .sink(_, let sink): try sink.check(schema: n.schema)
            case .source(_, let src, _): splitsBySource[i] = try src.discoverSplits()
            default: break
            }
        }

        // 2. Decide which nodes get their own inbox and which are chained.
        let consumers: [[Int]] = plan.nodes.indices.map { i in plan.nodes.indices.filter { plan.nodes[$0].inputs.contains(i) } }
        func chained(_ i: Int) -> Bool {
            let n = plan.nodes[i]
            switch n.kind {
            case .filter, .select: return n.inputs.count == 1
            default: return false
            }
        }
        var inbox: [Int: [Channel]] = [:]
        for (i, n) in plan.nodes.enumerated() where !n.isSource && !chained(i) {
            inbox[i] = (0..<p).map { _ in Channel(capacity: options.channelCapacity) }
        }
        state.withLock { $0.channels = inbox.values.flatMap { $0 } }

        // 3. Instantiate operators and wire outputs, per subtask.
        var writers: [any SinkWriter] = []
        defer { writers.forEach { $0.close() } }
        var ops: [[(any StreamOperator)?]] = Array(repeating: Array(repeating: nil, count: p), count: plan.nodes.count)
        var outs: [[Output]] = plan.nodes.map { _ in (0..<p).map { _ in Output() } }
        for (i, n) in plan.nodes.enumerated() {
            for j in 0..<p {
                switch n.kind {
                case .source: break
                case .filter(let c): ops[i][j] = FilterOperator(c)
                case .select(let cs): ops[i][j] = SelectOperator(cs)
                case .union: ops[i][j] = UnionOperator()
                case .aggregate(let keys, let window, let aggs):
                    if let window {
                        ops[i][j] = WindowAggregateOperator(keyFields: keys, window: window, aggregates: aggs,
                                                            outArity: n.schema.count, metrics: metrics)
                    } else {
                        ops[i][j] = ContinuousAggregateOperator(keyFields: keys, aggregates: aggs, outArity: n.schema.count)
                    }
                case .sink(_, let sink):
                    let w = try sink.openWriter(subtask: j, schema: n.schema)
                    writers.append(w)
                    ops[i][j] = SinkOperator(writer: w, metrics: metrics)
                }
            }
        }
        for (i, n) in plan.nodes.enumerated() {
            for c in consumers[i] {
                let cn = plan.nodes[c]
                let edge = cn.inputs.firstIndex(of: i)!
                for j in 0..<p {
                    let out = outs[i][j]
                    if chained(c) {
                        out.targets.append(.chained(ops[c][j]!, outs[c][j]))
                    } else if case .aggregate(let keys, _, _) = cn.kind {
                        out.targets.append(.keyed(KeyedExchange(channels: inbox[c]!, input: edge * p + j, keyFields: keys,
                                                                maxParallelism: plan.maxParallelism, arity: n.schema.count)))
                    } else {
                        out.targets.append(.forward(inbox[c]![j], input: edge))  // forward: subtask j → j only
                    }
                }
            }
        }

        // 4. Start one thread per source subtask and per inbox subtask.
        var tasks: [@Sendable () throws -> Void] = []
        for (i, n) in plan.nodes.enumerated() {
            if case .source(_, let src, let eventTime) = n.kind {
                let splits = splitsBySource[i] ?? []
                for j in 0..<p {
                    let mine = splits.indices.filter { $0 % p == j }
                    let task = SourceTask(node: n, connector: src, splitIndices: mine, eventTime: eventTime,
                                          output: outs[i][j], options: options, metrics: metrics, stop: { [self] in
                                              stopFlag.load(ordering: .relaxed) })
                    tasks.append(task.run)
                }
            } else if let chans = inbox[i] {
                for j in 0..<p {
                    // Keyed inboxes hear from every upstream subtask, forward ones from the same index only.
                    let keyed: Bool = { if case .aggregate = n.kind { return true } else { return false } }()
                    let task = InboxTask(channel: chans[j], inputs: n.inputs.count * (keyed ? p : 1), op: ops[i][j]!, output: outs[i][j],
                                         flushIntervalMillis: n.isSink ? options.sinkFlushIntervalMillis : nil)
                    tasks.append(task.run)
                }
            }
        }
        options.log("started \(plan.name): \(plan.nodes.count) nodes × \(p) subtasks, \(tasks.count) threads")
        let group = DispatchGroup()
        for t in tasks {
            group.enter()
            let thread = Thread { [self] in
                do { try t() } catch { fail(error) }
                group.leave()
            }
            thread.stackSize = 4 << 20
            thread.start()
        }
        group.wait()
        let final = state.withLock { ($0.error, $0.cancelled) }
        if let e = final.0 { throw e }
        return final.1 ? .cancelled : .finished
    }
}

/// Wraps a non-Sendable reference so it can be handed to the thread that
/// owns it. Safe because each wrapped object is used by exactly one thread.
struct Unshared<T>: @unchecked Sendable { let value: T }

/// The loop of one source subtask: poll → decode → chained operators,
/// per-split watermarks with idleness, end-of-input detection.
final class SourceTask: @unchecked Sendable {
    // @unchecked: the task is created on the runner thread and then used only by its own thread.
    let node: PlannedNode
    let connector: any SourceConnector
    let splitIndices: [Int]
    let eventTime: EventTimeSpec?
    let output: Output
    let options: RunOptions
    let metrics: JobMetrics
    let stop: @Sendable () -> Bool

    init(node: PlannedNode, connector: any SourceConnector, splitIndices: [Int], eventTime: EventTimeSpec?,
         output: Output, options: RunOptions, metrics: JobMetrics, stop: @escaping @Sendable () -> Bool) {
        self.node = node; self.connector = connector; self.splitIndices = splitIndices; self.eventTime = eventTime
        self.output = output; self.options = options; self.metrics = metrics; self.stop = stop
    }

    func run() throws {
        let reader = try connector.openReader(splits: splitIndices)
        defer { reader.close() }
        var decoder = JSONRowDecoder(schema: node.schema, eventTimeField: eventTime?.field)
        let n = reader.splitNames.count
        var splitMax = [Int64](repeating: .min, count: n)
        var lastActive = [UInt64](repeating: DispatchTime.now().uptimeNanoseconds, count: n)
        var touched = [Bool](repeating: false, count: n)
        var emitted = Int64.min
        var idle = false
        var atEndSince: UInt64?
        var lastProgress: UInt64 = 0
        var errorsLogged = 0
        let arity = node.schema.count
        let ooo = eventTime?.maxOutOfOrdernessMillis ?? 0
        let idleNanos = UInt64(max(0, eventTime?.idleTimeoutMillis ?? 0)) * 1_000_000
        let untilIdleNanos = options.untilIdleMillis.map { UInt64(max(0, $0)) * 1_000_000 }
        var batch = RecordBatch(arity: arity, capacity: options.pollBatchSize)

        while !stop() {
            var bad = 0
            let got = try reader.poll(maxMessages: options.pollBatchSize, timeoutMillis: 50) { idx, bytes in
                if let failure = decoder.decode(bytes, into: &batch) {
                    bad += 1
                    if errorsLogged < 5 {
                        errorsLogged += 1
                        let what = failure == .malformed ? "is not a JSON object" :
                            (failure == .typeMismatch ? "has a value of the wrong type" : "has no numeric '\(eventTime?.field ?? "")'")
                        options.log("\(node.id): skipped a record of \(reader.splitNames[idx]) that \(what)")
                    }
                } else {
                    touched[idx] = true
                    let ts = batch.timestamps[batch.count - 1]
                    if ts > splitMax[idx] { splitMax[idx] = ts }
                }
            }
            if got > 0 { metrics.recordsIn.add(got) }
            if bad > 0 { metrics.decodeErrors.add(bad) }
            if !batch.isEmpty {
                try output.emit(batch)
                batch = RecordBatch(arity: arity, capacity: options.pollBatchSize)
            }
            let now = DispatchTime.now().uptimeNanoseconds
            if eventTime != nil {
                var wm = Int64.max
                var anyActive = false
                for k in 0..<n {
                    if touched[k] { lastActive[k] = now; touched[k] = false }
                    if now &- lastActive[k] < idleNanos {
                        anyActive = true
                        let w = splitMax[k] == .min ? .min : splitMax[k] - ooo - 1
                        wm = min(wm, w)
                    }
                }
                if anyActive {
                    idle = false
                    if wm > emitted && wm != .min { emitted = wm; output.emitWatermark(wm) }
                } else if !idle {
                    // Every split is idle: nothing holds the watermark back any more, so
                    // advance it to the furthest split before declaring the input idle.
                    let furthest = splitMax.max() ?? .min
                    if furthest != .min, furthest - ooo - 1 > emitted { emitted = furthest - ooo - 1; output.emitWatermark(emitted) }
                    idle = true
                    output.emitIdle()
                }
            }
            if now &- lastProgress > 200_000_000 || got == 0 {
                lastProgress = now
                let progress = reader.progress()
                metrics.update(progress)
                if let limit = untilIdleNanos {
                    if progress.allSatisfy(\.atEnd) {
                        if atEndSince == nil { atEndSince = now }
                        if now &- atEndSince! >= limit {
                            let waited = now &- atEndSince!
                            var cur = metrics.idleWaitNanos.load(ordering: .relaxed)
                            while waited > cur {
                                let (done, orig) = metrics.idleWaitNanos.compareExchange(expected: cur, desired: waited, ordering: .relaxed)
                                if done { break }
                                cur = orig
                            }
                            break
                        }
                    } else {
                        atEndSince = nil
                    }
                }
            }
        }
        if stop() { return }
        // Input complete: everything still open may fire.
        if eventTime != nil { output.emitWatermark(Int64.max - 1) }
        try output.emitEnd()
    }
}

/// The loop of one subtask that has an inbox: merges inputs, tracks the
/// minimum watermark over live inputs, and drives its operator chain.
final class InboxTask: @unchecked Sendable {
    // @unchecked: used only by its own thread once started.
    let channel: Channel
    let inputs: Int
    let op: any StreamOperator
    let output: Output
    let flushIntervalMillis: Int64?

    init(channel: Channel, inputs: Int, op: any StreamOperator, output: Output, flushIntervalMillis: Int64?) {
        self.channel = channel; self.inputs = inputs; self.op = op; self.output = output
        self.flushIntervalMillis = flushIntervalMillis
    }

    func run() throws {
        var wms = [Int64](repeating: .min, count: inputs)
        var idle = [Bool](repeating: false, count: inputs)
        var ended = [Bool](repeating: false, count: inputs)
        var endedCount = 0
        var combined = Int64.min
        var idleSent = false
        let sink = op as? SinkOperator
        var lastFlush = Date()
        let interval = Double(flushIntervalMillis ?? 1000) / 1000

        func recompute() throws {
            var wm = Int64.max
            var active = false
            for k in 0..<inputs where !ended[k] && !idle[k] { active = true; wm = min(wm, wms[k]) }
            if !active {
                if endedCount < inputs && !idleSent { idleSent = true; output.emitIdle() }
                return
            }
            idleSent = false
            if wm > combined && wm != .min { combined = wm; try op.watermark(wm, output) }
        }

        while true {
            let received: Channel.Received
            if sink != nil { received = channel.receive(before: lastFlush.addingTimeInterval(interval)) }
            else { received = channel.receive().map { .element($0.0, $0.1) } ?? .cancelled }
            switch received {
            case .cancelled: return
            case .timeout: break
            case .element(let i, let e):
                switch e {
                case .batch(let b):
                    if idle[i] { idle[i] = false; try recompute() }
                    try op.process(b, output)
                case .watermark(let w):
                    idle[i] = false
                    if w > wms[i] { wms[i] = w }
                    try recompute()
                case .idle:
                    idle[i] = true
                    try recompute()
                case .end:
                    if !ended[i] { ended[i] = true; endedCount += 1 }
                    if endedCount == inputs {
                        try op.finish(output)
                        try output.emitEnd()
                        return
                    }
                    try recompute()
                }
            }
            if let sink, Date().timeIntervalSince(lastFlush) >= interval {
                try sink.writer.flush()
                lastFlush = Date()
            }
        }
    }
}
