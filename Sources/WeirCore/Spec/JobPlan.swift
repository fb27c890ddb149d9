/// A validated, compiled job: every node's output schema is known and every
/// expression is type-checked and compiled. The runtime executes a `JobPlan`.
public struct JobPlan: Sendable {
    public let spec: JobSpec
    /// Nodes in topological order (inputs before the nodes that read them).
    public let nodes: [PlannedNode]
    /// Sources without a declared schema whose records reach a sink unchanged
    /// (source id → those sink ids): their fields are bound to the sinks'
    /// table columns when the job starts (`bindingSinkTables`).
    public var unboundSources: [String: [String]] = [:]

    public var name: String { spec.name }
    public var parallelism: Int { spec.parallelism }
    public var maxParallelism: Int { spec.maxParallelism }
}

/// One compiled node of a `JobPlan`.
public struct PlannedNode: Sendable {
    public let id: String
    public let path: String
    /// Indices into `JobPlan.nodes`.
    public let inputs: [Int]
    public let schema: Schema
    public let kind: Kind
    /// The sink's error policy (the job's unless the sink overrides it).
    public var errors: ErrorPolicy? = nil

    public enum Kind: Sendable {
        case source(connector: String, any SourceConnector, eventTime: EventTimeSpec?)
        case filter(CompiledExpr)
        case select([CompiledExpr])
        case aggregate(keyFields: [Int], window: WindowSpec?, aggregates: [AggregateSpec])
        case union
        case sink(connector: String, any SinkConnector)
    }

    public var isSource: Bool { if case .source = kind { return true } else { return false } }
    public var isSink: Bool { if case .sink = kind { return true } else { return false } }
}

extension JobPlan {
    /// Parses, validates and compiles a spec; all problems are reported together.
    public static func compile(_ text: String, connectors: [ConnectorKind]) throws -> JobPlan {
        try compile(try JobSpec.parse(text, connectors: connectors))
    }

    /// - Parameter bound: schemas to use for sources that declare none (from `bindingSinkTables`).
    public static func compile(_ spec: JobSpec, bound: [String: Schema] = [:]) throws -> JobPlan {
        let order = topologicalOrder(spec.nodes)
        let byID = Dictionary(uniqueKeysWithValues: spec.nodes.map { ($0.id, $0) })
        var errors: [WeirError] = []
        var schemas: [String: Schema] = [:]
        var planned: [PlannedNode] = []
        var index: [String: Int] = [:]
        let inferred = inferSourceFields(spec.nodes)
        var unbound: [String: [String]] = [:]

        for id in order {
            let n = byID[id]!
            let inputSchemas = n.inputs.compactMap { schemas[$0] }
            guard inputSchemas.count == n.inputs.count else { continue }  // an input failed already
            let inputIdx = n.inputs.map { index[$0]! }
            var input = inputSchemas.first ?? Schema([])
            // Several inputs: they are unioned and must agree on field names.
            if inputSchemas.count > 1 {
                var ok = true
                for (k, s) in inputSchemas.enumerated().dropFirst() where s.names != input.names {
                    errors.append(.spec("\(n.path).inputs[\(k)]",
                        "'\(n.inputs[k])' emits \(s) but '\(n.inputs[0])' emits \(input); inputs of one node must have the same fields"))
                    ok = false
                }
                if !ok { continue }
                input = Schema(input.fields.enumerated().map { i, f in
                    inputSchemas.allSatisfy { $0.fields[i].type == f.type } ? f : Schema.Field(f.name, .any)
                })
            }
            func fail(_ sub: String, _ msg: String) { errors.append(.spec("\(n.path).\(sub)", msg)) }
            let kind: PlannedNode.Kind
            let out: Schema
            switch n.kind {
            case .source(let cname, let src, let settings):
                if let declared = settings.schema ?? bound[n.id] {
                    out = declared
                } else {
                    var fields = inferred[n.id] ?? []
                    if let et = settings.eventTime?.field, !fields.contains(et) { fields.append(et) }
                    out = Schema(fields.map { .init($0, .any) })
                }
                kind = .source(connector: cname, src, eventTime: settings.eventTime)
            case .filter(let text):
                do {
                    let c = try ExprCompiler.compile(text, schema: input)
                    if c.type != .bool && c.type != .any { fail("filter", "'\(text)' is a \(c.type), a filter needs a condition"); continue }
                    kind = .filter(c)
                } catch { fail("filter", error.description); continue }
                out = input
            case .select(let items):
                var cs: [CompiledExpr] = []
                var fields: [Schema.Field] = []
                var failed = false
                for (name, text) in items {
                    do {
                        let c = try ExprCompiler.compile(text, schema: input)
                        cs.append(c); fields.append(.init(name, c.type))
                    } catch { fail("select.\(name)", error.description); failed = true }
                }
                if failed { continue }
                if let dup = Dictionary(grouping: fields.map(\.name), by: { $0 }).first(where: { $1.count > 1 })?.key {
                    fail("select", "field '\(dup)' is selected twice"); continue
                }
                kind = .select(cs); out = Schema(fields)
            case .aggregate(let keyBy, let window, let aggText):
                var keyIdx: [Int] = []
                var fields: [Schema.Field] = []
                var failed = false
                for (i, k) in keyBy.enumerated() {
                    if let j = input.index(of: k) { keyIdx.append(j); fields.append(input.fields[j]) }
                    else {
                        var msg = "unknown field '\(k)'"
                        if let b = closestMatch(k, in: input.names) { msg += " (did you mean '\(b)'?)" }
                        fail("keyBy[\(i)]", msg); failed = true
                    }
                }
                if window != nil {
                    fields.append(.init("window_start", .int))
                    fields.append(.init("window_end", .int))
                    if !hasEventTime(n.id, byID) {
                        fail("window", "windows need event time: give the source an eventTime: { field: ... }"); failed = true
                    }
                }
                var aggs: [AggregateSpec] = []
                for (name, text) in aggText {
                    do {
                        let a = try AggregateSpec.compile(name: name, text, schema: input)
                        aggs.append(a); fields.append(.init(name, a.outputType))
                    } catch { fail("aggregate.\(name)", error.description); failed = true }
                }
                if failed { continue }
                if let dup = Dictionary(grouping: fields.map(\.name), by: { $0 }).first(where: { $1.count > 1 })?.key {
                    fail("aggregate", "output field '\(dup)' appears twice (keys, window_start/window_end and aggregate names must differ)")
                    continue
                }
                kind = .aggregate(keyFields: keyIdx, window: window, aggregates: aggs); out = Schema(fields)
            case .union:
                kind = .union; out = input
            case .sink(let cname, let sink):
                if let open = undeclaredSourceFeeding(n.id, byID), bound[open] == nil {
                    // Bound to the table's columns when the job starts.
                    unbound[open, default: []].append(n.id)
                } else if input.fields.isEmpty {
                    fail("inputs", "the records reaching this sink have no known fields: declare the source's schema: {...}")
                    continue
                }
                kind = .sink(connector: cname, sink); out = input
            }
            schemas[id] = out
            index[id] = planned.count
            planned.append(PlannedNode(id: id, path: n.path, inputs: inputIdx, schema: out, kind: kind, errors: n.errors))
        }
        if !errors.isEmpty { throw SpecErrors(errors) }
        return JobPlan(spec: spec, nodes: planned, unboundSources: unbound)
    }

    /// Binds every source without a declared schema that feeds a sink
    /// unchanged to the columns of that sink's target (typed from the table;
    /// a column that is NOT NULL without a default makes its field required),
    /// plus the fields the job itself reads, and recompiles. A plan without
    /// such sources is returned as it is.
    public func bindingSinkTables() throws -> JobPlan {
        guard !unboundSources.isEmpty else { return self }
        var bound: [String: Schema] = [:]
        for (sourceID, sinkIDs) in unboundSources.sorted(by: { $0.key < $1.key }) {
            guard let source = nodes.first(where: { $0.id == sourceID }) else { continue }
            var fields: [Schema.Field] = []
            var requiredEverywhere: [String: Bool] = [:]
            for sinkID in sinkIDs {
                guard let sink = nodes.first(where: { $0.id == sinkID }), case .sink(_, let conn) = sink.kind else { continue }
                guard let table = try conn.tableSchema() else {
                    throw WeirError(.invalidSpec, subject: "\(sink.path) ('\(sinkID)')",
                                    "its records come straight from source '\(sourceID)', which declares no schema, and this sink cannot tell its fields",
                                    suggestion: "add schema: { field: type, ... } to the source, or a select before the sink")
                }
                let names = Set(table.fields.map { $0.name.lowercased() })
                for f in table.fields where !fields.contains(where: { $0.name.lowercased() == f.name.lowercased() }) { fields.append(f) }
                for f in fields { requiredEverywhere[f.name.lowercased()] = (requiredEverywhere[f.name.lowercased()] ?? true) && names.contains(f.name.lowercased()) }
                for f in table.fields where f.nullable { requiredEverywhere[f.name.lowercased()] = false }
            }
            fields = fields.map { f in Schema.Field(f.name, f.type, nullable: !(requiredEverywhere[f.name.lowercased()] ?? false)) }
            // Fields the job reads (filters, event time) that the table lacks stay, untyped.
            for f in source.schema.fields where !fields.contains(where: { $0.name.lowercased() == f.name.lowercased() }) {
                fields.append(Schema.Field(f.name, .any))
            }
            bound[sourceID] = Schema(fields)
        }
        return try JobPlan.compile(spec, bound: bound)
    }

    package static func topologicalOrder(_ nodes: [NodeSpec]) -> [String] {
        var done: Set<String> = []
        var order: [String] = []
        var progress = true
        while progress && order.count < nodes.count {
            progress = false
            for n in nodes where !done.contains(n.id) && n.inputs.allSatisfy(done.contains) {
                done.insert(n.id); order.append(n.id); progress = true
            }
        }
        return order
    }

    /// The id of a schema-less source whose records reach `id` unchanged (through filters and unions only).
    package static func undeclaredSourceFeeding(_ id: String, _ byID: [String: NodeSpec]) -> String? {
        for input in byID[id]?.inputs ?? [] {
            guard let n = byID[input] else { continue }
            switch n.kind {
            case .source(_, _, let s): if s.schema == nil { return n.id }
            case .filter, .union: if let f = undeclaredSourceFeeding(n.id, byID) { return f }
            default: break
            }
        }
        return nil
    }

    package static func hasEventTime(_ id: String, _ byID: [String: NodeSpec]) -> Bool {
        guard let n = byID[id] else { return false }
        if case .source(_, _, let s) = n.kind { return s.eventTime != nil }
        return n.inputs.allSatisfy { hasEventTime($0, byID) }
    }

    /// For sources without a declared schema: the field names read downstream,
    /// following pass-through nodes (filter, union) up to the first node that
    /// defines its own output (select, aggregate).
    package static func inferSourceFields(_ nodes: [NodeSpec]) -> [String: [String]] {
        var result: [String: [String]] = [:]
        for src in nodes {
            guard case .source(_, _, let s) = src.kind, s.schema == nil else { continue }
            var names: [String] = []
            var frontier = [src.id]
            var visited: Set<String> = []
            while let cur = frontier.popLast() {
                guard visited.insert(cur).inserted else { continue }
                for n in nodes where n.inputs.contains(cur) {
                    var refs: [String] = []
                    switch n.kind {
                    case .filter(let t):
                        refs = (try? ExprParser.parse(t).fieldReferences) ?? []
                        frontier.append(n.id)
                    case .union: frontier.append(n.id)
                    case .select(let items): refs = items.flatMap { (try? ExprParser.parse($0.expr).fieldReferences) ?? [] }
                    case .aggregate(let keys, _, let aggs):
                        refs = keys + aggs.flatMap { (try? ExprParser.parse($0.expr).fieldReferences) ?? [] }
                    case .source, .sink: break
                    }
                    for r in refs where !names.contains(r) { names.append(r) }
                }
            }
            result[src.id] = names
        }
        return result
    }
}
