import XCTest
@testable import WeirCore

/// Session windows, merged in place, against a model of the merge as first
/// written (a new list per record, rebuilt and sorted): over seeded random
/// input with late records, out-of-order events and merges of several
/// sessions, the operator must fire the same windows with the same values
/// (the same `min` of `3` and `3.0`, the same double sums), count the same
/// late records, and leave a snapshot taken between batches untouched.
final class SessionWindowTests: XCTestCase {
    /// Collects what an operator emits.
    final class Collect: StreamOperator {
        var fired: [[[Value]]] = [[]]
        func process(_ batch: RecordBatch, _ out: Output) throws {
            for r in 0..<batch.count { fired[fired.count - 1].append(batch.row(r)) }
        }
        func watermark(_ wm: Int64, _ out: Output) throws {}
        /// Starts a new group of fired rows (one per watermark or finish).
        func next() { fired.append([]) }
    }

    /// The merge of `WindowAggregateOperator.addToSession` and `fire` as first written.
    struct Model {
        let folder: AggregateFolder
        let gap: Int64
        var sessions: [GroupKey: [WindowAggregateOperator.Session]] = [:]
        var watermark = Int64.min
        var late = 0

        mutating func add(_ row: [Value], ts: Int64) {
            row.withUnsafeBufferPointer { p in
                let key = GroupKey.of(p.baseAddress!, [0])
                let list = sessions[key] ?? []
                var merged = WindowAggregateOperator.Session(start: ts, end: ts + gap, accs: folder.initial)
                folder.fold(&merged.accs, p.baseAddress!)
                var keep: [WindowAggregateOperator.Session] = []
                for s in list {
                    if s.start < merged.end && merged.start < s.end {
                        merged.start = min(merged.start, s.start)
                        merged.end = max(merged.end, s.end)
                        folder.merge(&merged.accs, s.accs)
                    } else {
                        keep.append(s)
                    }
                }
                if keep.count == list.count && merged.end - 1 <= watermark { late += 1; return }
                keep.append(merged)
                keep.sort { $0.start < $1.start }
                sessions[key] = keep
            }
        }

        mutating func fire(upTo wm: Int64) -> [[Value]] {
            var out: [[Value]] = []
            for (key, list) in sessions {
                var keep: [WindowAggregateOperator.Session] = []
                for s in list {
                    if s.end - 1 <= wm || wm == Int64.max { out.append(key.values + [.int(s.start), .int(s.end)] + s.accs.map(\.result)) }
                    else { keep.append(s) }
                }
                sessions[key] = keep.isEmpty ? nil : keep
            }
            return out
        }
    }

    /// SplitMix64 (the core's finaliser), for reproducible input.
    struct Random {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            let z = KeyGroups.mix(state)  // finalises state + the golden-ratio step
            state &+= 0x9E37_79B9_7F4A_7C15
            return Int(z % UInt64(bound))
        }
    }

    enum Step { case batch(RecordBatch), watermark(Int64) }

    let schema = Schema([.init("k", .int), .init("v", .any)])
    let gap: Int64 = 1000

    func aggregates() throws -> [AggregateSpec] {
        try [("n", "count()"), ("s", "sum(v)"), ("lo", "min(v)"), ("hi", "max(v)"), ("m", "avg(v)"), ("d", "count_distinct(v)")]
            .map { try AggregateSpec.compile(name: $0.0, $0.1, schema: schema) }
    }

    /// Batches of 1 to 8 records (5 keys, values 0...4 as integers or doubles,
    /// event times jittered ±3 s around a clock that moves 0 to 0.8 s a step),
    /// with a watermark up to 2 s behind the clock every few steps.
    func steps(seed: UInt64, count: Int) -> [Step] {
        var rnd = Random(state: seed)
        var clock: Int64 = 100_000
        var out: [Step] = []
        for _ in 0..<count {
            clock += Int64(rnd.next(800))
            if rnd.next(4) == 0 { out.append(.watermark(clock - Int64(rnd.next(2000)))); continue }
            var b = RecordBatch(arity: 2)
            for _ in 0..<(1 + rnd.next(8)) {
                let v = rnd.next(5)
                b.append(row: [.int(Int64(rnd.next(5))), rnd.next(2) == 0 ? .int(Int64(v)) : .double(Double(v))],
                         timestamp: clock + Int64(rnd.next(6000)) - 3000)
            }
            out.append(.batch(b))
        }
        return out
    }

    func makeOperator() throws -> (WindowAggregateOperator, Output, Collect, JobMetrics) {
        let aggs = try aggregates()
        let metrics = JobMetrics()
        let op = WindowAggregateOperator(keyFields: [0], window: .session(gap: gap), aggregates: aggs,
                                         outArity: 3 + aggs.count, metrics: metrics)
        let collect = Collect()
        let out = Output()
        out.targets = [.chained(collect, Output())]
        return (op, out, collect, metrics)
    }

    func drive(_ op: WindowAggregateOperator, _ out: Output, _ collect: Collect, _ steps: ArraySlice<Step>) throws {
        for step in steps {
            switch step {
            case .batch(let b): try op.process(b, out)
            case .watermark(let wm): collect.next(); try op.watermark(wm, out)
            }
        }
    }

    func sortedGroups(_ groups: [[[Value]]]) -> [[String]] {
        groups.map { $0.map { "\($0)" }.sorted() }
    }

    func testInPlaceMergeMatchesTheModel() throws {
        for seed: UInt64 in [1, 2, 3, 42, 1234] {
            let steps = steps(seed: seed, count: 400)
            let (op, out, collect, metrics) = try makeOperator()
            try drive(op, out, collect, steps[...])
            collect.next()
            try op.finish(out)

            var model = Model(folder: AggregateFolder(try aggregates()), gap: gap)
            var expected: [[[Value]]] = [[]]
            for step in steps {
                switch step {
                case .batch(let b):
                    for r in 0..<b.count { model.add(b.row(r), ts: b.timestamps[r]) }
                case .watermark(let wm):
                    expected.append([])
                    if wm > model.watermark {
                        model.watermark = wm
                        expected[expected.count - 1] = model.fire(upTo: wm)
                    }
                }
            }
            expected.append(model.fire(upTo: Int64.max))

            XCTAssertEqual(sortedGroups(collect.fired), sortedGroups(expected), "seed \(seed)")
            XCTAssertEqual(metrics.lateRecords.load, model.late, "seed \(seed)")
            XCTAssertGreaterThan(model.late, 0, "seed \(seed): the input has late records")
            XCTAssertGreaterThan(expected.joined().count, 50, "seed \(seed): windows fire")
        }
    }

    func testSnapshotTakenBetweenBatchesIsNotChangedByLaterMerges() throws {
        let steps = steps(seed: 7, count: 300)
        let (op, out, collect, _) = try makeOperator()
        try drive(op, out, collect, steps[..<150])
        let encode = op.captureState(maxParallelism: 128)
        let firedBefore = collect.fired.count
        try drive(op, out, collect, steps[150...])  // merges into the sessions the snapshot holds
        collect.next()
        try op.finish(out)

        let (restored, out2, collect2, _) = try makeOperator()
        try restored.restoreState([encode(sequentialFor)], keyGroups: 0...127)
        try drive(restored, out2, collect2, steps[150...])
        collect2.next()
        try restored.finish(out2)

        XCTAssertEqual(sortedGroups(Array(collect2.fired.dropFirst())), sortedGroups(Array(collect.fired[firedBefore...])))
    }
}
