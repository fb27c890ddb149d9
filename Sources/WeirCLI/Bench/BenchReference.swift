import WeirCore

/// What each sink of a job should hold after `weir bench`, computed without
/// the engine: the generated events are replayed from their seed and the
/// graph is evaluated directly (whole collections, no batches, threads,
/// exchanges, watermarks or snapshots). Only filter and select conditions use
/// the job's compiled expressions; grouping, windows, aggregates, unions and
/// sink keys are computed here independently.
///
/// Where the final table depends on arrival order, there is no reference,
/// and the reason is given: a filter after a continuous aggregate, a
/// continuous aggregate into an append sink, rows sharing an upsert key with
/// different values, an integer sum leaving 64 bits.
struct BenchReference {
    enum Outcome {
        /// Rows as field values named `names` (the sink's input fields).
        case rows(names: [String], types: [ValueType], rows: [[Value]])
        case unavailable(String)
    }

    private struct Stream {
        var rows: [(ts: Int64, values: [Value])] = []
        /// Rows of a continuous aggregate: each key's final value (later rows replace earlier ones).
        var continuous = false
        var unavailable: String?
    }

    /// - Parameter generators: a fresh generator and the number of records, per source node id.
    static func expected(plan: JobPlan, generators: [String: (BenchGenerator, Int)]) -> [String: Outcome] {
        var streams: [Stream] = []
        var out: [String: Outcome] = [:]
        for node in plan.nodes {
            let inputs = node.inputs.map { streams[$0] }
            var s = Stream()
            if let why = inputs.compactMap(\.unavailable).first { s.unavailable = why }
            else {
                switch node.kind {
                case .source:
                    guard let (generator, count) = generators[node.id] else { s.unavailable = "source '\(node.id)' was not generated"; break }
                    var gen = generator, buf: [UInt8] = []
                    for _ in 0..<count {
                        if case .good(let values, let ts) = gen.next(into: &buf) { s.rows.append((ts, values)) }
                    }
                case .filter(let c):
                    s = inputs[0]
                    if s.continuous {
                        s.unavailable = "'\(node.id)' filters the changing results of a continuous aggregate (what stays in the table depends on arrival order)"
                        break
                    }
                    s.rows = s.rows.filter { r in r.values.withUnsafeBufferPointer { c.eval($0.baseAddress!).isTrue } }
                case .select(let cs):
                    s = inputs[0]
                    s.rows = s.rows.map { r in (r.ts, r.values.withUnsafeBufferPointer { p in cs.map { $0.eval(p.baseAddress!) } }) }
                case .union:
                    s.continuous = inputs.contains { $0.continuous }
                    s.rows = inputs.flatMap(\.rows)
                case .aggregate(let keyFields, let window, let aggregates):
                    if inputs[0].continuous {
                        s.unavailable = "'\(node.id)' aggregates the changing results of a continuous aggregate"
                        break
                    }
                    do { s = try aggregate(inputs[0].rows, keyFields: keyFields, window: window, aggregates: aggregates) } catch {
                        s.unavailable = "'\(node.id)': \(error.message)"
                    }
                case .sink(_, let sink):
                    out[node.id] = sinkRows(inputs[0], node: node, schema: plan.nodes[node.inputs[0]].schema, key: sink.rowKey)
                }
            }
            if case .sink = node.kind, out[node.id] == nil { out[node.id] = .unavailable(s.unavailable ?? "no input") }
            streams.append(s)
        }
        return out
    }

    private static func sinkRows(_ s: Stream, node: PlannedNode, schema: Schema, key: [String]) -> Outcome {
        let names = schema.names, types = schema.fields.map(\.type)
        if key.isEmpty {
            if s.continuous {
                return .unavailable("a continuous aggregate into the append sink '\(node.id)' writes one row per key per input batch (batching decides how many)")
            }
            return .rows(names: names, types: types, rows: s.rows.map(\.values))
        }
        let idx = key.compactMap { k in names.firstIndex { $0.lowercased() == k.lowercased() } }
        guard idx.count == key.count else { return .unavailable("the upsert key of '\(node.id)' is not among its input fields") }
        var byKey: [[Value]: [Value]] = [:]
        var order: [[Value]] = []
        for r in s.rows {
            let k = idx.map { r.values[$0] }
            if let old = byKey[k] {
                if old != r.values && !s.continuous {
                    return .unavailable("rows sharing an upsert key of '\(node.id)' differ (which one lands last depends on arrival order)")
                }
            } else { order.append(k) }
            byKey[k] = r.values
        }
        return .rows(names: names, types: types, rows: order.map { byKey[$0]! })
    }

    struct Failure: Error { var message: String }

    /// Groups by key (and window) and folds the aggregates; rows come out as keys, window bounds, aggregates.
    private static func aggregate(_ rows: [(ts: Int64, values: [Value])], keyFields: [Int], window: WindowSpec?,
                                  aggregates: [AggregateSpec]) throws(Failure) -> Stream {
        var s = Stream()
        func finish(_ key: [Value], _ bounds: (Int64, Int64)?, _ group: [[Value]], ts: Int64) throws(Failure) {
            var row = key
            if let (start, end) = bounds { row += [.int(start), .int(end)] }
            for a in aggregates { row.append(try fold(a, group)) }
            s.rows.append((ts, row))
        }
        guard let window else {
            var groups: [[Value]: [[Value]]] = [:]
            var order: [[Value]] = []
            for r in rows {
                let k = keyFields.map { r.values[$0] }
                if groups[k] == nil { order.append(k) }
                groups[k, default: []].append(r.values)
            }
            for k in order { try finish(k, nil, groups[k]!, ts: 0) }
            s.continuous = true
            return s
        }
        struct WindowKey: Hashable { var key: [Value]; var start: Int64; var end: Int64 }
        var groups: [WindowKey: [[Value]]] = [:]
        var order: [WindowKey] = []
        func add(_ w: WindowKey, _ values: [Value]) {
            if groups[w] == nil { order.append(w) }
            groups[w, default: []].append(values)
        }
        switch window {
        case .tumbling(let size):
            for r in rows {
                let start = WindowAggregateOperator.floorDiv(r.ts, size) * size
                add(WindowKey(key: keyFields.map { r.values[$0] }, start: start, end: start + size), r.values)
            }
        case .sliding(let size, let slide):
            for r in rows {
                var start = WindowAggregateOperator.floorDiv(r.ts, slide) * slide
                while start > r.ts - size {
                    add(WindowKey(key: keyFields.map { r.values[$0] }, start: start, end: start + size), r.values)
                    start -= slide
                }
            }
        case .session(let gap):
            var byKey: [[Value]: [(ts: Int64, values: [Value])]] = [:]
            var keyOrder: [[Value]] = []
            for r in rows {
                let k = keyFields.map { r.values[$0] }
                if byKey[k] == nil { keyOrder.append(k) }
                byKey[k, default: []].append(r)
            }
            for k in keyOrder {
                // A session grows while the next record falls before its end (last record + gap).
                var sessions: [(start: Int64, end: Int64, members: [[Value]])] = []
                for r in byKey[k]!.sorted(by: { $0.ts < $1.ts }) {
                    if let last = sessions.last, r.ts < last.end {
                        sessions[sessions.count - 1].end = max(last.end, r.ts + gap)
                        sessions[sessions.count - 1].members.append(r.values)
                    } else {
                        sessions.append((r.ts, r.ts + gap, [r.values]))
                    }
                }
                for sess in sessions {
                    for m in sess.members { add(WindowKey(key: k, start: sess.start, end: sess.end), m) }
                }
            }
        }
        for w in order { try finish(w.key, (w.start, w.end), groups[w]!, ts: w.end - 1) }
        return s
    }

    /// One aggregate over a group, as SQL defines it: nulls ignored; avg of nothing is null.
    private static func fold(_ a: AggregateSpec, _ group: [[Value]]) throws(Failure) -> Value {
        let args: [Value] = a.argument.map { arg in group.map { r in r.withUnsafeBufferPointer { arg.eval($0.baseAddress!) } }.filter { !$0.isNull } }
            ?? group.map { _ in .bool(true) }
        switch a.function {
        case .count: return .int(Int64(args.count))
        case .countDistinct: return .int(Int64(Set(args).count))
        case .sum:
            if a.outputType == .int {
                var total: Int64 = 0
                for v in args {
                    guard case .int(let i) = v else { return .double(args.compactMap(\.asDouble).reduce(0, +)) }
                    let (r, o) = total.addingReportingOverflow(i)
                    if o { throw Failure(message: "an integer sum leaves the 64-bit range (the job rejects that row)") }
                    total = r
                }
                return .int(total)
            }
            return .double(args.compactMap(\.asDouble).reduce(0, +))
        case .avg:
            let ds = args.compactMap(\.asDouble)
            return ds.isEmpty ? .null : .double(ds.reduce(0, +) / Double(ds.count))
        case .min, .max:
            guard var best = args.first else { return .null }
            for v in args.dropFirst() {
                guard let c = compareValues(v, best) else { continue }
                if a.function == .min ? c < 0 : c > 0 { best = v }
            }
            return best
        }
    }
}
