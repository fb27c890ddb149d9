/// What travels between subtasks: data batches and in-band control signals.
public enum StreamElement: Sendable {
    case batch(RecordBatch)
    /// No record with an event time at or below this will follow on this input.
    case watermark(Int64)
    /// The input has no data for now and must not hold watermarks back.
    case idle
    /// The input is complete.
    case end
    /// Checkpoint barrier n: everything before it belongs to snapshot n.
    case barrier(Barrier)
    /// The run stops after a stop-with-snapshot (no windows fire).
    case stop
    /// Records rejected upstream, on their way to the dead-letter table. They
    /// travel in-band so that they belong to the same epoch as the records
    /// around them (written exactly once with the sink's transaction).
    case rejects([RejectedRecord])
}

/// Where a subtask's elements go when they leave its thread: in the engine,
/// the bounded channel (inbox) of another subtask. Operators only see this,
/// so the core knows nothing of threads or queues.
public protocol ElementQueue: AnyObject, Sendable {
    /// Enqueues `e` as coming from input `input`; false once the queue was cancelled.
    @discardableResult
    func send(_ input: Int, _ e: StreamElement) -> Bool
}
