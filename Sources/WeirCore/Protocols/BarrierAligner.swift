/// Aligned checkpoint barriers for one task with several inputs (Flink's
/// aligned checkpoints, as a value): once an input delivered barrier n, what
/// it sends next belongs to epoch n+1 and is held back until every live
/// input delivered barrier n too. Then the task snapshots, forwards the
/// barrier and replays what was held back.
///
/// A barrier newer than the one being aligned means that input skipped the
/// older checkpoint (it was aborted before that source injected it): the
/// older alignment can never complete, so it is abandoned and what it held
/// back is released (it all precedes the newer barrier on its input). A
/// barrier older than one already aligned is stale and dropped.
///
/// Pure: the task loop feeds it elements and executes what it returns.
public struct BarrierAligner<Element> {
    public enum BarrierOutcome {
        /// Wait for the other inputs; this one is blocked meanwhile.
        case waiting
        /// Every live input delivered the barrier: snapshot and forward it, then
        /// hand `replay` (held back, in arrival order) to the task again.
        case aligned(Barrier, replay: [(Int, Element)])
        /// A newer barrier superseded the one being aligned, which is given up;
        /// `replay` is released at once and alignment of the new barrier begins.
        case superseded(old: Barrier, replay: [(Int, Element)])
        /// Older than a barrier already aligned or being aligned: dropped.
        case stale
    }

    public let inputs: Int
    public private(set) var aligning: Barrier?
    /// Highest barrier id aligned so far.
    public private(set) var lastAligned: Int64 = .min
    private var blocked: [Bool]
    private var ended: [Bool]
    private var buffered: [(Int, Element)] = []

    public init(inputs: Int) {
        self.inputs = inputs
        blocked = Array(repeating: false, count: inputs)
        ended = Array(repeating: false, count: inputs)
    }

    /// An element other than a barrier or an end arrived on `input`: true to
    /// process it now, false when it was held back (its input is blocked).
    @inline(__always)
    public mutating func admit(_ input: Int, _ e: Element) -> Bool {
        if aligning == nil || !blocked[input] { return true }
        buffered.append((input, e))
        return false
    }

    /// Barrier `b` arrived on `input`.
    public mutating func barrier(_ b: Barrier, input: Int) -> BarrierOutcome {
        if b.id <= lastAligned { return .stale }
        if let current = aligning {
            if b.id < current.id { return .stale }
            if b.id > current.id {
                let replay = buffered
                buffered.removeAll()
                for k in 0..<inputs { blocked[k] = false }
                aligning = b
                blocked[input] = true
                if let done = completeIfAligned() { return done }
                return .superseded(old: current, replay: replay)
            }
        } else {
            aligning = b
        }
        blocked[input] = true
        return completeIfAligned() ?? .waiting
    }

    /// `input` ended (or stopped): it no longer holds an alignment back.
    /// Returns the barrier that became aligned, if any.
    public mutating func ended(input: Int) -> BarrierOutcome? {
        ended[input] = true
        return completeIfAligned()
    }

    private mutating func completeIfAligned() -> BarrierOutcome? {
        guard let b = aligning else { return nil }
        for k in 0..<inputs where !blocked[k] && !ended[k] { return nil }
        aligning = nil
        lastAligned = b.id
        for k in 0..<inputs { blocked[k] = false }
        let replay = buffered
        buffered.removeAll()
        return .aligned(b, replay: replay)
    }
}
