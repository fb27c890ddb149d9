/// The protocols connectors implement. The engine core drives sources and
/// sinks only through these, so it never depends on Kafka or MySQL.

/// Position of one split (a Kafka topic-partition, say) of a source.
public struct SplitProgress: Sendable, Equatable {
    /// Stable, human-readable name, e.g. `events/3`.
    public var name: String
    /// Next offset this reader will deliver (-1 when not yet known).
    public var nextOffset: Int64
    /// High watermark (end offset) last seen from the broker (-1 when not yet known).
    public var highWatermark: Int64

    public init(name: String, nextOffset: Int64, highWatermark: Int64) {
        self.name = name
        self.nextOffset = nextOffset
        self.highWatermark = highWatermark
    }

    /// Records between this reader's position and the end of the split (0 when unknown).
    public var lag: Int64 { (nextOffset >= 0 && highWatermark >= 0) ? max(0, highWatermark - nextOffset) : 0 }
    /// True when the position is known and has reached the high watermark.
    public var atEnd: Bool { nextOffset >= 0 && highWatermark >= 0 && nextOffset >= highWatermark }
}

/// One split's retained range at the source, and where the source starts it
/// when no snapshot says otherwise: what a restore preview compares a
/// snapshot's offsets with.
public struct SplitRange: Sendable, Equatable, Codable {
    public var name: String
    /// The first offset still held (nil: unknown).
    public var low: Int64?
    /// The offset the next record will get (nil: unknown).
    public var high: Int64?
    /// Where the source starts this split without a snapshot (its
    /// `startOffsets`, resolved; nil: unknown).
    public var start: Int64?

    public init(name: String, low: Int64?, high: Int64?, start: Int64?) {
        self.name = name; self.low = low; self.high = high; self.start = start
    }

    /// Sorts `events/10` after `events/2`.
    public static func order(_ split: String) -> String {
        guard let slash = split.lastIndex(of: "/"), let p = Int(split[split.index(after: slash)...]) else { return split }
        let digits = String(p)
        return String(split[..<slash]) + "/" + String(repeating: "0", count: max(0, 10 - digits.count)) + digits
    }
}

/// Which source subtask reads a split found while the job runs (a partition
/// added to a topic). Splits known at start are dealt out round robin by
/// their index in the discovery list; a new split has no stable index (every
/// subtask may see the topic grow at a different moment), so it goes by a
/// stable hash of its name: each subtask decides alone, and all decide alike.
public struct SplitOwner: Sendable, Equatable {
    public let subtask: Int
    public let parallelism: Int

    public init(subtask: Int, parallelism: Int) {
        self.subtask = subtask
        self.parallelism = max(1, parallelism)
    }

    /// A reader that owns every split (one subtask).
    public static let all = SplitOwner(subtask: 0, parallelism: 1)

    /// Whether this subtask reads the new split `name` (FNV-1a of the name, modulo parallelism).
    public func owns(newSplit name: String) -> Bool {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Int(h % UInt64(parallelism)) == subtask
    }
}

/// Reads the splits assigned to one source subtask. Used from a single thread.
public protocol SourceReader: AnyObject {
    /// The splits this reader owns, in the order used by `poll`'s split index.
    /// A reader that discovers splits while running (new Kafka partitions)
    /// appends them here; indices already handed out never change.
    var splitNames: [String] { get }

    /// Waits at most `timeoutMillis` for data, then hands each available
    /// message's value bytes (at most `maxMessages`) to `deliver(splitIndex, bytes)`.
    /// The bytes are only valid during the call. Returns the number delivered.
    func poll(maxMessages: Int, timeoutMillis: Int,
              _ deliver: (Int, UnsafeRawBufferPointer) -> Void) throws -> Int

    /// Called between polls, so a split is known before its first record
    /// arrives. Checks the splits against the source, at the source's own
    /// pace (a Kafka reader asks the broker every few seconds): throws when
    /// one is gone for good, and returns the splits it started reading since
    /// the last call (appended to `splitNames`, read from their start).
    func refreshSplits() throws -> [String]

    /// Current position and high watermark of every owned split, in `splitNames` order.
    func progress() -> [SplitProgress]

    /// Releases the underlying client. Called once.
    func close()

    /// The offset of the message last handed to `deliver` for this split (for
    /// naming a rejected record); nil when the source has no offsets.
    func offsetOfLastDelivered(split: Int) -> Int64?
}

extension SourceReader {
    public func offsetOfLastDelivered(split: Int) -> Int64? { nil }
    /// A source whose splits never change.
    public func refreshSplits() throws -> [String] { [] }
}

/// A configured source (one `kafka:` node, for instance).
public protocol SourceConnector: Sendable {
    /// Discovers the splits to read (checks that the broker is reachable and the topics exist).
    func discoverSplits() throws -> [String]
    /// Opens a reader for the given subset of `discoverSplits()` (by index into
    /// that list). Splits that appear while it runs are read by the subtask
    /// `owner` names.
    func openReader(splits: [Int], owner: SplitOwner) throws -> any SourceReader
    /// The same source, resuming each listed split at the given next offset
    /// (restore from a snapshot); splits not listed start at their earliest offset.
    func resuming(at offsets: [String: Int64]) -> any SourceConnector
    /// Every split with its retained range as the source holds it now (for a
    /// restore preview; reads nothing).
    func ranges() throws -> [SplitRange]
    /// The same source, reading each split only up to the given offset
    /// (exclusive) and then reporting it at its end: a bounded run. Splits not
    /// listed are not read at all.
    func bounded(at offsets: [String: Int64]) throws -> any SourceConnector
}

extension SourceConnector {
    /// A source that cannot stop at offsets.
    public func bounded(at offsets: [String: Int64]) throws -> any SourceConnector {
        throw WeirError(.invalidSpec, subject: "source \(type(of: self))", "cannot be bounded at offsets",
                        suggestion: "run it with --until-idle instead")
    }

    /// A source that cannot tell its ranges: the splits, with nothing known about them.
    public func ranges() throws -> [SplitRange] {
        try discoverSplits().map { SplitRange(name: $0, low: nil, high: nil, start: nil) }
    }

    /// A reader of the given splits that also owns every split found later.
    public func openReader(splits: [Int]) throws -> any SourceReader {
        try openReader(splits: splits, owner: .all)
    }
}

/// Writes the records of one sink subtask. Used from a single thread.
public protocol SinkWriter: AnyObject {
    /// Buffers or writes a batch (rows laid out as the schema given to `openWriter`).
    func write(_ batch: RecordBatch) throws
    /// Makes everything written so far durable and visible (commits).
    func flush() throws
    /// Releases the connection; uncommitted work is rolled back.
    func close()
    /// Writes records rejected upstream into the dead-letter table, in the
    /// same transaction (or epoch) as the rows written around them.
    func writeDeadLetters(_ records: [RejectedRecord]) throws
}

extension SinkWriter {
    public func writeDeadLetters(_ records: [RejectedRecord]) throws {
        guard let first = records.first else { return }
        throw WeirError(.invalidSpec, subject: "dead-letter record from \(first.origin)",
                        "this sink cannot write a dead-letter table",
                        suggestion: "use onError: skip or fail for this job")
    }
}

/// A configured sink (one `mysql:` node, for instance).
public protocol SinkConnector: Sendable {
    /// Checks the target against the schema of the records it will receive
    /// (table exists, columns match) before the job starts.
    func check(schema: Schema) throws
    /// Opens the writer of one sink subtask.
    func openWriter(subtask: Int, schema: Schema) throws -> any SinkWriter
    /// Opens the writer of one sink subtask that isolates the rows its target
    /// refuses, following `context.onError`.
    func openWriter(context: SinkContext, schema: Schema) throws -> any SinkWriter
    /// The fields identifying a row in the target (an upsert key), if any: the
    /// runtime routes rows by them so that two subtasks never write the same row.
    var rowKey: [String] { get }
    /// The fields the target takes, typed from it (a table's columns; NOT NULL
    /// without a default: not nullable), for a sink fed by a source without a
    /// declared schema. nil when the sink cannot tell.
    func tableSchema() throws -> Schema?
}

extension SinkConnector {
    public func openWriter(context: SinkContext, schema: Schema) throws -> any SinkWriter {
        try openWriter(subtask: context.subtask, schema: schema)
    }
    public var rowKey: [String] { [] }
    public func tableSchema() throws -> Schema? { nil }
}

/// The declaration of a connector kind (`kafka`, `mysql`): it turns the
/// node's configuration mapping into a connector, reporting errors through
/// the reader so they carry their spec location.
public enum ConnectorKind: Sendable {
    case source(name: String, make: @Sendable (inout ConfigReader) -> (any SourceConnector)?)
    case sink(name: String, make: @Sendable (inout ConfigReader) -> (any SinkConnector)?)

    public var name: String {
        switch self {
        case .source(let n, _), .sink(let n, _): return n
        }
    }
}

// MARK: - Checkpointing (two-phase commit)

/// Identifies the transactions of one sink subtask so that leftovers can be
/// found and resolved after a crash. Encoded into the sink's transaction ids.
public struct SinkTransactionScope: Sendable, Equatable {
    /// The job's name (as in the spec).
    public var job: String
    /// Unique id of this run (a restore starts a new run).
    public var run: String
    /// The sink node's id.
    public var node: String
    public var subtask: Int

    public init(job: String, run: String, node: String, subtask: Int) {
        self.job = job; self.run = run; self.node = node; self.subtask = subtask
    }
}

/// A sink writer taking part in checkpoints: what it writes between two
/// barriers is one *epoch*, written in its own transaction, prepared when the
/// barrier arrives and committed only once the checkpoint is complete.
public protocol TransactionalSinkWriter: SinkWriter {
    /// Starts epoch `epoch`: rows written from now on belong to it.
    func begin(epoch: Int64) throws
    /// Writes out and prepares the current epoch (phase one). Returns the
    /// transaction id, or nil when the epoch wrote nothing (nothing to commit).
    func prepare() throws -> String?
    /// Commits a prepared epoch (phase two). Idempotent: committing an epoch
    /// that is already committed succeeds.
    func commit(epoch: Int64) throws
    /// Rolls back the open epoch and every prepared, uncommitted one.
    func abortAll()
    /// The epochs prepared and not yet committed, in order.
    var preparedEpochs: [Int64] { get }
}

extension TransactionalSinkConnector {
    public func openTransactionalWriter(scope: SinkTransactionScope, context: SinkContext, schema: Schema) throws
        -> any TransactionalSinkWriter {
        try openTransactionalWriter(scope: scope, schema: schema)
    }
}

/// A prepared-but-unresolved transaction found on the sink's server.
public struct PreparedTransaction: Sendable, Equatable {
    public var id: String
    public var scope: SinkTransactionScope
    public var epoch: Int64
    public init(id: String, scope: SinkTransactionScope, epoch: Int64) { self.id = id; self.scope = scope; self.epoch = epoch }
}

/// A sink that supports two-phase commit.
public protocol TransactionalSinkConnector: SinkConnector {
    /// Opens a checkpointing writer for one sink subtask.
    func openTransactionalWriter(scope: SinkTransactionScope, schema: Schema) throws -> any TransactionalSinkWriter
    /// Opens a checkpointing writer that isolates refused rows (see `openWriter(context:schema:)`).
    func openTransactionalWriter(scope: SinkTransactionScope, context: SinkContext, schema: Schema) throws
        -> any TransactionalSinkWriter
    /// Resolves leftovers of earlier runs of `job` (sink node `node`): every
    /// prepared transaction of theirs is committed when `shouldCommit` says
    /// so (its checkpoint completed), and rolled back otherwise.
    /// Returns what was committed and what was rolled back.
    /// `node` nil resolves the leftovers of every sink node of the job (a renamed node included).
    func recover(job: String, node: String?, shouldCommit: (PreparedTransaction) -> Bool) throws
        -> (committed: [PreparedTransaction], rolledBack: [PreparedTransaction])
    /// The prepared transactions of `job` waiting in the sink (every sink node
    /// of the job), without resolving any: what `recover` would decide on.
    func prepared(job: String) throws -> [PreparedTransaction]
}
