#if WEIR_BUG_SWITCHES
import Foundation
@testable import WeirCore
@testable import WeirEngine

/// A seeded, deterministic random source (SplitMix64): the same seed gives the same history.
struct SimRandom: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed ^ 0x5DEE_CE66_D1CE_4E5B }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ r: ClosedRange<Int>) -> Int { Int.random(in: r, using: &self) }
    mutating func chance(_ p: Double) -> Bool { p > 0 && Double.random(in: 0..<1, using: &self) < p }
}

/// One input record of a simulated partition.
struct SimRecord {
    var k: Int64, ts: Int64, amount: Int64
    var json: [UInt8] { Array(#"{"k":\#(k),"ts":\#(ts),"amount":\#(amount)}"#.utf8) }
}

/// Everything that outlives a run: the input partitions (a broker), the
/// snapshot store, the two-phase-commit store (a database with XA), the
/// clock, and the faults armed for the next operation that can fail.
final class SimWorld: @unchecked Sendable {
    // @unchecked: the simulation is single-threaded.
    var rng: SimRandom
    /// Simulated time, in nanoseconds.
    var now: UInt64 = SimWorld.startNanos
    static let startNanos: UInt64 = 1_000_000_000
    let partitions: [[SimRecord]]
    let encoded: [[[UInt8]]]
    /// A partition's fetches return nothing until this time (a slow broker), while its lag stays visible.
    var stalledUntil: [UInt64]
    /// Partitions the broker lists; the rest appear at `growAt` (partitions added to the topic).
    private(set) var visiblePartitions: Int
    let growAt: UInt64

    // Snapshot store.
    var snapshots: [CompletedCheckpoint] = []
    // Two-phase-commit store.
    enum TxState: Equatable { case prepared, committed, rolledBack }
    struct Tx { var scope: SinkTransactionScope; var epoch: Int64; var rows: [String]; var state: TxState }
    var txs: [String: Tx] = [:]
    var txOrder: [String] = []
    /// Committed rows per sink node.
    var committed: [String: [String]] = [:]
    /// Faults armed for the next matching operation.
    var failNextPrepare = false, failNextCommit = false
    var trace: [String] = []

    /// `growAt` is counted from the start of the history.
    init(partitions: [[SimRecord]], rng: SimRandom, visible: Int? = nil, growAt: UInt64 = 0) {
        self.partitions = partitions
        self.visiblePartitions = visible ?? partitions.count
        self.growAt = SimWorld.startNanos &+ growAt
        self.encoded = partitions.map { $0.map(\.json) }
        self.stalledUntil = Array(repeating: 0, count: partitions.count)
        self.rng = rng
    }

    /// The topic gains its remaining partitions, at `growAt` or once `force`d (a reader at its end).
    func growIfDue(force: Bool = false) {
        guard visiblePartitions < partitions.count, force || now >= growAt else { return }
        note("topic gains partitions \(visiblePartitions)..<\(partitions.count)")
        visiblePartitions = partitions.count
    }

    func note(_ line: @autoclosure () -> String) {
        trace.append("t=\(now / 1_000_000)ms \(line())")
        if trace.count > 400 { trace.removeFirst(100) }
    }

    // MARK: Snapshot store

    func isCompleted(run: String, checkpointID: Int64) -> Bool {
        snapshots.contains { $0.run == run && $0.id >= checkpointID }
    }

    var latest: CompletedCheckpoint? { snapshots.max { $0.id < $1.id } }

    var nextCheckpointID: Int64 { (snapshots.map(\.id).max() ?? 0) + 1 }

    func restorePoint(_ c: CompletedCheckpoint) -> RestorePoint {
        var state: [String: [[UInt8]]] = [:]
        for b in c.state.sorted(by: { ($0.node, $0.subtask) < ($1.node, $1.subtask) }) { state[b.node, default: []].append(b.bytes) }
        return RestorePoint(snapshotID: "chk-\(c.id)", checkpointID: c.id, run: c.run, nodes: c.nodes, offsets: c.offsets,
                            state: state, layouts: c.layouts, maxParallelism: c.maxParallelism)
    }

    // MARK: Two-phase-commit store

    static func txID(_ s: SinkTransactionScope, _ epoch: Int64) -> String { "\(s.run)/\(s.node)/\(s.subtask)/\(epoch)" }

    func resolve(_ id: String, commit: Bool) {
        guard var t = txs[id], t.state == .prepared else { return }
        t.state = commit ? .committed : .rolledBack
        txs[id] = t
        if commit { committed[t.scope.node, default: []].append(contentsOf: t.rows) }
        note("tx \(id) \(commit ? "committed" : "rolled back") (\(t.rows.count) rows)")
    }

    var inDoubt: [String] { txOrder.filter { txs[$0]?.state == .prepared } }
}

/// A partitioned source over the world's records.
struct SimSourceConnector: SourceConnector {
    let world: SimWorld
    var start: [String: Int64] = [:]

    func discoverSplits() throws -> [String] { (0..<world.visiblePartitions).map { "p/\($0)" } }
    func openReader(splits: [Int], owner: SplitOwner) throws -> any SourceReader {
        SimReader(world: world, partitions: splits, start: splits.map { Int(start["p/\($0)"] ?? 0) },
                  owner: owner, known: world.visiblePartitions)
    }
    func resuming(at offsets: [String: Int64]) -> any SourceConnector { SimSourceConnector(world: world, start: offsets) }
}

/// Reads some of the available records of its partitions per poll (how many is seeded).
final class SimReader: SourceReader {
    let world: SimWorld
    private(set) var partitions: [Int]
    var next: [Int]
    var lastDelivered: [Int64?]
    /// Who reads partitions that appear while running, and how many were listed at start.
    let owner: SplitOwner
    let known: Int
    init(world: SimWorld, partitions: [Int], start: [Int], owner: SplitOwner = .all, known: Int = 0) {
        self.world = world; self.partitions = partitions; self.next = start
        self.owner = owner; self.known = known
        lastDelivered = Array(repeating: nil, count: partitions.count)
    }
    var splitNames: [String] { partitions.map { "p/\($0)" } }

    /// Partitions added since the run started that this subtask owns, read from their start.
    func refreshSplits() throws -> [String] {
        world.growIfDue()
        var added: [String] = []
        for p in known..<max(known, world.visiblePartitions) where !partitions.contains(p) && owner.owns(newSplit: "p/\(p)") {
            partitions.append(p)
            next.append(0)
            lastDelivered.append(nil)
            added.append("p/\(p)")
        }
        if !added.isEmpty { world.note("reader starts new partitions \(added)") }
        return added
    }

    func poll(maxMessages: Int, timeoutMillis: Int, _ deliver: (Int, UnsafeRawBufferPointer) -> Void) throws -> Int {
        var n = 0
        let budget = world.rng.int(0...maxMessages)
        var progressed = true
        while n < budget && progressed {
            progressed = false
            for (i, p) in partitions.enumerated() where n < budget {
                guard world.now >= world.stalledUntil[p], next[i] < world.partitions[p].count else { continue }
                world.encoded[p][next[i]].withUnsafeBytes { deliver(i, $0) }
                lastDelivered[i] = Int64(next[i])
                next[i] += 1
                n += 1
                progressed = true
            }
        }
        return n
    }

    func progress() -> [SplitProgress] {
        // A reader at the end of its splits makes the topic grow now, before the input can end.
        if partitions.indices.allSatisfy({ next[$0] >= world.partitions[partitions[$0]].count }) { world.growIfDue(force: true) }
        return partitions.enumerated().map { i, p in
            SplitProgress(name: "p/\(p)", nextOffset: Int64(next[i]), highWatermark: Int64(world.partitions[p].count))
        }
    }

    func close() {}
    func offsetOfLastDelivered(split: Int) -> Int64? { lastDelivered[split] }
}

/// A transactional sink over the world's two-phase-commit store: rows of an
/// open epoch vanish with a crash; prepared ones survive it, in doubt, until
/// recovery commits or rolls them back.
struct SimSink: TransactionalSinkConnector {
    let world: SimWorld

    func check(schema: Schema) throws {}
    func openWriter(subtask: Int, schema: Schema) throws -> any SinkWriter {
        throw WeirError(.invalidSpec, subject: "simsink", "runs only with checkpoints")
    }
    func openTransactionalWriter(scope: SinkTransactionScope, schema: Schema) throws -> any TransactionalSinkWriter {
        Writer(world: world, scope: scope, schema: schema)
    }
    var rowKey: [String] { [] }
    func tableSchema() throws -> Schema? { nil }

    func prepared(job: String) throws -> [PreparedTransaction] {
        world.inDoubt.compactMap { id in
            world.txs[id].flatMap { $0.scope.job == job ? PreparedTransaction(id: id, scope: $0.scope, epoch: $0.epoch) : nil }
        }
    }
    func recover(job: String, node: String?, shouldCommit: (PreparedTransaction) -> Bool) throws
        -> (committed: [PreparedTransaction], rolledBack: [PreparedTransaction]) {
        var c: [PreparedTransaction] = [], r: [PreparedTransaction] = []
        for id in world.inDoubt {
            let t = world.txs[id]!
            guard t.scope.job == job, node == nil || t.scope.node == node else { continue }
            let p = PreparedTransaction(id: id, scope: t.scope, epoch: t.epoch)
            if shouldCommit(p) { world.resolve(id, commit: true); c.append(p) } else { world.resolve(id, commit: false); r.append(p) }
        }
        return (c, r)
    }

    final class Writer: TransactionalSinkWriter {
        let world: SimWorld
        let scope: SinkTransactionScope
        let names: [String]
        var epoch: Int64 = 0
        var rows: [String] = []
        var prepared: [Int64] = []
        init(world: SimWorld, scope: SinkTransactionScope, schema: Schema) {
            self.world = world; self.scope = scope; self.names = schema.names
        }
        func begin(epoch: Int64) throws { self.epoch = epoch; rows = [] }
        func write(_ batch: RecordBatch) throws {
            for r in 0..<batch.count {
                rows.append(zip(names, batch.row(r)).map { "\($0)=\($1)" }.sorted().joined(separator: ","))
            }
        }
        func prepare() throws -> String? {
            if world.failNextPrepare {
                world.failNextPrepare = false
                throw WeirError(.mysqlUnreachable, subject: "simsink", "prepare failed (injected)")
            }
            guard !rows.isEmpty else { return nil }
            let id = SimWorld.txID(scope, epoch)
            world.txs[id] = SimWorld.Tx(scope: scope, epoch: epoch, rows: rows, state: .prepared)
            world.txOrder.append(id)
            prepared.append(epoch)
            rows = []
            return id
        }
        func commit(epoch: Int64) throws {
            guard prepared.contains(epoch) else { return }
            if world.failNextCommit {
                world.failNextCommit = false
                throw WeirError(.mysqlUnreachable, subject: "simsink", "commit failed (injected)")
            }
            world.resolve(SimWorld.txID(scope, epoch), commit: true)
            prepared.removeAll { $0 == epoch }
        }
        func abortAll() {
            for e in prepared { world.resolve(SimWorld.txID(scope, e), commit: false) }
            prepared = []
            rows = []
        }
        var preparedEpochs: [Int64] { prepared }
        func flush() throws {}
        /// A lost connection: the open epoch is gone, prepared ones stay in doubt (as with XA).
        func close() { rows = [] }
    }
}
#endif
