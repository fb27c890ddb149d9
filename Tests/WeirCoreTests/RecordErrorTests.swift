import Logging
import Synchronization
import XCTest
@testable import WeirCore
@testable import WeirEngine

/// Record-level isolation: bad records are rejected where they are first
/// known to be bad, counted per node and reason, dead-lettered exactly once,
/// and never stop the job or hold back the good records around them.
final class RecordErrorTests: XCTestCase {
    func run(_ yaml: String, _ splits: [[String]], sink: MemorySink = MemorySink()) throws -> (MemorySink, JobMetrics, [String]) {
        let source = MemorySource(splits)
        let plan = try JobPlan.compile(yaml, connectors: memoryKinds(source: source, sink: sink))
        var options = RunOptions()
        options.untilIdleMillis = 50
        options.pollBatchSize = 5
        let lines = LineCollector()
        options.logger = Logger(label: "test") { _ in CollectingLogHandler(lines) }
        let runner = JobRunner(plan: plan, options: options)
        XCTAssertEqual(try runner.run(), .finished)
        return (sink, runner.metrics, lines.all)
    }

    /// A swift-log backend that keeps the lines, for assertions.
    struct CollectingLogHandler: LogHandler {
        let lines: LineCollector
        init(_ lines: LineCollector) { self.lines = lines }
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? { get { metadata[key] } set { metadata[key] = newValue } }
        func log(event: LogEvent) { lines.add("\(event.message)") }
    }

    final class LineCollector: Sendable {
        private let lines = Mutex<[String]>([])
        func add(_ l: String) { lines.withLock { $0.append(l) } }
        var all: [String] { lines.withLock { $0 } }
    }

    func job(policy: String, parallelism: Int = 2) -> String {
        """
        name: poison
        parallelism: \(parallelism)
        \(policy)
        nodes:
          - { id: s, mem: { schema: { user_id: int, amount: int, note: string?, ts: int }, eventTime: { field: ts } } }
          - { id: w, inputs: [s], keyBy: [user_id], window: { tumbling: 1s }, aggregate: { cnt: "count()", total: "sum(amount)" } }
          - { id: o, inputs: [w], out: {} }
        """
    }

    /// Good events mixed with every kind of bad one the source can see.
    func poisonedInput() -> (splits: [[String]], good: Int, bad: [RejectReason: Int], expected: [[Int64]: (Int64, Int64)]) {
        var splits: [[String]] = [[], []]
        var expected: [[Int64]: (Int64, Int64)] = [:]
        var good = 0
        var bad: [RejectReason: Int] = [:]
        let poison: [(String, RejectReason)] = [
            ("not json at all", .malformed),
            (#"[1, 2, 3]"#, .malformed),
            (#"{"amount": 5, "ts": 10}"#, .missingField),                 // no user_id
            (#"{"user_id": null, "amount": 5, "ts": 10}"#, .missingField),
            (#"{"user_id": "seven", "amount": 5, "ts": 10}"#, .typeMismatch),
            (#"{"user_id": 1e30, "amount": 5, "ts": 10}"#, .outOfRange),
            (#"{"user_id": 1, "amount": 5, "ts": 1e19}"#, .outOfRange),     // not even a 64-bit integer
            (#"{"user_id": 1, "amount": 5, "ts": 300000000000000}"#, .badEventTime), // year 11476
            (#"{"user_id": 1, "amount": 5}"#, .missingField),               // ts is declared int: required
        ]
        for i in 0..<600 {
            let ts = Int64(i * 5)
            if i % 37 == 0 {
                let (text, reason) = poison[(i / 37) % poison.count]
                splits[i % 2].append(text)
                bad[reason, default: 0] += 1
                continue
            }
            let user = Int64(i % 7), amount = Int64(i % 11)
            splits[i % 2].append(#"{"user_id": \#(user), "amount": \#(amount), "ts": \#(ts)}"#)
            good += 1
            let k = [user, ts / 1000 * 1000]
            let cur = expected[k] ?? (0, 0)
            expected[k] = (cur.0 + 1, cur.1 + amount)
        }
        return (splits, good, bad, expected)
    }

    func check(_ rows: [[Value]], _ expected: [[Int64]: (Int64, Int64)], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(rows.count, expected.count, file: file, line: line)
        for r in rows {
            guard case .int(let u) = r[0], case .int(let s) = r[1] else { return XCTFail("\(r)", file: file, line: line) }
            let want = expected[[u, s]]
            XCTAssertEqual(r[3], .int(want?.0 ?? -1), file: file, line: line)
            XCTAssertEqual(r[4], .int(want?.1 ?? -1), file: file, line: line)
        }
    }

    func testSkipCountsEveryPoisonKindAndKeepsTheGoodRecords() throws {
        let input = poisonedInput()
        let (sink, m, lines) = try run(job(policy: ""), input.splits)
        check(sink.all, input.expected)
        XCTAssertEqual(sink.dead, [])
        let total = input.bad.values.reduce(0, +)
        XCTAssertEqual(m.rejectedRecords.load, total)
        XCTAssertEqual(m.decodeErrors.load, total)
        XCTAssertEqual(m.rejected["s"], Dictionary(uniqueKeysWithValues: input.bad.map { ($0.key.rawValue, $0.value) }))
        XCTAssertEqual(m.lateRecords.load, 0)
        // Rate-limited: a few records in full, the rest in summaries, never a line per record.
        let rejectLines = lines.filter { $0.contains("rejected") }
        XCTAssertGreaterThanOrEqual(rejectLines.count, Rejections.fullLogLines)
        XCTAssertLessThan(rejectLines.count, total)
        XCTAssertTrue(rejectLines.contains { $0.contains("mem/") && $0.contains("field 'user_id'") }, "\(rejectLines)")
    }

    func testDeadLetterHoldsExactlyTheBadRecordsOnce() throws {
        let input = poisonedInput()
        let (sink, m, _) = try run(job(policy: "onError: deadLetter\ndeadLetter: { table: dlq }"), input.splits)
        check(sink.all, input.expected)
        let dead = sink.dead
        XCTAssertEqual(dead.count, input.bad.values.reduce(0, +))
        XCTAssertEqual(m.rejectedRecords.load, dead.count)
        // Each bad message exactly once, with its origin and raw value.
        var origins = Set<String>()
        for d in dead {
            XCTAssertEqual(d.node, "s")
            XCTAssertEqual(d.topic, "mem")
            XCTAssertTrue(origins.insert(d.origin).inserted, "duplicate dead letter \(d.origin)")
            let split = Int(d.partition ?? -1), offset = Int(d.offset ?? -1)
            XCTAssertEqual(String(decoding: d.value, as: UTF8.self), input.splits[split][offset])
        }
        var byReason: [RejectReason: Int] = [:]
        for d in dead { byReason[d.reason, default: 0] += 1 }
        XCTAssertEqual(byReason, input.bad)
    }

    func testFailPolicyStopsTheJobNamingTheRecord() throws {
        let input = poisonedInput()
        let source = MemorySource(input.splits)
        let plan = try JobPlan.compile(job(policy: "onError: fail"), connectors: memoryKinds(source: source, sink: MemorySink()))
        var options = RunOptions()
        options.untilIdleMillis = 50
        XCTAssertThrowsError(try JobRunner(plan: plan, options: options).run()) { e in
            guard let w = e as? WeirError else { return XCTFail("\(e)") }
            XCTAssertEqual(w.code, .badRecord)
            XCTAssertTrue(w.subject.contains("mem/0@0") || w.subject.contains("mem/1@18"), w.subject)
            XCTAssertNotNil(w.suggestion)
        }
    }

    func testIntegerSumOverflowRejectsThatRowOnly() throws {
        let yaml = """
        name: big
        nodes:
          - { id: s, mem: { schema: { k: int, v: int, ts: int }, eventTime: { field: ts } } }
          - { id: w, inputs: [s], keyBy: [k], window: { tumbling: 1s }, aggregate: { total: "sum(v)" } }
          - { id: o, inputs: [w], out: {} }
        """
        let big = Int64.max / 2 + 1
        let splits = [[#"{"k": 1, "v": \#(big), "ts": 1}"#, #"{"k": 1, "v": \#(big), "ts": 2}"#,
                       #"{"k": 2, "v": 5, "ts": 3}"#, #"{"k": 2, "v": 6, "ts": 4}"#]]
        let (sink, m, _) = try run(yaml, splits)
        XCTAssertEqual(sink.all, [[.int(2), .int(0), .int(1000), .int(11)]])
        XCTAssertEqual(m.rejected["w"], ["overflow": 1])
    }

    func testExpressionArithmeticNeverTrapsOrWraps() throws {
        let s = Schema([.init("a", .int), .init("b", .int)])
        func eval(_ text: String, _ a: Int64, _ b: Int64) throws -> Value {
            let c = try ExprCompiler.compile(text, schema: s)
            let row: [Value] = [.int(a), .int(b)]
            return row.withUnsafeBufferPointer { c.eval($0.baseAddress!) }
        }
        XCTAssertEqual(try eval("a + b", .max, 1), .double(Double(Int64.max) + 1))
        XCTAssertEqual(try eval("a - b", .min, 1), .double(Double(Int64.min) - 1))
        XCTAssertEqual(try eval("a * b", .max, 2), .double(Double(Int64.max) * 2))
        XCTAssertEqual(try eval("a % b", .min, -1), .int(0))
        XCTAssertEqual(try eval("a / b", 1, 0), .null)
        XCTAssertEqual(try eval("a % b", 1, 0), .null)
        XCTAssertEqual(try eval("abs(a)", .min, 0), .double(-Double(Int64.min)))
        XCTAssertEqual(try eval("-a", .min, 0), .double(-Double(Int64.min)))
        XCTAssertEqual(try eval("a + b", 2, 3), .int(5))
    }

    func testOutOfRangeSpecDurationsAreLocatedErrorsNotTraps() {
        let yaml = """
        name: d
        checkpoint: { interval: 1e300s, timeout: 99999999999999999999d }
        restart: { delay: 1e400ms }
        nodes:
          - { id: s, mem: { schema: { k: int, ts: int }, eventTime: { field: ts, maxOutOfOrderness: 1e30h } } }
          - { id: w, inputs: [s], keyBy: [k], window: { tumbling: 1e20s }, aggregate: { c: "count()" } }
          - { id: o, inputs: [w], out: {} }
        """
        XCTAssertThrowsError(try JobPlan.compile(yaml, connectors: memoryKinds(source: MemorySource([]), sink: MemorySink()))) { e in
            let text = "\(e)"
            for path in ["checkpoint.interval: 1e300s is out of range", "checkpoint.timeout", "restart.delay",
                         "eventTime.maxOutOfOrderness", "window.tumbling"] {
                XCTAssertTrue(text.contains(path), "missing \(path) in:\n\(text)")
            }
        }
    }

    func testPolicySpecErrorsAreLocated() {
        func errors(_ extra: String, node: String = "") -> String {
            let yaml = """
            name: p
            \(extra)
            nodes:
              - { id: s, mem: { schema: { k: int } } }
              - { id: o, inputs: [s], out: {} \(node) }
            """
            do { _ = try JobPlan.compile(yaml, connectors: memoryKinds(source: MemorySource([]), sink: MemorySink())); return "" }
            catch { return "\(error)" }
        }
        XCTAssertTrue(errors("onError: skipp").contains("onError: unknown policy 'skipp'"), errors("onError: skipp"))
        XCTAssertTrue(errors("onError: skipp").contains("did you mean 'skip'"))
        XCTAssertTrue(errors("onError: deadLetter").contains("needs a table"))
        XCTAssertEqual(errors("onError: deadLetter\ndeadLetter: { table: dlq }"), "")
        XCTAssertEqual(errors("", node: ", onError: fail"), "")
        XCTAssertTrue(errors("", node: ", onError: deadLetter").contains("nodes[1].onError"))
    }

    func testSinkOverridesTheJobPolicy() throws {
        let plan = try JobPlan.compile("""
            name: p
            onError: deadLetter
            deadLetter: { table: dlq }
            nodes:
              - { id: s, mem: { schema: { k: int } } }
              - { id: o, inputs: [s], out: {}, onError: fail }
            """, connectors: memoryKinds(source: MemorySource([]), sink: MemorySink()))
        XCTAssertEqual(plan.spec.errors, ErrorPolicy(onError: .deadLetter, deadLetterTable: "dlq"))
        XCTAssertEqual(plan.nodes[1].errors, ErrorPolicy(onError: .fail, deadLetterTable: "dlq"))
    }

    func testUpsertSinkRowsAreRoutedByTheRowKey() throws {
        // A stateless pipeline into an upsert sink at parallelism 2: every key is written by one subtask only.
        let sink = MemorySink(rowKey: ["k"])
        var splits: [[String]] = [[], [], []]
        for i in 0..<300 { splits[i % 3].append(#"{"k": \#(i % 10), "v": \#(i)}"#) }
        let yaml = """
        name: up
        parallelism: 2
        nodes:
          - { id: s, mem: { schema: { k: int, v: int } } }
          - { id: o, inputs: [s], out: { key: [k] } }
        """
        _ = try run(yaml, splits, sink: sink)
        let by = sink.bySubtask.withLock { $0 }
        XCTAssertEqual(by.values.reduce(0) { $0 + $1.count }, 300)
        let keysOf = by.mapValues { Set($0.map { $0[0] }) }
        XCTAssertEqual(keysOf.count, 2, "both subtasks write")
        XCTAssertTrue(keysOf[0, default: []].isDisjoint(with: keysOf[1, default: []]), "\(keysOf)")
    }

    func testSchemaLessSourceIntoASinkBindsToTheTable() throws {
        let table = Schema([.init("user_id", .int, nullable: false), .init("amount", .double), .init("note", .string)])
        let sink = MemorySink(table: table)
        let yaml = """
        name: simple
        nodes:
          - { id: s, mem: {} }
          - { id: f, inputs: [s], filter: "amount > 0" }
          - { id: o, inputs: [f], out: {} }
        """
        let splits = [[#"{"user_id": 1, "amount": 2.5, "note": "a", "extra": 1}"#, #"{"amount": 3}"#,
                       #"{"user_id": 2, "amount": -1}"#, #"{"user_id": 3, "amount": 4}"#]]
        let (_, m, _) = try run(yaml, splits, sink: sink)
        XCTAssertEqual(sink.all, [[.int(1), .double(2.5), .string("a")], [.int(3), .double(4), .null]])
        XCTAssertEqual(m.rejected["s"], ["missing_field": 1])
    }

    func testRestoreRefusesAChangedMaxParallelism() throws {
        let plan = try JobPlan.compile(job(policy: ""), connectors: memoryKinds(source: MemorySource([]), sink: MemorySink()))
        let r = RestorePoint(snapshotID: "stop-3", checkpointID: 3, run: "r", nodes: ["s", "w", "o"], offsets: [:],
                             state: ["w": [[0]]], layouts: [:], maxParallelism: 64)
        XCTAssertThrowsError(try JobRunner(plan: plan, restore: r).checkRestore(r)) { e in
            XCTAssertTrue("\(e)".contains("maxParallelism 64"), "\(e)")
            XCTAssertTrue("\(e)".contains("set maxParallelism: 64"), "\(e)")
        }
        let same = RestorePoint(snapshotID: "stop-3", checkpointID: 3, run: "r", nodes: ["s", "w", "o"], offsets: [:],
                                state: ["w": [[0]]], layouts: [:], maxParallelism: 128)
        XCTAssertNoThrow(try JobRunner(plan: plan, restore: same).checkRestore(same))
    }

    func testRestartBackoffDoublesAndIsCapped() {
        let r = JobSpec.RestartSettings(attempts: 10, delayMillis: 2_000)
        XCTAssertEqual((1...7).map { JobSupervisor.backoffMillis(r, attempt: $0) }, [2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000])
        XCTAssertEqual(JobSupervisor.backoffMillis(JobSpec.RestartSettings(attempts: 1, delayMillis: 90_000), attempt: 3), 90_000)
    }

    func testASlidingWindowCannotMakeOneRecordCostMillionsOfFolds() {
        let yaml = """
        name: sl
        nodes:
          - { id: s, mem: { schema: { k: int, ts: int }, eventTime: { field: ts } } }
          - { id: w, inputs: [s], keyBy: [k], window: { sliding: 3650d, slide: 1ms }, aggregate: { c: "count()" } }
          - { id: o, inputs: [w], out: {} }
        """
        XCTAssertThrowsError(try JobPlan.compile(yaml, connectors: memoryKinds(source: MemorySource([]), sink: MemorySink()))) { e in
            XCTAssertTrue("\(e)".contains("window.slide"), "\(e)")
            XCTAssertTrue("\(e)".contains("at most 1000"), "\(e)")
        }
    }
}
