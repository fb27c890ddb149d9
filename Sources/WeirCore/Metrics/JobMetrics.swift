import Foundation
import Synchronization

/// A monotonically increasing counter shared between subtask threads.
public final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    public init() {}

    @inline(__always) public func add(_ n: Int) { value.add(n, ordering: .relaxed) }
    public var load: Int { value.load(ordering: .relaxed) }
}

/// Live figures of a running job, read by the progress display and by tests.
/// Counters are updated once per batch, never per record.
public final class JobMetrics: Sendable {
    public let recordsIn = Counter()
    public let recordsOut = Counter()
    public let decodeErrors = Counter()
    public let lateRecords = Counter()
    /// Records rejected anywhere in the job (source, operators, sinks).
    public let rejectedRecords = Counter()
    private let rejectionsByNode = Mutex<[Rejections]>([])

    package func register(rejections: [Rejections]) { rejectionsByNode.withLock { $0 = rejections } }

    /// Rejected records per node id and reason (nodes without any left out).
    public var rejected: [String: [String: Int]] {
        var out: [String: [String: Int]] = [:]
        for r in rejectionsByNode.withLock({ $0 }) {
            let by = r.byReason
            if !by.isEmpty { out[r.node] = Dictionary(uniqueKeysWithValues: by.map { ($0.key.rawValue, $0.value) }) }
        }
        return out
    }
    private let splits = Mutex<[String: SplitProgress]>([:])
    /// Longest time a source subtask spent waiting at the end of its input
    /// before `untilIdle` ended it (excluded from processing time in benchmarks).
    public let idleWaitNanos = Atomic<UInt64>(0)
    public let checkpointsCompleted = Counter()
    private let lastCheckpoint = Mutex<(durationMillis: Double, bytes: Int)>((0, 0))


    package func noteCheckpoint(durationMillis: Double, bytes: Int) {
        checkpointsCompleted.add(1)
        lastCheckpoint.withLock { $0 = (durationMillis, bytes) }
    }

    /// Duration and size of the last completed checkpoint.
    public var lastCheckpointFigures: (durationMillis: Double, bytes: Int) { lastCheckpoint.withLock { $0 } }

    package func noteIdleWait(_ nanos: UInt64) {
        var cur = idleWaitNanos.load(ordering: .relaxed)
        while nanos > cur {
            let (done, orig) = idleWaitNanos.compareExchange(expected: cur, desired: nanos, ordering: .relaxed)
            if done { break }
            cur = orig
        }
    }

    public init() {}

    private let threadCPU = Mutex<[String: UInt64]>([:])

    /// A subtask thread (named `NODE#SUBTASK`) ended having used this much CPU.
    package func noteThreadCPU(_ name: String, nanos: UInt64) { threadCPU.withLock { $0[name, default: 0] &+= nanos } }

    /// CPU time of every subtask thread that ended, by thread name (`NODE#SUBTASK`).
    public var threadCPUNanos: [String: UInt64] { threadCPU.withLock { $0 } }

    private let nodeCounters = Mutex<[NodeCounters]>([])

    /// Called once by the runner, before any subtask starts.
    package func register(nodes: [NodeCounters]) { nodeCounters.withLock { $0 = nodes } }

    /// Per-node figures, in plan order. A node's records in are what its inputs
    /// emitted (a source's: what it read, malformed included); a sink's records
    /// out are the rows it handed to its writer.
    public var nodes: [NodeFigures] {
        let all = nodeCounters.withLock { $0 }
        var outById: [String: Int] = [:]
        for n in all { outById[n.id] = n.recordsOut.load }
        return all.map { n in
            NodeFigures(id: n.id,
                        recordsIn: n.inputs.isEmpty ? n.recordsIn.load : n.inputs.reduce(0) { $0 + (outById[$1] ?? 0) },
                        recordsOut: n.recordsOut.load,
                        backpressureNanos: n.backpressure(), watermark: n.watermark.current)
        }
    }

    /// A figure that grows whenever a record moves anywhere in the run (read,
    /// emitted by a node, rejected, dropped late); unchanged means nothing moved.
    package var activity: Int {
        let nodes = nodeCounters.withLock { $0 }
        return nodes.reduce(recordsIn.load &+ rejectedRecords.load &+ lateRecords.load) { $0 &+ $1.recordsOut.load }
    }

    package func update(_ progress: [SplitProgress]) {
        splits.withLock { for p in progress { $0[p.name] = p } }
    }

    /// Position and high watermark of every split, sorted by name.
    public var splitProgress: [SplitProgress] {
        splits.withLock { Array($0.values) }.sorted { $0.name.localizedStandardCompare($1.name) == .orderedAscending }
    }

    /// Records between the sources' positions and the ends of their splits.
    public var totalLag: Int64 { splitProgress.reduce(0) { $0 + $1.lag } }
}

/// One node's live counters: shared by its subtasks, added to once per batch.
package final class NodeCounters: Sendable {
    package let id: String
    /// Ids of the node's inputs (its records in are their records out).
    package let inputs: [String]
    /// Records read (sources only; other nodes derive theirs from their inputs).
    package let recordsIn = Counter()
    package let recordsOut = Counter()
    /// Time producers spent blocked on the node's inbox channels (0 when it runs chained to its input).
    package let backpressure: @Sendable () -> UInt64
    /// The watermark the node's subtasks passed on last (a sink's: the one it received).
    package let watermark: WatermarkGauge

    package init(id: String, inputs: [String], subtasks: Int = 1, backpressure: @escaping @Sendable () -> UInt64 = { 0 }) {
        self.id = id; self.inputs = inputs; self.backpressure = backpressure
        watermark = WatermarkGauge(subtasks: subtasks)
    }
}

/// What one node did so far, for progress displays and metrics.
public struct NodeFigures: Sendable, Equatable {
    public var id: String
    public var recordsIn: Int
    public var recordsOut: Int
    /// Time upstream subtasks spent blocked because this node's inbox was full:
    /// high when this node is the bottleneck.
    public var backpressureNanos: UInt64
    /// Event time (epoch ms) the node's slowest subtask has reached; nil
    /// without event time or before the first watermark.
    public var watermark: Int64? = nil
}
