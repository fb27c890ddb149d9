import WeirCore
import WeirKafka
import WeirMySQL

/// Exports a Weir job to one Flink SQL script that gives the same results on
/// a Flink cluster, or refuses, naming the node and the reason.
///
/// It exists for jobs that outgrow one machine: instead of growing its own
/// cluster, Weir hands the same published version to Apache Flink. The
/// export is a pure function of the compiled job and the options (no broker,
/// no database, no clock), so the CLI, the control plane and the tests all
/// get the same text for the same input.
public enum FlinkSQLExporter {
    /// The connector kinds the exporter reads specs with (the `weir` binary's own).
    public static let connectorKinds: [ConnectorKind] = [KafkaSourceConnector.kind, MySQLSinkConnector.kind]

    /// The script for a job spec's text (YAML or JSON), for the control plane:
    /// the text is parsed and compiled as `weir run` would. Throws `SpecErrors`
    /// when the spec is not valid, `ExportRefusal` when it has no faithful
    /// Flink form. `options.startOffsets` takes a snapshot manifest's `offsets`.
    public static func script(forSpec text: String, options: FlinkExportOptions = FlinkExportOptions()) throws -> String {
        let plan = try JobPlan.compile(text, connectors: connectorKinds)
        return try script(for: plan, options: options)
    }

    /// The script for a compiled job.
    public static func script(for plan: JobPlan, options: FlinkExportOptions = FlinkExportOptions()) throws(ExportRefusal) -> String {
        var b = ScriptBuilder(plan: plan, options: options)
        return try b.build()
    }
}

/// Builds one script: checks, SET statements, one table or view per node, the statement set.
struct ScriptBuilder {
    let plan: JobPlan
    let options: FlinkExportOptions
    var statements: [String] = []
    var inserts: [String] = []
    var views: [String: FlinkView] = [:]
    var sinks: [(id: String, mode: String, policy: ErrorPolicy)] = []
    var hasSessions = false
    var hasContinuous = false

    init(plan: JobPlan, options: FlinkExportOptions) {
        self.plan = plan
        self.options = options
    }

    var specNodes: [String: NodeSpec] { Dictionary(plan.spec.nodes.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a }) }

    mutating func build() throws(ExportRefusal) -> String {
        try checkNames()
        try checkOptions()
        let spec = specNodes
        for n in plan.nodes {
            guard let s = spec[n.id] else { throw ExportRefusal(n.id, "is in the plan but not in the spec") }
            try add(n, s)
        }
        let header = FlinkScriptHeader.text(job: plan.spec, options: options, sinks: sinks,
                                            hasSessions: hasSessions, hasContinuous: hasContinuous)
        var out = [header, try settings()] + statements
        out.append("EXECUTE STATEMENT SET\nBEGIN\n" + inserts.joined(separator: "\n") + "\nEND;")
        return out.joined(separator: "\n\n") + "\n"
    }

    // MARK: Checks

    /// Field names the script uses itself, names it cannot write, and the
    /// names of the tables it adds beside the nodes' views.
    func checkNames() throws(ExportRefusal) {
        for n in plan.nodes {
            for f in n.schema.fields {
                if f.name.hasPrefix(FlinkView.reservedPrefix) {
                    throw ExportRefusal(n.id, "field '\(f.name)' starts with '\(FlinkView.reservedPrefix)', which the exported script uses for its own columns",
                                        hint: "rename the field")
                }
                if !FlinkSQL.isWritable(f.name) { throw ExportRefusal(n.id, "a field name has control characters") }
            }
        }
        let ids = Set(plan.nodes.map(\.id))
        for n in plan.nodes where n.inputs.count > 1 {
            if case .union = n.kind { continue }
            if ids.contains("\(n.id)__inputs") {
                throw ExportRefusal(n.id, "the union of its inputs would be named '\(n.id)__inputs', which is also a node id",
                                    hint: "rename node '\(n.id)__inputs'")
            }
        }
        for n in plan.nodes {
            guard case .source(_, let c, _) = n.kind, let k = c as? KafkaSourceConnector else { continue }
            let names = k.topics.count == 1 ? ["\(n.id)__kafka"] : k.topics.map { "\(n.id)__kafka__\($0)" }
            for name in names where ids.contains(name) {
                throw ExportRefusal(n.id, "its Kafka table would be named '\(name)', which is also a node id", hint: "rename node '\(name)'")
            }
        }
    }

    /// The snapshot offsets name this job's sources; end offsets name topics it reads.
    func checkOptions() throws(ExportRefusal) {
        var topics: Set<String> = []
        var sources: [String] = []
        for n in plan.nodes {
            guard case .source(_, let c, _) = n.kind else { continue }
            sources.append(n.id)
            if let k = c as? KafkaSourceConnector { topics.formUnion(k.topics) }
        }
        for (node, offsets) in (options.startOffsets ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard sources.contains(node) else {
                throw ExportRefusal("snapshot", "has offsets of source '\(node)', which this job does not have (sources: \(sources.joined(separator: ", ")))",
                                    hint: "export the version the snapshot was taken from, or one with the same source ids")
            }
            for (split, off) in offsets where off < 0 || parseSplit(split) == nil {
                throw ExportRefusal("snapshot", "offset \(off) of '\(split)' (source '\(node)') is not a topic/partition offset")
            }
        }
        for (split, off) in (options.endOffsets ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let (topic, _) = parseSplit(split), off >= 0 else {
                throw ExportRefusal("end offsets", "'\(split)=\(off)' is not topic/partition=offset", hint: "write e.g. events/0=1200")
            }
            guard topics.contains(topic) else {
                throw ExportRefusal("end offsets", "name topic '\(topic)', which no source of the job reads (topics: \(topics.sorted().joined(separator: ", ")))")
            }
        }
    }

    func parseSplit(_ s: String) -> (String, Int32)? {
        guard let slash = s.lastIndex(of: "/"), let p = Int32(s[s.index(after: slash)...]), p >= 0 else { return nil }
        return (String(s[..<slash]), p)
    }

    // MARK: SET statements

    func settings() throws(ExportRefusal) -> String {
        let spec = plan.spec
        var sets: [(String, String)] = [
            ("pipeline.name", spec.name),
            ("parallelism.default", String(spec.parallelism)),
            ("pipeline.max-parallelism", String(spec.maxParallelism)),
            // Window bounds in epoch milliseconds, as Weir's: windows aligned to UTC.
            ("table.local-time-zone", "UTC"),
        ]
        var comments: [String] = []
        if let interval = spec.checkpoint.intervalMillis {
            sets.append(("execution.checkpointing.interval", FlinkSQL.duration(interval)))
            sets.append(("execution.checkpointing.timeout", FlinkSQL.duration(spec.checkpoint.timeoutMillis)))
        } else {
            comments.append("-- The spec has no checkpoint interval: Flink takes no checkpoints, and a restart starts over from the start offsets.")
        }
        if spec.restart.attempts > 0 {
            sets.append(("restart-strategy.type", "fixed-delay"))
            sets.append(("restart-strategy.fixed-delay.attempts", String(spec.restart.attempts)))
            sets.append(("restart-strategy.fixed-delay.delay", FlinkSQL.duration(spec.restart.delayMillis)))
        } else {
            sets.append(("restart-strategy.type", "none"))
        }
        var idle: [(String, Int64)] = []
        for n in plan.nodes {
            if case .source(_, _, let et?) = n.kind { idle.append((n.id, et.idleTimeoutMillis)) }
        }
        if let shortest = idle.map(\.1).min() {
            if Set(idle.map(\.1)).count > 1 {
                comments.append("-- The sources' idleTimeouts differ (" + idle.map { "\($0.0): \($0.1) ms" }.joined(separator: ", ")
                                + "); Flink has one for the job: the shortest.")
            }
            sets.append(("table.exec.source.idle-timeout", FlinkSQL.duration(shortest)))
        }
        let upserts = sinks.filter { $0.mode == "upsert" }
        if !upserts.isEmpty {
            let failing = Set(upserts.map { $0.policy.onError == .fail })
            if failing.count > 1 {
                throw ExportRefusal(upserts.first { $0.policy.onError == .fail }!.id,
                                    "has onError: fail while another upsert sink does not: Flink decides what a NULL key does (fail or drop) once for the whole job",
                                    hint: "give the upsert sinks the same onError")
            }
            sets.append(("table.exec.sink.not-null-enforcer", failing.first! ? "ERROR" : "DROP"))
        }
        return (comments + sets.map { "SET \(FlinkSQL.quoted($0.0)) = \(FlinkSQL.quoted($0.1));" }).joined(separator: "\n")
    }

    // MARK: Nodes

    /// The view a node reads: its one input's, or the union of several (a
    /// node with several inputs reads their union in Weir).
    mutating func input(of n: PlannedNode, as name: String) throws(ExportRefusal) -> FlinkView {
        let ins = n.inputs.map { plan.nodes[$0].id }
        guard let first = ins.first, let firstView = views[first] else { throw ExportRefusal(n.id, "has no input") }
        if ins.count == 1 { return firstView }
        var inputs: [FlinkView] = []
        for i in ins {
            guard let v = views[i] else { throw ExportRefusal(n.id, "reads '\(i)', which has no Flink view") }
            if let agg = v.updatedBy {
                throw ExportRefusal(n.id, "unions the updates of continuous aggregate '\(agg)' with other records: Weir passes each update on as a record, Flink as a retraction and an insertion",
                                    hint: "union the records before aggregating")
            }
            inputs.append(v)
        }
        for (k, f) in firstView.fields.enumerated() {
            for v in inputs.dropFirst() where v.fields[k].type != f.type {
                throw ExportRefusal(n.id, "field '\(f.name)' is \(f.type) in '\(firstView.name)' and \(v.fields[k].type) in '\(v.name)': Weir unions it untyped, Flink needs one type",
                                    hint: "select both inputs into the same type before the union")
            }
        }
        let allEventTime = inputs.allSatisfy(\.eventTime)
        let selects = inputs.map { "SELECT \(allEventTime ? $0.allColumns : $0.columnList) FROM \(FlinkSQL.ident($0.name))" }
        statements.append("CREATE TEMPORARY VIEW \(FlinkSQL.ident(name)) AS\n" + selects.joined(separator: "\nUNION ALL\n") + ";")
        var view = FlinkView(name: name, fields: firstView.fields, mixed: inputs.reduce(into: Set<String>()) { $0.formUnion($1.mixed) })
        view.eventTime = allEventTime
        view.aggregatedBy = inputs.compactMap(\.aggregatedBy).first
        return view
    }

    mutating func add(_ n: PlannedNode, _ s: NodeSpec) throws(ExportRefusal) {
        switch s.kind {
        case .source(let connector, let conn, let settings):
            guard let kafka = conn as? KafkaSourceConnector else {
                throw ExportRefusal(n.id, "is a \(connector) source, which has no Flink export")
            }
            guard let schema = settings.schema else {
                throw ExportRefusal(n.id, "declares no schema: Flink's JSON format needs every field's type",
                                    hint: "add schema: { field: type, ... } to the source (the fields the job reads and writes)")
            }
            let source = FlinkKafkaSource(job: plan.name, id: n.id, kafka: kafka, schema: schema, eventTime: settings.eventTime,
                                          onError: plan.spec.errors.onError, snapshot: options.startOffsets?[n.id],
                                          end: options.endOffsets)
            statements += try source.statements()
            var view = FlinkView(name: n.id, fields: schema.fields)
            view.eventTime = settings.eventTime != nil
            views[n.id] = view

        case .filter(let text):
            var view = try input(of: n, as: "\(n.id)__inputs")
            if let agg = view.updatedBy {
                throw ExportRefusal(n.id, "filters the updates of continuous aggregate '\(agg)': in Weir a key whose new value fails the filter keeps its old row in the sink, in Flink the old row is retracted",
                                    hint: "filter before the aggregate, or in the database")
            }
            let cond = try view.expressions(node: n.id).condition(text)
            statements.append("CREATE TEMPORARY VIEW \(FlinkSQL.ident(n.id)) AS\nSELECT \(view.allColumns)\nFROM \(FlinkSQL.ident(view.name))\nWHERE \(cond);")
            view.name = n.id
            views[n.id] = view

        case .select(let items):
            let input = try input(of: n, as: "\(n.id)__inputs")
            let exprs = input.expressions(node: n.id)
            var cols: [String] = []
            var fields: [Schema.Field] = []
            var mixed: Set<String> = []
            for (name, text) in items {
                let r = try exprs.render(text)
                cols.append("\(r.sql) AS \(FlinkSQL.ident(name))")
                fields.append(Schema.Field(name, r.type))
                if r.mixed { mixed.insert(name) }
            }
            if input.eventTime { cols.append(FlinkView.hiddenColumns) }
            statements.append("CREATE TEMPORARY VIEW \(FlinkSQL.ident(n.id)) AS\nSELECT \(cols.joined(separator: ",\n       "))\nFROM \(FlinkSQL.ident(input.name));")
            var view = FlinkView(name: n.id, fields: fields, mixed: mixed)
            view.eventTime = input.eventTime
            view.updatedBy = input.updatedBy
            view.aggregatedBy = input.aggregatedBy
            views[n.id] = view

        case .union:
            views[n.id] = try input(of: n, as: n.id)

        case .aggregate(let keyBy, let window, let aggregates):
            let input = try input(of: n, as: "\(n.id)__inputs")
            let (sql, view) = try FlinkAggregate(id: n.id, keyBy: keyBy, window: window, aggregates: aggregates, input: input).statement()
            statements.append(sql)
            views[n.id] = view
            if case .session? = window { hasSessions = true }
            if window == nil { hasContinuous = true }

        case .sink(let connector, let conn):
            guard let mysql = conn as? MySQLSinkConnector else {
                throw ExportRefusal(n.id, "is a \(connector) sink, which has no Flink export")
            }
            let input = try input(of: n, as: "\(n.id)__inputs")
            let policy = n.errors ?? plan.spec.errors
            let sink = FlinkJDBCSink(id: n.id, mysql: mysql, input: input, policy: policy)
            statements.append(try sink.table())
            inserts.append(sink.insert)
            sinks.append((n.id, mysql.mode.rawValue, policy))
        }
    }
}
