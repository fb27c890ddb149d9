import WeirCore

/// What a sink writer writes by (the plan, the statement builder and the row
/// isolation built from it), and the check that the table still matches it.
///
/// A sink table can be altered while the job writes to it. Both writers call
/// `epochEnded()` after each commit or prepare and `checkTable(on:)` before
/// the first rows of the next epoch: one information_schema query (two for
/// upsert), and none in an epoch that writes nothing. What a change does:
/// - a written column dropped or renamed, a NOT NULL column without a default
///   added that the records have no field for, or (upsert) the key's unique
///   index dropped: refused by `plan` as at start, then `sink_schema_changed`
///   (see `MySQLSinkWriter.tableError`);
/// - a written column whose type changed kind (`ColumnKind`: integer to text,
///   integer to date-time, text to number, …): `sink_schema_changed`, naming
///   the column and both types. Values planned for one kind mean something
///   else, or nothing, in another; the job stops rather than write them;
/// - anything else (a type widened or narrowed within its kind, NULL or NOT
///   NULL, a default, an integer column turned DECIMAL, columns added with a
///   default): the writer takes the new plan from this epoch on. Rows the
///   column now refuses go through the bad-record policy; rows it now takes are
///   written.
final class TableWriterPlan {
    private(set) var plan: MySQLSinkConnector.Plan
    private(set) var statements: InsertStatementBuilder
    private(set) var isolation: RowIsolation
    private let replan: ((MySQLConnection) throws -> MySQLSinkConnector.Plan)?
    private let tableSubject: String
    private var checkDue = false

    init(plan: MySQLSinkConnector.Plan, statements: InsertStatementBuilder, isolation: RowIsolation,
         tableSubject: String, replan: ((MySQLConnection) throws -> MySQLSinkConnector.Plan)?) {
        self.plan = plan
        self.statements = statements
        self.isolation = isolation
        self.tableSubject = tableSubject
        self.replan = replan
    }

    /// The epoch's rows are committed or prepared: look at the table again before the next ones.
    func epochEnded() { checkDue = replan != nil }

    /// Whether the next write should call `checkTable` first.
    var isCheckDue: Bool { checkDue }

    /// Compares the table with the plan (once per epoch, before its first rows)
    /// and takes a compatible change. Throws `sink_schema_changed` (or the
    /// plan's own table error, which the writer turns into it).
    func checkTable(on conn: MySQLConnection) throws {
        guard checkDue, let replan else { return }
        checkDue = false
        let next = try replan(conn)
        guard next.columnInfos != plan.columnInfos else { return }
        for (old, new) in zip(plan.columnInfos, next.columnInfos) where !ColumnKind(old).takes(ColumnKind(new)) {
            throw WeirError(.sinkSchemaChanged, subject: "column '\(new.name)' of \(tableSubject)",
                            "changed type while the job wrote to it, from \(old.columnType) to \(new.columnType): values planned for \(ColumnKind(old).description) mean something else as \(ColumnKind(new).description)",
                            suggestion: "change the column back to \(old.columnType) (or a type of the same kind), or publish a version whose output matches the new table; then run from the latest snapshot (output is exactly-once up to it)")
        }
        plan = next
        statements = statements.replanned(next)
        isolation = isolation.replanned(next, builder: statements)
    }
}

/// The kind of value a column holds, as far as the sink renders and checks
/// values for it: a change of kind mid-run stops the job, a change within one
/// is taken.
enum ColumnKind: Equatable, CustomStringConvertible {
    case integer, decimal, dateTime, date, text, other(String)

    init(_ c: MySQLSinkConnector.ColumnInfo) {
        switch ColumnEncoding(c) {
        case .integer: self = .integer
        case .numeric: self = .decimal
        case .datetime: self = .dateTime
        case .date: self = .date
        case .text: self = .text
        case .other: self = .other(c.dataType)
        }
    }

    /// Whether a column of this kind can become `new` under a running job: the
    /// same kind, or an integer column made DECIMAL/FLOAT/DOUBLE (a widening).
    func takes(_ new: ColumnKind) -> Bool { self == new || (self == .integer && new == .decimal) }

    var description: String {
        switch self {
        case .integer: return "an integer column"
        case .decimal: return "a decimal or floating-point column"
        case .dateTime: return "a date-time column"
        case .date: return "a date column"
        case .text: return "a character column"
        case .other(let t): return "a \(t.uppercased()) column"
        }
    }
}
