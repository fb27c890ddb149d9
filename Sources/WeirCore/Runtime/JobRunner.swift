import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a run behaves; defaults suit production, tests and benchmarks tune them.
public struct RunOptions: Sendable {
    /// End the run once every split has been at its end for this long (the
    /// input is then complete: every open window fires and sinks commit).
    public var untilIdleMillis: Int64?
    /// Batches each subtask inbox holds before producers block.
    public var channelCapacity = 8
    /// Messages a source asks its reader for per poll (the batch size).
    public var pollBatchSize = 4096
    /// How often sinks commit what they have written.
    public var sinkFlushIntervalMillis: Int64 = 1_000
    /// Receives human-readable log lines (decode errors, lifecycle).
    public var log: @Sendable (String) -> Void = { _ in }
    /// Receives lifecycle events (running, snapshots, restarts).
    public var onEvent: @Sendable (RunEvent) -> Void = { _ in }
    /// The published version being run (recorded with dead-letter rows).
    public var jobVersion: Int?

    public init() {}
}

/// How a run ended.
public enum RunOutcome: Sendable, Equatable {
    /// The input was complete (`untilIdle`) and all output is committed.
    case finished
    /// Stopped with a snapshot: every sink committed exactly up to it.
    case stopped(snapshotID: String)
    /// `cancel()` was called; uncommitted output was rolled back.
    case cancelled
}

/// Executes a `JobPlan`: every node as `parallelism` subtasks on their own
/// threads, stateless operators chained into their input's thread, bounded
/// channels between the rest, keyed exchanges partitioned by key group.
/// With checkpointing, a coordinator injects barriers at the sources,
/// inboxes align them, stateful operators snapshot their state and sinks
/// pre-commit, and the checkpoint completes when every task acknowledged.
///
/// The runner knows connectors only through `SourceConnector`/`SinkConnector`.
public final class JobRunner: Sendable {
    public let plan: JobPlan
    public let options: RunOptions
    public let metrics = JobMetrics()
    /// Unique id of this run (part of sink transaction ids).
    public let runID: String
    let checkpointing: CheckpointConfig?
    let restore: RestorePoint?
    let allowNonRestoredState: Bool

    private struct State {
        var error: (any Error)?
        var cancelled = false
        var channels: [Channel] = []
        var coordinator: CheckpointCoordinator?
        var stopped: String?
    }
    private let state = Mutex(State())
    private let stopFlag = Atomic<Bool>(false)
    private let sawFirstRecord = Atomic<Bool>(false)

    /// Reports `.firstRecord` once per run.
    func noteFirstRecord() {
        if !sawFirstRecord.load(ordering: .relaxed), sawFirstRecord.exchange(true, ordering: .relaxed) == false {
            options.onEvent(.firstRecord)
        }
    }

    public init(plan: JobPlan, options: RunOptions = RunOptions(), checkpointing: CheckpointConfig? = nil,
                restore: RestorePoint? = nil, allowNonRestoredState: Bool = false, runID: String? = nil) {
        self.plan = plan
        self.options = options
        self.checkpointing = checkpointing
        self.restore = restore
        self.allowNonRestoredState = allowNonRestoredState
        self.runID = runID ?? JobRunner.newRunID()
    }

    static func newRunID() -> String {
        let chars = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<8).map { _ in chars[Int.random(in: 0..<chars.count)] })
    }

    /// Time the run's subtasks spent blocked on full channels (backpressure).
    public var backpressureNanos: UInt64 {
        state.withLock { $0.channels }.reduce(0) { $0 &+ $1.backpressureNanos }
    }

    /// Stops the run as soon as possible without a snapshot; pending output is rolled back.
    public func cancel() {
        let (chans, coord) = state.withLock { s -> ([Channel], CheckpointCoordinator?) in
            s.cancelled = true; return (s.channels, s.coordinator)
        }
        stopFlag.store(true, ordering: .relaxed)
        chans.forEach { $0.cancel() }
        coord?.stop()
    }

    /// Result of `stopWithSnapshot`.
    public enum StopResult: Sendable, Equatable {
        /// The run stopped; every sink committed exactly up to this snapshot.
        case stopped(snapshotID: String)
        /// The snapshot failed; the run goes on unchanged.
        case failed(reason: String)
    }

    /// Takes a snapshot and stops at it (sources end at the barrier, sinks
    /// commit). If the snapshot fails, the run keeps going and says why.
    public func stopWithSnapshot(timeoutSeconds: Double = 120) -> StopResult {
        guard let coord = state.withLock({ $0.coordinator }) else { return .failed(reason: "the run has not started yet") }
        switch coord.requestAndWait(.stop, timeoutSeconds: timeoutSeconds) {
        case .completed(let id): return .stopped(snapshotID: id)
        case .failed(let reason): return .failed(reason: reason)
        }
    }

    /// Takes a savepoint while the run goes on.
    public func savepoint(timeoutSeconds: Double = 120) -> StopResult {
        guard let coord = state.withLock({ $0.coordinator }) else { return .failed(reason: "the run has not started yet") }
        switch coord.requestAndWait(.savepoint, timeoutSeconds: timeoutSeconds) {
        case .completed(let id): return .stopped(snapshotID: id)
        case .failed(let reason): return .failed(reason: reason)
        }
    }

    private func fail(_ e: any Error) {
        let (chans, coord) = state.withLock { s -> ([Channel], CheckpointCoordinator?) in
            if s.error == nil && !(e is CancellationError) { s.error = e }
            return (s.channels, s.coordinator)
        }
        stopFlag.store(true, ordering: .relaxed)
        chans.forEach { $0.cancel() }
        coord?.stop()
    }

    /// Layout fingerprint of a node's state; a restore refuses a changed layout.
    static func layout(_ n: PlannedNode, _ plan: JobPlan) -> String? {
        guard case .aggregate(let keys, let window, let aggs) = n.kind else { return nil }
        let input = plan.nodes[n.inputs[0]].schema
        let w: String
        switch window {
        case nil: w = "continuous"
        case .tumbling(let s)?: w = "tumbling(\(s))"
        case .sliding(let s, let sl)?: w = "sliding(\(s),\(sl))"
        case .session(let g)?: w = "session(\(g))"
        }
        return "keys=\(keys.map { input.fields[$0].name }.joined(separator: ","));window=\(w);aggs=\(aggs.map { "\($0.name):\($0.function.rawValue)" }.joined(separator: ","))"
    }

    /// Checks that a snapshot taken by a run of `previous` could be restored
    /// by `plan` (node ids, state layouts, maxParallelism) before anything is
    /// stopped: publish-and-run refuses an incompatible version up front.
    public static func checkCanRestore(_ plan: JobPlan, snapshotOf previous: JobPlan, allowNonRestoredState: Bool) throws {
        var state: [String: [[UInt8]]] = [:], layouts: [String: String] = [:], offsets: [String: [String: Int64]] = [:]
        for n in previous.nodes {
            if let l = layout(n, previous) { layouts[n.id] = l; state[n.id] = [[]] }
            if n.isSource { offsets[n.id] = [:] }
        }
        let r = RestorePoint(snapshotID: "the stop snapshot of the running version", checkpointID: 0, run: "", nodes: previous.nodes.map(\.id),
                             offsets: offsets, state: state, layouts: layouts, maxParallelism: previous.maxParallelism)
        try JobRunner(plan: plan, restore: r, allowNonRestoredState: allowNonRestoredState).checkRestore(r)
    }

    /// The fields a node's inbox is partitioned by: an aggregate's keys, an
    /// upsert sink's row key (at parallelism > 1); nil for a forward inbox.
    static func exchangeKeys(_ n: PlannedNode, _ sinkKey: [Int]?) -> [Int]? {
        if case .aggregate(let keys, _, _) = n.kind { return keys }
        return sinkKey
    }

    /// Every node's rejection handling; a node's dead letters go to the first sink downstream of it.
    func makeRejections(_ consumers: [[Int]]) -> [Rejections] {
        func firstSink(_ i: Int) -> String? {
            var seen: Set<Int> = [], frontier = [i], sinks: [Int] = []
            while let c = frontier.popLast() {
                guard seen.insert(c).inserted else { continue }
                if plan.nodes[c].isSink { sinks.append(c) } else { frontier += consumers[c] }
            }
            return sinks.min().map { plan.nodes[$0].id }
        }
        return plan.nodes.indices.map { i in
            let n = plan.nodes[i]
            let policy = n.errors ?? plan.spec.errors
            return Rejections(node: n.id, policy: policy.onError, deadLetterSink: firstSink(i), metrics: metrics, log: options.log)
        }
    }

    /// After a cancel: commits every prepared epoch whose checkpoint completed
    /// (a cancel never undoes a completed checkpoint), then rolls back the rest.
    /// If such a commit fails, nothing is rolled back: the epochs stay prepared
    /// and recovery resolves each by whether its checkpoint completed.
    static func settleOnCancel(_ t: any TransactionalSinkWriter, completedID: Int64) {
        var ok = true
        for e in t.preparedEpochs where e <= completedID {
            do { try t.commit(epoch: e) } catch { ok = false }
        }
        if ok { t.abortAll() }
    }

    /// Checks a restore point against the plan (node ids, state layouts).
    func checkRestore(_ r: RestorePoint) throws {
        if let m = r.maxParallelism, m != plan.maxParallelism, r.state.values.contains(where: { !$0.isEmpty }),
           plan.nodes.contains(where: { n in if case .aggregate = n.kind { return r.state[n.id] != nil } else { return false } }) {
            throw WeirError(.invalidSpec, subject: "snapshot \(r.snapshotID)",
                            "its keyed state is split into maxParallelism \(m) key groups, but the job says maxParallelism \(plan.maxParallelism); keys would land in the wrong groups",
                            suggestion: "set maxParallelism: \(m) (it is fixed for the life of the state; parallelism may change), or start without the snapshot")
        }
        let ids = Set(plan.nodes.map(\.id))
        let withState = Set(r.state.keys.filter { !$0.isEmpty }).union(r.offsets.keys)
        let missing = withState.subtracting(ids).sorted()
        if !missing.isEmpty && !allowNonRestoredState {
            throw WeirError(.invalidSpec, subject: "snapshot \(r.snapshotID)",
                            "holds state for node\(missing.count > 1 ? "s" : "") \(missing.map { "'\($0)'" }.joined(separator: ", ")) that the job no longer has",
                            suggestion: "restore the node, or pass --allow-non-restored-state to drop that state")
        }
        for n in plan.nodes {
            guard let old = r.layouts[n.id], let new = JobRunner.layout(n, plan), r.state[n.id] != nil else { continue }
            if old != new {
                throw WeirError(.invalidSpec, subject: "node '\(n.id)'",
                                "its state layout changed since snapshot \(r.snapshotID) (was \(old), now \(new))",
                                suggestion: "keep the keys, window and aggregates of a stateful node, or give the changed node a new id (its state then starts empty) with --allow-non-restored-state")
            }
        }
    }

    /// Runs the job on the calling thread until it finishes, stops, is cancelled or fails.
    public func run() throws -> RunOutcome {
        // Sources without a schema that feed a sink take the sink table's columns.
        let plan = try self.plan.bindingSinkTables()
        let p = plan.parallelism
        if let r = restore { try checkRestore(r) }
        // 1. Check sinks, resolve leftover transactions, discover source splits.
        var splitsBySource: [Int: [String]] = [:]
        var sources: [Int: any SourceConnector] = [:]
        for (i, n) in plan.nodes.enumerated() {
            switch n.kind {
            case .sink(_, let sink):
                try sink.check(schema: n.schema)
                if let ck = checkpointing, let tx = sink as? any TransactionalSinkConnector {
                    // Leftovers of every sink node of the job (renamed ones too): committed when a
                    // snapshot in this store or in the lineage of the one being restored covers them.
                    let isCompleted = ck.isCompleted
                    let lineage = restore.map { ($0.run, $0.checkpointID) }
                    let decide: (PreparedTransaction) -> Bool = { t in
                        if let (run, id) = lineage, t.scope.run == run, t.epoch <= id { return true }
                        return isCompleted(t.scope.run, t.epoch)
                    }
                    // By this node's name first (ids of older Weir versions name it), then every node of the job.
                    let (c1, r1) = try tx.recover(job: plan.name, node: n.id, shouldCommit: decide)
                    let (c2, r2) = try tx.recover(job: plan.name, node: nil, shouldCommit: decide)
                    let c = c1 + c2, r = r1 + r2
                    if !c.isEmpty || !r.isEmpty {
                        options.log("\(n.id): resolved leftover transactions: \(c.count) committed (checkpoint had completed), \(r.count) rolled back")
                    }
                }
            case .source(_, let src, _):
                var conn = src
                if let r = restore {
                    let offsets = r.offsets[n.id] ?? [:]
                    conn = src.resuming(at: offsets)
                    let now = try conn.discoverSplits()
                    let gone = offsets.keys.filter { !now.contains($0) }.sorted()
                    if !gone.isEmpty {
                        options.log("\(n.id): snapshot partitions no longer read by this job are dropped: \(gone.joined(separator: ", "))")
                    }
                    let new = now.filter { offsets[$0] == nil }
                    if !new.isEmpty && !offsets.isEmpty {
                        options.log("\(n.id): partitions not in the snapshot start from earliest: \(new.joined(separator: ", "))")
                    }
                    splitsBySource[i] = now
                } else {
                    splitsBySource[i] = try conn.discoverSplits()
                }
                sources[i] = conn
            default: break
            }
        }

        // 2. Decide which nodes get their own inbox and which are chained.
        let consumers: [[Int]] = plan.nodes.indices.map { i in plan.nodes.indices.filter { plan.nodes[$0].inputs.contains(i) } }
        let rejections = makeRejections(consumers)
        metrics.register(rejections: rejections)
        // An upsert sink at parallelism > 1 gets its rows routed by its row key, so two
        // subtasks never hold locks on the same rows in concurrent transactions.
        var sinkKeys: [Int: [Int]] = [:]
        for (i, n) in plan.nodes.enumerated() where p > 1 {
            guard case .sink(_, let sink) = n.kind, !sink.rowKey.isEmpty else { continue }
            let input = plan.nodes[n.inputs[0]].schema
            let idx = sink.rowKey.compactMap { k in input.index(of: k) ?? input.names.firstIndex { $0.lowercased() == k.lowercased() } }
            if idx.count == sink.rowKey.count { sinkKeys[i] = idx }
        }
        let deadLetterSinkOf = Dictionary(uniqueKeysWithValues: rejections.compactMap { r in r.deadLetterSink.map { (r.node, $0) } })
        func chained(_ i: Int) -> Bool {
            let n = plan.nodes[i]
            switch n.kind {
            case .filter, .select: return n.inputs.count == 1
            default: return false
            }
        }
        var inbox: [Int: [Channel]] = [:]
        for (i, n) in plan.nodes.enumerated() where !n.isSource && !chained(i) {
            inbox[i] = (0..<p).map { _ in Channel(capacity: options.channelCapacity) }
        }

        // 3. Instantiate operators (restoring state) and wire outputs, per subtask.
        let transactional = checkpointing?.intervalMillis != nil
        let firstEpoch = checkpointing?.firstCheckpointID ?? 1
        var writers: [any SinkWriter] = []
        var cleanShutdown = false
        var coordinator: CheckpointCoordinator?
        defer {
            let cancelled = state.withLock { $0.cancelled }
            // The coordinator is stopped and joined by now: no checkpoint completes after this.
            let completed = coordinator?.completedID.load(ordering: .acquiring) ?? -1
            for w in writers {
                if !cleanShutdown, cancelled, let t = w as? any TransactionalSinkWriter { JobRunner.settleOnCancel(t, completedID: completed) }
                w.close()
            }
            rejections.forEach { $0.flushLog() }
        }
        var ops: [[(any StreamOperator)?]] = Array(repeating: Array(repeating: nil, count: p), count: plan.nodes.count)
        let outs: [[Output]] = plan.nodes.map { _ in (0..<p).map { _ in Output() } }
        for (i, n) in plan.nodes.enumerated() {
            for j in 0..<p {
                switch n.kind {
                case .source: break
                case .filter(let c): ops[i][j] = FilterOperator(c)
                case .select(let cs): ops[i][j] = SelectOperator(cs)
                case .union: ops[i][j] = UnionOperator()
                case .aggregate(let keys, let window, let aggs):
                    let op: any StatefulOperator
                    if let window {
                        let w = WindowAggregateOperator(keyFields: keys, window: window, aggregates: aggs,
                                                        outArity: n.schema.count, metrics: metrics)
                        w.overflow.rejections = rejections[i]; w.overflow.schema = n.schema
                        op = w
                    } else {
                        let c = ContinuousAggregateOperator(keyFields: keys, aggregates: aggs, outArity: n.schema.count)
                        c.overflow.rejections = rejections[i]; c.overflow.schema = n.schema
                        op = c
                    }
                    if let files = restore?.state[n.id] {
                        let range = KeyGroups.range(subtask: j, parallelism: p, maxParallelism: plan.maxParallelism)
                        do { try op.restoreState(files, keyGroups: range) } catch {
                            throw WeirError(.io, subject: "state of node '\(n.id)' in snapshot \(restore!.snapshotID)",
                                            "cannot be read: \(error)", suggestion: "restore from an earlier snapshot")
                        }
                    }
                    ops[i][j] = op
                case .sink(_, let sink):
                    let rej = rejections[i]
                    let policy = n.errors ?? plan.spec.errors
                    let context = SinkContext(job: plan.name, version: options.jobVersion, run: runID, node: n.id, subtask: j,
                                              onError: policy.onError, deadLetterTable: policy.deadLetterTable,
                                              report: { r in _ = try? rej.reject(r) })
                    if transactional, let tx = sink as? any TransactionalSinkConnector {
                        let w = try tx.openTransactionalWriter(
                            scope: SinkTransactionScope(job: plan.name, run: runID, node: n.id, subtask: j), context: context,
                            schema: n.schema)
                        try w.begin(epoch: firstEpoch)
                        writers.append(w)
                        ops[i][j] = SinkOperator(writer: w, metrics: metrics)
                    } else {
                        let w = try sink.openWriter(context: context, schema: n.schema)
                        writers.append(w)
                        ops[i][j] = SinkOperator(writer: w, metrics: metrics)
                    }
                }
            }
        }
        for (i, n) in plan.nodes.enumerated() {
            for c in consumers[i] {
                let cn = plan.nodes[c]
                let edge = cn.inputs.firstIndex(of: i)!
                for j in 0..<p {
                    let out = outs[i][j]
                    if chained(c) {
                        out.targets.append(.chained(ops[c][j]!, outs[c][j]))
                    } else if let keys = JobRunner.exchangeKeys(cn, sinkKeys[c]) {
                        out.targets.append(.keyed(KeyedExchange(channels: inbox[c]!, input: edge * p + j, keyFields: keys,
                                                                maxParallelism: plan.maxParallelism, arity: n.schema.count)))
                    } else {
                        out.targets.append(.forward(inbox[c]![j], input: edge))  // forward: subtask j → j only
                    }
                }
            }
        }

        // 4. The coordinator: every source and inbox task acknowledges each barrier.
        let sourceTaskCount = plan.nodes.filter(\.isSource).count * p
        let taskCount = sourceTaskCount + inbox.count * p
        var layouts: [String: String] = [:]
        for n in plan.nodes { if let l = JobRunner.layout(n, plan) { layouts[n.id] = l } }
        let config = checkpointing ?? CheckpointConfig(storage: NoStorage(), intervalMillis: nil, timeoutMillis: 60_000,
                                                        retain: 1, firstCheckpointID: 1, isCompleted: { _, _ in false })
        let coord = CheckpointCoordinator(settings: config, job: plan.name, run: runID, nodes: plan.nodes.map(\.id),
                                          parallelism: p, maxParallelism: plan.maxParallelism, layouts: layouts,
                                          expectedAcks: taskCount, sourceTasks: sourceTaskCount,
                                          untilIdleMillis: options.untilIdleMillis, metrics: metrics, log: options.log,
                                          onEvent: options.onEvent, activity: { [metrics] in metrics.activity })
        state.withLock { $0.channels = inbox.values.flatMap { $0 }; $0.coordinator = coord }
        coordinator = coord
        let counters = plan.nodes.enumerated().map { i, n in
            NodeCounters(id: n.id, inputs: n.inputs.map { plan.nodes[$0].id }, inbox: inbox[i] ?? [])
        }
        for i in plan.nodes.indices { for out in outs[i] { out.counter = counters[i].recordsOut } }
        metrics.register(nodes: counters)

        // 5. Start one thread per source subtask and per inbox subtask.
        var tasks: [(name: String, body: @Sendable () throws -> Void)] = []
        var sourceIndex = 0
        for (i, n) in plan.nodes.enumerated() {
            if case .source(_, _, let eventTime) = n.kind {
                let splits = splitsBySource[i] ?? []
                var watermarks: [String: Int64] = [:]
                for file in restore?.state[n.id] ?? [] { watermarks.merge(SourceTask.decodeWatermarks(file)) { max($0, $1) } }
                for j in 0..<p {
                    let mine = splits.indices.filter { $0 % p == j }
                    let task = SourceTask(node: n, subtask: j, taskIndex: sourceIndex, connector: sources[i]!, splitIndices: mine,
                                          eventTime: eventTime, restoredWatermarks: watermarks, output: outs[i][j],
                                          options: options, metrics: metrics, counters: counters[i], rejections: rejections[i],
                                          coordinator: coord,
                                          stop: { [self] in stopFlag.load(ordering: .relaxed) },
                                          firstRecord: { [self] in noteFirstRecord() })
                    sourceIndex += 1
                    tasks.append(("\(n.id)#\(j)", task.run))
                }
            } else if let chans = inbox[i] {
                for j in 0..<p {
                    // Keyed inboxes hear from every upstream subtask, forward ones from the same index only.
                    let keyed = JobRunner.exchangeKeys(n, sinkKeys[i]) != nil
                    let task = InboxTask(node: n, subtask: j, channel: chans[j], inputs: n.inputs.count * (keyed ? p : 1),
                                         op: ops[i][j]!, output: outs[i][j],
                                         flushIntervalMillis: n.isSink ? options.sinkFlushIntervalMillis : nil,
                                         keyGroups: KeyGroups.range(subtask: j, parallelism: p, maxParallelism: plan.maxParallelism),
                                         maxParallelism: plan.maxParallelism, coordinator: coord,
                                         deadLetterSinkOf: deadLetterSinkOf)
                    tasks.append(("\(n.id)#\(j)", task.run))
                }
            }
        }
        if let r = restore { options.log("restored snapshot \(r.snapshotID) (checkpoint \(r.checkpointID) of run \(r.run))") }
        options.log("started \(plan.name) run \(runID): \(plan.nodes.count) nodes × \(p) subtasks, \(tasks.count) threads"
                    + (transactional ? ", checkpoint every \(config.intervalMillis!) ms" : ""))
        options.onEvent(.running(run: runID, restoredFrom: restore?.snapshotID))
        let coordDone = DispatchSemaphore(value: 0)
        let coordThread = Thread { coord.run(); coordDone.signal() }
        coordThread.name = "checkpoints"
        coordThread.start()
        let group = DispatchGroup()
        for t in tasks {
            group.enter()
            let thread = Thread { [self] in
                nameCurrentThread(t.name)
                do { try t.body() } catch { fail(error) }
                group.leave()
            }
            thread.stackSize = 4 << 20
            thread.start()
        }
        group.wait()
        coord.stop()
        coordDone.wait()
        let final = state.withLock { ($0.error, $0.cancelled) }
        if let e = final.0 {
            // The stop snapshot completed before the failure (typically a sink's final
            // commit): everything up to it is durable and its prepared transactions are
            // committed by recovery when the job next runs. The stop is honest and done.
            if let sid = coord.completedStop {
                options.log("stopped with snapshot \(sid), but finishing the run failed: \(e); its prepared sink transactions are committed when the job next runs")
                return .stopped(snapshotID: sid)
            }
            throw e
        }
        if final.1 { return .cancelled }
        cleanShutdown = true
        if let sid = coord.completedStop { return .stopped(snapshotID: sid) }
        return .finished
    }
}

/// Names the calling thread (visible in `top -H`, `perf`, /proc) on Linux.
func nameCurrentThread(_ name: String) {
    #if os(Linux)
    if let h = FileHandle(forWritingAtPath: "/proc/thread-self/comm") {
        h.write(Data(name.prefix(15).utf8))
        try? h.close()
    }
    #endif
}

/// Storage for runs without a state directory: snapshots cannot be kept.
struct NoStorage: CheckpointStorage {
    func persist(_ checkpoint: CompletedCheckpoint, retain: Int) throws -> String {
        if checkpoint.kind == .drain { return "none" }
        throw WeirError(.io, subject: "snapshot", "this run has no state directory", suggestion: "run with --state-dir")
    }
}

/// The loop of one source subtask: poll → decode → chained operators,
/// per-split watermarks with idleness, barriers injected between polls.
final class SourceTask: @unchecked Sendable {
    // @unchecked: the task is created on the runner thread and then used only by its own thread.
    let node: PlannedNode
    let subtask: Int
    let taskIndex: Int
    let connector: any SourceConnector
    let splitIndices: [Int]
    let eventTime: EventTimeSpec?
    let restoredWatermarks: [String: Int64]
    let output: Output
    let options: RunOptions
    let metrics: JobMetrics
    let counters: NodeCounters
    let rejections: Rejections
    let coordinator: CheckpointCoordinator
    let stop: @Sendable () -> Bool
    let firstRecord: @Sendable () -> Void

    init(node: PlannedNode, subtask: Int, taskIndex: Int, connector: any SourceConnector, splitIndices: [Int],
         eventTime: EventTimeSpec?, restoredWatermarks: [String: Int64], output: Output, options: RunOptions,
         metrics: JobMetrics, counters: NodeCounters, rejections: Rejections, coordinator: CheckpointCoordinator,
         stop: @escaping @Sendable () -> Bool, firstRecord: @escaping @Sendable () -> Void) {
        self.firstRecord = firstRecord; self.counters = counters; self.rejections = rejections
        self.node = node; self.subtask = subtask; self.taskIndex = taskIndex; self.connector = connector
        self.splitIndices = splitIndices; self.eventTime = eventTime; self.restoredWatermarks = restoredWatermarks
        self.output = output; self.options = options; self.metrics = metrics; self.coordinator = coordinator; self.stop = stop
    }

    static func encodeWatermarks(_ m: [String: Int64]) -> [UInt8] {
        var w = StateWriter()
        w.u32(UInt32(m.count))
        for (k, v) in m.sorted(by: { $0.key < $1.key }) { w.string(k); w.i64(v) }
        return w.bytes
    }

    static func decodeWatermarks(_ b: [UInt8]) -> [String: Int64] {
        var r = StateReader(b)
        var m: [String: Int64] = [:]
        guard let n = try? r.u32() else { return m }
        for _ in 0..<n {
            guard let k = try? r.string(), let v = try? r.i64() else { break }
            m[k] = v
        }
        return m
    }

    func run() throws {
        let reader = try connector.openReader(splits: splitIndices)
        defer { reader.close() }
        var decoder = JSONRowDecoder(schema: node.schema, eventTimeField: eventTime?.field)
        let names = reader.splitNames
        let n = names.count
        var splitMax = names.map { restoredWatermarks[$0] ?? .min }
        // Idleness: a split counts as idle only after it has been seen at its end
        // (no lag) and silent for the idle timeout. Time is counted per loop
        // iteration and capped, so a process stall (SIGSTOP), a blocked sink or a
        // slow broker never adds up to idleness: a split with unread records is never idle.
        var quietNanos = [UInt64](repeating: 0, count: n)
        var hasLag = [Bool](repeating: true, count: n)
        var lastLoop = DispatchTime.now().uptimeNanoseconds
        var touched = [Bool](repeating: false, count: n)
        var emitted = Int64.min
        var idle = false
        var lastProgress: UInt64 = 0
        var atEndNanos: UInt64 = 0
        let topics = names.map(SourceTask.topicPartition)
        var rejected: [RejectedRecord] = []
        var failures: [BadMessage] = []
        var lastBarrier: Int64 = -1
        var emptyPolls = 0
        var sentFirst = false
        let arity = node.schema.count
        let ooo = eventTime?.maxOutOfOrdernessMillis ?? 0
        let idleNanos = UInt64(max(0, eventTime?.idleTimeoutMillis ?? 0)) * 1_000_000
        // Filters/selects chained behind the source run inside the decode loop.
        var pipeline = RowPipeline(from: output, sourceArity: arity)
        let batchArity = pipeline?.outArity ?? arity
        var batch = RecordBatch(arity: batchArity, capacity: options.pollBatchSize)

        while !stop() {
            // A barrier goes out between polls: every record before it is already emitted.
            if let b = coordinator.barrier(after: lastBarrier) {
                lastBarrier = b.id
                if b.kind == .drain, eventTime != nil { output.emitWatermark(Int64.max - 1) }
                try output.emitControl(.barrier(b))
                var offsets: [String: Int64] = [:]
                for p in reader.progress() where p.nextOffset >= 0 { offsets[p.name] = p.nextOffset }
                var wms: [String: Int64] = [:]
                for k in 0..<n where splitMax[k] != .min { wms[names[k]] = splitMax[k] }
                let blob = SourceTask.encodeWatermarks(wms)
                coordinator.ack(b, TaskAck(node: node.id, subtask: subtask, offsets: offsets, state: { blob }))
                if b.kind == .stop || b.kind == .drain {
                    // Wait for the snapshot: if it completes the source ends here, otherwise it goes on.
                    let outcome = coordinator.waitForOutcome(b.id, stop: stop)
                    if case .completed? = outcome {
                        if b.kind == .drain { try output.emitEnd() } else { try output.emitControl(.stop) }
                        return
                    }
                    if outcome == nil { return }
                }
                continue
            }
            var bad = 0
            // A short wait while records flow keeps barriers prompt; after a few empty
            // polls the wait grows, so an idle job sleeps instead of polling 100 times a second.
            let timeout = emptyPolls < 20 ? 10 : 100
            let got = try reader.poll(maxMessages: options.pollBatchSize, timeoutMillis: timeout) { idx, bytes in
                if let failure = decoder.decodeRow(bytes) {
                    // Kept minimal here (the hot closure); handled after the poll.
                    bad += 1
                    touched[idx] = true
                    failures.append(BadMessage(split: idx, failure: failure,
                                               offset: reader.offsetOfLastDelivered(split: idx), bytes: Array(bytes)))
                    return
                }
                touched[idx] = true
                let ts = decoder.timestamp
                if ts > splitMax[idx] { splitMax[idx] = ts }
                if pipeline != nil {
                    decoder.withRow { pipeline!.push($0, timestamp: ts, into: &batch) }
                } else {
                    decoder.withRow { batch.values.append(contentsOf: UnsafeBufferPointer(start: $0, count: arity)) }
                    batch.timestamps.append(ts)
                }
            }
            if got > 0 { metrics.recordsIn.add(got); counters.recordsIn.add(got) }
            if bad > 0 { metrics.decodeErrors.add(bad) }
            if pipeline != nil {
                output.count(got - bad)
                pipeline!.countBatch(rows: got - bad)
            }
            if !failures.isEmpty {
                try reject(failures, topics: topics, into: &rejected)
                failures.removeAll()
            }
            emptyPolls = got == 0 ? emptyPolls &+ 1 : 0
            if !batch.isEmpty {
                if !sentFirst { sentFirst = true; firstRecord() }
                try (pipeline?.output ?? output).emit(batch)
                batch = RecordBatch(arity: batchArity, capacity: options.pollBatchSize)
            }
            if !rejected.isEmpty {
                // After the batch and before the next barrier: same epoch as the records around them.
                try output.emitRejects(rejected)
                rejected.removeAll()
            }
            let now = DispatchTime.now().uptimeNanoseconds
            let step = min(now &- lastLoop, SourceTask.maxIdleStepNanos)
            lastLoop = now
            if got > 0 && atEndNanos > 0 {
                // Records arrived: the input is live, not complete, whatever the cached high
                // watermarks said between fetches (a consumer that keeps up is "at end" between them).
                atEndNanos = 0
                coordinator.sourceAtEnd(taskIndex, atEndFor: nil)
            }
            if now &- lastProgress > 200_000_000 || got == 0 {
                lastProgress = now
                let progress = reader.progress()
                metrics.update(progress)
                for k in 0..<min(n, progress.count) { hasLag[k] = !progress[k].atEnd }
                // --until-idle counts only time spent at the end with nothing arriving, never a stall.
                if progress.allSatisfy(\.atEnd) && got == 0 { atEndNanos &+= step } else { atEndNanos = 0 }
                coordinator.sourceAtEnd(taskIndex, atEndFor: progress.allSatisfy(\.atEnd) ? atEndNanos : nil)
            }
            if eventTime != nil {
                var wm = Int64.max
                var anyActive = false
                for k in 0..<n {
                    if touched[k] || hasLag[k] { quietNanos[k] = 0; touched[k] = false } else { quietNanos[k] &+= step }
                    if quietNanos[k] < idleNanos {
                        anyActive = true
                        let w = splitMax[k] == .min ? .min : splitMax[k] - ooo - 1
                        wm = min(wm, w)
                    }
                }
                if anyActive {
                    idle = false
                    if wm > emitted && wm != .min { emitted = wm; output.emitWatermark(wm) }
                } else if !idle {
                    // Every split is idle: nothing holds the watermark back any more, so
                    // advance it to the furthest split before declaring the input idle.
                    let furthest = splitMax.max() ?? .min
                    if furthest != .min, furthest - ooo - 1 > emitted { emitted = furthest - ooo - 1; output.emitWatermark(emitted) }
                    idle = true
                    output.emitIdle()
                }
            }
        }
    }

    /// A message the decoder refused, as noted inside the poll loop.
    struct BadMessage {
        var split: Int
        var failure: JSONRowDecoder.Failure
        var offset: Int64?
        var bytes: [UInt8]
    }

    /// Counts, logs and (dead letter) collects the messages refused by the last poll; throws under `onError: fail`.
    @inline(never)
    func reject(_ bad: [BadMessage], topics: [(String?, Int32?)], into rejected: inout [RejectedRecord]) throws {
        for m in bad {
            let r = RejectedRecord(node: node.id, reason: m.failure.reason,
                                   message: m.failure.message(schema: node.schema, eventTimeField: eventTime?.field),
                                   topic: topics[m.split].0, partition: topics[m.split].1, offset: m.offset, value: m.bytes)
            if try rejections.reject(r) { rejected.append(r) }
        }
    }

    /// The most one loop iteration adds to a split's quiet time (a longer gap is a stall, not silence).
    static let maxIdleStepNanos: UInt64 = 150_000_000

    /// `events/3` → ("events", 3); a split name without a partition keeps its whole name as the topic.
    static func topicPartition(_ split: String) -> (String?, Int32?) {
        guard let slash = split.lastIndex(of: "/"), let p = Int32(split[split.index(after: slash)...]) else { return (split, nil) }
        return (String(split[..<slash]), p)
    }
}

/// The loop of one subtask that has an inbox: merges inputs, tracks the
/// minimum watermark over live inputs, aligns barriers, and drives its
/// operator chain. Sink subtasks also commit epochs once their checkpoint completed.
final class InboxTask: @unchecked Sendable {
    // @unchecked: used only by its own thread once started.
    let node: PlannedNode
    let subtask: Int
    let channel: Channel
    let inputs: Int
    let op: any StreamOperator
    let output: Output
    let flushIntervalMillis: Int64?
    let keyGroups: ClosedRange<Int>
    let maxParallelism: Int
    let coordinator: CheckpointCoordinator
    /// Node id → the sink that writes its dead letters.
    let deadLetterSinkOf: [String: String]

    private var wms: [Int64]
    private var idle: [Bool]
    private var ended: [Bool]
    private var endedCount = 0
    private var combined = Int64.min
    private var idleSent = false
    private var aligning: Barrier?
    private var blocked: [Bool]
    private var blockedCount = 0
    private var buffered: [(Int, StreamElement)] = []
    private var prepared: [Int64] = []
    private var finished = false

    init(node: PlannedNode, subtask: Int, channel: Channel, inputs: Int, op: any StreamOperator, output: Output,
         flushIntervalMillis: Int64?, keyGroups: ClosedRange<Int>, maxParallelism: Int, coordinator: CheckpointCoordinator,
         deadLetterSinkOf: [String: String]) {
        self.deadLetterSinkOf = deadLetterSinkOf
        self.node = node; self.subtask = subtask
        self.channel = channel; self.inputs = inputs; self.op = op; self.output = output
        self.flushIntervalMillis = flushIntervalMillis; self.keyGroups = keyGroups
        self.maxParallelism = maxParallelism; self.coordinator = coordinator
        wms = Array(repeating: .min, count: inputs)
        idle = Array(repeating: false, count: inputs)
        ended = Array(repeating: false, count: inputs)
        blocked = Array(repeating: false, count: inputs)
    }

    private var sink: SinkOperator? { op as? SinkOperator }
    private var txWriter: (any TransactionalSinkWriter)? { sink?.writer as? any TransactionalSinkWriter }

    private func recompute() throws {
        var wm = Int64.max
        var active = false
        for k in 0..<inputs where !ended[k] && !idle[k] { active = true; wm = min(wm, wms[k]) }
        if !active {
            if endedCount < inputs && !idleSent { idleSent = true; output.emitIdle() }
            return
        }
        idleSent = false
        if wm > combined && wm != .min { combined = wm; try op.watermark(wm, output) }
    }

    /// Commits every prepared epoch whose checkpoint completed.
    private func commitCompleted() throws {
        guard let tx = txWriter, !prepared.isEmpty else { return }
        let done = coordinator.completedID.load(ordering: .acquiring)
        while let first = prepared.first, first <= done {
            try tx.commit(epoch: first)
            prepared.removeFirst()
        }
        // Epochs of aborted checkpoints stay prepared: the next completed checkpoint covers them.
    }

    private func handle(_ i: Int, _ e: StreamElement) throws {
        if aligning != nil && blocked[i] { buffered.append((i, e)); return }
        switch e {
        case .batch(let b):
            if idle[i] { idle[i] = false; try recompute() }
            try op.process(b, output)
        case .watermark(let w):
            idle[i] = false
            if w > wms[i] { wms[i] = w }
            try recompute()
        case .idle:
            idle[i] = true
            try recompute()
        case .rejects(let rs):
            if let sink {
                let mine = rs.filter { deadLetterSinkOf[$0.node] == node.id }
                if !mine.isEmpty { try sink.writer.writeDeadLetters(mine) }
            } else {
                try output.emitRejects(rs)
            }
        case .barrier(let b):
            if aligning == nil { aligning = b }
            if !blocked[i] { blocked[i] = true; blockedCount += 1 }
            try checkAligned()
        case .end, .stop:
            if !ended[i] { ended[i] = true; endedCount += 1 }
            if endedCount == inputs {
                if case .end = e {
                    try op.finish(output)
                    try output.emitEnd()
                } else {
                    try output.emitControl(.stop)
                }
                finished = true
                return
            }
            try checkAligned()
            try recompute()
        }
    }

    /// All live inputs delivered the barrier: snapshot, forward it, replay what was held back.
    private func checkAligned() throws {
        guard let b = aligning else { return }
        var all = true
        for k in 0..<inputs where !blocked[k] && !ended[k] { all = false; break }
        guard all else { return }
        var ack = TaskAck(node: node.id, subtask: subtask)
        if let stateful = op as? any StatefulOperator {
            ack.state = stateful.captureState(maxParallelism: maxParallelism)
            ack.keyGroups = keyGroups
        }
        if let sink {
            if let tx = txWriter {
                if let xid = try tx.prepare() { ack.sinkTransaction = xid; prepared.append(b.id) }
                try tx.begin(epoch: b.id + 1)
            } else {
                try sink.writer.flush()
            }
        }
        coordinator.ack(b, ack)
        try output.emitControl(.barrier(b))
        aligning = nil
        for k in 0..<inputs { blocked[k] = false }
        blockedCount = 0
        let replay = buffered
        buffered.removeAll()
        for (i, e) in replay { try handle(i, e) }
    }

    func run() throws {
        var lastFlush = Date()
        let interval = Double(flushIntervalMillis ?? 1000) / 1000
        let isSink = sink != nil
        let transactional = txWriter != nil
        while !finished {
            let received: Channel.Received
            if isSink {
                // A transactional sink commits on checkpoint completion, not on a timer: it
                // waits for input, looking at the coordinator often only while an epoch is
                // prepared. A plain sink wakes for its next flush. Both deadlines advance,
                // so an idle sink sleeps.
                let deadline = transactional ? Date().addingTimeInterval(prepared.isEmpty ? 0.2 : 0.005)
                                             : lastFlush.addingTimeInterval(interval)
                received = channel.receive(before: max(deadline, Date().addingTimeInterval(0.001)))
            } else {
                received = channel.receive().map { .element($0.0, $0.1) } ?? .cancelled
            }
            switch received {
            case .cancelled: return
            case .timeout: break
            case .element(let i, let e): try handle(i, e)
            }
            if transactional { try commitCompleted() }
            else if let sink, Date().timeIntervalSince(lastFlush) >= interval {
                try sink.writer.flush()
                lastFlush = Date()
            }
        }
        // Ended or stopped: a sink waits for the checkpoint covering its last epoch, then commits it.
        if transactional {
            while let last = prepared.last {
                if coordinator.completedID.load(ordering: .acquiring) >= last { break }
                if coordinator.abortedID.load(ordering: .acquiring) >= last { break }
                guard coordinator.waitForOutcome(last, stop: { false }) != nil else { break }
            }
            try commitCompleted()
        }
    }
}
