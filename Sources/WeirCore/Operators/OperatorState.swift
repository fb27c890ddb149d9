/// Operators that keep state between batches. Their state is taken at a
/// barrier and restored on start, always bucketed by key group so that a
/// snapshot restores at any parallelism.
package protocol StatefulOperator: StreamOperator {
    /// Captures the state now (cheap: copy-on-write collections are shared,
    /// not copied) and returns the work that encodes it, which may run on
    /// another thread while the operator goes on.
    func captureState(maxParallelism: Int) -> @Sendable () -> [UInt8]
    /// Loads the entries of `keyGroups` from the state files of every
    /// subtask of the previous run.
    func restoreState(_ files: [[UInt8]], keyGroups: ClosedRange<Int>) throws
}

@inline(__always) package func keyGroup(_ k: GroupKey, _ maxParallelism: Int) -> Int {
    KeyGroups.keyGroup(hash: k.stableHash, maxParallelism: maxParallelism)
}

extension ContinuousAggregateOperator: StatefulOperator {
    package func captureState(maxParallelism: Int) -> @Sendable () -> [UInt8] {
        let state = self.state
        return {
            var buckets: [Int: [(GroupKey, [Accumulator])]] = [:]
            for (k, a) in state { buckets[keyGroup(k, maxParallelism), default: []].append((k, a)) }
            return KeyedStateFile.write(header: { _ in }, buckets: buckets) { w, e in
                w.key(e.0)
                for acc in e.1 { w.accumulator(acc) }
            }
        }
    }

    package func restoreState(_ files: [[UInt8]], keyGroups: ClosedRange<Int>) throws {
        let n = folder.aggs.count
        for f in files {
            try KeyedStateFile.read(f, keyGroups: keyGroups, header: { _ in }) { r in
                let k = try r.key()
                var accs: [Accumulator] = []
                accs.reserveCapacity(n)
                for _ in 0..<n { accs.append(try r.accumulator()) }
                state[k] = accs
            }
        }
    }
}

extension WindowAggregateOperator: StatefulOperator {
    package func captureState(maxParallelism: Int) -> @Sendable () -> [UInt8] {
        parkHotPane()
        let panes = self.panes, sessions = self.sessions, wm = currentWatermark
        let isSession: Bool = { if case .session = window { return true } else { return false } }()
        return {
            if isSession {
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
            var buckets: [Int: [(Int64, GroupKey, [Accumulator])]] = [:]
            for (start, keys) in panes {
                for (k, a) in keys { buckets[keyGroup(k, maxParallelism), default: []].append((start, k, a)) }
            }
            return KeyedStateFile.write(header: { $0.i64(wm) }, buckets: buckets) { w, e in
                w.i64(e.0)
                w.key(e.1)
                for acc in e.2 { w.accumulator(acc) }
            }
        }
    }

    package func restoreState(_ files: [[UInt8]], keyGroups: ClosedRange<Int>) throws {
        let n = folder.aggs.count
        var restoredWM = Int64.max
        let isSession: Bool = { if case .session = window { return true } else { return false } }()
        func accs(_ r: inout StateReader) throws -> [Accumulator] {
            var a: [Accumulator] = []
            a.reserveCapacity(n)
            for _ in 0..<n { a.append(try r.accumulator()) }
            return a
        }
        for f in files {
            try KeyedStateFile.read(f, keyGroups: keyGroups, header: { r in restoredWM = min(restoredWM, try r.i64()) }) { r in
                if isSession {
                    let k = try r.key()
                    let count = Int(try r.u32())
                    var list: [Session] = []
                    for _ in 0..<count {
                        let s = try r.i64(), e = try r.i64()
                        list.append(Session(start: s, end: e, accs: try accs(&r)))
                    }
                    sessions[k, default: []].append(contentsOf: list)
                    for s in list { noteSessionEnd(s.end) }
                } else {
                    let start = try r.i64()
                    let k = try r.key()
                    panes[start, default: [:]][k] = try accs(&r)
                }
            }
        }
        // The lowest watermark any previous subtask had: events it would have
        // dropped as late are dropped again, so a restore changes no result.
        // A drained run (input complete) left the maximum: start afresh then.
        if restoredWM != Int64.max && restoredWM < Int64.max - 1 { currentWatermark = restoredWM }
    }
}
