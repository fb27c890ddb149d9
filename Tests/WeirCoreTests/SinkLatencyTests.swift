import Synchronization
import XCTest
@testable import WeirCore
@testable import WeirEngine

/// The latency `weir bench` reports: rows are measured when the transaction holding them commits.
final class SinkLatencyTests: XCTestCase {
    final class Recorded: Sendable {
        let entries = Mutex<[(UInt64, Int)]>([])
        var recorder: SinkLatencyRecorder { { [self] n, r in entries.withLock { $0.append((n, r)) } } }
        var all: [(UInt64, Int)] { entries.withLock { $0 } }
    }

    func testPlainSinkRecordsAtEachCommit() {
        let rec = Recorded()
        var t = SinkLatencyTracker(recorder: rec.recorder)
        t.wrote(rows: 3, arrival: 100)
        t.wrote(rows: 2, arrival: 100)      // same arrival: one entry
        t.wrote(rows: 4, arrival: 150)
        t.wrote(rows: 5, arrival: 0)        // unknown arrival: not measured
        XCTAssertTrue(rec.all.isEmpty, "nothing is measured before the commit")
        t.committed(now: 1_000)
        XCTAssertEqual(rec.all.map(\.0), [900, 850])
        XCTAssertEqual(rec.all.map(\.1), [5, 4])
        t.committed(now: 2_000)
        XCTAssertEqual(rec.all.count, 2, "a commit with nothing written records nothing")
    }

    func testTransactionalSinkRecordsAnEpochWhenItCommits() {
        let rec = Recorded()
        var t = SinkLatencyTracker(recorder: rec.recorder)
        t.wrote(rows: 1, arrival: 10)
        t.prepared(epoch: 1)
        t.wrote(rows: 2, arrival: 20)
        t.prepared(epoch: 2)
        t.wrote(rows: 7, arrival: 30)        // the open epoch 3
        t.committed(epoch: 1, now: 100)
        XCTAssertEqual(rec.all.map(\.1), [1])
        t.committed(epoch: 2, now: 200)
        XCTAssertEqual(rec.all.map(\.0), [90, 180])
        t.prepared(epoch: 3)
        t.committed(epoch: 3, now: 300)
        XCTAssertEqual(rec.all.map(\.1), [1, 2, 7])
        XCTAssertEqual(rec.all.last?.0, 270)
    }

    /// Through a real run: every committed row is measured once, with a latency that
    /// includes the window's wait for its watermark; subtask threads report their CPU.
    func testARunMeasuresEveryCommittedRowAndEachThreadsCPU() throws {
        let source = MemorySource([(0..<500).map { #"{"user_id": \#($0 % 7), "amount": 1, "ts": \#($0 * 10)}"# },
                                   (0..<500).map { #"{"user_id": \#($0 % 5), "amount": 2, "ts": \#($0 * 10)}"# }])
        let sink = MemorySink()
        let plan = try JobPlan.compile("""
            name: lat
            parallelism: 2
            nodes:
              - { id: s, mem: { schema: { user_id: int, amount: int, ts: int }, eventTime: { field: ts, maxOutOfOrderness: 0ms } } }
              - { id: w, inputs: [s], keyBy: [user_id], window: { tumbling: 1s }, aggregate: { cnt: "count()" } }
              - { id: o, inputs: [w], out: {} }
            """, connectors: memoryKinds(source: source, sink: sink))
        let rec = Recorded()
        var options = RunOptions()
        options.untilIdleMillis = 50
        options.pollBatchSize = 16
        options.sinkLatency = rec.recorder
        let runner = JobRunner(plan: plan, options: options)
        XCTAssertEqual(try runner.run(), .finished)
        XCTAssertEqual(rec.all.reduce(0) { $0 + $1.1 }, sink.all.count, "each committed row is measured exactly once")
        XCTAssertTrue(rec.all.allSatisfy { $0.0 > 0 && $0.0 < 60_000_000_000 }, "\(rec.all.map(\.0))")
        let cpu = runner.metrics.threadCPUNanos
        XCTAssertEqual(Set(cpu.keys), ["s#0", "s#1", "w#0", "w#1", "o#0", "o#1"])
        XCTAssertGreaterThan(cpu["s#0"]! + cpu["s#1"]!, 0)
    }
}
