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
    private let splits = Mutex<[String: SplitProgress]>([:])
    /// Longest time a source subtask spent waiting at the end of its input
    /// before `untilIdle` ended it (excluded from processing time in benchmarks).
    public let idleWaitNanos = Atomic<UInt64>(0)
    public let checkpointsCompleted = Counter()
    private let lastCheckpoint = Mutex<(durationMillis: Double, bytes: Int)>((0, 0))


    func noteCheckpoint(durationMillis: Double, bytes: Int) {
        checkpointsCompleted.add(1)
        lastCheckpoint.withLock { $0 = (durationMillis, bytes) }
    }

    /// Duration and size of the last completed checkpoint.
    public var lastCheckpointFigures: (durationMillis: Double, bytes: Int) { lastCheckpoint.withLock { $0 } }

    func noteIdleWait(_ nanos: UInt64) {
        var cur = idleWaitNanos.load(ordering: .relaxed)
        while nanos > cur {
            let (done, orig) = idleWaitNanos.compareExchange(expected: cur, desired: nanos, ordering: .relaxed)
            if done { break }
            cur = orig
        }
    }

    public init() {}

    func update(_ progress: [SplitProgress]) {
        splits.withLock { for p in progress { $0[p.name] = p } }
    }

    /// Position and high watermark of every split, sorted by name.
    public var splitProgress: [SplitProgress] {
        splits.withLock { Array($0.values) }.sorted { $0.name.localizedStandardCompare($1.name) == .orderedAscending }
    }

    /// Records between the sources' positions and the ends of their splits.
    public var totalLag: Int64 { splitProgress.reduce(0) { $0 + $1.lag } }
}
