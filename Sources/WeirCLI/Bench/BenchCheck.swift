import Foundation
import WeirCore
import WeirMySQL

/// The check of one sink table after `weir bench`: the rows the run added or
/// changed against what the reference says the job should produce.
struct BenchCheck: Codable, Sendable {
    enum Status: String, Codable, Sendable { case pass, fail, skipped }
    var sink: String
    var table: String
    var status: Status
    var detail: String
    var expectedRows: Int?
    /// Rows the run added (append) or rows of the run's keys (upsert) found in the table.
    var tableRows: Int?

    /// Rows a table held before the run, read so that older rows are not counted as the run's.
    struct Before { var columns: [String]; var rows: [[String?]] }

    /// Larger tables are not read back (the check says it skipped them).
    static let maxRows = 5_000_000

    static func before(_ sink: MySQLSinkConnector, fresh: Bool) -> Result<Before, any Error> {
        if fresh { return .success(Before(columns: [], rows: [])) }
        return Result { let r = try sink.allRows(); return Before(columns: r.columns, rows: r.rows) }
    }

    /// Compares the table now with `before` and the reference's rows.
    static func compare(node: String, sink: MySQLSinkConnector, before: Before, expected: BenchReference.Outcome) -> BenchCheck {
        var check = BenchCheck(sink: node, table: "\(sink.url.database).\(sink.table)", status: .skipped, detail: "")
        guard case .rows(let names, let types, let expectedRows) = expected else {
            if case .unavailable(let why) = expected { check.detail = "no reference: \(why)" }
            return check
        }
        check.expectedRows = expectedRows.count
        let after: (columns: [String], rows: [[String?]])
        do { after = try sink.allRows() } catch {
            check.status = .fail
            check.detail = "cannot read the table: \(error)"
            return check
        }
        guard after.rows.count <= maxRows else {
            check.detail = "the table holds \(after.rows.count) rows, more than the check reads (\(maxRows))"
            return check
        }
        // The job's fields, by the table column each is written to.
        var columns: [Int] = []
        for n in names {
            guard let c = after.columns.firstIndex(where: { $0.lowercased() == n.lowercased() }) else {
                check.detail = "field '\(n)' has no column in the table"
                return check
            }
            columns.append(c)
        }
        let beforeColumns = before.columns.isEmpty ? after.columns : before.columns
        let beforeIdx = names.map { n in beforeColumns.firstIndex { $0.lowercased() == n.lowercased() } ?? -1 }
        func project(_ row: [String?], _ idx: [Int]) -> [String?] {
            zip(idx, types).map { i, t in i >= 0 && i < row.count ? canonical(row[i], t) : nil }
        }
        let now = after.rows.map { project($0, columns) }
        // DATETIME/DATE columns hold the job's epoch milliseconds as UTC text: compare them as that text.
        let shapes: [TimeShape?] = names.indices.map { i in now.lazy.compactMap { $0[i] }.first.flatMap(TimeShape.init) }
        let want = expectedRows.map { r in
            r.indices.map { i in
                if let shape = shapes[i], case .int(let ms) = r[i] { return Optional(shape.format(ms)) }
                return canonical(r[i], types[i])
            }
        }
        let old = before.rows.map { project($0, beforeIdx) }

        if sink.rowKey.isEmpty {
            // Append: the rows added are the table now minus the table before, as multisets.
            var added: [[String?]: Int] = [:]
            for r in now { added[r, default: 0] += 1 }
            for r in old { added[r, default: 0] -= 1 }
            var missing = 0, extra = 0, example: String?
            var wanted: [[String?]: Int] = [:]
            for r in want { wanted[r, default: 0] += 1 }
            for (r, n) in wanted {
                let d = n - max(0, added[r] ?? 0)
                if d > 0 { missing += d; example = example ?? "missing " + show(r, names) }
            }
            for (r, n) in added where n > (wanted[r] ?? 0) {
                extra += n - (wanted[r] ?? 0)
                example = example ?? "unexpected " + show(r, names)
            }
            let removed = added.values.filter { $0 < 0 }.reduce(0, -)
            check.tableRows = now.count - old.count
            if missing == 0 && extra == 0 && removed == 0 {
                check.status = .pass
                check.detail = "the run appended exactly the \(want.count.formatted()) rows the job should produce"
            } else {
                check.status = .fail
                check.detail = "\(missing) rows missing, \(extra) unexpected (written twice or wrong), \(removed) older rows gone; first: \(example ?? "-")"
            }
            return check
        }
        // Upsert: every key the job produced holds the reference's row; other rows are as before.
        let keyIdx = sink.rowKey.compactMap { k in names.firstIndex { $0.lowercased() == k.lowercased() } }
        var table: [[String?]: [String?]] = [:]
        for r in now { table[keyIdx.map { r[$0] }] = r }
        var oldByKey: [[String?]: [String?]] = [:]
        for r in old { oldByKey[keyIdx.map { r[$0] }] = r }
        var missing = 0, different = 0, example: String?
        var wantedKeys = Set<[String?]>()
        for r in want {
            let k = keyIdx.map { r[$0] }
            wantedKeys.insert(k)
            guard let got = table[k] else { missing += 1; example = example ?? "missing " + show(r, names); continue }
            if got != r { different += 1; example = example ?? "expected " + show(r, names) + ", table has " + show(got, names) }
        }
        var unexpected = 0
        for (k, r) in table where !wantedKeys.contains(k) && oldByKey[k] != r {
            unexpected += 1
            example = example ?? "unexpected " + show(r, names)
        }
        check.tableRows = want.count - missing
        if missing == 0 && different == 0 && unexpected == 0 {
            check.status = .pass
            check.detail = "every one of the \(want.count.formatted()) keys the job should produce holds the expected row"
        } else {
            check.status = .fail
            check.detail = "\(missing) keys missing, \(different) with other values, \(unexpected) unexpected rows; first: \(example ?? "-")"
        }
        return check
    }

    /// One text form per value, so that a table cell and a reference value compare
    /// equal when they are the same number (doubles to 9 significant digits:
    /// sums in another order differ in the last bits).
    static func canonical(_ v: Value, _ type: ValueType) -> String? {
        switch v {
        case .null: return nil
        case .bool(let b): return b ? "1" : "0"
        case .int(let i): return String(i)
        case .double(let d): return String(format: "%.9g", d)
        case .string(let s): return s
        }
    }

    static func canonical(_ cell: String?, _ type: ValueType) -> String? {
        guard let cell else { return nil }
        switch type {
        case .double: return Double(cell).map { String(format: "%.9g", $0) } ?? cell
        case .bool: return cell == "true" ? "1" : (cell == "false" ? "0" : cell)
        case .any:
            if Int64(cell) == nil, let d = Double(cell) { return String(format: "%.9g", d) }
            return cell
        default: return cell
        }
    }

    /// How a DATETIME (with its fractional digits) or DATE cell is written.
    enum TimeShape {
        case datetime(fraction: Int), date

        init?(_ cell: String) {
            let b = Array(cell.utf8)
            func digits(_ r: Range<Int>) -> Bool { r.allSatisfy { $0 < b.count && (48...57).contains(b[$0]) } }
            guard b.count >= 10, digits(0..<4), b[4] == 45, digits(5..<7), b[7] == 45, digits(8..<10) else { return nil }
            if b.count == 10 { self = .date; return }
            guard b.count >= 19, b[10] == 32, digits(11..<13), b[13] == 58, digits(14..<16), b[16] == 58, digits(17..<19) else { return nil }
            self = .datetime(fraction: b.count > 20 && b[19] == 46 ? b.count - 20 : 0)
        }

        /// Epoch milliseconds as the server shows them in UTC (fractions cut, as MariaDB stores them).
        func format(_ ms: Int64) -> String {
            let secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
            let milli = ms - secs * 1000
            var t = time_t(secs), tm = tm()
            gmtime_r(&t, &tm)
            let day = String(format: "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday)
            guard case .datetime(let fraction) = self else { return day }
            var text = day + String(format: " %02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec)
            if fraction > 0 {
                let digits = String(format: "%03d", milli) + String(repeating: "0", count: max(0, fraction - 3))
                text += "." + digits.prefix(fraction)
            }
            return text
        }
    }

    private static func show(_ r: [String?], _ names: [String]) -> String {
        "(" + zip(names, r).map { "\($0)=\($1 ?? "NULL")" }.joined(separator: ", ") + ")"
    }
}
