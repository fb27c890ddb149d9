import WeirCore

/// Writes a `keyBy` + `aggregate` node, with or without a window, as a Flink view.
///
/// It exists because the two engines name windows differently: Weir's
/// windows give `window_start` and `window_end` as epoch milliseconds, Flink's
/// window TVFs give TIMESTAMPs, and Flink's session windows merge windows that
/// merely touch while Weir's merge only overlapping ones. Each shape gets the
/// Flink form that yields exactly Weir's rows.
struct FlinkAggregate {
    let id: String
    let keyBy: [String]
    let window: WindowSpec?
    let aggregates: [(name: String, expr: String)]
    let input: FlinkView

    /// The view's statement and the view it produces.
    func statement() throws(ExportRefusal) -> (String, FlinkView) {
        if let agg = input.updatedBy {
            throw ExportRefusal(id, "reads the updates of continuous aggregate '\(agg)': Weir folds every update in as a new record, Flink retracts the old value first",
                                hint: "aggregate from the source's records instead")
        }
        if let agg = input.aggregatedBy {
            throw ExportRefusal(id, "aggregates the output of aggregate '\(agg)'; cascaded aggregates are not exported",
                                hint: "export the first aggregate and aggregate further in the database, or keep this job on Weir")
        }
        let exprs = input.expressions(node: id)
        for k in keyBy where input.mixed.contains(k) {
            throw ExportRefusal(id, "groups by '\(k)', which mixes int and double values in Weir (1 and 1.0 are two keys there, one in Flink)",
                                hint: "make both sides of the coalesce()/if() that computes it the same type")
        }
        var selects: [(sql: String, name: String)] = []
        var fields: [Schema.Field] = []
        var mixed: Set<String> = []
        for k in keyBy {
            guard let f = input.fields.first(where: { $0.name == k }) else { throw ExportRefusal(id, "keyBy field '\(k)' is not an input field") }
            selects.append((FlinkSQL.ident(k), k))
            fields.append(f)
        }
        var aggSelects: [(sql: String, name: String)] = []
        var aggFields: [Schema.Field] = []
        for (name, text) in aggregates {
            let r = try exprs.aggregate(name, text)
            aggSelects.append((r.sql, name))
            aggFields.append(Schema.Field(name, r.type))
            if r.mixed { mixed.insert(name) }
        }
        let keys = keyBy.map(FlinkSQL.ident).joined(separator: ", ")
        guard let window else {
            // A continuous aggregate: Flink's GROUP BY keeps one updated row per key, as Weir's does.
            let cols = (selects + aggSelects).map { "\($0.sql) AS \(FlinkSQL.ident($0.name))" }.joined(separator: ",\n       ")
            var sql = "CREATE TEMPORARY VIEW \(FlinkSQL.ident(id)) AS\nSELECT \(cols)\nFROM \(FlinkSQL.ident(input.name))"
            if !keyBy.isEmpty { sql += "\nGROUP BY \(keys)" }
            var view = FlinkView(name: id, fields: fields + aggFields, mixed: mixed)
            view.updatedBy = id
            view.aggregatedBy = id
            return (sql + ";", view)
        }
        guard input.eventTime else {
            throw ExportRefusal(id, "has a window but its input carries no event time on Flink",
                                hint: "window the records of sources with eventTime directly")
        }
        for name in ["window_start", "window_end", "window_time"] where input.fields.contains(where: { $0.name == name }) {
            throw ExportRefusal(id, "its input has a field named '\(name)', which Flink's window functions add themselves",
                                hint: "rename the field with a select before the window")
        }
        let rowtime = FlinkSQL.ident(FlinkView.rowtime), millis = FlinkSQL.ident(FlinkView.eventTimeMillis)
        let table = "TABLE \(FlinkSQL.ident(input.name))"
        let tvf: String
        // Weir's window bounds in epoch milliseconds, computed from the records
        // (exact at any size) or from Flink's window_start for sliding windows.
        let start: String, end: String
        switch window {
        case .tumbling(let size):
            tvf = "TUMBLE(\(table), DESCRIPTOR(\(rowtime)), \(try FlinkSQL.interval(size, node: id, what: "the window size")))"
            // Every record of the window has the same floor(ts / size): take it from the smallest.
            start = FlinkAggregate.floorToMultiple("MIN(\(millis))", size)
            end = "\(start) + \(size)"
        case .sliding(let size, let slide):
            guard slide % 1000 == 0 else {
                throw ExportRefusal(id, "slides by \(slide) ms: its epoch-millisecond window_start can be computed on Flink only for slides of whole seconds",
                                    hint: "use a slide of whole seconds")
            }
            tvf = "HOP(\(table), DESCRIPTOR(\(rowtime)), \(try FlinkSQL.interval(slide, node: id, what: "the slide")), \(try FlinkSQL.interval(size, node: id, what: "the window size")))"
            // window_start is a multiple of the slide at or before the window's first record: the
            // slice of that record, less as many slides as whole slides separate it from window_start
            // (seconds between them, from Flink's TIMESTAMP window_start, divided by the slide in seconds).
            let seconds = "TIMESTAMPDIFF(SECOND, CAST(`window_start` AS TIMESTAMP(3)), CAST(MIN(\(rowtime)) AS TIMESTAMP(3)))"
            start = "(\(FlinkAggregate.floorToMultiple("MIN(\(millis))", slide)) - CAST(\(seconds) / \(slide / 1000) AS BIGINT) * \(slide))"
            end = "\(start) + \(size)"
        case .session(let gap):
            guard gap > 1 else {
                throw ExportRefusal(id, "has a session gap of 1 ms, which has no Flink equivalent (Flink's gap is Weir's minus 1 ms, see below, and must be positive)")
            }
            // Flink merges sessions whose windows touch (a record exactly `gap` after the last one joins),
            // Weir only overlapping ones: a Flink gap 1 ms shorter merges exactly the same records.
            let partition = keyBy.isEmpty ? "" : " PARTITION BY \(keys)"
            tvf = "SESSION(\(table)\(partition), DESCRIPTOR(\(rowtime)), \(try FlinkSQL.interval(gap - 1, node: id, what: "the session gap")))"
            start = "MIN(\(millis))"
            end = "MAX(\(millis)) + \(gap)"
        }
        let group = (["`window_start`", "`window_end`"] + keyBy.map(FlinkSQL.ident)).joined(separator: ", ")
        // Computed under their own names, renamed outside: `window_start` in GROUP BY is Flink's column.
        let ws = FlinkSQL.ident(FlinkView.reservedPrefix + "window_start"), we = FlinkSQL.ident(FlinkView.reservedPrefix + "window_end")
        let inner = (selects.map { "\($0.sql) AS \(FlinkSQL.ident($0.name))" } + ["\(start) AS \(ws)", "\(end) AS \(we)"]
                     + aggSelects.map { "\($0.sql) AS \(FlinkSQL.ident($0.name))" }).joined(separator: ",\n         ")
        let outer = (selects.map { FlinkSQL.ident($0.name) } + ["\(ws) AS `window_start`", "\(we) AS `window_end`"]
                     + aggSelects.map { FlinkSQL.ident($0.name) }).joined(separator: ", ")
        let sql = "CREATE TEMPORARY VIEW \(FlinkSQL.ident(id)) AS\nSELECT \(outer)\nFROM (\n  SELECT \(inner)\n  FROM TABLE(\(tvf))\n  GROUP BY \(group)\n);"
        var view = FlinkView(name: id, fields: fields + [Schema.Field("window_start", .int), Schema.Field("window_end", .int)] + aggFields, mixed: mixed)
        view.aggregatedBy = id
        return (sql, view)
    }

    /// `x` rounded down to a multiple of `m` (floor, also before 1970), as BIGINT.
    static func floorToMultiple(_ x: String, _ m: Int64) -> String {
        "(\(x) - MOD(MOD(\(x), \(m)) + \(m), \(m)))"
    }
}
