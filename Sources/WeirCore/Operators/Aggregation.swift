/// Folds one row into a key's accumulators. Shared by every aggregating operator.
/// The aggregate specs are unpacked into flat arrays once, so folding a row
/// copies no struct and touches no reference count for field arguments.
package struct AggregateFolder {
    package enum Argument { case none, field(Int), expr(RowEval) }
    package let aggs: [AggregateSpec]
    package let initial: [Accumulator]
    private let functions: [AggregateSpec.Function]
    private let arguments: [Argument]

    package init(_ aggs: [AggregateSpec]) {
        self.aggs = aggs
        self.initial = aggs.map { Accumulator.initial($0.function, type: $0.argument?.type ?? .int) }
        self.functions = aggs.map(\.function)
        self.arguments = aggs.map { a in
            guard let arg = a.argument else { return .none }
            if let f = arg.fieldIndex { return .field(f) }
            return .expr(arg.eval)
        }
    }

    @inline(__always) package func fold(_ accs: inout [Accumulator], _ row: UnsafePointer<Value>) {
        accs.withUnsafeMutableBufferPointer { acc in
            for i in 0..<acc.count {
                switch arguments[i] {
                case .none: acc[i].add(.bool(true), functions[i])
                case .field(let f): acc[i].add(row[f], functions[i])
                case .expr(let e): acc[i].add(e(row), functions[i])
                }
            }
        }
    }

    package func merge(_ into: inout [Accumulator], _ from: [Accumulator]) {
        for i in 0..<aggs.count { into[i].merge(from[i], aggs[i].function) }
    }
}

/// Rows whose aggregates overflowed (an integer `sum` beyond Int64): each is
/// rejected under the job's policy instead of being emitted with a wrong value.
package struct OverflowRejects {
    package var rejections: Rejections?
    package var schema = Schema([])
    private var rows: [[Value]] = []

    @inline(__always) package static func overflowed(_ accs: [Accumulator]) -> Bool {
        for a in accs where a.isOverflowed { return true }
        return false
    }

    package mutating func add(_ row: [Value]) { rows.append(row) }

    /// Counts, logs and (dead letter) passes on the collected rows.
    package mutating func flush(_ out: Output) throws {
        guard !rows.isEmpty else { return }
        let taken = rows
        rows = []
        var forward: [RejectedRecord] = []
        for row in taken {
            let value = row.withUnsafeBufferPointer { RejectedRecord.json(row: $0.baseAddress!, schema: schema) }
            let r = RejectedRecord(node: rejections?.node ?? "", reason: .overflow,
                                   message: "an integer sum left the 64-bit range", value: value)
            if try rejections?.reject(r) == true { forward.append(r) }
        }
        try out.emitRejects(forward)
    }
}

/// `keyBy` + `aggregate` without a window: a continuously updated result per
/// key. After each input batch it emits the new result of every key the
/// batch touched (one row per key), which an upsert sink turns into the
/// latest value. Keys and accumulators live in a `KeyTable` per key group.
package final class ContinuousAggregateOperator: StreamOperator {
    package let keyFields: [Int]
    package let folder: AggregateFolder
    package let slots: SlotFolder
    package let outArity: Int
    package var state: KeyedTables
    /// Entries the current batch touched, as key group << 32 | entry, and a bit per entry to find them once.
    private var touched: [UInt64] = []
    private var touchedBits: [[UInt64]]
    package var overflow = OverflowRejects()

    package init(keyFields: [Int], aggregates: [AggregateSpec], outArity: Int, maxParallelism: Int = 128) {
        self.keyFields = keyFields
        self.folder = AggregateFolder(aggregates)
        self.slots = SlotFolder(aggregates)
        self.outArity = outArity
        self.state = KeyedTables(maxParallelism: maxParallelism)
        self.touchedBits = Array(repeating: [], count: maxParallelism)
    }

    /// Keys held (every key group).
    package var keyCount: Int { state.count }

    package func process(_ batch: RecordBatch, _ out: Output) throws {
        let arity = batch.arity
        var maxTs = RecordBatch.noTimestamp
        batch.values.withUnsafeBufferPointer { vals in
            for r in 0..<batch.count {
                let row = vals.baseAddress! + r * arity
                let (kg, e) = state.fold(row, keyFields, slots)
                let word = e >> 6, bit = UInt64(1) << UInt64(e & 63)
                if touchedBits[kg].count <= word {
                    touchedBits[kg].append(contentsOf: repeatElement(0, count: max(word + 1, touchedBits[kg].count * 2) - touchedBits[kg].count))
                }
                if touchedBits[kg][word] & bit == 0 {
                    touchedBits[kg][word] |= bit
                    touched.append(UInt64(kg) << 32 | UInt64(e))
                }
                maxTs = max(maxTs, batch.timestamps[r])
            }
        }
        let layout = slots.layout, keyArity = keyFields.count
        var res = RecordBatch(arity: outArity, capacity: touched.count)
        for t in touched {
            let kg = Int(t >> 32), e = Int(t & 0xFFFF_FFFF)
            touchedBits[kg][e >> 6] = 0
            let table = state.tables[kg]
            if table.isOverflowed(e, layout) {
                overflow.add((0..<keyArity).map { table.keyValue(e, $0, keyArity: keyArity) }
                             + (0..<layout.count).map { table.accumulator(e, $0, layout).result })
                continue
            }
            for f in 0..<keyArity { res.values.append(table.keyValue(e, f, keyArity: keyArity)) }
            for i in 0..<layout.count { res.values.append(table.accumulator(e, i, layout).result) }
            res.timestamps.append(maxTs)
        }
        touched.removeAll(keepingCapacity: true)
        try out.emit(res)
        try overflow.flush(out)
    }
}

/// `keyBy` + `window` + `aggregate` on event time: tumbling, sliding and
/// session windows. Windows fire when the watermark passes their end; a
/// record arriving after all its windows fired is late: counted and dropped.
/// Output rows: key fields, `window_start`, `window_end`, aggregates, with
/// event time `window_end - 1`.
package final class WindowAggregateOperator: StreamOperator {
    package let keyFields: [Int]
    package let window: WindowSpec
    package let folder: AggregateFolder
    package let slots: SlotFolder
    package let outArity: Int
    package let metrics: JobMetrics
    package let maxParallelism: Int
    package var currentWatermark = Int64.min
    package var overflow = OverflowRejects()

    /// Tumbling and sliding: window start → its keys and accumulators, a `KeyTable` per key group.
    package var panes: [Int64: KeyedTables] = [:]
    /// The pane most records currently go to (tumbling windows), outside `panes`.
    private var hotStart = Int64.min
    private var hotPane: KeyedTables

    /// Puts the hot pane back into `panes` (before firing or snapshotting).
    package func parkHotPane() {
        if hotStart != Int64.min && !hotPane.tables.isEmpty { panes[hotStart] = hotPane }
        hotStart = Int64.min
        hotPane = KeyedTables(maxParallelism: maxParallelism)
    }

    /// Session windows per key, kept sorted by start.
    package var sessions: [GroupKey: [Session]] = [:]
    private var earliestSessionEnd = Int64.max

    package struct Session: Sendable { var start: Int64; var end: Int64; var accs: [Accumulator] }
    /// Where `addToSession` builds a merged session's accumulators (reused, not reallocated).
    private var sessionScratch: [Accumulator] = []

    package func noteSessionEnd(_ end: Int64) { earliestSessionEnd = min(earliestSessionEnd, end) }

    package init(keyFields: [Int], window: WindowSpec, aggregates: [AggregateSpec], outArity: Int, metrics: JobMetrics,
                 maxParallelism: Int = 128) {
        self.keyFields = keyFields
        self.window = window
        self.folder = AggregateFolder(aggregates)
        self.slots = SlotFolder(aggregates)
        self.outArity = outArity
        self.metrics = metrics
        self.maxParallelism = maxParallelism
        self.hotPane = KeyedTables(maxParallelism: maxParallelism)
    }

    @inline(__always) package static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    package func process(_ batch: RecordBatch, _ out: Output) throws {
        let arity = batch.arity
        var late = 0
        batch.values.withUnsafeBufferPointer { vals in
            for r in 0..<batch.count {
                let ts = batch.timestamps[r]
                if ts == RecordBatch.noTimestamp { late += 1; continue }
                let row = vals.baseAddress! + r * arity
                switch window {
                case .tumbling(let size):
                    let start = Self.floorDiv(ts, size) * size
                    if start + size - 1 <= currentWatermark { late += 1; continue }
                    // Consecutive records mostly share a window: keep its pane out of `panes`.
                    if start != hotStart {
                        parkHotPane()
                        hotStart = start
                        hotPane = panes.removeValue(forKey: start) ?? KeyedTables(maxParallelism: maxParallelism)
                    }
                    _ = hotPane.fold(row, keyFields, slots)
                case .sliding(let size, let slide):
                    var start = Self.floorDiv(ts, slide) * slide
                    var added = false
                    while start > ts - size {
                        if start + size - 1 > currentWatermark {
                            _ = panes[start, default: KeyedTables(maxParallelism: maxParallelism)].fold(row, keyFields, slots)
                            added = true
                        }
                        start -= slide
                    }
                    if !added { late += 1 }
                case .session(let gap):
                    let key = GroupKey.of(row, keyFields)
                    if !addToSession(key, ts: ts, gap: gap, row: row) { late += 1 }
                }
            }
        }
        if late > 0 { metrics.lateRecords.add(late) }
    }

    /// The record's own session `[ts, ts + gap)` merged with every session of
    /// its key that overlaps it (in start order; the merge grows as it goes).
    /// The merged accumulators are built in `sessionScratch` and written over
    /// the first merged session in place, so a record that joins an existing
    /// session allocates nothing; only a new session does (its accumulators).
    private func addToSession(_ key: GroupKey, ts: Int64, gap: Int64, row: UnsafePointer<Value>) -> Bool {
        var start = ts, end = ts + gap
        sessionScratch.removeAll(keepingCapacity: true)
        sessionScratch.append(contentsOf: folder.initial)
        folder.fold(&sessionScratch, row)
        guard let slot = sessions.index(forKey: key) else {
            if end - 1 <= currentWatermark { return false }  // late, nothing to join
            sessions[key] = [Session(start: start, end: end, accs: Array(sessionScratch))]
            earliestSessionEnd = min(earliestSessionEnd, end)
            return true
        }
        // The overlapping sessions are a run first..<last of the sorted, disjoint list.
        var first = -1, last = -1, insertAt = 0
        do {
            let list = sessions.values[slot]
            for i in list.indices {
                let s = list[i]
                if s.start < end && start < s.end {
                    if first < 0 { first = i }
                    last = i + 1
                    start = min(start, s.start)
                    end = max(end, s.end)
                    folder.merge(&sessionScratch, s.accs)
                } else if s.start < start {
                    insertAt = i + 1
                }
            }
        }
        if first < 0 {
            if end - 1 <= currentWatermark { return false }  // late, nothing to join
            sessions.values[slot].insert(Session(start: start, end: end, accs: Array(sessionScratch)), at: insertAt)
        } else {
            sessions.values[slot].withUnsafeMutableBufferPointer { list in
                list[first].start = start
                list[first].end = end
                list[first].accs.withUnsafeMutableBufferPointer { accs in
                    for i in 0..<accs.count { accs[i] = sessionScratch[i] }
                }
            }
            if last - first > 1 { sessions.values[slot].removeSubrange((first + 1)..<last) }
        }
        earliestSessionEnd = min(earliestSessionEnd, end)
        return true
    }

    package func watermark(_ wm: Int64, _ out: Output) throws {
        guard wm > currentWatermark else { return }
        currentWatermark = wm
        try fire(upTo: wm, out)
        out.emitWatermark(wm)
    }

    package func finish(_ out: Output) throws {
        try fire(upTo: Int64.max, out)
    }

    private func fire(upTo wm: Int64, _ out: Output) throws {
        parkHotPane()
        var res = RecordBatch(arity: outArity)
        switch window {
        case .tumbling(let size), .sliding(let size, _):
            let due = panes.keys.filter { $0 + size - 1 <= wm || wm == Int64.max }.sorted()
            let layout = slots.layout, keyArity = keyFields.count
            for start in due {
                guard let pane = panes.removeValue(forKey: start) else { continue }
                res.values.reserveCapacity(res.values.count + pane.count * outArity)
                for t in pane.tables {
                    for e in 0..<t.count {
                        if t.isOverflowed(e, layout) {
                            overflow.add((0..<keyArity).map { t.keyValue(e, $0, keyArity: keyArity) } + [.int(start), .int(start + size)]
                                         + (0..<layout.count).map { t.accumulator(e, $0, layout).result })
                            continue
                        }
                        for f in 0..<keyArity { res.values.append(t.keyValue(e, f, keyArity: keyArity)) }
                        res.values.append(.int(start))
                        res.values.append(.int(start + size))
                        for i in 0..<layout.count { res.values.append(t.accumulator(e, i, layout).result) }
                        res.timestamps.append(start + size - 1)
                    }
                }
            }
        case .session:
            guard earliestSessionEnd - 1 <= wm || wm == Int64.max else { return }
            var next = Int64.max
            for (key, list) in sessions {
                var keep: [Session] = []
                for s in list {
                    if s.end - 1 <= wm || wm == Int64.max { append(&res, key, s.start, s.end, s.accs) }
                    else { keep.append(s); next = min(next, s.end) }
                }
                sessions[key] = keep.isEmpty ? nil : keep
            }
            earliestSessionEnd = next
        }
        try out.emit(res)
        try overflow.flush(out)
    }

    @inline(__always) private func append(_ res: inout RecordBatch, _ key: GroupKey, _ start: Int64, _ end: Int64, _ accs: [Accumulator]) {
        if OverflowRejects.overflowed(accs) {
            overflow.add(key.values + [.int(start), .int(end)] + accs.map(\.result))
            return
        }
        switch key {
        case .one(let a): res.values.append(a)
        case .two(let a, let b): res.values.append(a); res.values.append(b)
        case .many(let vs): res.values.append(contentsOf: vs)
        }
        res.values.append(.int(start))
        res.values.append(.int(end))
        for a in accs { res.values.append(a.result) }
        res.timestamps.append(end - 1)
    }
}
