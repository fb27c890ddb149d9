import Foundation
import Synchronization
@testable import WeirCore
@testable import WeirEngine

/// In-memory source for engine unit tests (windows, watermarks, routing).
/// Kafka behaviour itself is tested against the real broker elsewhere.
final class MemorySource: SourceConnector, @unchecked Sendable {
    let splits: [[String]]
    let start: [String: Int64]
    /// Microseconds each poll sleeps (to keep a stream flowing while a test acts on it).
    let pace: UInt32
    init(_ splits: [[String]], start: [String: Int64] = [:], pace: UInt32 = 0) {
        self.splits = splits; self.start = start; self.pace = pace
    }
    func discoverSplits() throws -> [String] { splits.indices.map { "mem/\($0)" } }
    func openReader(splits idx: [Int], owner: SplitOwner) throws -> any SourceReader {
        Reader(idx.map { splits[$0] }, names: idx.map { "mem/\($0)" }, start: idx.map { Int(start["mem/\($0)"] ?? 0) }, pace: pace)
    }
    func resuming(at offsets: [String: Int64]) -> any SourceConnector { MemorySource(splits, start: offsets, pace: pace) }

    final class Reader: SourceReader {
        let data: [[String]]
        let splitNames: [String]
        var pos: [Int]
        let pace: UInt32
        init(_ d: [[String]], names: [String], start: [Int], pace: UInt32) { data = d; splitNames = names; pos = start; self.pace = pace }
        func poll(maxMessages: Int, timeoutMillis: Int, _ deliver: (Int, UnsafeRawBufferPointer) -> Void) throws -> Int {
            if pace > 0 { usleep(pace) }
            var n = 0
            // Interleave splits one message at a time, like a broker would.
            while n < maxMessages {
                var progressed = false
                for s in data.indices where pos[s] < data[s].count && n < maxMessages {
                    let bytes = Array(data[s][pos[s]].utf8)
                    bytes.withUnsafeBytes { deliver(s, $0) }
                    pos[s] += 1; n += 1; progressed = true
                }
                if !progressed { break }
            }
            if n == 0 { usleep(UInt32(min(timeoutMillis, 5)) * 1000) }
            return n
        }
        /// Called from inside `deliver`, before the position moves on.
        func offsetOfLastDelivered(split: Int) -> Int64? { Int64(pos[split]) }
        func progress() -> [SplitProgress] {
            data.indices.map { SplitProgress(name: splitNames[$0], nextOffset: Int64(pos[$0]), highWatermark: Int64(data[$0].count)) }
        }
        func close() {}
    }
}

/// In-memory sink collecting every row written and committed, the subtask
/// that wrote each row, and the dead letters it was handed.
final class MemorySink: SinkConnector, @unchecked Sendable {
    let rows = Mutex<[[Value]]>([])
    let bySubtask = Mutex<[Int: [[Value]]]>([:])
    let deadLetters = Mutex<[RejectedRecord]>([])
    let flushes = Counter()
    let key: [String]
    /// A table's columns, for binding a schema-less source (nil: cannot tell).
    let table: Schema?
    init(rowKey: [String] = [], table: Schema? = nil) { key = rowKey; self.table = table }
    var rowKey: [String] { key }
    func tableSchema() throws -> Schema? { table }
    func check(schema: Schema) throws {}
    func openWriter(subtask: Int, schema: Schema) throws -> any SinkWriter { Writer(self, subtask: subtask) }
    final class Writer: SinkWriter {
        let sink: MemorySink
        let subtask: Int
        var pending: [[Value]] = []
        var pendingDead: [RejectedRecord] = []
        init(_ s: MemorySink, subtask: Int) { sink = s; self.subtask = subtask }
        func write(_ batch: RecordBatch) throws { for r in 0..<batch.count { pending.append(batch.row(r)) } }
        func writeDeadLetters(_ records: [RejectedRecord]) throws { pendingDead += records }
        func flush() throws {
            let p = pending, d = pendingDead
            pending = []; pendingDead = []
            sink.rows.withLock { $0 += p }
            sink.bySubtask.withLock { $0[subtask, default: []] += p }
            sink.deadLetters.withLock { $0 += d }
            sink.flushes.add(1)
        }
        func close() {}
    }
    var all: [[Value]] { rows.withLock { $0 } }
    var dead: [RejectedRecord] { deadLetters.withLock { $0 } }
}

func memoryKinds(source: MemorySource, sink: MemorySink) -> [ConnectorKind] {
    [.source(name: "mem", make: { r in _ = r.string("name"); return source }),
     .sink(name: "out", make: { r in _ = r.string("name"); _ = r.stringList("key"); return sink })]
}
