import Foundation
import XCTest
@testable import WeirControl

/// The live job view is built from a run's own events: rates over the last
/// metrics interval, watermarks, the checkpoint history (completed, failed)
/// and restarts, in graph order, bounded however long the run lives.
final class LiveViewTests: XCTestCase {
    typealias Metrics = RunEventLine.Metrics

    func metrics(_ read: Int, out: Int, backpressureMs: Double = 0, watermark: Int64? = nil) -> Metrics {
        Metrics(recordsIn: read, recordsOut: out, decodeErrors: 0, lateRecords: 0, lag: ["t/1": 5, "t/0": 7], checkpoints: 1,
                lastCheckpointMs: 12, lastCheckpointBytes: 4096, restarts: 0, backpressureMs: backpressureMs, rejectedRecords: 0,
                nodes: ["src": .init(recordsIn: read, recordsOut: read, backpressureMs: 0, rejected: [:], watermarkMs: watermark),
                        "sink": .init(recordsIn: read, recordsOut: out, backpressureMs: backpressureMs, rejected: ["overflow": 2])])
    }

    func liveRun(_ events: [(String, RunEventLine.Event)]) -> JobLifecycle.LiveRun {
        let row = RunRow(id: "run-1", job: "j", version: 3, pid: 1, status: .running, startedAt: "2026-12-03T10:00:00.000Z",
                         endedAt: nil, restoredFrom: "chk-2", eventsPath: "/dev/null", logPath: "/dev/null", outcome: nil, outcomeMessage: nil)
        var lr = JobLifecycle.LiveRun(row: row, isChild: true)
        for (time, e) in events {
            switch e {
            case .metrics(let m): lr.history.sampled(previous: lr.metrics, at: time); lr.metrics = m
            case .snapshot(let s): lr.history.completed(s, at: time)
            case .snapshotFailed(let f): lr.history.failed(checkpoint: f.checkpoint, kind: f.kind, reason: f.reason, at: time)
            case .restarting(let r): lr.history.restarted(r, at: time)
            default: break
            }
        }
        return lr
    }

    func testRatesAreOverTheLastIntervalAndNodesFollowTheGraph() throws {
        let lr = liveRun([("2026-12-03T10:00:02.000Z", .metrics(metrics(1000, out: 400))),
                          ("2026-12-03T10:00:04.500Z", .metrics(metrics(6000, out: 900, backpressureMs: 250, watermark: 1_700_000_000_000)))])
        let v = Views.live(job: "j", run: lr, ended: false, order: ["src", "sink"])
        XCTAssertEqual(v.nodes.map(\.id), ["src", "sink"])
        XCTAssertEqual(try XCTUnwrap(v.intervalMs), 2500, accuracy: 0.001)
        let src = v.nodes[0], sink = v.nodes[1]
        XCTAssertEqual(try XCTUnwrap(src.inPerSecond), 2000, accuracy: 1e-9)   // (6000 - 1000) / 2.5 s
        XCTAssertEqual(try XCTUnwrap(sink.outPerSecond), 200, accuracy: 1e-9)  // (900 - 400) / 2.5 s
        XCTAssertEqual(try XCTUnwrap(sink.backpressureMsPerSecond), 100, accuracy: 1e-9)
        XCTAssertEqual(src.watermarkMs, 1_700_000_000_000)
        XCTAssertNil(sink.watermarkMs)
        XCTAssertEqual(sink.rejected.additionalProperties, ["overflow": 2])
        XCTAssertEqual(v.partitions.map(\.partition), ["t/0", "t/1"])
        XCTAssertEqual(v.totals?.value1.recordsIn, 6000)
        XCTAssertEqual(v.run?.value1.restoredFrom, "chk-2")
        XCTAssertEqual(v.sampledAt, "2026-12-03T10:00:04.500Z")
    }

    func testNoRateAfterOneSampleOrWhenCountersWentBack() {
        let one = Views.live(job: "j", run: liveRun([("2026-12-03T10:00:02.000Z", .metrics(metrics(1000, out: 400)))]), ended: false, order: [])
        XCTAssertNil(one.intervalMs)
        XCTAssertTrue(one.nodes.allSatisfy { $0.inPerSecond == nil && $0.outPerSecond == nil })
        // An in-process restart starts the counters again: no negative rate.
        let restarted = Views.live(job: "j", run: liveRun([("2026-12-03T10:00:02.000Z", .metrics(metrics(5000, out: 900))),
                                                           ("2026-12-03T10:00:04.000Z", .metrics(metrics(100, out: 10)))]),
                                   ended: false, order: [])
        XCTAssertTrue(restarted.nodes.allSatisfy { $0.inPerSecond == nil })
    }

    func testCheckpointHistoryNewestFirstWithFailuresAndReasonsAndBounded() {
        var events: [(String, RunEventLine.Event)] = [
            ("2026-12-03T10:00:01.000Z", .snapshot(.init(id: "chk-1", kind: "checkpoint", checkpoint: 1, bytes: 100, durationMs: 12.5, sizeBytes: 4096))),
            ("2026-12-03T10:00:02.000Z", .snapshotFailed(.init(checkpoint: 2, kind: "checkpoint", reason: "timed out after 60000 ms"))),
            ("2026-12-03T10:00:03.000Z", .restarting(.init(attempt: 1, of: 3, error: "mysql_unreachable: mysql://app:s3cret@db/x"))),
        ]
        var v = Views.live(job: "j", run: liveRun(events), ended: true, order: [])
        XCTAssertTrue(v.ended)
        XCTAssertEqual(v.checkpoints.map(\.checkpoint), [2, 1])
        XCTAssertEqual(v.checkpoints[0].status, .failed)
        XCTAssertEqual(v.checkpoints[0].reason, "timed out after 60000 ms")
        XCTAssertNil(v.checkpoints[0].durationMs)
        XCTAssertEqual(v.checkpoints[1].status, .completed)
        XCTAssertEqual(v.checkpoints[1].bytes, 4096)
        XCTAssertEqual(v.checkpoints[1].snapshot, "chk-1")
        XCTAssertEqual(v.restarts.map(\.attempt), [1])
        XCTAssertFalse(v.restarts[0].error.contains("s3cret"), "passwords never reach the view")
        for i in 3...200 {
            events.append(("2026-12-03T10:01:00.000Z", .snapshot(.init(id: "chk-\(i)", kind: "checkpoint", checkpoint: Int64(i), bytes: 1, durationMs: 1))))
        }
        v = Views.live(job: "j", run: liveRun(events), ended: false, order: [])
        XCTAssertEqual(v.checkpoints.count, LiveHistory.maxCheckpoints)
        XCTAssertEqual(v.checkpoints.first?.checkpoint, 200)
    }

    func testNoRunYet() {
        let v = Views.live(job: "j", run: nil, ended: true, order: [])
        XCTAssertNil(v.run)
        XCTAssertTrue(v.nodes.isEmpty && v.checkpoints.isEmpty)
    }
}
