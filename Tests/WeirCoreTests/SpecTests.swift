import XCTest
@testable import WeirCore
@testable import WeirEngine

final class SpecTests: XCTestCase {
    let kinds = memoryKinds(source: MemorySource([[]]), sink: MemorySink())

    func errors(_ yaml: String) -> [String] {
        do { _ = try JobPlan.compile(yaml, connectors: kinds); return [] }
        catch let e as SpecErrors { return e.errors.map(\.description) }
        catch { return ["\(error)"] }
    }

    let good = """
    name: spend
    parallelism: 2
    nodes:
      - id: events
        mem: { schema: { user_id: int, amount: int, ts: int }, eventTime: { field: ts, maxOutOfOrderness: 2s } }
      - id: valid
        inputs: [events]
        filter: "amount > 0"
      - id: per-user
        inputs: [valid]
        keyBy: [user_id]
        window: { tumbling: 10s }
        aggregate: { cnt: "count()", total: "sum(amount)" }
      - id: out
        inputs: [per-user]
        out: {}
    """

    func testValidSpecCompiles() throws {
        let plan = try JobPlan.compile(good, connectors: kinds)
        XCTAssertEqual(plan.nodes.map(\.id), ["events", "valid", "per-user", "out"])
        XCTAssertEqual(plan.nodes[2].schema.names, ["user_id", "window_start", "window_end", "cnt", "total"])
        XCTAssertEqual(plan.nodes[2].schema.fields.map(\.type), [.int, .int, .int, .int, .int])
        XCTAssertEqual(plan.parallelism, 2)
    }

    func testJSONSpecIsAccepted() throws {
        let json = """
        {"name": "j", "nodes": [
          {"id": "s", "mem": {"schema": {"a": "int"}}},
          {"id": "f", "inputs": ["s"], "select": {"b": "a * 2"}},
          {"id": "o", "inputs": ["f"], "out": {}}]}
        """
        let plan = try JobPlan.compile(json, connectors: kinds)
        XCTAssertEqual(plan.nodes[1].schema.names, ["b"])
    }

    func testLocatedErrors() {
        let bad = good.replacingOccurrences(of: "amount > 0", with: "amout > 0")
        XCTAssertEqual(errors(bad), ["nodes[1].filter: unknown field 'amout' (did you mean 'amount'?)"])

        let unknownKey = good.replacingOccurrences(of: "filter: \"amount > 0\"", with: "filtr: \"amount > 0\"")
        XCTAssertTrue(errors(unknownKey).contains { $0.contains("nodes[1].filtr: unknown field 'filtr'") }, "\(errors(unknownKey))")

        let badInput = good.replacingOccurrences(of: "inputs: [valid]", with: "inputs: [vaild]")
        XCTAssertEqual(errors(badInput), ["nodes[2].inputs[0]: unknown node 'vaild' (did you mean 'valid'?)"])

        let badWindow = good.replacingOccurrences(of: "tumbling: 10s", with: "tumbling: 10 parsecs")
        XCTAssertTrue(errors(badWindow).contains { $0.hasPrefix("nodes[2].window.tumbling:") }, "\(errors(badWindow))")

        let badKey = good.replacingOccurrences(of: "keyBy: [user_id]", with: "keyBy: [usr_id]")
        XCTAssertEqual(errors(badKey), ["nodes[2].keyBy[0]: unknown field 'usr_id' (did you mean 'user_id'?)"])

        let badAgg = good.replacingOccurrences(of: "sum(amount)", with: "sum(amt)")
        XCTAssertTrue(errors(badAgg).first?.hasPrefix("nodes[2].aggregate.total: unknown field 'amt'") ?? false, "\(errors(badAgg))")

        let dup = good.replacingOccurrences(of: "id: valid", with: "id: events").replacingOccurrences(of: "inputs: [valid]", with: "inputs: [events]")
        XCTAssertTrue(errors(dup).contains { $0.contains("duplicate id 'events'") }, "\(errors(dup))")

        let top = good.replacingOccurrences(of: "parallelism: 2", with: "paralelism: 2")
        XCTAssertEqual(errors(top), ["paralelism: unknown field 'paralelism' (did you mean 'parallelism'?)"])
    }

    func testGraphChecks() {
        let cyc = """
        name: c
        nodes:
          - { id: s, mem: { schema: { a: int } } }
          - { id: a, inputs: [s, b], union: true }
          - { id: b, inputs: [a], filter: "a > 1" }
          - { id: o, inputs: [b], out: {} }
        """
        XCTAssertTrue(errors(cyc).contains { $0.contains("cycle") }, "\(errors(cyc))")
        let dangling = """
        name: d
        nodes:
          - { id: s, mem: { schema: { a: int } } }
          - { id: f, inputs: [s], filter: "a > 1" }
          - { id: o, inputs: [s], out: {} }
        """
        XCTAssertTrue(errors(dangling).contains { $0.contains("output of 'f' goes nowhere") }, "\(errors(dangling))")
        let noEventTime = """
        name: w
        nodes:
          - { id: s, mem: { schema: { a: int } } }
          - { id: w, inputs: [s], keyBy: [a], window: { tumbling: 1s }, aggregate: { c: "count()" } }
          - { id: o, inputs: [w], out: {} }
        """
        XCTAssertTrue(errors(noEventTime).contains { $0.contains("windows need event time") }, "\(errors(noEventTime))")
        let unionMismatch = """
        name: u
        nodes:
          - { id: s1, mem: { schema: { a: int } } }
          - { id: s2, mem: { schema: { b: int } } }
          - { id: u, inputs: [s1, s2], union: true }
          - { id: o, inputs: [u], out: {} }
        """
        XCTAssertTrue(errors(unionMismatch).contains { $0.contains("must have the same fields") }, "\(errors(unionMismatch))")
    }

    func testSchemaInferenceWithoutDeclaredSchema() throws {
        let yaml = """
        name: inf
        nodes:
          - { id: s, mem: { eventTime: { field: ts } } }
          - { id: f, inputs: [s], filter: "amount > 900" }
          - { id: p, inputs: [f], select: [user_id, amount] }
          - { id: o, inputs: [p], out: {} }
        """
        let plan = try JobPlan.compile(yaml, connectors: kinds)
        XCTAssertEqual(Set(plan.nodes[0].schema.names), ["amount", "user_id", "ts"])
        let direct = """
        name: inf
        nodes:
          - { id: s, mem: {} }
          - { id: o, inputs: [s], out: {} }
        """
        // Accepted: the source is bound to the sink table's columns when the job starts.
        XCTAssertEqual(errors(direct), [])
        XCTAssertEqual(try JobPlan.compile(direct, connectors: kinds).unboundSources, ["s": ["o"]])
        // A sink that cannot tell its columns is refused at start, naming the source.
        let directPlan = try JobPlan.compile(direct, connectors: kinds)
        XCTAssertThrowsError(try directPlan.bindingSinkTables()) { e in
            XCTAssertTrue("\(e)".contains("declares no schema"), "\(e)")
        }
    }

    func testDurations() {
        XCTAssertEqual(parseDurationMillis("500ms"), 500)
        XCTAssertEqual(parseDurationMillis("2s"), 2000)
        XCTAssertEqual(parseDurationMillis("1.5s"), 1500)
        XCTAssertEqual(parseDurationMillis("5m"), 300_000)
        XCTAssertEqual(parseDurationMillis("250"), 250)
        XCTAssertNil(parseDurationMillis("soon"))
        XCTAssertNil(parseDurationMillis("1e300s"))
        XCTAssertNil(parseDurationMillis("-1s"))
        XCTAssertEqual(parseDurationMillis("3650d"), maxDurationMillis)
        XCTAssertNil(parseDurationMillis("3651d"))
    }
}
