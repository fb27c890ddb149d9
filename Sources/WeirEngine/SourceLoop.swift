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
    /// Decode, event times and chained operators, per record (in the core).
    private var decoding: SourceDecoding
    private var names: [String]
    private var topics: [(String?, Int32?)]
    private var lastLoop: UInt64
    private var lastProgress: UInt64 = 0
    /// Whether the input is complete (`--until-idle`), decided from lag.
    private var endOfInput = EndOfInputTracker()
    private var rejected: [RejectedRecord] = []
    private var lastBarrier: Int64 = -1
    private var awaiting: Barrier?
    private var emptyPolls = 0
    private var sentFirst = false
    init(task: SourceTask, reader: any SourceReader, coordination: any CheckpointCoordination, clock: @escaping () -> UInt64) {
        self.task = task; self.reader = reader; self.coordination = coordination; self.clock = clock
        let eventTime = task.eventTime
        names = reader.splitNames
        topics = names.map(SourceTask.topicPartition)
        var watermarks = PartitionWatermarkTracker(restored: names.map { task.restoredWatermarks[$0] ?? .min },
                                               maxOutOfOrdernessMillis: eventTime?.maxOutOfOrdernessMillis ?? 0,
                                               idleTimeoutMillis: eventTime?.idleTimeoutMillis ?? 0)
        #if WEIR_BUG_SWITCHES
        watermarks.bugs = task.injectedBugs
        #endif
        decoding = SourceDecoding(schema: task.node.schema, eventTimeField: eventTime?.field, watermarks: watermarks,
                                  output: task.output, batchCapacity: task.options.pollBatchSize)
        lastLoop = clock()
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
            let maxTimestamp = decoding.watermarks.maxTimestamp
            for k in names.indices where maxTimestamp[k] != .min { wms[names[k]] = maxTimestamp[k] }
            let blob = SourceTask.encodeWatermarks(wms)
            coordination.ack(b, TaskAck(node: task.node.id, subtask: task.subtask, offsets: offsets, state: { _ in blob }))
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
        var discover = true
        #if WEIR_BUG_SWITCHES
        discover = !task.injectedBugs.contains(.newPartitionsIgnored)
        #endif
        if discover {
            let added = try reader.refreshSplits()
            if !added.isEmpty { addSplits(added) }
        }
        // A short wait while records flow keeps barriers prompt; after a few empty
        // polls the wait grows, so an idle job sleeps instead of polling 100 times a second.
        let (got, bad) = try decoding.poll(reader, maxMessages: options.pollBatchSize, timeoutMillis: emptyPolls < 20 ? 10 : 100)
        if got > 0 { output.arrival?.nanos = clock() }
        if got > 0 { task.metrics.recordsIn.add(got); task.counters.recordsIn.add(got) }
        if bad > 0 { task.metrics.decodeErrors.add(bad) }
        if decoding.pipeline != nil { output.count(got - bad) }  // the chained nodes count their own rows
        if !decoding.failures.isEmpty { try task.reject(decoding.takeFailures(), topics: topics, into: &rejected) }
        emptyPolls = got == 0 ? emptyPolls &+ 1 : 0
        if !decoding.batch.isEmpty {
            if !sentFirst { sentFirst = true; task.firstRecord() }
            try (decoding.pipeline?.output ?? output).emit(decoding.takeBatch())
        }
        if !rejected.isEmpty {
            // After the batch and before the next barrier: same epoch as the records around them.
            try output.emitRejects(rejected)
            rejected.removeAll()
        }
        let now = clock()
        let elapsed = now &- lastLoop
        lastLoop = now
        // --until-idle: complete only after time at the end with nothing arriving, never a stall.
        var allAtEnd: Bool?
        if now &- lastProgress > 200_000_000 || got == 0 {
            lastProgress = now
            let progress = reader.progress()
            task.metrics.update(progress)
            for k in 0..<min(names.count, progress.count) { decoding.watermarks.setLag(k, !progress[k].atEnd) }
            allAtEnd = progress.allSatisfy(\.atEnd)
        }
        switch endOfInput.polled(got: got, allAtEnd: allAtEnd, elapsedNanos: elapsed) {
        case .none: break
        case .live: coordination.sourceAtEnd(task.taskID, atEndFor: nil)
        case .atEnd(let nanos): coordination.sourceAtEnd(task.taskID, atEndFor: nanos)
        }
        if task.eventTime != nil {
            switch decoding.watermarks.step(elapsedNanos: elapsed) {
            case .none: break
            case .advance(let w): output.emitWatermark(w)
            case .idle: output.emitIdle()
            case .advanceThenIdle(let w): output.emitWatermark(w); output.emitIdle()
            }
        }
    }

    /// Splits the reader started while running join the watermark with no event time yet.
    private mutating func addSplits(_ added: [String]) {
        for name in added {
            names.append(name)
            topics.append(SourceTask.topicPartition(name))
            decoding.watermarks.addPartition()
        }
        task.options.logger.info("source \(task.node.id) subtask \(task.subtask): reading new partitions \(added.joined(separator: ", ")) from earliest")
        task.options.onEvent(.splitsAdded(node: task.node.id, subtask: task.subtask, splits: added))
    }
}
