import XCTest
import WeirCore
@testable import WeirExport

/// Start offsets from a snapshot, end offsets of a bounded run, and every
/// refusal: the node (or option) named, and the reason.
final class FlinkOffsetsAndRefusalTests: XCTestCase {
    typealias F = ExportFixture

    // MARK: Offsets

    func testASnapshotsOffsetsAreSpecificStartOffsets() throws {
        let script = try F.export(F.job(F.sink("events")),
                                  FlinkExportOptions(startOffsets: ["events": ["events/0": 1200, "events/1": 900]]))
        XCTAssertTrue(script.contains("'scan.startup.mode' = 'specific-offsets'"))
        XCTAssertTrue(script.contains("'scan.startup.specific-offsets' = 'partition:0,offset:1200;partition:1,offset:900'"), script)
        XCTAssertTrue(script.contains("-- Start: the snapshot's offsets (2 partitions)"))
    }

    func testASnapshotWinsOverTheSpecAndATopicItDoesNotListStartsFromTheSpec() throws {
        let yaml = F.job(F.sink("events"), kafkaExtra: "startOffsets: latest").replacingOccurrences(of: "topic: events", with: "topics: [a, b]")
        let script = try F.export(yaml, FlinkExportOptions(startOffsets: ["events": ["a/3": 5, "gone/0": 9]]))
        let a = F.statement(script, startingWith: "CREATE TEMPORARY TABLE `events__kafka__a`")
        XCTAssertTrue(a.contains("'scan.startup.specific-offsets' = 'partition:3,offset:5'"), a)
        let b = F.statement(script, startingWith: "CREATE TEMPORARY TABLE `events__kafka__b`")
        XCTAssertTrue(b.contains("'scan.startup.mode' = 'latest-offset'"), b)
        XCTAssertFalse(script.contains("gone"), "offsets of a topic the source no longer reads are ignored, as in a Weir restore")
    }

    func testEndOffsetsBoundTheRun() throws {
        let script = try F.export(F.job(F.sink("events")),
                                  FlinkExportOptions(startOffsets: ["events": ["events/0": 10]], endOffsets: ["events/0": 1200, "events/1": 900]))
        XCTAssertTrue(script.contains("'scan.bounded.mode' = 'specific-offsets'"))
        XCTAssertTrue(script.contains("'scan.bounded.specific-offsets' = 'partition:0,offset:1200;partition:1,offset:900'"), script)
        XCTAssertFalse(script.contains("scan.topic-partition-discovery"), "a bounded run discovers no partitions")
        XCTAssertTrue(script.contains("-- Bounded: each listed partition stops before its end offset"))
    }

    func testEndOffsetsThatLeaveATopicOutAreRefused() {
        let yaml = F.job(F.sink("events")).replacingOccurrences(of: "topic: events", with: "topics: [a, b]")
        let r = F.refusal(yaml, FlinkExportOptions(endOffsets: ["a/0": 5]))
        XCTAssertEqual(r?.subject, "end offsets")
        XCTAssertTrue(r?.reason.contains("topic 'b'") ?? false, r?.reason ?? "")
    }

    func testAnEndOffsetBeforeTheStartIsRefused() {
        let r = F.refusal(F.job(F.sink("events")), FlinkExportOptions(startOffsets: ["events": ["events/0": 50]], endOffsets: ["events/0": 10]))
        XCTAssertEqual(r?.subject, "end offsets")
        XCTAssertTrue(r?.reason.contains("events/0 ends at 10, before its start offset 50") ?? false, r?.reason ?? "")
    }

    func testEndOffsetsOfATopicNoSourceReadsAreRefused() {
        let r = F.refusal(F.job(F.sink("events")), FlinkExportOptions(endOffsets: ["evnts/0": 10]))
        XCTAssertEqual(r?.subject, "end offsets")
        XCTAssertTrue(r?.reason.contains("'evnts'") ?? false, r?.reason ?? "")
        XCTAssertEqual(F.refusal(F.job(F.sink("events")), FlinkExportOptions(endOffsets: ["events": 10]))?.subject, "end offsets")
    }

    func testASnapshotOfAnotherSourceIsRefused() {
        let r = F.refusal(F.job(F.sink("events")), FlinkExportOptions(startOffsets: ["clicks": ["events/0": 1]]))
        XCTAssertEqual(r?.subject, "snapshot")
        XCTAssertTrue(r?.reason.contains("source 'clicks'") ?? false, r?.reason ?? "")
    }

    // MARK: Refusals of sources and sinks

    func testASourceWithoutSchemaIsRefused() {
        let yaml = F.job(F.sink("events")).replacingOccurrences(of: "      schema: \(F.schema)\n", with: "")
        let r = F.refusal(yaml)
        XCTAssertEqual(r?.subject, "events")
        XCTAssertTrue(r?.reason.contains("declares no schema") ?? false, r?.reason ?? "")
        XCTAssertTrue(r?.hint?.contains("schema:") ?? false)
    }

    func testAnAnyFieldIsRefused() {
        let r = F.refusal(F.job(F.sink("events"), schema: "{ user_id: int, blob: any, ts: int }"))
        XCTAssertEqual(r?.subject, "events")
        XCTAssertTrue(r?.reason.contains("'blob' is declared 'any'") ?? false, r?.reason ?? "")
    }

    func testALibrdkafkaPropertyWithoutJavaEquivalentIsRefused() {
        let r = F.refusal(F.job(F.sink("events"), kafkaExtra: "properties: { queued.min.messages: \"1000\" }"))
        XCTAssertEqual(r?.subject, "events")
        XCTAssertTrue(r?.reason.contains("'queued.min.messages'") ?? false, r?.reason ?? "")
        XCTAssertTrue(r?.reason.contains("fetch.wait.max.ms") ?? false, "the refusal lists what is mapped")
    }

    func testASocketURLIsRefused() {
        let r = F.refusal(F.job(F.sink("events", url: "mysql://root@localhost/db?socket=/run/mysqld/mysqld.sock")))
        XCTAssertEqual(r?.subject, "out")
        XCTAssertTrue(r?.reason.contains("Unix socket /run/mysqld/mysqld.sock") ?? false, r?.reason ?? "")
    }

    func testUpsertSinksWithDifferentOnErrorAreRefused() {
        let yaml = F.job(F.sink("events", mode: "upsert", key: "[user_id]", extra: "onError: fail")
                         + F.sink("events", id: "other", mode: "upsert", key: "[user_id]"))
        let r = F.refusal(yaml)
        XCTAssertEqual(r?.subject, "out")
        XCTAssertTrue(r?.reason.contains("once for the whole job") ?? false, r?.reason ?? "")
    }

    // MARK: Refusals of the graph

    let totals = """
      - id: totals
        inputs: [events]
        keyBy: [user_id]
        aggregate: { cnt: "count()" }

    """

    func testAppendingTheUpdatesOfAContinuousAggregateIsRefused() {
        let r = F.refusal(F.job(totals + F.sink("totals")))
        XCTAssertEqual(r?.subject, "out")
        XCTAssertTrue(r?.reason.contains("continuous aggregate 'totals'") ?? false, r?.reason ?? "")
    }

    func testFilteringTheUpdatesOfAContinuousAggregateIsRefused() {
        let r = F.refusal(F.job(totals + """
          - id: many
            inputs: [totals]
            filter: "cnt > 10"

        """ + F.sink("many", mode: "upsert", key: "[user_id]")))
        XCTAssertEqual(r?.subject, "many")
        XCTAssertTrue(r?.reason.contains("retracted") ?? false, r?.reason ?? "")
    }

    func testAnAggregateOfAnAggregateIsRefused() {
        let windows = F.job("""
          - id: w
            inputs: [events]
            keyBy: [user_id]
            window: { tumbling: 10s }
            aggregate: { cnt: "count()" }
          - id: ww
            inputs: [w]
            keyBy: []
            window: { tumbling: 1m }
            aggregate: { n: "count()" }

        """ + F.sink("ww"))
        XCTAssertEqual(F.refusal(windows)?.subject, "ww")
        let onUpdates = F.refusal(F.job(totals + """
          - id: again
            inputs: [totals]
            keyBy: []
            aggregate: { n: "count()" }

        """ + F.sink("again", mode: "upsert", key: "[n]")))
        XCTAssertEqual(onUpdates?.subject, "again")
        XCTAssertTrue(onUpdates?.reason.contains("updates of continuous aggregate 'totals'") ?? false, onUpdates?.reason ?? "")
    }

    func testAUnionOfDifferentTypesIsRefused() {
        let r = F.refusal(F.job("""
          - id: a
            inputs: [events]
            select: { v: amount }
          - id: b
            inputs: [events]
            select: { v: price }
          - id: both
            inputs: [a, b]
            union: true

        """ + F.sink("both")))
        XCTAssertEqual(r?.subject, "both")
        XCTAssertTrue(r?.reason.contains("field 'v' is int in 'a' and double in 'b'") ?? false, r?.reason ?? "")
    }

    func testASubSecondSlideIsRefused() {
        let r = F.refusal(F.job("""
          - id: w
            inputs: [events]
            keyBy: []
            window: { sliding: 2s, slide: 500ms }
            aggregate: { cnt: "count()" }

        """ + F.sink("w")))
        XCTAssertEqual(r?.subject, "w")
        XCTAssertTrue(r?.reason.contains("slides by 500 ms") ?? false, r?.reason ?? "")
    }

    func testASessionGapOfOneMillisecondIsRefused() {
        let r = F.refusal(F.job("""
          - id: s
            inputs: [events]
            keyBy: []
            window: { session: 1ms }
            aggregate: { cnt: "count()" }

        """ + F.sink("s")))
        XCTAssertEqual(r?.subject, "s")
    }

    func testAWindowLongerThanAFlinkIntervalIsRefused() {
        let r = F.refusal(F.job("""
          - id: w
            inputs: [events]
            keyBy: []
            window: { tumbling: 1000d }
            aggregate: { cnt: "count()" }

        """ + F.sink("w")))
        XCTAssertEqual(r?.subject, "w")
        XCTAssertTrue(r?.reason.contains("999 days") ?? false, r?.reason ?? "")
    }

    func testAWindowOverAFieldNamedLikeFlinksWindowColumnsIsRefused() {
        let r = F.refusal(F.job("""
          - id: w
            inputs: [events]
            keyBy: []
            window: { tumbling: 1s }
            aggregate: { cnt: "count()" }

        """ + F.sink("w"), schema: "{ window_time: int, ts: int }"))
        XCTAssertEqual(r?.subject, "w")
        XCTAssertTrue(r?.reason.contains("'window_time'") ?? false, r?.reason ?? "")
    }

    func testGroupingByAFieldMixingIntsAndDoublesIsRefused() {
        let r = F.refusal(F.job("""
          - id: s
            inputs: [events]
            select: { p: "coalesce(price, amount)", ts: ts }
          - id: a
            inputs: [s]
            keyBy: [p]
            aggregate: { cnt: "count()" }

        """ + F.sink("a", mode: "upsert", key: "[p]")))
        XCTAssertEqual(r?.subject, "a")
        XCTAssertTrue(r?.reason.contains("groups by 'p'") ?? false, r?.reason ?? "")
    }

    func testAFieldNamedLikeTheScriptsOwnColumnsIsRefused() {
        let r = F.refusal(F.job(F.sink("events"), schema: "{ __weir_ts: int, ts: int }"))
        XCTAssertEqual(r?.subject, "events")
        XCTAssertTrue(r?.reason.contains("'__weir_'") ?? false, r?.reason ?? "")
    }

    func testAnExpressionRefusalNamesTheNodeAndTheExpression() {
        let r = F.refusal(F.job("""
          - id: money
            inputs: [events]
            select: { cents: "round(price, 2)" }

        """ + F.sink("money")))
        XCTAssertEqual(r?.subject, "money")
        XCTAssertTrue(r?.reason.hasPrefix("'round(price, 2)' rounds a double to 2 digits") ?? false, r?.reason ?? "")
        XCTAssertEqual(r?.description, "money: \(r?.reason ?? "")")
    }

    func testAnInvalidSpecIsASpecErrorNotARefusal() {
        XCTAssertThrowsError(try FlinkSQLExporter.script(forSpec: "name: t\nnodes: []\n")) { error in
            XCTAssertTrue(error is SpecErrors, "\(error)")
        }
    }

    // MARK: SQL spelling

    func testIntervalsUseTheLargestUnitThatFitsFlinksTwoDigits() {
        XCTAssertEqual(FlinkSQL.interval(10_000), "INTERVAL '10' SECOND")
        XCTAssertEqual(FlinkSQL.interval(120_000), "INTERVAL '2' MINUTE")
        XCTAssertEqual(FlinkSQL.interval(2_001), "INTERVAL '2.001' SECOND")
        XCTAssertEqual(FlinkSQL.interval(1), "INTERVAL '0.001' SECOND")
        XCTAssertEqual(FlinkSQL.interval(86_400_000), "INTERVAL '1' DAY")
        XCTAssertEqual(FlinkSQL.interval(120_001), "INTERVAL '0 00:02:00.001' DAY(3) TO SECOND(3)")
        XCTAssertEqual(FlinkSQL.interval(101 * 60_000), "INTERVAL '0 01:41:00.000' DAY(3) TO SECOND(3)")
        XCTAssertNil(FlinkSQL.interval(1000 * 86_400_000))
    }

    func testIdentifiersAndStrings() {
        XCTAssertEqual(FlinkSQL.ident("a`b"), "`a``b`")
        XCTAssertEqual(FlinkSQL.quoted("it's"), "'it''s'")
        XCTAssertEqual(FlinkSQL.string("tab\there", bare: true), "CONCAT('tab', CHR(9), 'here')")
        XCTAssertEqual(FlinkSQL.string(""), "CAST('' AS STRING)")
        XCTAssertEqual(FlinkSQL.double(-2.5), "(-2.5E0)")
        XCTAssertNil(FlinkSQL.double(.infinity))
    }
}
