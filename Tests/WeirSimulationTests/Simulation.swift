#if WEIR_BUG_SWITCHES
import Foundation
@testable import WeirCore
@testable import WeirEngine

/// One seeded history: a job (partitioned source → raw sink, and → keyed
/// tumbling window → window sink) run by the real tasks, operators and
/// protocol state machines without threads, under a seeded scheduler that
/// interleaves every task step, acknowledgement, persist and timer, and
/// injects faults wherever they can happen. After the history the
/// invariants are checked; a violation names the seed and how to replay it.
final class Simulation {
    /// The seeded parameters of a history.
    struct Scenario {
        var seed: UInt64
        var parallelism: Int
        var partitions: [[SimRecord]]
        var intervalMillis: Int64, timeoutMillis: Int64
        var windowMillis: Int64, outOfOrdernessMillis: Int64, idleMillis: Int64
        var pollBatch: Int
        /// Partitions the topic gains while the job runs (none in most histories, else
        /// one), the last of `partitions`. Its records come after every other one in
        /// event time, so none is late and the clean run stays the reference. (With
        /// two, one new partition's records can be late behind the other's, when the
        /// subtask reading the first was idle: late as documented, but not a clean run.)
        var grownPartitions: Int
        /// When they appear (or earlier, once a reader is at the end of its splits).
        var growAtNanos: UInt64
        /// Steps during which faults may be injected, and how often.
        var faultSteps: Int, faultRate: Double

        init(seed: UInt64) {
            var r = SimRandom(seed: seed &* 31 &+ 7)
            self.seed = seed
            parallelism = r.int(1...2)
            outOfOrdernessMillis = Int64(r.int(0...30))
            partitions = (0..<r.int(1...4)).map { p in
                var ts = Int64(r.int(0...300))
                let speed = r.int(1...40)
                return (0..<r.int(10...120)).map { _ in
                    ts += Int64(r.int(0...speed))
                    return SimRecord(k: Int64(r.int(0...5)), ts: max(0, ts - Int64(r.int(0...Int(30)))) , amount: Int64(r.int(1...100)))
                }
            }
            intervalMillis = Int64(r.int(10...150))
            timeoutMillis = Int64(r.int(40...400))
            windowMillis = Int64(r.int(20...200))
            idleMillis = Int64(r.int(20...300))
            pollBatch = r.int(1...16)
            faultSteps = r.int(200...3000)
            faultRate = [0.0, 0.002, 0.01, 0.03][r.int(0...3)]
            // Timestamps step back at most 30 ms: keep the out-of-orderness bound at least that.
            outOfOrdernessMillis = max(outOfOrdernessMillis, 30)
            // Drawn from a generator of their own, so the histories above stay as they were.
            var g = SimRandom(seed: seed &* 131 &+ 3)
            grownPartitions = g.chance(0.3) ? 1 : 0
            growAtNanos = UInt64(g.int(0...400)) * 1_000_000
            let maxTs = partitions.joined().map(\.ts).max() ?? 0
            for _ in 0..<grownPartitions {
                var ts = maxTs + 1 + Int64(g.int(0...50))
                partitions.append((0..<g.int(5...60)).map { _ in
                    ts += Int64(g.int(0...20))
                    return SimRecord(k: Int64(g.int(0...5)), ts: ts, amount: Int64(g.int(1...100)))
                })
            }
        }

        var spec: String {
            """
            name: sim
            parallelism: \(parallelism)
            maxParallelism: 8
            checkpoint: { interval: \(intervalMillis)ms, timeout: \(timeoutMillis)ms }
            nodes:
              - { id: src, simsrc: { schema: { k: int, ts: int, amount: int }, eventTime: { field: ts, maxOutOfOrderness: \(outOfOrdernessMillis)ms, idleTimeout: \(idleMillis)ms } } }
              - { id: raw, inputs: [src], simsink: {} }
              - { id: win, inputs: [src], keyBy: [k], window: { tumbling: \(windowMillis)ms }, aggregate: { n: "count()", total: "sum(amount)" } }
              - { id: out, inputs: [win], simsink: {} }
            """
        }

        /// What one clean run must commit, computed independently of the engine.
        var expected: [String: [String]] {
            var raw: [String] = []
            var windows: [String: (Int64, Int64)] = [:]
            for r in partitions.joined() {
                raw.append("amount=\(r.amount),k=\(r.k),ts=\(r.ts)")
                let start = r.ts - ((r.ts % windowMillis) + windowMillis) % windowMillis
                let key = "k=\(r.k),window_end=\(start + windowMillis),window_start=\(start)"
                windows[key, default: (0, 0)].0 += 1
                windows[key, default: (0, 0)].1 += r.amount
            }
            let out = windows.map { k, v in
                let f = (k + ",n=\(v.0),total=\(v.1)").split(separator: ",").map(String.init).sorted()
                return f.joined(separator: ",")
            }
            return ["raw": raw.sorted(), "out": out.sorted()]
        }
    }

    struct Violation: Error, CustomStringConvertible {
        var seed: UInt64
        var bugs: InjectedBugs
        var message: String
        var trace: [String]
        var description: String {
            let env = "WEIR_SIM_SEED=\(seed)" + (bugs.isEmpty ? "" : " WEIR_SIM_BUGS=\(bugs)")
            return "simulation seed \(seed)\(bugs.isEmpty ? "" : " with injected bug \(bugs)"): \(message)\n"
                + "replay: \(env) swift test --filter WeirSimulationTests.SimulationTests/testReplay\n"
                + "last events:\n  " + trace.suffix(25).joined(separator: "\n  ")
        }
    }

    /// The live run: its graph (real tasks) and the simulated coordinator.
    final class Run {
        let id: String
        let runner: JobRunner
        let graph: JobRunner.RunGraph
        let coordination: SimCoordination
        var loops: [SourceLoop?]
        var sourceEnded: [Bool]
        var sinkSettled: [Bool]
        init(id: String, runner: JobRunner, graph: JobRunner.RunGraph, coordination: SimCoordination, loops: [SourceLoop]) {
            self.id = id; self.runner = runner; self.graph = graph; self.coordination = coordination
            self.loops = loops
            sourceEnded = Array(repeating: false, count: loops.count)
            sinkSettled = Array(repeating: false, count: graph.inboxes.count)
        }
    }

    let scenario: Scenario
    let bugs: InjectedBugs
    let world: SimWorld
    let plan: JobPlan
    var run: Run?
    var runs = 0
    var step = 0
    var finished = false
    static let maxSteps = 200_000

    init(seed: UInt64, bugs: InjectedBugs = []) throws {
        scenario = Scenario(seed: seed)
        self.bugs = bugs
        let world = SimWorld(partitions: scenario.partitions, rng: SimRandom(seed: seed),
                             visible: scenario.partitions.count - scenario.grownPartitions,
                             growAt: scenario.growAtNanos)
        self.world = world
        let kinds: [ConnectorKind] = [.source(name: "simsrc", make: { _ in SimSourceConnector(world: world) }),
                                      .sink(name: "simsink", make: { _ in SimSink(world: world) })]
        plan = try JobPlan.compile(scenario.spec, connectors: kinds)
    }

    func violation(_ m: String) -> Violation { Violation(seed: scenario.seed, bugs: bugs, message: m, trace: world.trace) }

    /// Runs the whole history and checks the invariants; throws the first violation.
    func execute() throws {
        while !finished {
            step += 1
            if step > Simulation.maxSteps {
                throw violation("no progress: the job did not finish within \(Simulation.maxSteps) steps (faults stopped after step \(scenario.faultSteps))")
            }
            if run == nil { try start() }
            do { try stepOnce() } catch let v as Violation { throw v } catch {
                world.note("run \(run?.id ?? "?") failed: \(error)")
                endRun(cancelled: false)
            }
        }
        try checkLedger()
        let expected = scenario.expected
        for node in ["raw", "out"] {
            let got = (world.committed[node] ?? []).sorted()
            if got != expected[node]! {
                let missing = Set(expected[node]!).subtracting(got).count
                let extra = got.count - expected[node]!.count
                throw violation("the committed output of '\(node)' differs from a clean run: \(got.count) rows, expected \(expected[node]!.count) (\(missing) distinct rows missing, \(extra) more rows than expected)")
            }
        }
        if !world.inDoubt.isEmpty { throw violation("transactions left in doubt at the end: \(world.inDoubt)") }
    }

    /// The transaction ledger against the snapshot store: an epoch is committed
    /// exactly when a checkpoint covering it completed, and never rolled back then.
    private func checkLedger() throws {
        for id in world.txOrder {
            let t = world.txs[id]!
            let covered = world.isCompleted(run: t.scope.run, checkpointID: t.epoch)
            if covered && t.state == .rolledBack {
                throw violation("transaction \(id) was rolled back, but a completed checkpoint of run \(t.scope.run) covers epoch \(t.epoch)")
            }
            if !covered && t.state == .committed {
                throw violation("transaction \(id) was committed, but no completed checkpoint of run \(t.scope.run) covers epoch \(t.epoch)")
            }
        }
    }

    // MARK: Runs

    private func start() throws {
        try checkLedger()
        runs += 1
        let runID = "r\(runs)"
        let restore = world.latest.map(world.restorePoint)
        var options = RunOptions()
        options.channelCapacity = 4096
        options.pollBatchSize = scenario.pollBatch
        options.untilIdleMillis = 50
        options.injectedBugs = bugs
        let isCompleted: @Sendable (String, Int64) -> Bool = { [world] run, id in world.isCompleted(run: run, checkpointID: id) }
        let config = CheckpointConfig(storage: NoStorage(), intervalMillis: scenario.intervalMillis, timeoutMillis: scenario.timeoutMillis,
                                      retain: 1_000, firstCheckpointID: world.nextCheckpointID, isCompleted: isCompleted)
        let runner = JobRunner(plan: plan, options: options, checkpointing: config, restore: restore, runID: runID)
        var coordination: SimCoordination?
        let graph = try runner.assemble { shape in
            let c = SimCoordination(world: world, shape: shape, runID: runID, intervalMillis: scenario.intervalMillis,
                                    timeoutMillis: scenario.timeoutMillis, untilIdleMillis: 50,
                                    firstCheckpointID: config.firstCheckpointID, bugs: bugs)
            coordination = c
            return c
        }
        // Every in-doubt transaction of earlier runs is resolved before the run starts.
        if let left = world.inDoubt.first(where: { !$0.hasPrefix("\(runID)/") }) {
            throw violation("transaction \(left) of an earlier run is still in doubt after recovery")
        }
        let loops = try graph.sources.map { t in
            SourceLoop(task: t, reader: try t.connector.openReader(splits: t.splitIndices, owner: t.owner), coordination: coordination!,
                       clock: { [world] in world.now })
        }
        run = Run(id: runID, runner: runner, graph: graph, coordination: coordination!, loops: loops)
        world.note("run \(runID) started" + (restore.map { ", restoring checkpoint \($0.checkpointID) of \($0.run)" } ?? ""))
    }

    /// Ends the run: a cancel settles each sink's epochs; a crash or failure just drops everything.
    private func endRun(cancelled: Bool) {
        guard let r = run else { return }
        if cancelled {
            r.coordination.cancel()
            for t in r.graph.inboxes { t.settleOnCancel(completedID: r.coordination.completed) }
        }
        r.graph.writers.forEach { $0.close() }
        run = nil
    }

    // MARK: Scheduling

    private enum Choice { case source(Int), inbox(Int), commit(Int), finishSink(Int), ack(Int), persist, tick, time, fault }

    private func stepOnce() throws {
        guard let r = run else { return }
        world.now &+= UInt64(world.rng.int(0...500_000))
        var choices: [Choice] = []
        let congested = r.graph.channels.contains { $0.pending > 3_000 }
        for (i, l) in r.loops.enumerated() where l != nil && !r.sourceEnded[i] && !congested { choices.append(.source(i)) }
        for (i, t) in r.graph.inboxes.enumerated() {
            if t.channel.pending > 0 && !t.isFinished { choices.append(.inbox(i)) }
            if t.committer.completedUpTo < r.coordination.completed && !t.committer.prepared.isEmpty { choices.append(.commit(i)) }
            if t.isFinished && !r.sinkSettled[i] { choices.append(.finishSink(i)) }
        }
        for i in r.coordination.network.indices { choices.append(.ack(i)) }
        if r.coordination.toPersist != nil { choices.append(.persist) }
        choices.append(.tick)
        choices.append(.time)
        let faulty = step <= scenario.faultSteps
        if faulty && world.rng.chance(scenario.faultRate) { choices = [.fault] }
        switch choices[world.rng.int(0...(choices.count - 1))] {
        case .source(let i):
            var loop = r.loops[i]!
            let s = try loop.step()
            r.loops[i] = loop
            if s == .ended { r.sourceEnded[i] = true }
        case .inbox(let i):
            let t = r.graph.inboxes[i]
            if let (input, e) = t.channel.tryReceive() { try t.handle(input, e) }
            try t.commitCompleted()
        case .commit(let i):
            try r.graph.inboxes[i].commitCompleted()
        case .finishSink(let i):
            let t = r.graph.inboxes[i]
            if let last = t.committer.awaitedCheckpoint, r.coordination.outcome(of: last) == nil { break }
            try t.commitCompleted()
            r.sinkSettled[i] = true
        case .ack(let i):
            r.coordination.deliverAck(i)
        case .persist:
            r.coordination.finishPersist()
        case .tick:
            r.coordination.tick()
        case .time:
            world.now &+= UInt64(world.rng.int(1...10)) * 1_000_000
        case .fault:
            try inject()
        }
        if let r = run, r.sourceEnded.allSatisfy({ $0 }), r.sinkSettled.allSatisfy({ $0 }),
           r.graph.channels.allSatisfy({ $0.pending == 0 }) {
            // Every source ended at a completed stop or drain and every sink committed.
            let drained = r.coordination.machine.isFinished && world.latest?.kind == .drain && world.latest?.run == r.id
            world.note("run \(r.id) ended: \(drained ? "input complete" : "stopped with a snapshot")")
            r.graph.writers.forEach { $0.close() }
            run = nil
            if drained { finished = true }
        }
    }

    /// One fault, chosen at random among those that can happen now.
    private func inject() throws {
        guard let r = run else { return }
        switch world.rng.int(0...10) {
        case 0:
            world.note("FAULT crash (kill -9)")
            r.graph.writers.forEach { $0.close() }
            run = nil
        case 1:
            world.note("FAULT cancel")
            endRun(cancelled: true)
        case 2: r.coordination.request(.stop)
        case 3: r.coordination.request(.savepoint)
        case 4: world.note("FAULT next ack lost"); r.coordination.dropNextAck = true
        case 5: world.note("FAULT next ack duplicated"); r.coordination.duplicateNextAck = true
        case 6: world.note("FAULT next persist fails"); r.coordination.failNextPersist = true
        case 7: world.note("FAULT next commit fails"); world.failNextCommit = true
        case 8: world.note("FAULT next prepare fails"); world.failNextPrepare = true
        case 9:
            let d = UInt64(world.rng.int(100...2_000)) * 1_000_000
            world.note("FAULT process stall \(d / 1_000_000) ms")
            world.now &+= d
        default:
            let p = world.rng.int(0...(world.partitions.count - 1))
            let d = UInt64(world.rng.int(100...1_500)) * 1_000_000
            world.note("FAULT partition \(p) stalls \(d / 1_000_000) ms")
            world.stalledUntil[p] = world.now &+ d
        }
    }
}
#endif
