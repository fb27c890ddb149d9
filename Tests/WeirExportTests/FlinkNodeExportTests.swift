import XCTest
import WeirCore
@testable import WeirExport

/// The script's text for each node kind: Kafka sources, filter, select,
/// union, continuous and windowed aggregates, MySQL sinks, the SET
/// statements and the statement set.
final class FlinkNodeExportTests: XCTestCase {
    typealias F = ExportFixture

    func testTheKafkaSourceIsATableWithTheDeclaredSchemaAndTheWatermarkWeirComputes() throws {
        let script = try F.export(F.job(F.sink("events")))
        let table = F.statement(script, startingWith: "CREATE TEMPORARY TABLE `events__kafka`")
        for line in ["  `user_id` BIGINT,", "  `amount` BIGINT,", "  `name` STRING,", "  `price` DOUBLE,", "  `ok` BOOLEAN,",
                     "'connector' = 'kafka'", "'topic' = 'events'", "'properties.bootstrap.servers' = '127.0.0.1:9092'",
                     "'properties.group.id' = 'weir-export-t-events'", "'properties.isolation.level' = 'read_committed'",
                     "'scan.startup.mode' = 'earliest-offset'", "'format' = 'json'", "'json.ignore-parse-errors' = 'true'",
                     "'scan.topic-partition-discovery.interval' = '10000 ms'"] {
            XCTAssertTrue(table.contains(line), "missing \(line) in\n\(table)")
        }
        // Weir's watermark: highest event time - maxOutOfOrderness - 1 ms.
        XCTAssertTrue(table.contains("WATERMARK FOR `__weir_rowtime` AS `__weir_rowtime` - INTERVAL '2.001' SECOND"), table)
        // A record Weir rejects never moves the watermark.
        XCTAssertTrue(table.contains("`__weir_rowtime` AS CASE WHEN `user_id` IS NOT NULL AND `amount` IS NOT NULL AND `ts` IS NOT NULL AND `ts` >= -62135596800000 AND `ts` <= 253402300799999 THEN TO_TIMESTAMP_LTZ(`ts`, 3) ELSE TO_TIMESTAMP_LTZ(-62135596800000, 3) END"), table)
        XCTAssertFalse(table.contains("'topic' = 'events;"))
    }

    func testTheSourceViewDropsWhatWeirsDecoderRejects() throws {
        let script = try F.export(F.job(F.sink("events")))
        XCTAssertEqual(F.statement(script, startingWith: "CREATE TEMPORARY VIEW `events`"), """
        CREATE TEMPORARY VIEW `events` AS
        SELECT `user_id`, `amount`, `ts`, `name`, `price`, `ok`, `ts` AS `__weir_ts`, `__weir_rowtime`
        FROM `events__kafka`
        WHERE `user_id` IS NOT NULL AND `amount` IS NOT NULL AND `ts` IS NOT NULL AND `ts` >= -62135596800000 AND `ts` <= 253402300799999;
        """)
        let plain = try F.export(F.job(F.sink("events"), eventTime: nil))
        XCTAssertTrue(plain.contains("FROM `events__kafka`\nWHERE `user_id` IS NOT NULL AND `amount` IS NOT NULL AND `ts` IS NOT NULL;"), plain)
        XCTAssertFalse(plain.contains("WATERMARK"))
        XCTAssertFalse(plain.contains("SET 'table.exec.source.idle-timeout'"))
    }

    func testADoubleEventTimeIsFloored() throws {
        let script = try F.export(F.job(F.sink("events"), schema: "{ user_id: int, ts: double }"))
        XCTAssertTrue(script.contains("THEN TO_TIMESTAMP_LTZ(CAST(FLOOR(`ts`) AS BIGINT), 3)"), script)
        XCTAssertTrue(script.contains("CAST(FLOOR(`ts`) AS BIGINT) AS `__weir_ts`"), script)
    }

    func testOnErrorFailMakesParseErrorsFailTheJob() throws {
        let script = try F.export(F.job(F.sink("events"), top: "onError: fail"))
        XCTAssertTrue(script.contains("'json.ignore-parse-errors' = 'false'"), script)
    }

    func testSeveralTopicsAreOneTableEachUnitedInTheSourceView() throws {
        let yaml = F.job(F.sink("events")).replacingOccurrences(of: "topic: events", with: "topics: [a, b]")
        let script = try F.export(yaml)
        XCTAssertTrue(script.contains("CREATE TEMPORARY TABLE `events__kafka__a`"))
        XCTAssertTrue(script.contains("CREATE TEMPORARY TABLE `events__kafka__b`"))
        XCTAssertTrue(script.contains("'properties.group.id' = 'weir-export-t-events-b'"))
        let view = F.statement(script, startingWith: "CREATE TEMPORARY VIEW `events`")
        XCTAssertTrue(view.contains("FROM `events__kafka__a`"), view)
        XCTAssertTrue(view.contains("\nUNION ALL\n"), view)
        XCTAssertTrue(view.contains("FROM `events__kafka__b`"), view)
    }

    func testKafkaPropertiesWithAJavaEquivalentAreMapped() throws {
        let script = try F.export(F.job(F.sink("events"), kafkaExtra: """
        properties: { fetch.wait.max.ms: "100", isolation.level: read_uncommitted, security.protocol: plaintext }
        partitionDiscovery: off
        """))
        XCTAssertTrue(script.contains("'properties.fetch.max.wait.ms' = '100'"), script)
        XCTAssertTrue(script.contains("'properties.isolation.level' = 'read_uncommitted'"), script)
        XCTAssertFalse(script.contains("'properties.isolation.level' = 'read_committed'"), script)
        XCTAssertTrue(script.contains("'properties.security.protocol' = 'PLAINTEXT'"), script)
        XCTAssertTrue(script.contains("'scan.topic-partition-discovery.interval' = '0 ms'"), script)
    }

    func testStartOffsetsOfTheSpec() throws {
        let latest = try F.export(F.job(F.sink("events"), kafkaExtra: "startOffsets: latest"))
        XCTAssertTrue(latest.contains("'scan.startup.mode' = 'latest-offset'"))
        let specific = try F.export(F.job(F.sink("events"), kafkaExtra: "startOffsets: { \"events/1\": 7, \"0\": 3 }"))
        XCTAssertTrue(specific.contains("'scan.startup.mode' = 'specific-offsets'"))
        XCTAssertTrue(specific.contains("'scan.startup.specific-offsets' = 'partition:0,offset:3;partition:1,offset:7'"), specific)
    }

    func testFilterIsAViewWithWhere() throws {
        let script = try F.export(F.job("""
          - id: valid
            inputs: [events]
            filter: "amount > 0"

        """ + F.sink("valid")))
        XCTAssertEqual(F.statement(script, startingWith: "CREATE TEMPORARY VIEW `valid`"), """
        CREATE TEMPORARY VIEW `valid` AS
        SELECT `user_id`, `amount`, `ts`, `name`, `price`, `ok`, `__weir_ts`, `__weir_rowtime`
        FROM `events`
        WHERE (`amount` > 0);
        """)
    }

    func testSelectAsAListAndAsAMappingCarriesTheEventTimeColumns() throws {
        let script = try F.export(F.job("""
          - id: pick
            inputs: [events]
            select: [user_id, amount]
          - id: calc
            inputs: [pick]
            select: { who: user_id, twice: "amount * 2" }

        """ + F.sink("calc")))
        XCTAssertEqual(F.statement(script, startingWith: "CREATE TEMPORARY VIEW `pick`"), """
        CREATE TEMPORARY VIEW `pick` AS
        SELECT `user_id` AS `user_id`,
               `amount` AS `amount`,
               `__weir_ts`, `__weir_rowtime`
        FROM `events`;
        """)
        XCTAssertTrue(script.contains("(`amount` * CAST(2 AS BIGINT)) AS `twice`"), script)
        let sink = F.statement(script, startingWith: "CREATE TEMPORARY TABLE `out`")
        XCTAssertTrue(sink.contains("  `who` BIGINT,\n  `twice` BIGINT\n"), sink)
    }

    func testUnionIsUnionAll() throws {
        let script = try F.export(F.job("""
          - id: big
            inputs: [events]
            filter: "amount > 10"
          - id: small
            inputs: [events]
            filter: "amount < 2"
          - id: both
            inputs: [big, small]
            union: true

        """ + F.sink("both")))
        XCTAssertEqual(F.statement(script, startingWith: "CREATE TEMPORARY VIEW `both`"), """
        CREATE TEMPORARY VIEW `both` AS
        SELECT `user_id`, `amount`, `ts`, `name`, `price`, `ok`, `__weir_ts`, `__weir_rowtime` FROM `big`
        UNION ALL
        SELECT `user_id`, `amount`, `ts`, `name`, `price`, `ok`, `__weir_ts`, `__weir_rowtime` FROM `small`;
        """)
    }

    func testANodeWithSeveralInputsReadsTheirUnion() throws {
        let script = try F.export(F.job("""
          - id: big
            inputs: [events]
            filter: "amount > 10"

        """ + F.sink("big, events")))
        XCTAssertTrue(script.contains("CREATE TEMPORARY VIEW `out__inputs` AS\nSELECT"), script)
        XCTAssertTrue(script.contains("SELECT `user_id`, `amount`, `ts`, `name`, `price`, `ok` FROM `out__inputs`;"), script)
    }

    func testAContinuousAggregateIsAGroupBy() throws {
        let script = try F.export(F.job("""
          - id: totals
            inputs: [events]
            keyBy: [user_id]
            aggregate: { cnt: "count()", total: "sum(amount)" }

        """ + F.sink("totals", mode: "upsert", key: "[user_id]")))
        XCTAssertEqual(F.statement(script, startingWith: "CREATE TEMPORARY VIEW `totals`"), """
        CREATE TEMPORARY VIEW `totals` AS
        SELECT `user_id` AS `user_id`,
               COUNT(*) AS `cnt`,
               COALESCE(SUM(`amount`), CAST(0 AS BIGINT)) AS `total`
        FROM `events`
        GROUP BY `user_id`;
        """)
    }

    func testAnAggregateWithoutKeysHasNoGroupBy() throws {
        let script = try F.export(F.job("""
          - id: all
            inputs: [events]
            keyBy: []
            aggregate: { cnt: "count()" }
          - id: one
            inputs: [all]
            select: { id: "1", cnt: cnt }

        """ + F.sink("one", mode: "upsert", key: "[id]")))
        let view = F.statement(script, startingWith: "CREATE TEMPORARY VIEW `all`")
        XCTAssertEqual(view, "CREATE TEMPORARY VIEW `all` AS\nSELECT COUNT(*) AS `cnt`\nFROM `events`;")
    }

    func testATumblingWindowGivesWeirsEpochMillisecondBounds() throws {
        let script = try F.export(F.job("""
          - id: w
            inputs: [events]
            keyBy: [user_id]
            window: { tumbling: 10s }
            aggregate: { cnt: "count()", mean: "avg(amount)" }

        """ + F.sink("w", mode: "upsert", key: "[user_id, window_start]")))
        XCTAssertEqual(F.statement(script, startingWith: "CREATE TEMPORARY VIEW `w`"), """
        CREATE TEMPORARY VIEW `w` AS
        SELECT `user_id`, `__weir_window_start` AS `window_start`, `__weir_window_end` AS `window_end`, `cnt`, `mean`
        FROM (
          SELECT `user_id` AS `user_id`,
                 (MIN(`__weir_ts`) - MOD(MOD(MIN(`__weir_ts`), 10000) + 10000, 10000)) AS `__weir_window_start`,
                 (MIN(`__weir_ts`) - MOD(MOD(MIN(`__weir_ts`), 10000) + 10000, 10000)) + 10000 AS `__weir_window_end`,
                 COUNT(*) AS `cnt`,
                 AVG(CAST(`amount` AS DOUBLE)) AS `mean`
          FROM TABLE(TUMBLE(TABLE `events`, DESCRIPTOR(`__weir_rowtime`), INTERVAL '10' SECOND))
          GROUP BY `window_start`, `window_end`, `user_id`
        );
        """)
        let sink = F.statement(script, startingWith: "CREATE TEMPORARY TABLE `out`")
        XCTAssertTrue(sink.contains("  `window_start` BIGINT,\n  `window_end` BIGINT,"), sink)
        XCTAssertTrue(sink.contains("PRIMARY KEY (`user_id`, `window_start`) NOT ENFORCED"), sink)
    }

    func testASlidingWindowIsAHopWithBoundsFromItsFirstRecord() throws {
        let script = try F.export(F.job("""
          - id: w
            inputs: [events]
            keyBy: [user_id]
            window: { sliding: 1m, slide: 20s }
            aggregate: { cnt: "count()" }

        """ + F.sink("w")))
        let view = F.statement(script, startingWith: "CREATE TEMPORARY VIEW `w`")
        XCTAssertTrue(view.contains("FROM TABLE(HOP(TABLE `events`, DESCRIPTOR(`__weir_rowtime`), INTERVAL '20' SECOND, INTERVAL '1' MINUTE))"), view)
        XCTAssertTrue(view.contains("((MIN(`__weir_ts`) - MOD(MOD(MIN(`__weir_ts`), 20000) + 20000, 20000)) - CAST(TIMESTAMPDIFF(SECOND, CAST(`window_start` AS TIMESTAMP(3)), CAST(MIN(`__weir_rowtime`) AS TIMESTAMP(3))) / 20 AS BIGINT) * 20000) AS `__weir_window_start`"), view)
        XCTAssertTrue(view.contains(") + 60000 AS `__weir_window_end`"), view)
    }

    func testASessionWindowMergesExactlyTheRecordsWeirMerges() throws {
        let script = try F.export(F.job("""
          - id: s
            inputs: [events]
            keyBy: [user_id, name]
            window: { session: 30s }
            aggregate: { cnt: "count()" }

        """ + F.sink("s")))
        let view = F.statement(script, startingWith: "CREATE TEMPORARY VIEW `s`")
        // Flink merges sessions that touch, Weir only overlapping ones: a gap 1 ms shorter.
        XCTAssertTrue(view.contains("FROM TABLE(SESSION(TABLE `events` PARTITION BY `user_id`, `name`, DESCRIPTOR(`__weir_rowtime`), INTERVAL '29.999' SECOND))"), view)
        XCTAssertTrue(view.contains("MIN(`__weir_ts`) AS `__weir_window_start`"), view)
        XCTAssertTrue(view.contains("MAX(`__weir_ts`) + 30000 AS `__weir_window_end`"), view)
        XCTAssertTrue(view.contains("GROUP BY `window_start`, `window_end`, `user_id`, `name`"), view)
        XCTAssertTrue(script.contains("Flink's session windows fire 1 ms earlier"))
    }

    func testAGlobalSessionWindowHasNoPartition() throws {
        let script = try F.export(F.job("""
          - id: s
            inputs: [events]
            keyBy: []
            window: { session: 1m }
            aggregate: { cnt: "count()" }

        """ + F.sink("s")))
        XCTAssertTrue(script.contains("SESSION(TABLE `events`, DESCRIPTOR(`__weir_rowtime`), INTERVAL '59.999' SECOND)"), script)
        XCTAssertTrue(script.contains("GROUP BY `window_start`, `window_end`\n"), script)
    }

    func testTheMySQLSinkIsAJDBCTableAndEveryInsertIsInOneStatementSet() throws {
        let script = try F.export(F.job(F.sink("events", url: "mysql://app:pa'ss@db.example:3307/ana%20lytics") + F.sink("events", id: "copy")))
        let sink = F.statement(script, startingWith: "CREATE TEMPORARY TABLE `out`")
        for line in ["'connector' = 'jdbc'", "'url' = 'jdbc:mysql://db.example:3307/ana%20lytics?rewriteBatchedStatements=true'",
                     "'table-name' = 't_out'", "'username' = 'app'", "'password' = 'pa''ss'", "'sink.buffer-flush.max-rows' = '4000'"] {
            XCTAssertTrue(sink.contains(line), "missing \(line) in\n\(sink)")
        }
        XCTAssertTrue(sink.contains("-- The password of the spec's MySQL URL: this script holds it; keep the file private.\n  'password'"), sink)
        XCTAssertFalse(sink.contains("PRIMARY KEY"), "append mode has no key")
        XCTAssertTrue(script.hasSuffix("""
        EXECUTE STATEMENT SET
        BEGIN
        INSERT INTO `out` (`user_id`, `amount`, `ts`, `name`, `price`, `ok`)
        SELECT `user_id`, `amount`, `ts`, `name`, `price`, `ok` FROM `events`;
        INSERT INTO `copy` (`user_id`, `amount`, `ts`, `name`, `price`, `ok`)
        SELECT `user_id`, `amount`, `ts`, `name`, `price`, `ok` FROM `events`;
        END;

        """), script)
        XCTAssertEqual(script.components(separatedBy: "\nEXECUTE STATEMENT SET\nBEGIN\n").count, 2)
    }

    func testASinkWithoutPasswordAndAnIPv6HostAndItsBatchSize() throws {
        let script = try F.export(F.job(F.sink("events", url: "mysql://root@[::1]:3306/db", extra: "  batchSize: 250")))
        // Flink's JDBC table takes username and password both or neither: without a password the user is in the URL.
        XCTAssertTrue(script.contains("'url' = 'jdbc:mysql://[::1]:3306/db?user=root&rewriteBatchedStatements=true'"), script)
        XCTAssertFalse(script.contains("'username'"))
        XCTAssertTrue(script.contains("'sink.buffer-flush.max-rows' = '250'"), script)
        XCTAssertFalse(script.contains("'password'"))
    }

    func testAnUpsertKeyIsMatchedToTheFieldsCaseInsensitively() throws {
        let script = try F.export(F.job(F.sink("events", mode: "upsert", key: "[USER_ID]")))
        XCTAssertTrue(script.contains("PRIMARY KEY (`user_id`) NOT ENFORCED"), script)
    }

    func testTheJobsSettingsAreSetStatements() throws {
        let script = try F.export(F.job(F.sink("events", mode: "upsert", key: "[user_id]"), top: """
        parallelism: 4
        maxParallelism: 256
        checkpoint: { interval: 5s, timeout: 30s }
        restart: { attempts: 3, delay: 2s }
        """))
        for line in ["SET 'pipeline.name' = 't';", "SET 'parallelism.default' = '4';", "SET 'pipeline.max-parallelism' = '256';",
                     "SET 'table.local-time-zone' = 'UTC';", "SET 'execution.checkpointing.interval' = '5000 ms';",
                     "SET 'execution.checkpointing.timeout' = '30000 ms';", "SET 'restart-strategy.type' = 'fixed-delay';",
                     "SET 'restart-strategy.fixed-delay.attempts' = '3';", "SET 'restart-strategy.fixed-delay.delay' = '2000 ms';",
                     "SET 'table.exec.source.idle-timeout' = '5000 ms';", "SET 'table.exec.sink.not-null-enforcer' = 'DROP';"] {
            XCTAssertTrue(script.contains("\n" + line + "\n"), "missing \(line)")
        }
        let bare = try F.export(F.job(F.sink("events"), top: "onError: fail"))
        XCTAssertTrue(bare.contains("SET 'restart-strategy.type' = 'none';"))
        XCTAssertTrue(bare.contains("-- The spec has no checkpoint interval"))
        XCTAssertFalse(bare.contains("execution.checkpointing.interval"))
        XCTAssertFalse(bare.contains("SET 'table.exec.sink.not-null-enforcer'"), "no upsert sink")
        let failing = try F.export(F.job(F.sink("events", mode: "upsert", key: "[user_id]"), top: "onError: fail"))
        XCTAssertTrue(failing.contains("SET 'table.exec.sink.not-null-enforcer' = 'ERROR';"))
    }

    func testTheIdleTimeoutOfSeveralSourcesIsTheShortest() throws {
        let yaml = F.job("""
          - id: more
            kafka:
              bootstrap: 127.0.0.1:9092
              topic: more
              schema: \(F.schema)
              eventTime: { field: ts, maxOutOfOrderness: 0, idleTimeout: 1s }
          - id: both
            inputs: [events, more]
            union: true

        """ + F.sink("both"))
        let script = try F.export(yaml)
        XCTAssertTrue(script.contains("SET 'table.exec.source.idle-timeout' = '1000 ms';"), script)
        XCTAssertTrue(script.contains("-- The sources' idleTimeouts differ (events: 5000 ms, more: 1000 ms)"), script)
        XCTAssertTrue(script.contains("AS `__weir_rowtime` - INTERVAL '0.001' SECOND"), script)
    }

    func testTheHeaderSaysWhereTheScriptCameFromAndWhatIsNotCarriedOver() throws {
        let script = try F.export(F.job(F.sink("events", extra: "onError: deadLetter\ndeadLetter: { table: dl }")),
                                  FlinkExportOptions(note: "version 3 of job t, snapshot stop-15"))
        XCTAssertTrue(script.hasPrefix("-- Flink SQL script exported by `weir export --target flink-sql` from Weir job 't'."))
        XCTAssertTrue(script.contains("-- Exported from: version 3 of job t, snapshot stop-15."))
        XCTAssertTrue(script.contains("EXACTLY-ONCE ON FLINK"))
        XCTAssertTrue(script.contains("(at-least-once)"))
        XCTAssertTrue(script.contains("An append sink writes the replayed rows again: duplicates"))
        XCTAssertTrue(script.contains("- Sink 'out': its dead-letter table dl is not written."))
        // Every line before the SET statements is a comment.
        let head = script.components(separatedBy: "\n\n-- The spec has no checkpoint interval").first ?? ""
        XCTAssertTrue(head.split(separator: "\n").allSatisfy { $0.hasPrefix("--") }, head)
    }

    func testOddIdentifiersAreQuoted() throws {
        let yaml = F.job("""
          - id: per-user.v2
            inputs: [events]
            select: { "we`ird name": amount, "with space": user_id }

        """ + F.sink("per-user.v2", id: "out-1"), schema: "{ user_id: int, amount: int, ts: int }")
        let script = try F.export(yaml)
        XCTAssertTrue(script.contains("CREATE TEMPORARY VIEW `per-user.v2` AS"), script)
        XCTAssertTrue(script.contains("`amount` AS `we``ird name`"), script)
        XCTAssertTrue(script.contains("CREATE TEMPORARY TABLE `out-1` ("), script)
        XCTAssertTrue(script.contains("INSERT INTO `out-1` (`we``ird name`, `with space`)"), script)
    }

    func testTheScriptIsTheSameEveryTime() throws {
        let yaml = F.job(F.sink("events", mode: "upsert", key: "[user_id]"))
        XCTAssertEqual(try F.export(yaml), try F.export(yaml))
    }
}
