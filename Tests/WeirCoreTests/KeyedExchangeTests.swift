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
}
