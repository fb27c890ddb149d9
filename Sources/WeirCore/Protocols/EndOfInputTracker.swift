/// Whether a source task's input is complete (`--until-idle`): every split
/// seen at its end with nothing arriving, for long enough. Like idleness it
/// is decided from lag and counted in capped steps, so a stalled process, a
/// blocked sink or a slow broker never makes an input look complete.
///
/// Pure: the source loop reports each poll; the result is what to tell the
/// checkpoint coordinator (which drains once every source says so).
public struct EndOfInputTracker: Sendable {
    /// Time observed at the end with nothing arriving.
    public private(set) var atEndNanos: UInt64 = 0

    public init() {}

    public enum Report: Equatable, Sendable {
        /// Nothing new to say.
        case none
        /// Some split has records to read (or records just arrived): not at the end.
        case live
        /// Every split has been at its end, with nothing arriving, for this long.
        case atEnd(nanos: UInt64)
    }

    /// A poll delivered `got` records; `allAtEnd` is whether every split is at
    /// its end, when the loop looked at the splits' positions (nil: it did not).
    public mutating func polled(got: Int, allAtEnd: Bool?, elapsedNanos: UInt64) -> Report {
        guard let allAtEnd else {
            // Records arrived: the input is live, whatever the cached high watermarks said
            // between fetches (a consumer that keeps up is "at end" between them).
            if got > 0 && atEndNanos > 0 { atEndNanos = 0; return .live }
            return .none
        }
        if allAtEnd && got == 0 {
            atEndNanos &+= min(elapsedNanos, PartitionWatermarkTracker.maxStepNanos)
        } else {
            atEndNanos = 0
        }
        return allAtEnd ? .atEnd(nanos: atEndNanos) : .live
    }
}
