/// When the batch a subtask is working on arrived at its source (monotonic
/// nanoseconds, 0: unknown). One per subtask thread, shared by the outputs
/// chained on it: a source sets it at each poll, an inbox task from each batch
/// it receives, and outputs stamp it on the batches they hand to other
/// threads. Window results fired by a watermark carry the arrival of the
/// latest batch their operator processed. `weir bench` measures latency with it.
public final class ArrivalStamp {
    public var nanos: UInt64 = 0
    public init() {}
}

/// Receives, at each sink commit, how long ago the committed rows arrived:
/// `record(latencyNanos, rows)`. Called from sink threads, so it must be thread-safe.
public typealias SinkLatencyRecorder = @Sendable (_ latencyNanos: UInt64, _ rows: Int) -> Void

/// A sink subtask's rows written but not yet committed, by arrival time,
/// handed to the recorder when the transaction holding them commits: at a
/// plain sink's flush, or when a transactional sink commits the epoch they
/// were written in. Events in, records out; the caller supplies the time.
package struct SinkLatencyTracker {
    private let recorder: SinkLatencyRecorder
    /// Rows of the open transaction or epoch: (arrival, rows), one entry per batch.
    private var open: [(arrival: UInt64, rows: Int)] = []
    /// Prepared epochs waiting for their checkpoint, oldest first.
    private var prepared: [(epoch: Int64, entries: [(arrival: UInt64, rows: Int)])] = []

    package init(recorder: @escaping SinkLatencyRecorder) { self.recorder = recorder }

    /// Rows handed to the writer; merged with the previous entry when they arrived together.
    package mutating func wrote(rows: Int, arrival: UInt64) {
        guard rows > 0, arrival != 0 else { return }
        if let last = open.last, last.arrival == arrival { open[open.count - 1].rows += rows } else { open.append((arrival, rows)) }
    }

    /// A plain sink committed everything written so far.
    package mutating func committed(now: UInt64) {
        for e in open { recorder(now &- min(now, e.arrival), e.rows) }
        open.removeAll(keepingCapacity: true)
    }

    /// A transactional sink prepared the open epoch at a barrier.
    package mutating func prepared(epoch: Int64) {
        if !open.isEmpty { prepared.append((epoch, open)); open = [] }
    }

    /// A transactional sink committed `epoch` (and so every earlier one).
    package mutating func committed(epoch: Int64, now: UInt64) {
        while let first = prepared.first, first.epoch <= epoch {
            for e in first.entries { recorder(now &- min(now, e.arrival), e.rows) }
            prepared.removeFirst()
        }
    }
}
