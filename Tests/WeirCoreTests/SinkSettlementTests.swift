import Foundation
import Synchronization
import XCTest
@testable import WeirCore
@testable import WeirEngine
@testable import WeirState

/// How sink epochs are settled when a run ends abnormally: a cancel never
/// undoes a completed checkpoint, and a stop whose snapshot completed is a
/// stop even when the final commit fails.
final class SinkSettlementTests: XCTestCase {
    /// An in-memory two-phase-commit sink that keeps a ledger of what happened to each epoch.
    final class LedgerSink: TransactionalSinkConnector, @unchecked Sendable {
        let failCommits: Bool
        let ledger = Mutex<(prepared: Set<Int64>, committed: Set<Int64>, rolledBack: Set<Int64>)>(([], [], []))
        init(failCommits: Bool) { self.failCommits = failCommits }
        func check(schema: Schema) throws {}
        func openWriter(subtask: Int, schema: Schema) throws -> any SinkWriter { fatalError("checkpointed runs only") }
        func openTransactionalWriter(scope: SinkTransactionScope, schema: Schema) throws -> any TransactionalSinkWriter { Writer(self) }
        func recover(job: String, node: String?, shouldCommit: (PreparedTransaction) -> Bool) throws
            -> (committed: [PreparedTransaction], rolledBack: [PreparedTransaction]) { ([], []) }
        func prepared(job: String) throws -> [PreparedTransaction] { [] }

        final class Writer: TransactionalSinkWriter {
            let sink: LedgerSink
            var epoch: Int64 = 0
            var rows = 0
            var prepared: [Int64] = []
            init(_ s: LedgerSink) { sink = s }
            func begin(epoch: Int64) throws { self.epoch = epoch; rows = 0 }
            func write(_ batch: RecordBatch) throws { rows += batch.count }
            func prepare() throws -> String? {
                guard rows > 0 else { return nil }
                prepared.append(epoch)
                sink.ledger.withLock { _ = $0.prepared.insert(epoch) }
                return "x\(epoch)"
            }
            func commit(epoch: Int64) throws {
                guard prepared.contains(epoch) else { return }
                if sink.failCommits { throw WeirError(.mysqlUnreachable, subject: "ledger", "the server went away") }
                prepared.removeAll { $0 == epoch }
                sink.ledger.withLock { _ = $0.committed.insert(epoch) }
            }
            func abortAll() {
                sink.ledger.withLock { l in for e in prepared { l.rolledBack.insert(e) } }
                prepared = []
            }
            var preparedEpochs: [Int64] { prepared }
            func flush() throws {}
            func close() {}
        }
    }

    /// The committer of a sink task that prepared what the writer holds.
    func committer(_ w: LedgerSink.Writer) -> SinkCommitterStateMachine {
        var c = SinkCommitterStateMachine(firstEpoch: w.preparedEpochs.first ?? 0)
        for e in w.preparedEpochs { c.barrierAligned(e, hasTransaction: true) }
        return c
    }

    func testCancelCommitsCompletedEpochsBeforeRollingBackTheRest() {
        let sink = LedgerSink(failCommits: false)
        let w = LedgerSink.Writer(sink)
        for e in [3, 4, 5] as [Int64] { try? w.begin(epoch: e); try? w.write(RecordBatch(arity: 0)); w.rows = 1; _ = try? w.prepare() }
        JobRunner.settleOnCancel(w, committer: committer(w), completedID: 4)
        let l = sink.ledger.withLock { $0 }
        XCTAssertEqual(l.committed, [3, 4])
        XCTAssertEqual(l.rolledBack, [5])
    }

    func testCancelRollsBackNothingWhenACompletedEpochCannotBeCommitted() {
        let sink = LedgerSink(failCommits: true)
        let w = LedgerSink.Writer(sink)
        for e in [3, 4] as [Int64] { try? w.begin(epoch: e); w.rows = 1; _ = try? w.prepare() }
        JobRunner.settleOnCancel(w, committer: committer(w), completedID: 3)
        let l = sink.ledger.withLock { $0 }
        XCTAssertEqual(l.committed, [])
        XCTAssertEqual(l.rolledBack, [], "epoch 3's checkpoint completed: recovery must still be able to commit it")
        XCTAssertEqual(w.preparedEpochs, [3, 4])
    }

    func testAStopWhoseFinalCommitFailsStillEndsAsStopped() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("weir-settle-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let sink = LedgerSink(failCommits: true)
        var splits: [[String]] = [[], []]
        for i in 0..<400 { splits[i % 2].append(#"{"k": \#(i % 5), "ts": \#(i)}"#) }
        let source = MemorySource(splits, pace: 2000)
        let kinds: [ConnectorKind] = [.source(name: "mem", make: { _ in source }), .sink(name: "ledger", make: { _ in sink })]
        let plan = try JobPlan.compile("""
            name: settle
            checkpoint: { interval: 1h }
            nodes:
              - { id: s, mem: { schema: { k: int, ts: int } } }
              - { id: o, inputs: [s], ledger: {} }
            """, connectors: kinds)
        let store = try SnapshotStore(directory: dir, retain: 3)
        let runner = JobRunner(plan: plan, checkpointing: store.checkpointConfig(for: plan.spec, restoring: nil))
        let stop = Mutex<JobRunner.StopResult?>(nil)
        let t = Thread {
            while runner.metrics.recordsIn.load < 50 { usleep(1000) }
            let r = runner.stopWithSnapshot()
            stop.withLock { $0 = r }
        }
        t.start()
        let outcome = try runner.run()
        guard case .stopped(let id) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertNotNil(store.latest(), "the stop snapshot is stored")
        XCTAssertEqual(store.latest()?.id, id)
        let l = sink.ledger.withLock { $0 }
        XCTAssertFalse(l.prepared.isEmpty)
        XCTAssertEqual(l.rolledBack, [], "a completed stop's epochs stay prepared for recovery")
        while stop.withLock({ $0 }) == nil { usleep(1000) }
        XCTAssertEqual(stop.withLock { $0 }, .stopped(snapshotID: id))
    }
}
