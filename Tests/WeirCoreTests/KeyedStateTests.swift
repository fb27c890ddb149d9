import Foundation
import XCTest
@testable import WeirCore
@testable import WeirEngine

/// The compact keyed state (`KeyTable` per key group): results equal those of
/// the previous representation (a `[GroupKey: [Accumulator]]` folded by
/// `AggregateFolder`), snapshots are byte-compatible with the previous
/// encoder (old snapshots restore, new ones read with the old reader), and
/// restores at another parallelism split keys by key group.
final class KeyedStateTests: XCTestCase {
    let schema = Schema([.init("k", .any), .init("k2", .any), .init("amount", .any), .init("ts", .int)])
    let maxP = 16

    func aggs(_ texts: [String]) throws -> [AggregateSpec] {
        try texts.enumerated().map { try AggregateSpec.compile(name: "a\($0.offset)", $0.element, schema: schema) }
    }

    /// Keys of every kind: ints, doubles equal to ints, -0.0, strings (long, short, canonically equivalent), bools, nulls.
    func keyValue(_ i: Int) -> Value {
        switch i % 9 {
        case 0: return .int(Int64(i % 50))
        case 1: return .double(Double(i % 7))  // 3.0 is not the key 3, but hashes alike
        case 2: return .string("user-\(i % 40)")
        case 3: return .string("a rather long user name that is not a small string #\(i % 13)")
        case 4: return i % 2 == 0 ? .string("caf\u{E9}") : .string("cafe\u{301}")  // one key: canonically equivalent
        case 5: return .null
        case 6: return .bool(i % 3 == 0)
        case 7: return .double(i % 2 == 0 ? 0.0 : -0.0)  // one key
        default: return .string("\u{65E5}\u{672C}-\(i % 5)")
        }
    }

    func amount(_ i: Int) -> Value {
        switch i % 11 {
        case 3: return .null
        case 5: return .double(Double(i) / 4)
        default: return .int(Int64(i % 1000) - 100)
        }
    }

    func rows(_ n: Int, seed: Int = 0) -> [[Value]] {
        (0..<n).map { j in
            let i = j &* 7919 &+ seed
            return [keyValue(i), i % 4 == 0 ? .null : .int(Int64(i % 3)), amount(i), .int(Int64(j * 10))]
        }
    }

    func batch(_ rows: [[Value]]) -> RecordBatch {
        var b = RecordBatch(arity: 4)
        for r in rows { b.append(row: r, timestamp: r[3].asInt!) }
        return b
    }

    /// What the previous representation holds after folding `rows`.
    func reference(_ rows: [[Value]], keyFields: [Int], _ specs: [AggregateSpec]) -> [GroupKey: [Accumulator]] {
        let folder = AggregateFolder(specs)
        var m: [GroupKey: [Accumulator]] = [:]
        for r in rows { r.withUnsafeBufferPointer { p in folder.fold(&m[GroupKey.of(p.baseAddress!, keyFields), default: folder.initial], p.baseAddress!) } }
        return m
    }

    /// Every entry of a state file, decoded with the generic reader.
    func decodeAll(_ bytes: [UInt8], aggregates n: Int, windowed: Bool = false) throws -> [[Value]: [Accumulator]] {
        var m: [[Value]: [Accumulator]] = [:]
        try KeyedStateFile.read(bytes, keyGroups: 0...(maxP - 1), header: { _ in }) { r in
            let start = windowed ? [Value.int(try r.i64())] : []
            let k = try r.key()
            var a: [Accumulator] = []
            for _ in 0..<n { a.append(try r.accumulator()) }
            XCTAssertNil(m[start + k.values], "a key twice in a snapshot")
            m[start + k.values] = a
        }
        return m
    }

    /// The previous operator's encoder, verbatim: the format a snapshot of an older Weir has.
    func legacyFile(_ m: [GroupKey: [Accumulator]]) -> [UInt8] {
        var buckets: [Int: [(GroupKey, [Accumulator])]] = [:]
        for (k, a) in m { buckets[keyGroup(k, maxP), default: []].append((k, a)) }
        return KeyedStateFile.write(header: { _ in }, buckets: buckets) { w, e in
            w.key(e.0)
            for acc in e.1 { w.accumulator(acc) }
        }
    }

    func contents(_ op: ContinuousAggregateOperator) throws -> [[Value]: [Accumulator]] {
        try decodeAll(op.captureState(maxParallelism: maxP)(sequentialFor), aggregates: op.slots.layout.count)
    }

    func asMap(_ m: [GroupKey: [Accumulator]]) -> [[Value]: [Accumulator]] {
        Dictionary(uniqueKeysWithValues: m.map { ($0.key.values, $0.value) })
    }

    let allAggregates = ["count()", "count(amount)", "sum(amount)", "min(amount)", "max(k)", "avg(amount)", "count_distinct(amount)"]

    func testContinuousStateEqualsPreviousRepresentation() throws {
        for keyFields in [[0], [0, 1], [1, 0, 2], []] {
            let specs = try aggs(allAggregates)
            let data = rows(5000)
            let op = ContinuousAggregateOperator(keyFields: keyFields, aggregates: specs, outArity: keyFields.count + specs.count, maxParallelism: maxP)
            let out = Collect()
            for chunk in stride(from: 0, to: data.count, by: 333) { try op.process(batch(Array(data[chunk..<min(chunk + 333, data.count)])), out.output) }
            let ref = reference(data, keyFields: keyFields, specs)
            XCTAssertEqual(op.keyCount, ref.count, "keys \(keyFields)")
            XCTAssertEqual(try contents(op), asMap(ref), "keys \(keyFields)")
            // The last row emitted per key is its current result.
            var latest: [[Value]: [Value]] = [:]
            for r in out.rows { latest[Array(r[0..<keyFields.count])] = Array(r[keyFields.count...]) }
            XCTAssertEqual(latest, asMap(ref).mapValues { $0.map(\.result) }, "keys \(keyFields)")
        }
    }

    func testCanonicallyEquivalentStringsAreOneKey() throws {
        XCTAssertEqual(KeyGroups.hash(.string("caf\u{E9}")), KeyGroups.hash(.string("cafe\u{301}")))
        // Text in NFC keeps the hash it always had (FNV-1a of its bytes): snapshots and routing do not move.
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in "caf\u{E9}".utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        XCTAssertEqual(KeyGroups.hash(.string("caf\u{E9}")), KeyGroups.mix(h))
        let specs = try aggs(["count()"])
        let op = ContinuousAggregateOperator(keyFields: [0], aggregates: specs, outArity: 2, maxParallelism: maxP)
        try op.process(batch([[.string("caf\u{E9}"), .null, .int(1), .int(0)], [.string("cafe\u{301}"), .null, .int(1), .int(0)]]), Collect().output)
        XCTAssertEqual(op.keyCount, 1)
    }

    func testOldSnapshotRestoresAndNewSnapshotIsReadByTheOldReader() throws {
        for keyFields in [[0], [0, 1]] {
            let specs = try aggs(allAggregates)
            let data = rows(4000, seed: 3)
            let ref = reference(data, keyFields: keyFields, specs)
            let op = ContinuousAggregateOperator(keyFields: keyFields, aggregates: specs, outArity: keyFields.count + specs.count, maxParallelism: maxP)
            try op.restoreState([legacyFile(ref)], keyGroups: 0...(maxP - 1))
            XCTAssertEqual(try contents(op), asMap(ref))
            // Folding more records after the restore continues each key.
            let more = rows(1000, seed: 11)
            try op.process(batch(more), Collect().output)
            XCTAssertEqual(try contents(op), asMap(reference(data + more, keyFields: keyFields, specs)))
            // Sections are the old ones: same key groups, same entries (in another order within a group).
            let fresh = ContinuousAggregateOperator(keyFields: keyFields, aggregates: specs, outArity: keyFields.count + specs.count, maxParallelism: maxP)
            try fresh.process(batch(data), Collect().output)
            let new = fresh.captureState(maxParallelism: maxP)(sequentialFor), old = legacyFile(ref)
            XCTAssertEqual(new.count, old.count)
            for g in 0..<maxP {
                XCTAssertEqual(KeyedStateFile.sectionBytes(new, keyGroups: g...g), KeyedStateFile.sectionBytes(old, keyGroups: g...g))
            }
        }
    }

    func testParallelEncodeAndDecodeEqualSequential() throws {
        let specs = try aggs(["count()", "sum(amount)"])
        let op = ContinuousAggregateOperator(keyFields: [0, 1], aggregates: specs, outArity: 4, maxParallelism: maxP)
        try op.process(batch(rows(20000, seed: 5)), Collect().output)
        let capture = op.captureState(maxParallelism: maxP)
        let seq = capture(sequentialFor), par = capture(concurrentFor)
        XCTAssertEqual(seq, par)
        let a = ContinuousAggregateOperator(keyFields: [0, 1], aggregates: specs, outArity: 4, maxParallelism: maxP)
        try a.restoreState([par], keyGroups: 0...(maxP - 1), parallel: concurrentFor)
        XCTAssertEqual(try contents(a), try contents(op))
    }

    func testCaptureIsFrozenWhileTheOperatorGoesOn() throws {
        let specs = try aggs(["count()", "sum(amount)", "max(amount)"])
        let op = ContinuousAggregateOperator(keyFields: [0], aggregates: specs, outArity: 4, maxParallelism: maxP)
        let first = rows(3000)
        try op.process(batch(first), Collect().output)
        let capture = op.captureState(maxParallelism: maxP)
        try op.process(batch(rows(3000, seed: 9)), Collect().output)  // updates and new keys after the barrier
        XCTAssertEqual(try decodeAll(capture(concurrentFor), aggregates: 3), asMap(reference(first, keyFields: [0], specs)))
    }

    func testRestoreAtOtherParallelismSplitsByKeyGroup() throws {
        let specs = try aggs(["count()", "sum(amount)", "min(k)"])
        for keyFields in [[0], [0, 1]] {
            let data = rows(6000, seed: 1)
            // Two old subtasks' files.
            var files: [[UInt8]] = []
            for s in 0..<2 {
                let range = KeyGroups.range(subtask: s, parallelism: 2, maxParallelism: maxP)
                let mine = data.filter { r in
                    r.withUnsafeBufferPointer { range.contains(KeyGroups.keyGroup(hash: KeyGroups.keyHash($0.baseAddress!, keyFields), maxParallelism: maxP)) }
                }
                let op = ContinuousAggregateOperator(keyFields: keyFields, aggregates: specs, outArity: keyFields.count + specs.count, maxParallelism: maxP)
                try op.process(batch(mine), Collect().output)
                files.append(op.captureState(maxParallelism: maxP)(concurrentFor))
            }
            var union: [[Value]: [Accumulator]] = [:]
            for s in 0..<3 {
                let range = KeyGroups.range(subtask: s, parallelism: 3, maxParallelism: maxP)
                let op = ContinuousAggregateOperator(keyFields: keyFields, aggregates: specs, outArity: keyFields.count + specs.count, maxParallelism: maxP)
                try op.restoreState(files, keyGroups: range, parallel: concurrentFor)
                for (k, a) in try contents(op) {
                    let kg = KeyGroups.keyGroup(hash: GroupKey.of(k, keyFields.count).stableHash, maxParallelism: maxP)
                    XCTAssertTrue(range.contains(kg), "key \(k) in key group \(kg), restored by subtask \(s) (\(range))")
                    union[k] = a
                }
            }
            XCTAssertEqual(union, asMap(reference(data, keyFields: keyFields, specs)))
        }
    }

    func testKeyInTheWrongSectionOfAnOldSnapshotMovesToItsGroup() throws {
        // An older Weir hashed text by its bytes: "cafe\u{301}" may sit in another key group's section.
        let specs = try aggs(["count()"])
        let moved = GroupKey.one(.string("cafe\u{301}")), right = keyGroup(moved, maxP)
        let wrong = (right + 5) % maxP
        var buckets: [Int: [(GroupKey, [Accumulator])]] = [wrong: [(moved, [.count(2)])]]
        for i in 0..<200 { let k = GroupKey.one(.int(Int64(i))); buckets[keyGroup(k, maxP), default: []].append((k, [.count(Int64(i))])) }
        let file = KeyedStateFile.write(header: { _ in }, buckets: buckets) { w, e in w.key(e.0); for a in e.1 { w.accumulator(a) } }
        let op = ContinuousAggregateOperator(keyFields: [0], aggregates: specs, outArity: 2, maxParallelism: maxP)
        try op.restoreState([file], keyGroups: 0...(maxP - 1), parallel: concurrentFor)
        XCTAssertEqual(op.keyCount, 201)
        try op.process(batch([[.string("caf\u{E9}"), .null, .null, .int(0)]]), Collect().output)
        XCTAssertEqual(op.keyCount, 201)
        let m = try contents(op)
        XCTAssertEqual(m[[.string("cafe\u{301}")]] ?? m[[.string("caf\u{E9}")]], [.count(3)])
        for i in 0..<200 { XCTAssertEqual(m[[.int(Int64(i))]], [.count(Int64(i))]) }
    }

    func testIntegerSumOverflowAndTypeChangesMatchAccumulator() throws {
        let typed = Schema([.init("k", .int), .init("k2", .any), .init("amount", .int), .init("ts", .int)])
        let specs = [try AggregateSpec.compile(name: "s", "sum(amount)", schema: typed), try AggregateSpec.compile(name: "c", "count()", schema: typed)]
        let big: [[Value]] = [
            [.int(1), .null, .int(Int64.max - 5), .int(0)], [.int(1), .null, .int(10), .int(0)],  // overflows
            [.int(2), .null, .int(5), .int(0)], [.int(2), .null, .double(0.5), .int(0)],  // becomes a double sum
            [.int(3), .null, .string("x"), .int(0)], [.int(3), .null, .int(4), .int(0)],  // a string is ignored
        ]
        let op = ContinuousAggregateOperator(keyFields: [0], aggregates: specs, outArity: 3, maxParallelism: maxP)
        let out = Collect()
        try op.process(batch(big), out.output)
        XCTAssertEqual(try contents(op), asMap(reference(big, keyFields: [0], specs)))
        XCTAssertEqual(Set(out.rows.map { $0[0] }), [.int(2), .int(3)], "the overflowed key's row is rejected, not emitted")
    }

    func testWindowPanesEqualPreviousRepresentationAndRestore() throws {
        let specs = try aggs(["count()", "sum(amount)", "avg(amount)"])
        for window in [WindowSpec.tumbling(size: 1000), .sliding(size: 3000, slide: 1000)] {
            let data = rows(3000, seed: 2)
            let op = WindowAggregateOperator(keyFields: [0, 1], window: window, aggregates: specs, outArity: 7, metrics: JobMetrics(), maxParallelism: maxP)
            try op.process(batch(data), Collect().output)
            let file = op.captureState(maxParallelism: maxP)(concurrentFor)
            // Reference: each (window start, key) folded by the previous representation.
            var ref: [[Value]: [Accumulator]] = [:]
            let folder = AggregateFolder(specs)
            for r in data {
                let ts = r[3].asInt!
                var starts: [Int64] = []
                switch window {
                case .tumbling(let size): starts = [WindowAggregateOperator.floorDiv(ts, size) * size]
                case .sliding(let size, let slide):
                    var s = WindowAggregateOperator.floorDiv(ts, slide) * slide
                    while s > ts - size { starts.append(s); s -= slide }
                default: break
                }
                for s in starts {
                    r.withUnsafeBufferPointer { p in
                        folder.fold(&ref[[.int(s)] + GroupKey.of(p.baseAddress!, [0, 1]).values, default: folder.initial], p.baseAddress!)
                    }
                }
            }
            var m: [[Value]: [Accumulator]] = [:]
            try KeyedStateFile.read(file, keyGroups: 0...(maxP - 1), header: { XCTAssertEqual(try $0.i64(), Int64.min) }) { r in
                let s = try r.i64(), k = try r.key()
                m[[.int(s)] + k.values] = [try r.accumulator(), try r.accumulator(), try r.accumulator()]
            }
            XCTAssertEqual(m, ref, "\(window)")
            // Restored at parallelism 2, both halves fire the same windows as the original.
            let expected = Collect()
            try op.finish(expected.output)
            var fired: [[Value]] = []
            for s in 0..<2 {
                let r = WindowAggregateOperator(keyFields: [0, 1], window: window, aggregates: specs, outArity: 7, metrics: JobMetrics(), maxParallelism: maxP)
                try r.restoreState([file], keyGroups: KeyGroups.range(subtask: s, parallelism: 2, maxParallelism: maxP), parallel: concurrentFor)
                let c = Collect()
                try r.finish(c.output)
                fired += c.rows
            }
            XCTAssertEqual(Set(fired.map { "\($0)" }), Set(expected.rows.map { "\($0)" }), "\(window)")
            XCTAssertEqual(fired.count, expected.rows.count)
        }
    }

    /// Every entry of every section decoded by the generic `KeyTable.decodeEntry`
    /// only (what a restore did before the fixed-width fast path), by key group.
    func genericTables(_ file: [UInt8], keyArity: Int, _ layout: AccumulatorLayout) throws -> [Int: KeyTable] {
        var out: [Int: KeyTable] = [:]
        for s in try KeyedStateFile.sections(file, header: { _ in }) {
            var r = StateReader(file, from: s.body.lowerBound, to: s.body.upperBound)
            var t = KeyTable()
            for _ in 0..<Int(try r.u32()) { _ = try t.decodeEntry(&r, keyArity: keyArity, layout) }
            out[s.keyGroup] = t
        }
        return out
    }

    /// The fixed-width fast path of a restore (number keys, count/sum/avg)
    /// builds exactly the tables the generic decoder builds, also when
    /// entries of other shapes (string, null or bool keys, overflowed or
    /// double sums) are mixed in, and the restored state folds on correctly.
    func testFixedWidthFastPathEqualsGenericDecode() throws {
        for (keyFields, texts) in [([0], ["count()", "sum(amount)"]), ([0, 1], ["count()", "sum(amount)", "avg(amount)", "count(amount)"]),
                                   ([0], ["sum(ts)"])] {
            let specs = try aggs(texts)
            let layout = AccumulatorLayout(specs)
            XCTAssertNotNil(FixedEntryShape(keyArity: keyFields.count, layout: layout))
            var data = rows(6000, seed: 17)
            // An integer sum that overflows, for a key that also appears with int keys around it.
            data.append([.int(7), .int(1), .int(Int64.max), .int(1)])
            data.append([.int(7), .int(1), .int(Int64.max), .int(2)])
            let op = ContinuousAggregateOperator(keyFields: keyFields, aggregates: specs, outArity: keyFields.count + specs.count, maxParallelism: maxP)
            try op.process(batch(data), Collect().output)
            let file = op.captureState(maxParallelism: maxP)(sequentialFor)
            let restored = ContinuousAggregateOperator(keyFields: keyFields, aggregates: specs, outArity: keyFields.count + specs.count, maxParallelism: maxP)
            try restored.restoreState([file], keyGroups: 0...(maxP - 1), parallel: concurrentFor)
            let generic = try genericTables(file, keyArity: keyFields.count, layout)
            var fast = 0
            for kg in 0..<maxP {
                let a = restored.state.tables.isEmpty ? KeyTable() : restored.state.tables[kg], b = generic[kg] ?? KeyTable()
                assertSameTable(a, b, kg, boxed: true)
                fast += (0..<a.count).filter { e in (0..<keyFields.count).allSatisfy { [3, 4].contains(a.keyTags[e * keyFields.count + $0]) } }.count
            }
            XCTAssertGreaterThan(fast, 0)
            XCTAssertLessThan(fast, restored.keyCount)
            XCTAssertEqual(try contents(restored), try contents(op))
            // The restored index finds every key: folding more records continues each one.
            let more = rows(2000, seed: 23)
            try restored.process(batch(more), Collect().output)
            try op.process(batch(more), Collect().output)
            XCTAssertEqual(try contents(restored), try contents(op))
        }
    }

    /// A file whose entries mix the fast path's shape with overflowed and
    /// double sums where the layout starts with an integer sum, and with
    /// text, null and double keys: the same tables as the generic decoder.
    func testFixedWidthFastPathFallsBackEntryByEntry() throws {
        let specs = try aggs(["count()", "sum(ts)"])
        let layout = AccumulatorLayout(specs)
        XCTAssertEqual(layout.initialTags, [1, 2])
        var m: [GroupKey: [Accumulator]] = [:]
        for i in 0..<3000 {
            let key: Value = i % 10 == 3 ? .string("u\(i)") : i % 10 == 5 ? .double(Double(i) + 0.5) : .int(Int64(i) * 7919)
            let sum: Accumulator = i % 17 == 0 ? .overflowed : i % 13 == 0 ? .sumDouble(Double(i) / 3) : .sumInt(Int64(i) - 1500)
            m[.one(key)] = [.count(Int64(i % 5 + 1)), sum]
        }
        m[.one(.null)] = [.count(1), .sumInt(1)]
        let file = legacyFile(m)
        let op = ContinuousAggregateOperator(keyFields: [0], aggregates: specs, outArity: 3, maxParallelism: maxP)
        try op.restoreState([file], keyGroups: 0...(maxP - 1), parallel: concurrentFor)
        let generic = try genericTables(file, keyArity: 1, layout)
        for kg in 0..<maxP {
            let a = op.state.tables[kg], b = generic[kg] ?? KeyTable()
            assertSameTable(a, b, kg)
        }
        XCTAssertEqual(try contents(op), asMap(m))
    }

    /// One entry through the fast path: taken for the fixed shape, refused
    /// (nothing appended) for another shape or when the bytes end early.
    func testFixedEntryDecodeTakesOnlyItsShape() throws {
        let layout = AccumulatorLayout(try aggs(["count()", "sum(ts)"]))  // ts is an int: an integer sum
        XCTAssertEqual(layout.initialTags, [1, 2])
        let shape = try XCTUnwrap(FixedEntryShape(keyArity: 1, layout: layout))
        XCTAssertEqual(shape.size, 28)
        func entry(_ key: Value, _ accs: [Accumulator]) -> [UInt8] {
            var w = StateWriter()
            w.key(.one(key))
            for a in accs { w.accumulator(a) }
            return w.bytes
        }
        func fast(_ bytes: [UInt8], end: Int? = nil) -> (UInt64?, KeyTable) {
            var t = KeyTable()
            let h = bytes.withUnsafeBytes { t.decodeFixedEntry($0.baseAddress!, at: 0, end: end ?? bytes.count, shape) }
            return (h, t)
        }
        let ok = entry(.int(-42), [.count(3), .sumInt(-7)])
        let (h, t) = fast(ok)
        XCTAssertEqual(h, KeyGroups.hash(.int(-42)))
        XCTAssertEqual(t.count, 1)
        guard t.count == 1 else { return }
        XCTAssertEqual(t.keyValue(0, 0, keyArity: 1), .int(-42))
        XCTAssertEqual(t.accumulator(0, 0, layout), .count(3))
        XCTAssertEqual(t.accumulator(0, 1, layout), .sumInt(-7))
        XCTAssertEqual(fast(entry(.double(2.5), [.count(1), .sumInt(1)])).0, KeyGroups.hash(.double(2.5)))
        for other in [entry(.string("7"), [.count(1), .sumInt(1)]), entry(.null, [.count(1), .sumInt(1)]),
                      entry(.int(1), [.count(1), .overflowed]), entry(.int(1), [.count(1), .sumDouble(1.5)])] + [Array(ok.prefix(27))] {
            let (h, t) = fast(other)
            XCTAssertNil(h)
            XCTAssertEqual(t.count, 0)
            XCTAssertTrue(t.keyTags.isEmpty && t.keyWords.isEmpty && t.accTags.isEmpty && t.accWords.isEmpty)
        }
        XCTAssertNil(fast(ok, end: 27).0)
        XCTAssertNil(fast(ok, end: -1).0)
        // Min, max and count_distinct are not fixed-width: no fast path.
        XCTAssertNil(FixedEntryShape(keyArity: 1, layout: AccumulatorLayout(try aggs(["count()", "max(amount)"]))))
        XCTAssertNil(FixedEntryShape(keyArity: 0, layout: layout))
    }

    /// A damaged file of the fast path's shape fails with the reader's error, never traps.
    func testDamagedFixedWidthStateFailsCleanly() throws {
        let specs = try aggs(["count()", "sum(amount)"])
        let op = ContinuousAggregateOperator(keyFields: [3], aggregates: specs, outArity: 3, maxParallelism: maxP)
        try op.process(batch(rows(3000)), Collect().output)  // ts: an int key per record
        let file = op.captureState(maxParallelism: maxP)(sequentialFor)
        func restore(_ bytes: [UInt8]) throws {
            let fresh = ContinuousAggregateOperator(keyFields: [3], aggregates: specs, outArity: 3, maxParallelism: maxP)
            try fresh.restoreState([bytes], keyGroups: 0...(maxP - 1), parallel: concurrentFor)
        }
        XCTAssertNoThrow(try restore(file))
        let sections = try KeyedStateFile.sections(file, header: { _ in })
        let first = sections[0].body.lowerBound + 4  // the first entry of the first section
        for cut in [file.count - 1, file.count - 10, sections[1].body.lowerBound - 3] {
            XCTAssertThrowsError(try restore(Array(file.prefix(cut)))) { e in XCTAssertTrue("\(e)".contains("ends early"), "\(e)") }
        }
        var bad = file
        bad[first + 10] = 9  // the count's tag
        XCTAssertThrowsError(try restore(bad)) { e in XCTAssertTrue("\(e)".contains("unknown accumulator tag 9"), "\(e)") }
        bad = file
        bad[first + 1] = 8  // the key's tag
        XCTAssertThrowsError(try restore(bad)) { e in XCTAssertTrue("\(e)".contains("unknown value tag 8"), "\(e)") }
        bad = file
        bad[first] = 2  // the key arity
        XCTAssertThrowsError(try restore(bad)) { e in XCTAssertTrue("\(e)".contains("a key of 2 fields"), "\(e)") }
        // An entry count larger than the section: the reader runs out of bytes.
        bad = file
        bad[first - 4] = 0xFF; bad[first - 3] = 0xFF
        XCTAssertThrowsError(try restore(bad)) { e in XCTAssertTrue("\(e)".contains("ends early"), "\(e)") }
    }

    func testDamagedStateFailsCleanly() throws {
        let specs = try aggs(["count()", "avg(amount)"])
        let op = ContinuousAggregateOperator(keyFields: [0], aggregates: specs, outArity: 3, maxParallelism: maxP)
        try op.process(batch(rows(500)), Collect().output)
        let file = op.captureState(maxParallelism: maxP)(sequentialFor)
        for cut in [3, 20, file.count / 2, file.count - 1] {
            let fresh = ContinuousAggregateOperator(keyFields: [0], aggregates: specs, outArity: 3, maxParallelism: maxP)
            XCTAssertThrowsError(try fresh.restoreState([Array(file.prefix(cut))], keyGroups: 0...(maxP - 1), parallel: concurrentFor))
        }
        // A snapshot of another key arity is refused, not misread.
        let two = ContinuousAggregateOperator(keyFields: [0, 1], aggregates: specs, outArity: 4, maxParallelism: maxP)
        XCTAssertThrowsError(try two.restoreState([file], keyGroups: 0...(maxP - 1)))
    }
}

extension GroupKey {
    static func of(_ values: [Value], _ n: Int) -> GroupKey {
        values.withUnsafeBufferPointer { GroupKey.of($0.baseAddress!, Array(0..<n)) }
    }
}

/// Collects what an operator emits.
final class Collect: StreamOperator {
    var rows: [[Value]] = []
    let output = Output()
    init() { output.targets = [.chained(self, Output())] }
    func process(_ batch: RecordBatch, _ out: Output) throws {
        for r in 0..<batch.count { rows.append(batch.row(r)) }
    }
}

/// Two key groups' tables hold the same entries in the same layout.
func assertSameTable(_ a: KeyTable, _ b: KeyTable, _ kg: Int, boxed: Bool = false, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "key group \(kg)", line: line)
    XCTAssertEqual(a.keyTags, b.keyTags, "key group \(kg)", line: line)
    XCTAssertEqual(a.keyWords, b.keyWords, "key group \(kg)", line: line)
    XCTAssertEqual(a.strings, b.strings, "key group \(kg)", line: line)
    XCTAssertEqual(a.accTags, b.accTags, "key group \(kg)", line: line)
    XCTAssertEqual(a.accWords, b.accWords, "key group \(kg)", line: line)
    if boxed { XCTAssertEqual(a.boxed, b.boxed, "key group \(kg)", line: line) }
}

