import Foundation
import WeirCore

/// The loop of one subtask that has an inbox: merges its inputs and drives
/// its operator chain. The protocols are values it feeds: `BarrierAligner`
/// (which inputs are held back), `WatermarkTracker` (the combined
/// watermark) and, for a transactional sink, `SinkCommitterStateMachine`
/// (which epochs to commit). This loop only executes their decisions.
final class InboxTask: @unchecked Sendable {
    // @unchecked: used only by its own thread once started (the runner reads `committer` after joining it).
    let node: PlannedNode
    let subtask: Int
    let channel: Channel
    let op: any StreamOperator
    let output: Output
    let flushIntervalMillis: Int64?
    let keyGroups: ClosedRange<Int>
    let maxParallelism: Int
    let coordinator: any CheckpointCoordination
    /// Node id → the sink that writes its dead letters.
    let deadLetterSinkOf: [String: String]

    private var aligner: BarrierAligner<StreamElement>
    private var watermarks: WatermarkTracker
    private(set) var committer: SinkCommitterStateMachine
    private let inputs: Int
    private var endedCount = 0
    private var ended: [Bool]
    private var finished = false
    private let sink: SinkOperator?
    private let txWriter: (any TransactionalSinkWriter)?

    init(node: PlannedNode, subtask: Int, channel: Channel, inputs: Int, op: any StreamOperator, output: Output,
         flushIntervalMillis: Int64?, keyGroups: ClosedRange<Int>, maxParallelism: Int, coordinator: any CheckpointCoordination,
         deadLetterSinkOf: [String: String], firstEpoch: Int64) {
        self.deadLetterSinkOf = deadLetterSinkOf
        self.node = node; self.subtask = subtask
        self.channel = channel; self.inputs = inputs; self.op = op; self.output = output
        self.flushIntervalMillis = flushIntervalMillis; self.keyGroups = keyGroups
        self.maxParallelism = maxParallelism; self.coordinator = coordinator
        aligner = BarrierAligner(inputs: inputs)
        watermarks = WatermarkTracker(inputs: inputs)
        committer = SinkCommitterStateMachine(firstEpoch: firstEpoch)
        ended = Array(repeating: false, count: inputs)
        sink = op as? SinkOperator
        txWriter = sink?.writer as? any TransactionalSinkWriter
    }

    private func apply(_ d: WatermarkDecision) throws {
        switch d {
        case .none: break
        case .advance(let w): try op.watermark(w, output)
        case .idle: output.emitIdle()
        case .advanceThenIdle(let w): try op.watermark(w, output); output.emitIdle()
        }
    }

    #if WEIR_BUG_SWITCHES
    func inject(_ bugs: InjectedBugs) { committer.bugs = bugs }
    #endif

    /// After a cancel (the task's thread has ended): commits the epochs of completed checkpoints, rolls back the rest.
    func settleOnCancel(completedID: Int64) {
        guard let tx = txWriter else { return }
        JobRunner.settleOnCancel(tx, committer: committer, completedID: completedID)
    }

    /// True once every input ended or stopped.
    var isFinished: Bool { finished }

    /// Commits every prepared epoch whose checkpoint completed.
    func commitCompleted() throws {
        guard let tx = txWriter else { return }
        let done = coordinator.completedCheckpoint
        guard done > committer.completedUpTo else { return }
        for case .commit(let e) in committer.checkpointCompleted(done) {
            try tx.commit(epoch: e)
            committer.committed(epoch: e)
            sink?.latency?.committed(epoch: e, now: DispatchTime.now().uptimeNanoseconds)
        }
    }

    /// A plain sink committed what it wrote: those rows' latency is known.
    private func noteFlushed() { sink?.latency?.committed(now: DispatchTime.now().uptimeNanoseconds) }

    /// Handles one element that arrived on input `i` (the thread loop and the simulator call it).
    func handle(_ i: Int, _ e: StreamElement) throws {
        if case .barrier(let b) = e {
            switch aligner.barrier(b, input: i) {
            case .waiting, .stale: break
            case .aligned(let b, let replay): try aligned(b, replay: replay)
            case .superseded(_, let replay): for (k, x) in replay { try handle(k, x) }
            }
            return
        }
        // Everything behind a barrier on a blocked input waits for the alignment, ends included.
        guard aligner.admit(i, e) else { return }
        switch e {
        case .batch(let b):
            try apply(watermarks.records(input: i))
            output.arrival?.nanos = b.arrivalNanos
            try op.process(b, output)
        case .watermark(let w):
            try apply(watermarks.watermark(w, input: i))
        case .idle:
            try apply(watermarks.idle(input: i))
        case .rejects(let rs):
            if let sink {
                let mine = rs.filter { deadLetterSinkOf[$0.node] == node.id }
                if !mine.isEmpty { try sink.writer.writeDeadLetters(mine) }
            } else {
                try output.emitRejects(rs)
            }
        case .end, .stop:
            if !ended[i] { ended[i] = true; endedCount += 1 }
            if endedCount == inputs {
                if case .end = e {
                    try op.finish(output)
                    if txWriter == nil { noteFlushed() }
                    try output.emitEnd()
                } else {
                    try output.emitControl(.stop)
                }
                finished = true
                return
            }
            if case .aligned(let b, let replay)? = aligner.ended(input: i) { try aligned(b, replay: replay) }
            try apply(watermarks.ended(input: i))
        case .barrier:
            break
        }
    }

    /// Every live input delivered barrier `b`: snapshot, prepare, acknowledge, forward, replay.
    private func aligned(_ b: Barrier, replay: [(Int, StreamElement)]) throws {
        var ack = TaskAck(node: node.id, subtask: subtask)
        if let stateful = op as? any StatefulOperator {
            ack.state = stateful.captureState(maxParallelism: maxParallelism)
            ack.keyGroups = keyGroups
        }
        if let sink {
            if let tx = txWriter {
                let xid = try tx.prepare()
                sink.latency?.prepared(epoch: committer.openEpoch)
                ack.sinkTransaction = xid
                committer.barrierAligned(b.id, hasTransaction: xid != nil)
                try tx.begin(epoch: committer.openEpoch)
            } else {
                try sink.writer.flush()
                noteFlushed()
            }
        }
        coordinator.ack(b, ack)
        try output.emitControl(.barrier(b))
        for (k, x) in replay { try handle(k, x) }
    }

    func run() throws {
        var lastFlush = Date()
        let interval = Double(flushIntervalMillis ?? 1000) / 1000
        let transactional = txWriter != nil
        if transactional { coordinator.onCompleted { [channel] _ in channel.wake() } }
        while !finished {
            let received: Channel.Received
            if sink != nil && !transactional {
                // A plain sink wakes for its next flush.
                received = channel.receive(before: max(lastFlush.addingTimeInterval(interval), Date().addingTimeInterval(0.001)))
            } else {
                // A transactional sink commits when a checkpoint completes: the coordinator wakes it.
                received = channel.receiveOrWake()
            }
            switch received {
            case .cancelled: return
            case .timeout: break
            case .element(let i, let e): try handle(i, e)
            }
            if transactional { try commitCompleted() }
            else if let sink, Date().timeIntervalSince(lastFlush) >= interval {
                try sink.writer.flush()
                noteFlushed()
                lastFlush = Date()
            }
        }
        // Ended or stopped: a sink waits for the checkpoint covering its last epoch, then commits it.
        if transactional {
            if let last = committer.awaitedCheckpoint { _ = coordinator.waitForOutcome(last) }
            try commitCompleted()
        }
    }
}
