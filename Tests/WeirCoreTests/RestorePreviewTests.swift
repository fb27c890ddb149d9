import XCTest
@testable import WeirCore

/// The pure halves of a restore preview: offsets against the broker's ranges, and state mapping.
final class OffsetDiffTests: XCTestCase {
    func range(_ name: String, _ low: Int64, _ high: Int64, start: Int64? = nil) -> SplitRange {
        SplitRange(name: name, low: low, high: high, start: start ?? low)
    }

    func testEveryKindOfSplit() {
        let d = OffsetDiff(node: "events",
                           snapshot: ["a/0": 40, "a/1": 10, "a/2": 900, "gone/0": 7],
                           now: [range("a/0", 0, 100), range("a/1", 25, 60), range("a/2", 0, 50), range("a/3", 5, 30),
                                 range("b/0", 0, 80, start: 70)])
        let byName = Dictionary(uniqueKeysWithValues: d.rows.map { ($0.split, $0) })
        XCTAssertEqual(d.rows.map(\.split), ["a/0", "a/1", "a/2", "a/3", "b/0", "gone/0"])
        XCTAssertEqual(byName["a/0"]!.action, .resume)
        XCTAssertEqual(byName["a/0"]!.replay, 60)
        XCTAssertEqual(byName["a/1"]!.action, .retentionLoss)
        XCTAssertEqual(byName["a/1"]!.lost, 15)
        XCTAssertEqual(byName["a/1"]!.startsAt, 25)
        XCTAssertEqual(byName["a/1"]!.replay, 35)
        XCTAssertEqual(byName["a/2"]!.action, .pastEnd)
        XCTAssertEqual(byName["a/3"]!.action, .newPartition)
        XCTAssertEqual(byName["a/3"]!.replay, 25, "a new partition is read from its low watermark")
        XCTAssertEqual(byName["b/0"]!.action, .newTopic)
        XCTAssertEqual(byName["b/0"]!.replay, 10, "a new topic from its startOffsets")
        XCTAssertEqual(byName["gone/0"]!.action, .dropped)
        XCTAssertEqual(d.lost, 15)
        XCTAssertEqual(d.replay, 60 + 35 + 25 + 10)
        XCTAssertTrue(d.refusal(snapshot: "s")!.message.contains("past the partition's end"), "past the end refuses first")
        XCTAssertNotNil(d.refusal(snapshot: "s", acceptRetentionLoss: true), "accepting retention loss never accepts past-end")
    }

    func testRetentionLossIsRefusedUnlessAccepted() {
        let d = OffsetDiff(node: "e", snapshot: ["a/0": 10, "a/1": 3], now: [range("a/0", 12, 20), range("a/1", 0, 9)])
        let e = d.refusal(snapshot: "stop-4")
        XCTAssertTrue(e?.message.hasPrefix("2 records it would resume from were already deleted by retention") ?? false, "\(String(describing: e))")
        XCTAssertEqual(e?.code, .offsetsRemoved)
        XCTAssertNil(d.refusal(snapshot: "stop-4", acceptRetentionLoss: true))
    }

    func testNoSnapshotMeansEverySplitStartsFromStartOffsets() {
        let d = OffsetDiff(node: "e", snapshot: nil, now: [range("a/0", 0, 20, start: 20)])
        XCTAssertEqual(d.rows.map(\.action), [.newTopic])
        XCTAssertEqual(d.rows[0].replay, 0)
    }
}

final class StateMappingTests: XCTestCase {
    func plan(_ agg: String, id: String = "agg", maxParallelism: Int = 16, extraSource: Bool = false) throws -> JobPlan {
        try JobPlan.compile("""
            name: m
            maxParallelism: \(maxParallelism)
            nodes:
              - { id: s, mem: { schema: { k: int, v: int } } }
            \(extraSource ? "  - { id: s2, mem: { schema: { k: int, v: int } } }\n  - { id: o2, inputs: [s2], out: {} }" : "")
              - { id: \(id), inputs: [s], keyBy: [k], aggregate: { \(agg) } }
              - { id: o, inputs: [\(id)], out: {} }
            """, connectors: memoryKinds(source: MemorySource([[]]), sink: MemorySink()))
    }

    func testVersionsMapNodeByNode() throws {
        let v1 = try plan(#"n: "count()""#)
        XCTAssertEqual(StateMapping(from: v1, to: v1).nodes.map(\.outcome), [.restored, .restored])
        let changed = StateMapping(from: v1, to: try plan(#"n: "count()", t: "sum(v)""#))
        XCTAssertEqual(changed.nodes.first { $0.node == "agg" }?.outcome, .incompatible)
        XCTAssertTrue(changed.refusal(snapshot: "x", allowNonRestoredState: true)!.message.contains("state layout changed"))
        XCTAssertEqual(changed.refusal(snapshot: "x", allowNonRestoredState: true)?.code, .snapshotIncompatible)
        let renamed = StateMapping(from: v1, to: try plan(#"n: "count()""#, id: "agg2", extraSource: true))
        XCTAssertEqual(renamed.nodes.map { "\($0.node):\($0.outcome.rawValue)" }, ["agg:dropped", "agg2:new", "s:restored", "s2:new"])
        XCTAssertTrue(renamed.refusal(snapshot: "x", allowNonRestoredState: false)!.message.contains("'agg'"))
        XCTAssertEqual(renamed.refusal(snapshot: "x", allowNonRestoredState: false)?.code, .snapshotIncompatible)
        XCTAssertNil(renamed.refusal(snapshot: "x", allowNonRestoredState: true))
        let regrouped = StateMapping(from: v1, to: try plan(#"n: "count()""#, maxParallelism: 32))
        XCTAssertEqual(regrouped.maxParallelismChange, .init(from: 16, to: 32))
        XCTAssertEqual(regrouped.refusal(snapshot: "x", allowNonRestoredState: true)?.code, .snapshotIncompatible)
    }
}
