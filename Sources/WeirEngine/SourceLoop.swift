import WeirCore
/// The checkpoint coordinator as tasks see it. The live run's
/// `CheckpointCoordinator` provides it, and so does the deterministic
/// simulator, which drives the same task code without threads.
protocol CheckpointCoordination: AnyObject, Sendable {
    /// The barrier to inject now, if any newer than `after`.
    func barrier(after: Int64) -> Barrier?
    func ack(_ barrier: Barrier, _ a: TaskAck)
    /// How long all of a source task's splits have been at their end (nil: some split has lag).
    func sourceAtEnd(_ task: TaskID, atEndFor nanos: UInt64?)
    /// Checkpoint `id`'s outcome, if known (never blocks).
    func outcome(of id: Int64) -> CheckpointCoordinator.Outcome?
    /// Blocks until checkpoint `id`'s outcome is known; nil if the run shuts down first.
    func waitForOutcome(_ id: Int64) -> CheckpointCoordinator.Outcome?
    /// Highest completed checkpoint id (sinks commit up to it).
    var completedCheckpoint: Int64 { get }
    /// Registers a listener called with each completed checkpoint id (sinks wake up to commit).
    func onCompleted(_ listener: @escaping @Sendable (Int64) -> Void)
}

/// What one step of a source loop did.
enum SourceStep: Equatable {
    /// Polled (records or not); call `step` again.
    case polled
    /// A stop or drain barrier went out: step again once its outcome is known.
    case awaiting(Int64)
    /// The source ended at a completed stop or drain.
    case ended
}

/// One source subtask's loop body, one poll per `step`: barriers between
/// polls, decode and chained operators inside the poll, then watermarks and
/// end-of-input. A value the thread (`SourceTask.run`) or the simulator steps;
/// time comes from `clock`, the coordinator through `CheckpointCoordination`.
struct SourceLoop {
    let task: SourceTask
    let reader: any SourceReader
    let coordination: any CheckpointCoordination
    let clock: () -> UInt64
    private var decoder: JSONRowDecoder
    private let names: [String]
    private let topics: [(String?, Int32?)]
    /// Per-split watermarks and idleness (decided from lag, not silence).
    var watermarks: PartitionWatermarkTracker
    private var lastLoop: UInt64
    private var lastProgress: UInt64 = 0
    private var atEndNanos: UInt64 = 0
    private var rejected: [RejectedRecord] = []
    private var failures: [SourceTask.BadMessage] = []
    private var lastBarrier: Int64 = -1
    private var awaiting: Barrier?
    private var emptyPolls = 0
    private var sentFirst = false
    private let arity: Int
    /// Filters/selects chained behind the source run inside the decode loop.
    private var pipeline: RowPipeline?
    private let batchArity: Int
    private var batch: RecordBatch

    init(task: SourceTask, reader: any SourceReader, coordination: any CheckpointCoordination, clock: @escaping () -> UInt64) {
        self.task = task; self.reader = reader; self.coordination = coordination; self.clock = clock
        let eventTime = task.eventTime
        decoder = JSONRowDecoder(schema: task.node.schema, eventTimeField: eventTime?.field)
        names = reader.splitNames
        topics = names.map(SourceTask.topicPartition)
        watermarks = PartitionWatermarkTracker(restored: names.map { task.restoredWatermarks[$0] ?? .min },
                                               maxOutOfOrdernessMillis: eventTime?.maxOutOfOrdernessMillis ?? 0,
                                               idleTimeoutMillis: eventTime?.idleTimeoutMillis ?? 0)
        #if WEIR_BUG_SWITCHES
        watermarks.bugs = task.injectedBugs
        #endif
        lastLoop = clock()
        arity = task.node.schema.count
        pipeline = RowPipeline(from: task.output, sourceArity: arity)
        batchArity = pipeline?.outArity ?? arity
        batch = RecordBatch(arity: batchArity, capacity: task.options.pollBatchSize)
    }

    mutating func step() throws -> SourceStep {
        let output = task.output
        if let b = awaiting {
            // Wait for the stop/drain snapshot: if it completes the source ends here, otherwise it goes on.
            switch coordination.outcome(of: b.id) {
            case nil: return .awaiting(b.id)
            case .completed?:
                if b.kind == .drain { try output.emitEnd() } else { try output.emitControl(.stop) }
                return .ended
            case .failed?:
                awaiting = nil
            }
        }
        // A barrier goes out between polls: every record before it is already emitted.
        if let b = coordination.barrier(after: lastBarrier) {
            lastBarrier = b.id
            if b.kind == .drain, task.eventTime != nil { output.emitWatermark(Int64.max - 1) }
            try output.emitControl(.barrier(b))
            var offsets: [String: Int64] = [:]
            for p in reader.progress() where p.nextOffset >= 0 { offsets[p.name] = p.nextOffset }
            var wms: [String: Int64] = [:]
            for k in names.indices where watermarks.maxTimestamp[k] != .min { wms[names[k]] = watermarks.maxTimestamp[k] }
            let blob = SourceTask.encodeWatermarks(wms)
            coordination.ack(b, TaskAck(node: task.node.id, subtask: task.subtask, offsets: offsets, state: { blob }))
            if b.kind == .stop || b.kind == .drain {
                awaiting = b
                return .awaiting(b.id)
            }
            return .polled
        }
        try poll()
        return .polled
    }

    private mutating func poll() throws {
        let task = self.task, output = task.output, options = task.options
        var bad = 0
        // A short wait while records flow keeps barriers prompt; after a few empty
        // polls the wait grows, so an idle job sleeps instead of polling 100 times a second.
        let timeout = emptyPolls < 20 ? 10 : 100
        let got = try reader.poll(maxMessages: options.pollBatchSize, timeoutMillis: timeout) { idx, bytes in
            if let failure = decoder.decodeRow(bytes) {
                // Kept minimal here (the hot closure); handled after the poll.
                bad += 1
                watermarks.touch(idx)
                failures.append(SourceTask.BadMessage(split: idx, failure: failure,
                                                      offset: reader.offsetOfLastDelivered(split: idx), bytes: Array(bytes)))
                return
            }
            let ts = decoder.timestamp
            watermarks.observe(idx, timestamp: ts)
            if pipeline != nil {
                decoder.withRow { pipeline!.push($0, timestamp: ts, into: &batch) }
            } else {
                let arity = self.arity
                decoder.withRow { batch.values.append(contentsOf: UnsafeBufferPointer(start: $0, count: arity)) }
                batch.timestamps.append(ts)
            }
        }
        if got > 0 { task.metrics.recordsIn.add(got); task.counters.recordsIn.add(got) }
        if bad > 0 { task.metrics.decodeErrors.add(bad) }
        if pipeline != nil {
            output.count(got - bad)
            pipeline!.countBatch(rows: got - bad)
        }
        if !failures.isEmpty {
            try task.reject(failures, topics: topics, into: &rejected)
            failures.removeAll()
        }
        emptyPolls = got == 0 ? emptyPolls &+ 1 : 0
        if !batch.isEmpty {
            if !sentFirst { sentFirst = true; task.firstRecord() }
            try (pipeline?.output ?? output).emit(batch)
            batch = RecordBatch(arity: batchArity, capacity: options.pollBatchSize)
        }
        if !rejected.isEmpty {
            // After the batch and before the next barrier: same epoch as the records around them.
            try output.emitRejects(rejected)
            rejected.removeAll()
        }
        let now = clock()
        let elapsed = now &- lastLoop
        lastLoop = now
        if got > 0 && atEndNanos > 0 {
            // Records arrived: the input is live, not complete, whatever the cached high
            // watermarks said between fetches (a consumer that keeps up is "at end" between them).
            atEndNanos = 0
            coordination.sourceAtEnd(task.taskID, atEndFor: nil)
        }
        if now &- lastProgress > 200_000_000 || got == 0 {
            lastProgress = now
            let progress = reader.progress()
            task.metrics.update(progress)
            for k in 0..<min(names.count, progress.count) { watermarks.setLag(k, !progress[k].atEnd) }
            // --until-idle counts only time spent at the end with nothing arriving, never a stall.
            let atEnd = progress.allSatisfy(\.atEnd)
            if atEnd && got == 0 { atEndNanos &+= min(elapsed, PartitionWatermarkTracker.maxStepNanos) } else { atEndNanos = 0 }
            coordination.sourceAtEnd(task.taskID, atEndFor: atEnd ? atEndNanos : nil)
        }
        if task.eventTime != nil {
            switch watermarks.step(elapsedNanos: elapsed) {
            case .none: break
            case .advance(let w): output.emitWatermark(w)
            case .idle: output.emitIdle()
            case .advanceThenIdle(let w): output.emitWatermark(w); output.emitIdle()
            }
        }
    }
}
