/// Why a barrier was injected.
public enum BarrierKind: String, Sendable, Codable {
    /// Periodic, automatic.
    case checkpoint
    /// Requested while running.
    case savepoint
    /// Stop with a snapshot: sources end at this barrier once it completes.
    case stop
    /// Input complete (`--until-idle`): windows fire first, then the final snapshot.
    case drain
}

/// A checkpoint barrier, travelling in-band with the records.
public struct Barrier: Sendable, Equatable {
    public var id: Int64
    public var kind: BarrierKind
}

/// One state file of a completed checkpoint.
public struct StateBlob: Sendable {
    public var node: String
    public var subtask: Int
    public var bytes: [UInt8]
    /// Key groups held, for keyed state.
    public var keyGroups: ClosedRange<Int>?

    public init(node: String, subtask: Int, bytes: [UInt8], keyGroups: ClosedRange<Int>?) {
        self.node = node; self.subtask = subtask; self.bytes = bytes; self.keyGroups = keyGroups
    }
}

/// Everything a completed checkpoint consists of, handed to storage.
public struct CompletedCheckpoint: Sendable {
    public var id: Int64
    public var kind: BarrierKind
    public var job: String
    public var run: String
    public var nodes: [String]
    public var parallelism: Int
    public var maxParallelism: Int
    /// Source node id → split (`topic/partition`) → next offset to read.
    public var offsets: [String: [String: Int64]]
    public var state: [StateBlob]
    /// Sink node id → subtask → prepared transaction id.
    public var sinkTransactions: [String: [Int: String]]
    /// Node id → fingerprint of its state layout (restores check it).
    public var layouts: [String: String]
    /// How fast this run decodes its keyed state (bytes per second), measured
    /// on a sample when a snapshot is taken: what a restore's time is predicted from.
    public var decodeBytesPerSecond: Double?

    public init(id: Int64, kind: BarrierKind, job: String, run: String, nodes: [String], parallelism: Int, maxParallelism: Int,
                offsets: [String: [String: Int64]], state: [StateBlob], sinkTransactions: [String: [Int: String]],
                layouts: [String: String]) {
        self.id = id; self.kind = kind; self.job = job; self.run = run; self.nodes = nodes; self.parallelism = parallelism
        self.maxParallelism = maxParallelism; self.offsets = offsets; self.state = state
        self.sinkTransactions = sinkTransactions; self.layouts = layouts
    }
}

/// Where completed checkpoints go (the snapshot store). Persisting must be
/// atomic: once it returns, the checkpoint counts as complete and sink
/// transactions are committed.
public protocol CheckpointStorage: Sendable {
    /// Makes the checkpoint durable; returns the snapshot id.
    func persist(_ checkpoint: CompletedCheckpoint, retain: Int) throws -> String
}

/// A snapshot to start from, as read (and verified) from storage.
public struct RestorePoint: Sendable {
    public var snapshotID: String
    public var checkpointID: Int64
    public var run: String
    public var nodes: [String]
    public var offsets: [String: [String: Int64]]
    /// Node id → state files of all its subtasks.
    public var state: [String: [[UInt8]]]
    public var layouts: [String: String]
    /// Key groups of the snapshot's keyed state (nil: unknown, not checked).
    public var maxParallelism: Int?
    /// The decode rate measured when the snapshot was taken (nil: not measured).
    public var decodeBytesPerSecond: Double?

    /// Bytes of keyed state (aggregates: the nodes with a layout).
    public var keyedStateBytes: Int64 {
        Int64(state.filter { layouts[$0.key] != nil }.values.reduce(0) { $0 + $1.reduce(0) { $0 + $1.count } })
    }

    public init(snapshotID: String, checkpointID: Int64, run: String, nodes: [String],
                offsets: [String: [String: Int64]], state: [String: [[UInt8]]], layouts: [String: String],
                maxParallelism: Int? = nil) {
        self.snapshotID = snapshotID; self.checkpointID = checkpointID; self.run = run; self.nodes = nodes
        self.offsets = offsets; self.state = state; self.layouts = layouts; self.maxParallelism = maxParallelism
    }
}

/// What a run's checkpointing needs from outside the engine.
public struct CheckpointConfig: Sendable {
    public var storage: any CheckpointStorage
    /// Periodic interval; nil: snapshots only on stop/savepoint/drain.
    public var intervalMillis: Int64?
    public var timeoutMillis: Int64
    public var retain: Int
    /// The id the next checkpoint gets (ids keep increasing across runs).
    public var firstCheckpointID: Int64
    /// Decides, during recovery, whether a leftover prepared transaction
    /// belongs to a completed checkpoint (commit) or not (roll back).
    public var isCompleted: @Sendable (_ run: String, _ checkpointID: Int64) -> Bool

    public init(storage: any CheckpointStorage, intervalMillis: Int64?, timeoutMillis: Int64, retain: Int,
                firstCheckpointID: Int64, isCompleted: @escaping @Sendable (String, Int64) -> Bool) {
        self.storage = storage; self.intervalMillis = intervalMillis; self.timeoutMillis = timeoutMillis
        self.retain = retain; self.firstCheckpointID = firstCheckpointID; self.isCompleted = isCompleted
    }
}
