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
    #if WEIR_BUG_SWITCHES
    /// Deliberate protocol bugs (the simulator's tests switch them on).
    public var injectedBugs: InjectedBugs = []
    #endif

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
    static func settleOnCancel(_ t: any TransactionalSinkWriter, committer: SinkCommitterStateMachine, completedID: Int64) {
        var committer = committer
        _ = committer.checkpointCompleted(completedID)
        while let step = committer.nextCancelStep() {
            switch step {
            case .commit(let e):
                do { try t.commit(epoch: e); committer.committed(epoch: e) } catch { committer.commitFailed(epoch: e) }
            case .rollBackAll:
                t.abortAll()
            }
        }
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

    /// Everything a run consists of before its threads start: the live run
    /// and the deterministic simulator build it the same way.
    struct RunGraph {
        var plan: JobPlan
        var sources: [SourceTask] = []
        var inboxes: [InboxTask] = []
        var channels: [Channel] = []
        var writers: [any SinkWriter] = []
        var rejections: [Rejections] = []
        /// Sinks write in epochs committed by checkpoints (periodic checkpointing is on).
        var transactional = false
    }

    /// The shape of a run that its checkpoint coordinator needs.
    struct CoordinationShape {
        var plan: JobPlan
        /// Every task that acknowledges barriers, and the source tasks among them.
        var tasks: Set<TaskID>, sourceTasks: Set<TaskID>
        var layouts: [String: String]
    }

    /// Checks sinks, recovers their leftover transactions, discovers splits,
    /// instantiates operators (restoring state) and wires every subtask;
    /// starts nothing. Writers opened before a failure are closed.
    func assemble(coordination make: (CoordinationShape) -> any CheckpointCoordination) throws -> RunGraph {
        var writers: [any SinkWriter] = []
        var assembled = false
        defer { if !assembled { writers.forEach { $0.close() } } }
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
                    var recovery = SinkCommitterStateMachine.Recovery(lineage: restore.map { ($0.run, $0.checkpointID) },
                                                                      isCompleted: ck.isCompleted)
                    #if WEIR_BUG_SWITCHES
                    recovery.bugs = options.injectedBugs
                    #endif
                    let decide = recovery.shouldCommit
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
        var sourceTasks: Set<TaskID> = [], ackingTasks: Set<TaskID> = []
        for (i, n) in plan.nodes.enumerated() where n.isSource || inbox[i] != nil {
            for j in 0..<p {
                ackingTasks.insert(TaskID(node: n.id, subtask: j))
                if n.isSource { sourceTasks.insert(TaskID(node: n.id, subtask: j)) }
            }
        }
        var layouts: [String: String] = [:]
        for n in plan.nodes { if let l = JobRunner.layout(n, plan) { layouts[n.id] = l } }
        let coord = make(CoordinationShape(plan: plan, tasks: ackingTasks, sourceTasks: sourceTasks, layouts: layouts))
        let counters = plan.nodes.enumerated().map { i, n in
            NodeCounters(id: n.id, inputs: n.inputs.map { plan.nodes[$0].id }, inbox: inbox[i] ?? [])
        }
        for i in plan.nodes.indices { for out in outs[i] { out.counter = counters[i].recordsOut } }
        metrics.register(nodes: counters)

        // 5. One task per source subtask and per inbox subtask.
        var graph = RunGraph(plan: plan, channels: inbox.keys.sorted().flatMap { inbox[$0]! }, rejections: rejections,
                             transactional: transactional)
        for (i, n) in plan.nodes.enumerated() {
            if case .source(_, _, let eventTime) = n.kind {
                let splits = splitsBySource[i] ?? []
                var watermarks: [String: Int64] = [:]
                for file in restore?.state[n.id] ?? [] { watermarks.merge(SourceTask.decodeWatermarks(file)) { max($0, $1) } }
                for j in 0..<p {
                    let mine = splits.indices.filter { $0 % p == j }
                    let task = SourceTask(node: n, subtask: j, connector: sources[i]!, splitIndices: mine,
                                          eventTime: eventTime, restoredWatermarks: watermarks, output: outs[i][j],
                                          options: options, metrics: metrics, counters: counters[i], rejections: rejections[i],
                                          coordinator: coord,
                                          stop: { [self] in stopFlag.load(ordering: .relaxed) },
                                          firstRecord: { [self] in noteFirstRecord() })
                    #if WEIR_BUG_SWITCHES
                    task.injectedBugs = options.injectedBugs
                    #endif
                    graph.sources.append(task)
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
                                         deadLetterSinkOf: deadLetterSinkOf, firstEpoch: firstEpoch)
                    #if WEIR_BUG_SWITCHES
                    task.inject(options.injectedBugs)
                    #endif
                    graph.inboxes.append(task)
                }
            }
        }
        graph.writers = writers
        assembled = true
        return graph
    }

    /// Runs the job on the calling thread until it finishes, stops, is cancelled or fails.
    public func run() throws -> RunOutcome {
        var made: CheckpointCoordinator?
        let graph = try assemble { shape in
            let config = checkpointing ?? CheckpointConfig(storage: NoStorage(), intervalMillis: nil, timeoutMillis: 60_000,
                                                            retain: 1, firstCheckpointID: 1, isCompleted: { _, _ in false })
            let c = CheckpointCoordinator(settings: config, job: shape.plan.name, run: runID, nodes: shape.plan.nodes.map(\.id),
                                          parallelism: shape.plan.parallelism, maxParallelism: shape.plan.maxParallelism,
                                          layouts: shape.layouts, tasks: shape.tasks, sourceTasks: shape.sourceTasks,
                                          untilIdleMillis: options.untilIdleMillis, metrics: metrics, log: options.log,
                                          onEvent: options.onEvent, activity: { [metrics] in metrics.activity })
            made = c
            return c
        }
        let coord = made!
        state.withLock { $0.channels = graph.channels; $0.coordinator = coord }
        var cleanShutdown = false
        defer {
            let cancelled = state.withLock { $0.cancelled }
            // The coordinator is stopped and joined by now: no checkpoint completes after this.
            let completed = coord.completedID.load(ordering: .acquiring)
            if !cleanShutdown && cancelled {
                for t in graph.inboxes { t.settleOnCancel(completedID: completed) }
            }
            graph.writers.forEach { $0.close() }
            graph.rejections.forEach { $0.flushLog() }
        }
        let plan = graph.plan
        var tasks: [(name: String, body: @Sendable () throws -> Void)] = []
        for t in graph.sources { tasks.append(("\(t.node.id)#\(t.subtask)", t.run)) }
        for t in graph.inboxes { tasks.append(("\(t.node.id)#\(t.subtask)", t.run)) }
        if let r = restore { options.log("restored snapshot \(r.snapshotID) (checkpoint \(r.checkpointID) of run \(r.run))") }
        options.log("started \(plan.name) run \(runID): \(plan.nodes.count) nodes × \(plan.parallelism) subtasks, \(tasks.count) threads"
                    + (graph.transactional ? ", checkpoint every \(checkpointing?.intervalMillis ?? 0) ms" : ""))
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

