import Foundation
import Logging
import WeirCore
import Synchronization

/// How a run is put together before anything starts: sinks checked and
/// their leftover transactions recovered, splits discovered, operators
/// instantiated (restoring state), outputs wired, one task per subtask. The
/// live run and the deterministic simulator share it.
extension JobRunner {
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
            return Rejections(node: n.id, policy: policy.onError, deadLetterSink: firstSink(i), metrics: metrics, logger: options.logger)
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

    /// The operator of an aggregate node (nil for other nodes).
    static func aggregateOperator(_ n: PlannedNode, maxParallelism: Int, metrics: JobMetrics, rejections: Rejections?) -> (any StatefulOperator)? {
        guard case .aggregate(let keys, let window, let aggs) = n.kind else { return nil }
        if let window {
            let w = WindowAggregateOperator(keyFields: keys, window: window, aggregates: aggs, outArity: n.schema.count, metrics: metrics,
                                            maxParallelism: maxParallelism)
            w.overflow.rejections = rejections; w.overflow.schema = n.schema
            return w
        }
        let c = ContinuousAggregateOperator(keyFields: keys, aggregates: aggs, outArity: n.schema.count, maxParallelism: maxParallelism)
        c.overflow.rejections = rejections; c.overflow.schema = n.schema
        return c
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
                        options.logger.info("\(n.id): resolved leftover transactions: \(c.count) committed (checkpoint had completed), \(r.count) rolled back")
                    }
                }
            case .source(_, let src, _):
                var conn = src
                if let r = restore {
                    let offsets = r.offsets[n.id] ?? [:]
                    conn = src.resuming(at: offsets)
                    let now = try conn.discoverSplits()
                    if !offsets.isEmpty, let change = RestoreSplitChange(snapshot: offsets, now: now) {
                        // Dropped offsets are only reported: the connector reads the splits it has now.
                        options.logger.info("\(n.id): \(change.description)")
                        options.onEvent(.restoreAdjusted(node: n.id, dropped: change.dropped, newPartitions: change.newPartitions,
                                                         newTopics: change.newTopics))
                    }
                    splitsBySource[i] = now
                } else {
                    splitsBySource[i] = try conn.discoverSplits()
                }
                if let stops = options.stopOffsets { conn = try conn.bounded(at: stops[n.id] ?? [:]) }
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
                case .aggregate:
                    let op = JobRunner.aggregateOperator(n, maxParallelism: plan.maxParallelism, metrics: metrics, rejections: rejections[i])!
                    if let files = restore?.state[n.id] {
                        let range = KeyGroups.range(subtask: j, parallelism: p, maxParallelism: plan.maxParallelism)
                        do { try op.restoreState(files, keyGroups: range, parallel: concurrentFor) } catch {
                            throw WeirError(.snapshotCorrupt, subject: "state of node '\(n.id)' in snapshot \(restore!.snapshotID)",
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
        let coord = make(CoordinationShape(plan: plan, tasks: ackingTasks, sourceTasks: sourceTasks, layouts: plan.stateLayouts))
        let counters = plan.nodes.enumerated().map { i, n in
            let chans = inbox[i] ?? []
            return NodeCounters(id: n.id, inputs: n.inputs.map { plan.nodes[$0].id }, subtasks: p,
                                backpressure: { chans.reduce(0) { $0 &+ $1.backpressureNanos } })
        }
        // One arrival stamp per subtask thread: chained nodes share their input's.
        var stamps: [[ArrivalStamp]] = plan.nodes.map { _ in (0..<p).map { _ in ArrivalStamp() } }
        for i in plan.nodes.indices where chained(i) { stamps[i] = stamps[plan.nodes[i].inputs[0]] }
        for i in plan.nodes.indices {
            for (j, out) in outs[i].enumerated() {
                out.counter = counters[i].recordsOut
                out.watermarkGauge = counters[i].watermark
                out.subtask = j
                out.arrival = stamps[i][j]
                if let recorder = options.sinkLatency, let sink = ops[i][j] as? SinkOperator {
                    sink.latency = SinkLatencyTracker(recorder: recorder)
                }
            }
        }
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
                    let task = SourceTask(node: n, subtask: j, parallelism: p, connector: sources[i]!, splitIndices: mine,
                                          eventTime: eventTime, restoredWatermarks: watermarks, output: outs[i][j],
                                          options: options, metrics: metrics, counters: counters[i], rejections: rejections[i],
                                          coordinator: coord,
                                          stop: { [self] in stopFlag.load(ordering: .relaxed) },
                                          firstRecord: { [self] in noteFirstRecord() })
                    #if WEIR_BUG_SWITCHES
                    task.injectedBugs = options.injectedBugs
                    #endif
                    let readers = plan.nodes.filter(\.isSource).count * p
                    task.readerOpened = { [self] in noteReaderOpened(of: readers) }
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
}
