import WeirCore

/// What the script knows about the relation a node produces on Flink (a
/// view, named after the node id), so that the nodes reading it can be
/// checked and written.
///
/// It exists because some facts matter downstream and are not in Weir's
/// schema: the hidden event-time columns a view carries, whether it is an
/// updating changelog (after a continuous aggregate) or the output of an
/// aggregate, and which double fields may hold integers.
struct FlinkView {
    /// The view's name (the node id), unquoted.
    var name: String
    /// The node's fields, in Weir's order (what a sink receives).
    var fields: [Schema.Field]
    /// Double fields that may hold integer values in Weir (see `FlinkField.mixed`).
    var mixed: Set<String> = []
    /// Whether the view carries the hidden event-time columns
    /// (`__weir_ts`, epoch ms, and `__weir_rowtime`, the rowtime attribute).
    var eventTime: Bool = false
    /// The id of the continuous aggregate whose updates flow through this view
    /// (a changelog with updates on Flink), nil for an append-only view.
    var updatedBy: String? = nil
    /// The id of the aggregate (windowed or not) this view's records come out of.
    var aggregatedBy: String? = nil

    /// The fields as the expressions of node `node` (which reads this view) see them.
    func expressions(node: String) -> FlinkExpressions {
        FlinkExpressions(node: node, schema: fields, mixed: mixed)
    }

    /// `a`, `b`, ... (the Weir fields only).
    var columnList: String { fields.map { FlinkSQL.ident($0.name) }.joined(separator: ", ") }

    /// The Weir fields, then the hidden event-time columns when the view has them.
    var allColumns: String {
        eventTime ? columnList + ", " + FlinkView.hiddenColumns : columnList
    }

    /// The hidden event-time columns: epoch milliseconds as Weir computes
    /// them, and the rowtime attribute the watermark is defined on.
    static let eventTimeMillis = "__weir_ts"
    static let rowtime = "__weir_rowtime"
    static let hiddenColumns = "\(FlinkSQL.ident(eventTimeMillis)), \(FlinkSQL.ident(rowtime))"
    /// Names the script uses for itself; a spec field may not start with it.
    static let reservedPrefix = "__weir_"
}
