import XCTest
import WeirCore
@testable import WeirExport

/// Specs and helpers shared by the export tests: a Kafka source `events`
/// with every type, a MySQL sink, and ways to look at one statement.
enum ExportFixture {
    static let schema = "{ user_id: int, amount: int, ts: int, name: string?, price: double?, ok: bool? }"

    /// A job: the `events` source, then `nodes` (YAML list items, indented by two spaces).
    static func job(_ nodes: String, top: String = "", schema: String = ExportFixture.schema,
                    eventTime: String? = "{ field: ts, maxOutOfOrderness: 2s }", kafkaExtra: String = "") -> String {
        var s = "name: t\n" + top + (top.isEmpty || top.hasSuffix("\n") ? "" : "\n")
        s += """
        nodes:
          - id: events
            kafka:
              bootstrap: 127.0.0.1:9092
              topic: events
              schema: \(schema)

        """
        if let eventTime { s += "      eventTime: \(eventTime)\n" }
        if !kafkaExtra.isEmpty { s += kafkaExtra.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n") + "\n" }
        return s + nodes
    }

    /// A sink node reading `input`.
    static func sink(_ input: String, id: String = "out", mode: String = "append", key: String? = nil,
                     url: String = "mysql://root@127.0.0.1:3306/analytics", extra: String = "") -> String {
        var s = """
          - id: \(id)
            inputs: [\(input)]
            mysql:
              url: "\(url)"
              table: t_\(id)
              mode: \(mode)

        """
        if let key { s += "      key: \(key)\n" }
        if !extra.isEmpty { s += extra.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n") + "\n" }
        return s
    }

    static func export(_ yaml: String, _ options: FlinkExportOptions = FlinkExportOptions(),
                       file: StaticString = #filePath, line: UInt = #line) throws -> String {
        do { return try FlinkSQLExporter.script(forSpec: yaml, options: options) } catch let e as ExportRefusal {
            XCTFail("refused: \(e)", file: file, line: line)
            throw e
        }
    }

    /// The refusal of a spec (fails the test when it is exported).
    static func refusal(_ yaml: String, _ options: FlinkExportOptions = FlinkExportOptions(),
                        file: StaticString = #filePath, line: UInt = #line) -> ExportRefusal? {
        do {
            _ = try FlinkSQLExporter.script(forSpec: yaml, options: options)
            XCTFail("exported, expected a refusal", file: file, line: line)
            return nil
        } catch let e as ExportRefusal {
            return e
        } catch {
            XCTFail("not a refusal: \(error)", file: file, line: line)
            return nil
        }
    }

    /// The statement (up to its closing `;` at a line end) that starts with `prefix`.
    static func statement(_ script: String, startingWith prefix: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        guard let r = script.range(of: "\n" + prefix) else {
            XCTFail("no statement starting with \(prefix)", file: file, line: line)
            return ""
        }
        let rest = script[script.index(after: r.lowerBound)...]
        guard let end = rest.range(of: ";\n") else { return String(rest) }
        return String(rest[..<end.upperBound].dropLast())
    }

    /// The fields of `events` as expressions see them.
    static let fields: [Schema.Field] = [
        .init("user_id", .int, nullable: false), .init("amount", .int, nullable: false), .init("ts", .int, nullable: false),
        .init("name", .string), .init("price", .double), .init("ok", .bool),
    ]

    /// One expression rendered against `fields`.
    static func sql(_ text: String, mixed: Set<String> = []) throws -> String {
        try FlinkExpressions(node: "n", schema: fields, mixed: mixed).render(text).sql
    }

    /// The refusal of one expression.
    static func exprRefusal(_ text: String, mixed: Set<String> = [], file: StaticString = #filePath, line: UInt = #line) -> ExportRefusal? {
        do {
            let s = try FlinkExpressions(node: "n", schema: fields, mixed: mixed).render(text).sql
            XCTFail("rendered as \(s), expected a refusal", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    /// One aggregate rendered against `fields`.
    static func agg(_ text: String, mixed: Set<String> = []) throws -> FlinkExpressions.Rendered {
        try FlinkExpressions(node: "n", schema: fields, mixed: mixed).aggregate("a", text)
    }
}
