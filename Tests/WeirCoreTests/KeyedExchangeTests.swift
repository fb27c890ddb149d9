import XCTest
@testable import WeirCore

/// The keyed exchange splits a batch in two passes into exact-size parts:
/// each subtask must get exactly its rows, in their original order, with
/// their timestamps and the batch's arrival stamp.
final class KeyedExchangeTests: XCTestCase {
    final class Collect: ElementQueue, @unchecked Sendable {
        var batches: [RecordBatch] = []
        func send(_ input: Int, _ e: StreamElement) -> Bool {
            if case .batch(let b) = e { batches.append(b) }
            return true
        }
    }

    func split(_ batch: RecordBatch, keyFields: [Int], subtasks: Int) throws -> [Collect] {
        let outs = (0..<subtasks).map { _ in Collect() }
        let ex = KeyedExchange(channels: outs, input: 0, keyFields: keyFields, maxParallelism: 128, arity: batch.arity)
        try ex.send(batch)
        try ex.send(batch)  // the reused per-row scratch must not carry over
        return outs
    }

    func testPartsHoldEachSubtasksRowsInOrder() throws {
        var batch = RecordBatch(arity: 3)
        var rng = SystemRandomNumberGenerator()
        for r in 0..<5_000 {
            let key: Value = r % 7 == 0 ? .string("k\(r % 50)") : .int(Int64.random(in: -1000...1000, using: &rng))
            batch.append(row: [key, .int(Int64(r)), r % 3 == 0 ? .null : .double(Double(r) / 4)], timestamp: Int64(r * 10))
        }
        batch.arrivalNanos = 42
        for subtasks in [2, 3, 4] {
            let outs = try split(batch, keyFields: [0], subtasks: subtasks)
            var expected = (0..<subtasks).map { _ in RecordBatch(arity: 3) }
            for r in 0..<batch.count {
                let h = batch.values.withUnsafeBufferPointer { KeyGroups.keyHash($0.baseAddress! + r * 3, [0]) }
                let t = KeyGroups.subtask(keyGroup: KeyGroups.keyGroup(hash: h, maxParallelism: 128), parallelism: subtasks, maxParallelism: 128)
                expected[t].append(rowOf: batch, r)
            }
            for t in 0..<subtasks {
                let got = outs[t].batches
                XCTAssertEqual(got.count, expected[t].isEmpty ? 0 : 2, "subtask \(t) of \(subtasks)")
                for b in got {
                    XCTAssertEqual(b.values, expected[t].values, "subtask \(t) of \(subtasks)")
                    XCTAssertEqual(b.timestamps, expected[t].timestamps)
                    XCTAssertEqual(b.arrivalNanos, 42)
                }
            }
            XCTAssertEqual(outs.reduce(0) { $0 + $1.batches.reduce(0) { $0 + $1.count } }, 2 * batch.count)
        }
    }

    func testABatchOfOneKeyGoesWholeToItsSubtask() throws {
        var batch = RecordBatch(arity: 2)
        for r in 0..<100 { batch.append(row: [.string("only"), .int(Int64(r))], timestamp: Int64(r)) }
        let outs = try split(batch, keyFields: [0], subtasks: 2)
        XCTAssertEqual(outs.filter { !$0.batches.isEmpty }.count, 1)
        let got = outs.first { !$0.batches.isEmpty }!.batches
        XCTAssertEqual(got.map(\.values), [batch.values, batch.values])
        XCTAssertEqual(got.map(\.timestamps), [batch.timestamps, batch.timestamps])
    }

    /// `Output.emit` hands the batch over, so the exchange moves the rows into
    /// the parts; a caller that still holds the batch must see it unchanged
    /// (the exchange then copies), and strings moved or copied must stay intact.
    func testAHandedOverBatchIsMovedAndASharedOneIsLeftAsItWas() throws {
        func make() -> RecordBatch {
            var b = RecordBatch(arity: 2)
            for r in 0..<3_000 { b.append(row: [.string("user-\(r % 97)"), .string(String(repeating: "x", count: r % 40))], timestamp: Int64(r)) }
            return b
        }
        let reference = make()
        let outs = (0..<3).map { _ in Collect() }
        let out = Output()
        out.targets = [.keyed(KeyedExchange(channels: outs, input: 0, keyFields: [0], maxParallelism: 128, arity: 2))]
        try out.emit(make())                 // handed over: moved
        let kept = make()
        try out.emit(kept)                   // still held here: copied
        XCTAssertEqual(kept.values, reference.values)
        XCTAssertEqual(kept.timestamps, reference.timestamps)
        var seen: [[Value]: Int] = [:]
        for o in outs {
            XCTAssertEqual(o.batches.count, 2)
            XCTAssertEqual(o.batches[0].values, o.batches[1].values)
            XCTAssertEqual(o.batches[0].timestamps, o.batches[1].timestamps)
            for b in o.batches { for r in 0..<b.count { seen[b.row(r), default: 0] += 1 } }
        }
        var expected: [[Value]: Int] = [:]
        for r in 0..<reference.count { expected[reference.row(r), default: 0] += 2 }
        XCTAssertEqual(seen, expected)
    }

    /// A subtask whose inbox is closed (the job is cancelling) fails the send
    /// with CancellationError after the parts before it went out; the moved
    /// batch is left whole (every slot a value again), so nothing is released twice.
    func testAClosedInboxBetweenPartsCancelsCleanly() throws {
        final class Closed: ElementQueue, @unchecked Sendable {
            var sent = 0
            func send(_ input: Int, _ e: StreamElement) -> Bool { sent += 1; return false }
        }
        let open0 = Collect(), closed = Closed(), open2 = Collect()
        let out = Output()
        out.targets = [.keyed(KeyedExchange(channels: [open0, closed, open2], input: 0, keyFields: [0], maxParallelism: 128, arity: 2))]
        func make() -> RecordBatch {
            var b = RecordBatch(arity: 2)
            for r in 0..<2_000 { b.append(row: [.string("u\(r % 301)"), .string("v\(r)")], timestamp: Int64(r)) }
            return b
        }
        let held = make()
        for (round, handedOver) in [true, false].enumerated() {
            if handedOver {
                XCTAssertThrowsError(try out.emit(make())) { XCTAssertTrue($0 is CancellationError, "\($0)") }
            } else {
                XCTAssertThrowsError(try out.emit(held)) { XCTAssertTrue($0 is CancellationError, "\($0)") }
            }
            XCTAssertEqual(closed.sent, round + 1)
            XCTAssertEqual(open0.batches.count, round + 1, "the part before the closed inbox went out")
            XCTAssertEqual(open2.batches.count, 0, "nothing after it")
            // The part that went out holds intact strings of the first subtask's rows.
            let part = open0.batches[round]
            XCTAssertGreaterThan(part.count, 0)
            for r in 0..<part.count {
                guard case .string(let v) = part.value(row: r, field: 1) else { return XCTFail("row \(r)") }
                XCTAssertTrue(v.hasPrefix("v"))
            }
        }
        XCTAssertEqual(open0.batches[0].values, open0.batches[1].values)
        XCTAssertEqual(held.values, make().values, "the caller's batch is untouched")
    }

    func testAnEmptyBatchSendsNothing() throws {
        let outs = try split(RecordBatch(arity: 2), keyFields: [0], subtasks: 3)
        XCTAssertEqual(outs.map(\.batches.count), [0, 0, 0])
    }
}
