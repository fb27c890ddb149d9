/// What a watermark tracker asks its task to do.
public enum WatermarkDecision: Equatable, Sendable {
    case none
    /// Advance the task's watermark to this value (operators fire windows up to it).
    case advance(Int64)
    /// Nothing holds the watermark back: tell downstream this task is idle.
    case idle
    /// Advance to this value, then tell downstream this task is idle.
    case advanceThenIdle(Int64)
}

/// The combined watermark of a task with several inputs: the minimum over
/// inputs that are neither idle nor ended. When every live input is idle the
/// task itself is idle, so it never holds its consumers back.
///
/// Pure: the task loop feeds it the watermarks, idle markers and ends it
/// receives and executes the decision.
public struct WatermarkTracker: Sendable {
    private var watermarks: [Int64]
    private var idle: [Bool]
    private var ended: [Bool]
    private var endedCount = 0
    public private(set) var combined = Int64.min
    private var idleSent = false

    public init(inputs: Int) {
        watermarks = Array(repeating: .min, count: inputs)
        idle = Array(repeating: false, count: inputs)
        ended = Array(repeating: false, count: inputs)
    }

    public mutating func watermark(_ w: Int64, input: Int) -> WatermarkDecision {
        idle[input] = false
        if w > watermarks[input] { watermarks[input] = w }
        return recompute()
    }

    public mutating func idle(input: Int) -> WatermarkDecision {
        idle[input] = true
        return recompute()
    }

    /// Records arrived on `input`: an idle input is active again.
    @inline(__always)
    public mutating func records(input: Int) -> WatermarkDecision {
        guard idle[input] else { return .none }
        idle[input] = false
        return recompute()
    }

    public mutating func ended(input: Int) -> WatermarkDecision {
        if !ended[input] { ended[input] = true; endedCount += 1 }
        return recompute()
    }

    private mutating func recompute() -> WatermarkDecision {
        var wm = Int64.max
        var active = false
        for k in watermarks.indices where !ended[k] && !idle[k] { active = true; wm = min(wm, watermarks[k]) }
        if !active {
            if endedCount < watermarks.count && !idleSent { idleSent = true; return .idle }
            return .none
        }
        idleSent = false
        if wm > combined && wm != .min { combined = wm; return .advance(wm) }
        return .none
    }
}

/// Per-partition watermarks of one source task, with idleness decided from
/// lag, not silence: a partition is idle only once it has been seen at its
/// end (no unread records) and quiet for the idle timeout. Quiet time is
/// counted in steps that are capped, so a stalled process, a blocked sink or
/// a slow broker never adds up to idleness, and a partition with unread
/// records is never idle: its records are never made late by the others.
///
/// Pure: the source loop reports timestamps, lag and elapsed time.
public struct PartitionWatermarkTracker: Sendable {
    /// The most one step adds to a partition's quiet time (a longer gap is a stall, not silence).
    public static let maxStepNanos: UInt64 = 150_000_000

    /// Highest event time seen per partition (.min: none yet).
    public private(set) var maxTimestamp: [Int64]
    private var touched: [Bool]
    private var hasLag: [Bool]
    private var quietNanos: [UInt64]
    private let outOfOrderness: Int64
    private let idleTimeoutNanos: UInt64
    public private(set) var emitted = Int64.min
    public private(set) var isIdle = false
    #if WEIR_BUG_SWITCHES
    public var bugs: InjectedBugs = []
    #endif

    public init(restored: [Int64], maxOutOfOrdernessMillis: Int64, idleTimeoutMillis: Int64) {
        let n = restored.count
        maxTimestamp = restored
        touched = Array(repeating: false, count: n)
        hasLag = Array(repeating: true, count: n)
        quietNanos = Array(repeating: 0, count: n)
        outOfOrderness = maxOutOfOrdernessMillis
        idleTimeoutNanos = UInt64(max(0, idleTimeoutMillis)) &* 1_000_000
    }

    /// A partition found while the job runs joins with no event time yet: like
    /// an empty partition at start, it holds the watermark back until it has
    /// records or turns idle. Its records behind the watermark already
    /// emitted are late, as any late record.
    public mutating func addPartition(restored: Int64 = .min) {
        maxTimestamp.append(restored)
        touched.append(false)
        hasLag.append(true)
        quietNanos.append(0)
    }

    /// A record with event time `ts` was read from `partition` (the hot path).
    @inline(__always)
    public mutating func observe(_ partition: Int, timestamp ts: Int64) {
        if ts > maxTimestamp[partition] { maxTimestamp[partition] = ts }
        touched[partition] = true
    }

    /// A record of `partition` was read but refused (it still shows the partition is live).
    @inline(__always)
    public mutating func touch(_ partition: Int) { touched[partition] = true }

    /// Whether `partition` has unread records, as last seen from the broker.
    public mutating func setLag(_ partition: Int, _ lag: Bool) { hasLag[partition] = lag }

    /// One loop iteration took `elapsed`: updates quiet times and decides the watermark.
    public mutating func step(elapsedNanos elapsed: UInt64) -> WatermarkDecision {
        var step = min(elapsed, PartitionWatermarkTracker.maxStepNanos)
        var lagCounts = true
        #if WEIR_BUG_SWITCHES
        if bugs.contains(.idlenessByWallClock) { step = elapsed; lagCounts = false }
        #endif
        var wm = Int64.max
        var anyActive = false
        for k in maxTimestamp.indices {
            if touched[k] || (lagCounts && hasLag[k]) { quietNanos[k] = 0; touched[k] = false } else { quietNanos[k] &+= step }
            if quietNanos[k] < idleTimeoutNanos {
                anyActive = true
                wm = min(wm, maxTimestamp[k] == .min ? .min : maxTimestamp[k] - outOfOrderness - 1)
            }
        }
        if anyActive {
            isIdle = false
            if wm > emitted && wm != .min { emitted = wm; return .advance(wm) }
            return .none
        }
        if isIdle { return .none }
        // Every partition is idle: nothing holds the watermark back any more, so
        // advance it to the furthest partition before declaring the input idle.
        isIdle = true
        let furthest = maxTimestamp.max() ?? .min
        if furthest != .min, furthest - outOfOrderness - 1 > emitted {
            emitted = furthest - outOfOrderness - 1
            return .advanceThenIdle(emitted)
        }
        return .idle
    }
}
