import Foundation
import XCTest
@testable import WeirCore
@testable import WeirEngine
@testable import WeirState

/// Snapshot and restore through the runtime with in-memory connectors: state
/// by key group, rescaling, watermark restore, layout and node-id checks.
final class CheckpointTests: XCTestCase {
    var dir: URL!

    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("weir-ckpt-\(UUID().uuidString)")
    }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func ev(_ user: Int, _ amount: Int, _ ts: Int64) -> String { #"{"user_id": \#(user), "amount": \#(amount), "ts": \#(ts)}"# }

    func job(_ p: Int, window: String = "{ tumbling: 1s }", id: String = "w") -> String {
        """
        name: ck
        parallelism: \(p)
        maxParallelism: 16
        checkpoint: { interval: 1h }
        nodes:
          - { id: s, mem: { schema: { user_id: int, amount: int, ts: int }, eventTime: { field: ts } } }
          - { id: \(id), inputs: [s], keyBy: [user_id], window: \(window), aggregate: { cnt: "count()", total: "sum(amount)" } }
          - { id: o, inputs: [\(id)], out: {} }
        """
    }

    /// Runs `yaml` over `splits`; stops with a snapshot once `stopAfter` records are in (or drains).
    func run(_ yaml: String, _ source: MemorySource, sink: MemorySink, store: SnapshotStore, restore: RestorePoint?,
             stopAfter: Int?, allowNonRestored: Bool = false) throws -> RunOutcome {
        let plan = try JobPlan.compile(yaml, connectors: memoryKinds(source: source, sink: sink))
        var options = RunOptions()
        options.untilIdleMillis = stopAfter == nil ? 50 : nil
        options.pollBatchSize = 7
        let runner = JobRunner(plan: plan, options: options,
                               checkpointing: store.checkpointConfig(for: plan.spec, restoring: restore),
                               restore: restore, allowNonRestoredState: allowNonRestored)
        if let stopAfter {
            let t = Thread {
                while runner.metrics.recordsIn.load < stopAfter { usleep(1000) }
                usleep(50_000)
                _ = runner.stopWithSnapshot()
            }
            t.start()
        }
        return try runner.run()
    }

    func windows(_ rows: [[Value]]) -> [[Value]: [Value]] {
        var m: [[Value]: [Value]] = [:]
        for r in rows { m[[r[0], r[1]]] = [r[3], r[4]] }  // upsert by (user, window_start)
        return m
    }

    func testStopRestoreAtOtherParallelismEqualsOneCleanRun() throws {
        var all: [[String]] = [[], [], []]
        for i in 0..<3000 { all[i % 3].append(ev(i % 11, i % 97, Int64(i * 3))) }
        // Reference: one clean run.
        let cleanSink = MemorySink()
        let cleanStore = try SnapshotStore(directory: dir.appendingPathComponent("clean"))
        XCTAssertEqual(try run(job(2), MemorySource(all), sink: cleanSink, store: cleanStore, restore: nil, stopAfter: nil), .finished)
        let expected = windows(cleanSink.all)
        XCTAssertGreaterThan(expected.count, 50)

        for (before, after) in [(2, 1), (1, 3), (3, 2)] {
            let store = try SnapshotStore(directory: dir.appendingPathComponent("\(before)-\(after)"))
            let sink = MemorySink()
            let first = try run(job(before), MemorySource(all, pace: 2000), sink: sink, store: store, restore: nil, stopAfter: 1200)
            guard case .stopped(let id) = first else { return XCTFail("expected a stop, got \(first)") }
            let point = try store.load(id).restorePoint()
            let consumed = point.offsets["s"]?.values.reduce(0, +) ?? 0
            XCTAssertTrue(consumed >= 1200 && consumed < 3000, "stopped mid-stream, after \(consumed) records")
            XCTAssertEqual(try run(job(after), MemorySource(all), sink: sink, store: store, restore: point, stopAfter: nil), .finished)
            XCTAssertEqual(windows(sink.all), expected, "restore \(before) → \(after)")
        }
    }

    func testRemovedNodeIsRefusedUnlessAllowed() throws {
        let data = [(0..<200).map { ev($0 % 5, 1, Int64($0 * 10)) }]
        let store = try SnapshotStore(directory: dir)
        guard case .stopped(let id) = try run(job(1), MemorySource(data, pace: 2000), sink: MemorySink(), store: store, restore: nil, stopAfter: 100)
        else { return XCTFail() }
        let point = try store.load(id).restorePoint()
        XCTAssertThrowsError(try run(job(1, id: "w2"), MemorySource(data), sink: MemorySink(), store: store, restore: point, stopAfter: nil)) {
            XCTAssertTrue("\($0)".contains("'w'") && "\($0)".contains("--allow-non-restored-state"), "\($0)")
        }
        XCTAssertEqual(try run(job(1, id: "w2"), MemorySource(data), sink: MemorySink(), store: store, restore: point,
                               stopAfter: nil, allowNonRestored: true), .finished)
        // Same id, different window: the layout check names the node.
        XCTAssertThrowsError(try run(job(1, window: "{ tumbling: 2s }"), MemorySource(data), sink: MemorySink(), store: store,
                                     restore: point, stopAfter: nil)) {
            XCTAssertTrue("\($0)".contains("node 'w'") && "\($0)".contains("layout changed"), "\($0)")
        }
    }

    func testStateCodecRoundTrip() throws {
        var w = StateWriter()
        let values: [Value] = [.null, .bool(true), .bool(false), .int(-42), .double(2.5), .string("héllo")]
        for v in values { w.value(v) }
        let accs: [Accumulator] = [.count(3), .sumInt(-7), .sumDouble(1.5), .minMax(.string("a")), .avg(sum: 3, count: 2),
                                   .distinct([.int(1), .string("x")])]
        for a in accs { w.accumulator(a) }
        w.key(.two(.int(1), .string("k")))
        var r = StateReader(w.bytes)
        for v in values { XCTAssertEqual(try r.value(), v) }
        for a in accs { XCTAssertEqual(try r.accumulator(), a) }
        XCTAssertEqual(try r.key(), .two(.int(1), .string("k")))
        XCTAssertTrue(r.isAtEnd)
        // Truncated data fails cleanly.
        var bad = StateReader(Array(w.bytes.prefix(5)))
        _ = try? bad.value()
        XCTAssertThrowsError(try bad.accumulator())
    }
}
