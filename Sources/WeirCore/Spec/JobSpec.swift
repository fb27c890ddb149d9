/// A job as written by the user: the parsed, structurally validated spec.
///
/// `JobSpec.parse` checks shape (fields, kinds, durations, references); the
/// planner (`JobPlan`) then resolves schemas and compiles expressions.
public struct JobSpec: Sendable {
    public var name: String
    public var parallelism: Int
    public var maxParallelism: Int
    public var checkpoint: CheckpointSettings
    public var restart: RestartSettings
    /// `onError:` and `deadLetter:` of the job (sinks may override them).
    public var errors: ErrorPolicy = ErrorPolicy()
    public var nodes: [NodeSpec]

    /// Periodic snapshot settings (`checkpoint: { interval, retain, timeout }`).
    public struct CheckpointSettings: Sendable, Equatable {
        public var intervalMillis: Int64?
        public var retain: Int = 3
        public var timeoutMillis: Int64 = 60_000
    }

    /// In-process restart strategy (`restart: { attempts, delay }`).
    public struct RestartSettings: Sendable, Equatable {
        public var attempts: Int = 0
        public var delayMillis: Int64 = 2_000
    }
}

/// One node of the job graph, with its stable id and its spec location.
public struct NodeSpec: Sendable {
    public var id: String
    public var inputs: [String]
    public var kind: Kind
    /// Location in the spec, e.g. `nodes[2]`.
    public var path: String
    /// A sink's own `onError:` / `deadLetter:` (nil: the job's).
    public var errors: ErrorPolicy?

    public enum Kind: Sendable {
        case source(connector: String, source: any SourceConnector, settings: SourceSettings)
        case filter(String)
        case select([(name: String, expr: String)])
        case aggregate(keyBy: [String], window: WindowSpec?, aggregates: [(name: String, expr: String)])
        case union
        case sink(connector: String, sink: any SinkConnector)
    }

    public var kindName: String {
        switch kind {
        case .source(let c, _, _), .sink(let c, _): return c
        case .filter: return "filter"
        case .select: return "select"
        case .aggregate(_, let w, _): return w == nil ? "aggregate" : "window"
        case .union: return "union"
        }
    }
}

/// Format, schema and event-time settings shared by every source kind.
public struct SourceSettings: Sendable {
    /// Declared fields (`schema: {user_id: int, ...}`); nil when undeclared.
    public var schema: Schema?
    public var eventTime: EventTimeSpec?
}

/// Event-time extraction and watermarking for a source.
public struct EventTimeSpec: Sendable, Equatable {
    public var field: String
    public var maxOutOfOrdernessMillis: Int64
    /// A split without records for this long stops holding the watermark back.
    public var idleTimeoutMillis: Int64
}

/// Event-time window shapes.
public enum WindowSpec: Sendable, Equatable {
    case tumbling(size: Int64)
    case sliding(size: Int64, slide: Int64)
    case session(gap: Int64)
}

extension JobSpec {
    /// Parses a YAML or JSON job spec. Connector kinds (`kafka`, `mysql`, ...)
    /// are supplied by the caller so the core stays free of them.
    public static func parse(_ text: String, connectors: [ConnectorKind]) throws -> JobSpec {
        let doc = try SpecDocument.parse(text)
        var top = ConfigReader(path: "", mapping: doc)
        let name = top.string("name", required: true) ?? ""
        if !name.isEmpty, !isValidID(name) { top.fail("name", "'\(name)' may only contain letters, digits, '-', '_' and '.'") }
        let parallelism = top.int("parallelism") ?? 1
        if parallelism < 1 || parallelism > 256 { top.fail("parallelism", "must be between 1 and 256") }
        let maxParallelism = top.int("maxParallelism") ?? 128
        if maxParallelism < parallelism || maxParallelism > 32768 {
            top.fail("maxParallelism", "must be at least parallelism (\(parallelism)) and at most 32768")
        }
        var checkpoint = CheckpointSettings()
        if var c = top.mapping("checkpoint") {
            checkpoint.intervalMillis = c.durationMillis("interval")
            if let r = c.int("retain") { if r < 1 { c.fail("retain", "must be at least 1") } else { checkpoint.retain = r } }
            if let t = c.durationMillis("timeout") { checkpoint.timeoutMillis = t }
            top.absorb(c, allowed: ["interval", "retain", "timeout"])
        }
        var restart = RestartSettings()
        if var r = top.mapping("restart") {
            if let a = r.int("attempts") { if a < 0 { r.fail("attempts", "must be 0 or more") } else { restart.attempts = a } }
            if let d = r.durationMillis("delay") { restart.delayMillis = d }
            top.absorb(r, allowed: ["attempts", "delay"])
        }
        let jobErrors = parseErrorPolicy(&top, inherited: nil) ?? ErrorPolicy()
        var nodes: [NodeSpec] = []
        var errors: [WeirError] = []
        var failedIDs: Set<String> = []
        _ = top.has("nodes")
        if let list = doc["nodes"] as? [Any] {
            if list.isEmpty { top.fail("nodes", "the job has no nodes") }
            for (i, raw) in list.enumerated() {
                let path = "nodes[\(i)]"
                guard let m = raw as? SpecMapping else { errors.append(.spec(path, "expected a mapping with 'id'")); continue }
                var r = ConfigReader(path: path, mapping: m)
                if var n = parseNode(&r, connectors: connectors) {
                    if case .sink = n.kind { n.errors = parseErrorPolicy(&r, inherited: jobErrors) }
                    nodes.append(n)
                }
                else if let id = m["id"] as? String { failedIDs.insert(id) }
                if !r.errors.contains(where: { $0.message.hasPrefix("unknown field") }) { r.rejectUnknown() }
                errors.append(contentsOf: r.errors)
            }
        } else {
            top.fail("nodes", doc["nodes"] == nil ? "missing required field 'nodes'" : "expected a list of nodes")
        }
        top.rejectUnknown()
        errors = top.errors + errors
        errors.append(contentsOf: checkGraph(nodes, failedIDs: failedIDs))
        if !errors.isEmpty { throw SpecErrors(errors) }
        return JobSpec(name: name, parallelism: parallelism, maxParallelism: maxParallelism,
                       checkpoint: checkpoint, restart: restart, errors: jobErrors, nodes: nodes)
    }

    /// `onError: skip | deadLetter | fail` and `deadLetter: { table: NAME }`, at
    /// the job's top level or on a sink node (which inherits the job's).
    package static func parseErrorPolicy(_ r: inout ConfigReader, inherited: ErrorPolicy?) -> ErrorPolicy? {
        let text = r.string("onError")
        var table: String?
        if var d = r.mapping("deadLetter") {
            table = d.string("table", required: true)
            if let t = table, t.isEmpty || t.utf8.count > 64 || t.contains("`") {
                d.fail("table", "'\(t)' is not a valid table name")
                table = nil
            }
            r.absorb(d, allowed: ["table"])
        }
        guard text != nil || table != nil else { return inherited }
        var policy = inherited ?? ErrorPolicy()
        if let table { policy.deadLetterTable = table }
        if let text {
            if let p = OnError(rawValue: text) { policy.onError = p } else {
                var msg = "unknown policy '\(text)' (expected skip, deadLetter or fail)"
                if let b = closestMatch(text, in: OnError.allCases.map(\.rawValue)) { msg += "; did you mean '\(b)'?" }
                r.fail("onError", msg)
            }
        }
        if policy.onError == .deadLetter && policy.deadLetterTable == nil {
            r.fail("onError", "onError: deadLetter needs a table: add deadLetter: { table: weir_dead_letters }")
        }
        return policy
    }

    package static func isValidID(_ s: String) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0) }
    }

    package static let operatorKeys = ["filter", "select", "keyBy", "window", "aggregate", "union"]

    /// The most windows of a sliding window one record may fall into (size / slide).
    public static let maxSlidingWindowsPerRecord: Int64 = 1000

    package static func parseNode(_ r: inout ConfigReader, connectors: [ConnectorKind]) -> NodeSpec? {
        let id = r.string("id", required: true)
        if let id, !isValidID(id) { r.fail("id", "'\(id)' may only contain letters, digits, '-', '_' and '.'") }
        let inputs = r.stringList("inputs") ?? []
        let present = r.raw.keys.filter { k in operatorKeys.contains(k) || connectors.contains { $0.name == k } }
        let mainKeys = Set(present).subtracting(["keyBy", "window"])
        guard let id else { return nil }
        if mainKeys.isEmpty {
            // A misspelt kind ("selct") is best reported as exactly that.
            let allKeys = ["id", "inputs"] + operatorKeys + connectors.map(\.name)
            let typos = r.raw.keys.filter { !allKeys.contains($0) && closestMatch($0, in: allKeys) != nil }
            if !typos.isEmpty { r.rejectUnknown(allKeys); return nil }
            let hint = present.contains("keyBy") || present.contains("window") ? " ('keyBy' and 'window' need an 'aggregate')" : ""
            r.fail(nil, "node '\(id)' has no kind: add one of \((connectors.map(\.name) + ["filter", "select", "aggregate", "union"]).joined(separator: ", "))\(hint)")
            return nil
        }
        if mainKeys.count > 1 {
            r.fail(nil, "node '\(id)' has several kinds (\(mainKeys.sorted().joined(separator: ", "))): use one node per operation")
            return nil
        }
        let key = mainKeys.first!
        let path = r.path
        func node(_ k: NodeSpec.Kind) -> NodeSpec { NodeSpec(id: id, inputs: inputs, kind: k, path: path) }
        if let conn = connectors.first(where: { $0.name == key }) {
            guard var c = r.mapping(key, required: true) else { return nil }
            defer { r.absorb(c) }
            switch conn {
            case .source(let name, let make):
                if !inputs.isEmpty { r.fail("inputs", "a \(name) source takes no inputs") }
                let settings = parseSourceSettings(&c)
                guard let s = make(&c) else { return nil }
                c.rejectUnknown()
                return node(.source(connector: name, source: s, settings: settings))
            case .sink(let name, let make):
                if inputs.isEmpty { r.fail("inputs", "a \(name) sink needs 'inputs'") }
                guard let s = make(&c) else { return nil }
                c.rejectUnknown()
                return node(.sink(connector: name, sink: s))
            }
        }
        if inputs.isEmpty { r.fail("inputs", "node '\(id)' needs 'inputs' (the ids of the nodes it reads)") }
        switch key {
        case "filter":
            guard let e = r.string("filter", required: true) else { return nil }
            return node(.filter(e))
        case "select":
            _ = r.has("select")
            if let list = r.raw["select"] as? [Any] {
                var out: [(String, String)] = []
                for (i, f) in list.enumerated() {
                    guard let s = f as? String else { r.fail("select[\(i)]", "expected a field name"); return nil }
                    out.append((s, "`\(s)`"))
                }
                return node(.select(out))
            }
            guard let pairs = r.orderedStrings("select", required: true) else { return nil }
            return node(.select(pairs))
        case "union":
            _ = r.has("union")
            if inputs.count < 2 { r.fail("inputs", "a union needs at least two inputs") }
            return node(.union)
        case "aggregate":
            let keyBy = r.stringList("keyBy") ?? []
            var window: WindowSpec?
            if var w = r.mapping("window") {
                window = parseWindow(&w)
                r.absorb(w)
            }
            guard let aggs = r.orderedStrings("aggregate", required: true) else { return nil }
            if aggs.isEmpty { r.fail("aggregate", "name at least one aggregate, e.g. cnt: count()") }
            return node(.aggregate(keyBy: keyBy, window: window, aggregates: aggs))
        default:
            return nil
        }
    }

    package static func parseSourceSettings(_ c: inout ConfigReader) -> SourceSettings {
        var s = SourceSettings()
        if let f = c.string("format"), f != "json" { c.fail("format", "unsupported format '\(f)' (supported: json)") }
        if var m = c.mapping("schema") {
            var fields: [Schema.Field] = []
            for (name, t) in m.mapping.pairs {
                let text = (t as? String)?.trimmingCharacters(in: .whitespaces) ?? ""
                let optional = text.hasSuffix("?")
                guard let type = ValueType(name: optional ? String(text.dropLast()) : text) else {
                    m.fail(name, "unknown type '\(t)' (use int, double, string, bool, or int? ... for a field that may be missing or null)")
                    continue
                }
                _ = m.has(name)
                fields.append(.init(name, type, nullable: optional || type == .any))
            }
            c.absorb(m)
            s.schema = Schema(fields)
        }
        if var e = c.mapping("eventTime") {
            let field = e.string("field", required: true) ?? ""
            let ooo = e.durationMillis("maxOutOfOrderness") ?? 0
            let idle = e.durationMillis("idleTimeout") ?? 5_000
            if let schema = s.schema, !field.isEmpty {
                if let i = schema.index(of: field) {
                    if ![.int, .double, .any].contains(schema.fields[i].type) {
                        e.fail("field", "'\(field)' is a \(schema.fields[i].type); event time must be epoch milliseconds (int)")
                    }
                } else {
                    var msg = "unknown field '\(field)'"
                    if let b = closestMatch(field, in: schema.names) { msg += " (did you mean '\(b)'?)" }
                    e.fail("field", msg)
                }
            }
            c.absorb(e, allowed: ["field", "maxOutOfOrderness", "idleTimeout"])
            s.eventTime = EventTimeSpec(field: field, maxOutOfOrdernessMillis: ooo, idleTimeoutMillis: idle)
        }
        return s
    }

    package static func parseWindow(_ w: inout ConfigReader) -> WindowSpec? {
        let shapes = ["tumbling", "sliding", "session"].filter { w.raw[$0] != nil }
        guard shapes.count == 1 else {
            w.fail(nil, shapes.isEmpty ? "say which window: tumbling: 10s, sliding: 10s (with slide: 5s) or session: 30s"
                                        : "choose one of \(shapes.joined(separator: ", "))")
            _ = w.has("tumbling"); _ = w.has("sliding"); _ = w.has("session"); _ = w.has("slide")
            return nil
        }
        switch shapes[0] {
        case "tumbling":
            guard let size = w.durationMillis("tumbling"), size > 0 else { w.fail("tumbling", "size must be positive"); return nil }
            return .tumbling(size: size)
        case "sliding":
            guard let size = w.durationMillis("sliding"), size > 0 else { w.fail("sliding", "size must be positive"); return nil }
            guard let slide = w.durationMillis("slide", required: true) else { return nil }
            guard slide > 0, slide <= size, size % slide == 0 else {
                w.fail("slide", "must be positive and divide the window size (\(size) ms)")
                return nil
            }
            // Every record is folded into size/slide windows: bound the work one record can cause.
            guard size / slide <= JobSpec.maxSlidingWindowsPerRecord else {
                w.fail("slide", "a \(size) ms window sliding by \(slide) ms puts each record into \(size / slide) windows; at most \(JobSpec.maxSlidingWindowsPerRecord) (use a longer slide)")
                return nil
            }
            return .sliding(size: size, slide: slide)
        default:
            guard let gap = w.durationMillis("session"), gap > 0 else { w.fail("session", "gap must be positive"); return nil }
            return .session(gap: gap)
        }
    }

    /// Ids unique, inputs resolve, no cycles, every path ends in a sink.
    package static func checkGraph(_ nodes: [NodeSpec], failedIDs: Set<String> = []) -> [WeirError] {
        var errors: [WeirError] = []
        var seen: [String: String] = [:]
        for n in nodes {
            if let first = seen[n.id] { errors.append(.spec("\(n.path).id", "duplicate id '\(n.id)' (also used by \(first))")) }
            else { seen[n.id] = n.path }
        }
        let ids = nodes.map(\.id)
        for n in nodes {
            for (i, input) in n.inputs.enumerated() {
                guard let target = nodes.first(where: { $0.id == input }) else {
                    if failedIDs.contains(input) { continue }  // already reported where it is defined
                    var msg = "unknown node '\(input)'"
                    if let b = closestMatch(input, in: ids) { msg += " (did you mean '\(b)'?)" }
                    errors.append(.spec("\(n.path).inputs[\(i)]", msg))
                    continue
                }
                if case .sink = target.kind { errors.append(.spec("\(n.path).inputs[\(i)]", "'\(input)' is a sink and has no output")) }
                if input == n.id { errors.append(.spec("\(n.path).inputs[\(i)]", "a node cannot read itself")) }
            }
        }
        if !errors.isEmpty || !failedIDs.isEmpty { return errors }
        // Cycle detection (Kahn).
        var indeg = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, Set($0.inputs).count) })
        var ready = nodes.filter { indeg[$0.id] == 0 }.map(\.id)
        var done = 0
        while let id = ready.popLast() {
            done += 1
            for n in nodes where n.inputs.contains(id) {
                indeg[n.id]! -= 1
                if indeg[n.id] == 0 { ready.append(n.id) }
            }
        }
        if done < nodes.count {
            let cyc = nodes.filter { indeg[$0.id]! > 0 }.map(\.id)
            errors.append(.spec("nodes", "the graph has a cycle through \(cyc.joined(separator: ", "))"))
        }
        if !nodes.contains(where: { if case .source = $0.kind { return true }; return false }) {
            errors.append(.spec("nodes", "the job has no source"))
        }
        for n in nodes {
            if case .sink = n.kind { continue }
            if !nodes.contains(where: { $0.inputs.contains(n.id) }) {
                errors.append(.spec(n.path, "the output of '\(n.id)' goes nowhere: add a sink that reads it, or remove the node"))
            }
        }
        return errors
    }
}
