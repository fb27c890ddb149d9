/// Operators that keep state between batches. Their state is taken at a
/// barrier and restored on start, always bucketed by key group so that a
/// snapshot restores at any parallelism.
package protocol StatefulOperator: StreamOperator {
    /// Captures the state now (cheap: copy-on-write collections are shared,
    /// not copied) and returns the work that encodes it, which may run on
    /// another thread while the operator goes on, and may encode several key
    /// groups at once through the `ParallelFor` it is given.
    func captureState(maxParallelism: Int) -> @Sendable (ParallelFor) -> [UInt8]
    /// Loads the entries of `keyGroups` from the state files of every
    /// subtask of the previous run, decoding several key groups at once
    /// through `parallel`.
    func restoreState(_ files: [[UInt8]], keyGroups: ClosedRange<Int>, parallel: ParallelFor) throws
}

extension StatefulOperator {
    package func restoreState(_ files: [[UInt8]], keyGroups: ClosedRange<Int>) throws {
        try restoreState(files, keyGroups: keyGroups, parallel: sequentialFor)
    }
}

@inline(__always) package func keyGroup(_ k: GroupKey, _ maxParallelism: Int) -> Int {
    KeyGroups.keyGroup(hash: k.stableHash, maxParallelism: maxParallelism)
}

/// Keyed tables frozen at a barrier (their arrays shared copy-on-write with
/// the operator, which goes on), encoded later in the state file format.
package struct FrozenKeyedState: Sendable {
    package struct Part: Sendable { var start: Int64?; var table: KeyTable }
    package var header: [UInt8]
    package var keyArity: Int
    package var layout: AccumulatorLayout
    /// Per key group present, in increasing order: the tables holding its
    /// entries (one per window pane, with the pane's start; one for a continuous aggregate).
    package var groups: [(keyGroup: Int, parts: [Part])] = []

    /// Freezes `panes` (start → tables; a nil start for a continuous aggregate's single state).
    package init(header: [UInt8], keyArity: Int, layout: AccumulatorLayout, maxParallelism: Int,
                 panes: [(Int64?, KeyedTables)]) {
        self.header = header; self.keyArity = keyArity; self.layout = layout
        var panes = panes
        for i in panes.indices where panes[i].1.maxParallelism != maxParallelism {
            panes[i].1 = panes[i].1.rebucketed(maxParallelism: maxParallelism, keyArity: keyArity, layout)
        }
        for kg in 0..<maxParallelism {
            var parts: [Part] = []
            for (start, t) in panes where kg < t.tables.count && !t.tables[kg].isEmpty {
                parts.append(Part(start: start, table: t.tables[kg]))
            }
            if !parts.isEmpty { groups.append((kg, parts)) }
        }
    }

    /// The state file: each key group's section sized, then written, on `parallel`'s threads.
    package func encode(_ parallel: ParallelFor) -> [UInt8] {
        let n = groups.count
        var sizes = [Int](repeating: 0, count: n), entries = [Int](repeating: 0, count: n)
        sizes.withUnsafeMutableBufferPointer { sz in
            entries.withUnsafeMutableBufferPointer { en in
                parallel(n) { i in
                    var bytes = 0, count = 0
                    for part in groups[i].parts {
                        let t = part.table
                        count += t.count
                        if part.start != nil { bytes += 8 * t.count }
                        for e in 0..<t.count { bytes += t.encodedSize(e, keyArity: keyArity, layout) }
                    }
                    sz[i] = bytes; en[i] = count
                }
            }
        }
        return KeyedStateFile.write(header: header, keyGroups: groups.map(\.keyGroup), entries: entries, sizes: sizes,
                                    parallel: parallel) { i, p in
            var p = p
            for part in groups[i].parts {
                let t = part.table
                for e in 0..<t.count {
                    if let start = part.start { p.storeBytes(of: UInt64(bitPattern: start).littleEndian, as: UInt64.self); p += 8 }
                    p = t.encode(e, keyArity: keyArity, layout, into: p)
                }
            }
        }
    }

    /// Decodes the sections of `keyGroups` of `files` (several at once) into
    /// tables: (key group, pane start or nil, table). `header` reads each file's header.
    package static func decode(_ files: [[UInt8]], keyGroups: ClosedRange<Int>, windowed: Bool, keyArity: Int,
                               layout: AccumulatorLayout, maxParallelism: Int, parallel: ParallelFor,
                               header: (inout StateReader) throws -> Void) throws -> [(Int, Int64?, KeyTable)] {
        var work: [(file: Int, section: KeyedStateFile.Section)] = []
        for (f, bytes) in files.enumerated() {
            for s in try KeyedStateFile.sections(bytes, header: header) where keyGroups.contains(s.keyGroup) {
                work.append((f, s))
            }
        }
        var results = [[(Int, Int64?, KeyTable)]](repeating: [], count: work.count)
        var errors = [(any Error)?](repeating: nil, count: work.count)
        results.withUnsafeMutableBufferPointer { res in
            errors.withUnsafeMutableBufferPointer { err in
                parallel(work.count) { i in
                    let (f, s) = work[i]
                    do {
                        res[i] = try decodeSection(files[f], s, windowed: windowed, keyArity: keyArity, layout: layout,
                                                   maxParallelism: maxParallelism)
                    } catch { err[i] = error }
                }
            }
        }
        if let e = errors.lazy.compactMap({ $0 }).first { throw e }
        return results.flatMap { $0 }
    }

    private static func decodeSection(_ bytes: [UInt8], _ s: KeyedStateFile.Section, windowed: Bool, keyArity: Int,
                                      layout: AccumulatorLayout, maxParallelism: Int) throws -> [(Int, Int64?, KeyTable)] {
        var r = StateReader(bytes, from: s.body.lowerBound, to: s.body.upperBound)
        let n = Int(try r.u32())
        var out: [(Int, Int64?, KeyTable)] = []
        func misplaced(_ t: inout KeyTable, _ h: UInt64, _ start: Int64?) {
            // A key whose hash is in another key group (a snapshot of an older
            // Weir that hashed non-NFC text by its bytes): it goes to its own group.
            let kg = KeyGroups.keyGroup(hash: h, maxParallelism: maxParallelism)
            if kg != s.keyGroup { out.append((kg, start, t.removeLast(keyArity: keyArity, layout))) }
        }
        // Entries of the usual fixed-width shape are decoded by plain loads; any other by the reader.
        let shape = FixedEntryShape(keyArity: keyArity, layout: layout)
        func decode(_ t: inout KeyTable, _ base: UnsafeRawPointer?, _ r: inout StateReader) throws -> UInt64 {
            if let shape, let base, let h = t.decodeFixedEntry(base, at: r.at, end: r.end, shape) {
                try r.skip(shape.size)
                return h
            }
            return try t.decodeEntry(&r, keyArity: keyArity, layout)
        }
        try bytes.withUnsafeBytes { raw in
            let base = raw.baseAddress.map(UnsafeRawPointer.init)
            if !windowed {
                var t = KeyTable()
                t.reserve(min(n, s.body.count / 2), layout: layout, keyArity: keyArity)
                for _ in 0..<n {
                    let h = try decode(&t, base, &r)
                    misplaced(&t, h, nil)
                }
                out.append((s.keyGroup, nil, t))
            } else {
                var panes: [Int64: KeyTable] = [:]
                var lastStart = Int64.min, cur = KeyTable()
                for _ in 0..<n {
                    let start = try r.i64()
                    if start != lastStart {
                        if lastStart != Int64.min { panes[lastStart] = cur }
                        cur = panes.removeValue(forKey: start) ?? KeyTable()
                        lastStart = start
                    }
                    let h = try decode(&cur, base, &r)
                    misplaced(&cur, h, start)
                }
                if lastStart != Int64.min { panes[lastStart] = cur }
                for (start, t) in panes { out.append((s.keyGroup, start, t)) }
            }
        }
        return out
    }
}

extension KeyedTables {
    /// The same entries bucketed by another number of key groups (a capture
    /// asked for another maxParallelism than the operator was built with).
    package func rebucketed(maxParallelism m: Int, keyArity: Int, _ layout: AccumulatorLayout) -> KeyedTables {
        var out = KeyedTables(maxParallelism: m)
        out.tables = Array(repeating: KeyTable(), count: m)
        for t in tables {
            for e in 0..<t.count {
                let kg = KeyGroups.keyGroup(hash: t.storedHash(e, keyArity: keyArity), maxParallelism: m)
                out.tables[kg].append(entry: e, of: t, keyArity: keyArity, layout)
            }
        }
        return out
    }

    /// Puts decoded entries of key group `kg` in place: the table itself when
    /// the group is empty (the usual case), entry by entry otherwise.
    package mutating func absorb(_ kg: Int, _ t: KeyTable, keyArity: Int, _ layout: AccumulatorLayout) {
        if tables.isEmpty { tables = Array(repeating: KeyTable(), count: maxParallelism) }
        guard kg < tables.count else { return }
        if tables[kg].isEmpty { tables[kg] = t; return }
        for e in 0..<t.count { tables[kg].append(entry: e, of: t, keyArity: keyArity, layout) }
    }
}

extension ContinuousAggregateOperator: StatefulOperator {
    package func captureState(maxParallelism: Int) -> @Sendable (ParallelFor) -> [UInt8] {
        let frozen = FrozenKeyedState(header: [], keyArity: keyFields.count, layout: slots.layout,
                                      maxParallelism: maxParallelism, panes: [(nil, state)])
        return { parallel in frozen.encode(parallel) }
    }

    package func restoreState(_ files: [[UInt8]], keyGroups: ClosedRange<Int>, parallel: ParallelFor) throws {
        let parts = try FrozenKeyedState.decode(files, keyGroups: keyGroups, windowed: false, keyArity: keyFields.count,
                                                layout: slots.layout, maxParallelism: state.maxParallelism,
                                                parallel: parallel, header: { _ in })
        for (kg, _, t) in parts { state.absorb(kg, t, keyArity: keyFields.count, slots.layout) }
    }
}

extension WindowAggregateOperator: StatefulOperator {
    package func captureState(maxParallelism: Int) -> @Sendable (ParallelFor) -> [UInt8] {
        parkHotPane()
        let wm = currentWatermark
        var header = StateWriter()
        header.i64(wm)
        if case .session = window {
            let sessions = self.sessions
            return { _ in
                var buckets: [Int: [(GroupKey, [Session])]] = [:]
                for (k, s) in sessions { buckets[keyGroup(k, maxParallelism), default: []].append((k, s)) }
                return KeyedStateFile.write(header: { $0.i64(wm) }, buckets: buckets) { w, e in
                    w.key(e.0)
                    w.u32(UInt32(e.1.count))
                    for s in e.1 {
                        w.i64(s.start); w.i64(s.end)
                        for a in s.accs { w.accumulator(a) }
                    }
                }
            }
        }
        let frozen = FrozenKeyedState(header: header.bytes, keyArity: keyFields.count, layout: slots.layout,
                                      maxParallelism: maxParallelism, panes: panes.map { ($0.key, $0.value) })
        return { parallel in frozen.encode(parallel) }
    }

    package func restoreState(_ files: [[UInt8]], keyGroups: ClosedRange<Int>, parallel: ParallelFor) throws {
        var restoredWM = Int64.max
        let readWM: (inout StateReader) throws -> Void = { r in restoredWM = min(restoredWM, try r.i64()) }
        if case .session = window {
            let n = folder.aggs.count
            func accs(_ r: inout StateReader) throws -> [Accumulator] {
                var a: [Accumulator] = []
                a.reserveCapacity(n)
                for _ in 0..<n { a.append(try r.accumulator()) }
                return a
            }
            for f in files {
                try KeyedStateFile.read(f, keyGroups: keyGroups, header: readWM) { r in
                    let k = try r.key()
                    let count = Int(try r.u32())
                    var list: [Session] = []
                    for _ in 0..<count {
                        let s = try r.i64(), e = try r.i64()
                        list.append(Session(start: s, end: e, accs: try accs(&r)))
                    }
                    sessions[k, default: []].append(contentsOf: list)
                    for s in list { noteSessionEnd(s.end) }
                }
            }
        } else {
            let parts = try FrozenKeyedState.decode(files, keyGroups: keyGroups, windowed: true, keyArity: keyFields.count,
                                                    layout: slots.layout, maxParallelism: maxParallelism,
                                                    parallel: parallel, header: readWM)
            for (kg, start, t) in parts {
                panes[start!, default: KeyedTables(maxParallelism: maxParallelism)].absorb(kg, t, keyArity: keyFields.count, slots.layout)
            }
        }
        // The lowest watermark any previous subtask had: events it would have
        // dropped as late are dropped again, so a restore changes no result.
        // A drained run (input complete) left the maximum: start afresh then.
        if restoredWM != Int64.max && restoredWM < Int64.max - 1 { currentWatermark = restoredWM }
    }
}
