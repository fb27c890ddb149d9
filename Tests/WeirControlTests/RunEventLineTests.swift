import Foundation
import XCTest
@testable import WeirControl

/// The events file's contract: what `weir run` writes is what the control
/// plane reads, with the field names people and scripts rely on, and a
/// reader that survives lines it does not understand.
final class RunEventLineTests: XCTestCase {
    let time = "2026-12-02T18:52:32.123Z"

    /// One event of every kind, with every optional field set.
    static let everyKind: [RunEventLine.Event] = [
        .starting(.init(pid: 4242)),
        .restorePreview(.init(preview: .object(["snapshot": .string("chk-4"), "problems": .array([]),
                                                "predicted": .object(["stateBytes": .int(1_000_000), "decodeBytesPerSecond": .double(2.5e7 + 0.25),
                                                                      "stateLoadedMillis": .double(40.5), "firstRecordMillis": .double(140.5)])]))),
        .running(.init(run: "run-1", restoredFrom: "chk-4")),
        .running(.init(run: "run-2", restoredFrom: nil)),
        .firstRecord,
        .startupTimes(.init(stateLoadedMs: 10.5, sourcesPositionedMs: 20.25, firstRecordMs: 57)),
        .startupTimes(.init(stateLoadedMs: 10.5, sourcesPositionedMs: 20.25, firstRecordMs: nil)),
        .splitsAdded(.init(node: "events", subtask: 1, splits: ["t/4", "t/5"])),
        .restoreAdjusted(.init(node: "events", dropped: ["old/0"], newPartitions: ["t/2"], newTopics: ["u"])),
        .snapshot(.init(id: "stop-3", kind: "stop", checkpoint: 3, bytes: 4096, durationMs: 12.5,
                        offsets: ["events": ["t/0": 250, "t/1": 100]], sizeBytes: 4096, createdAt: "2026-12-02T18:52:33Z")),
        .snapshot(.init(id: "chk-2", kind: "checkpoint", checkpoint: 2, bytes: 10, durationMs: 1)),
        .snapshotFailed(.init(checkpoint: 5, kind: "savepoint", reason: "timed out")),
        .savepointFailed(.init(reason: "sink timed out")),
        .stopFailed(.init(reason: "sink timed out")),
        .restarting(.init(attempt: 1, of: 3, error: "mysql_unreachable")),
        .metrics(.init(recordsIn: 100, recordsOut: 90, decodeErrors: 1, lateRecords: 2, lag: ["t/0": 5, "t/1": 0],
                       checkpoints: 3, lastCheckpointMs: 8.5, lastCheckpointBytes: 2048, restarts: 0, backpressureMs: 1.25,
                       rejectedRecords: 4, nodes: ["events": .init(recordsIn: 100, recordsOut: 99, backpressureMs: 0.5,
                                                                    rejected: ["malformed": 1])])),
        .finished,
        .stopped(.init(snapshot: "stop-3")),
        .cancelled,
        .failed(.init(code: "state_dir_full", subject: "/s/chk-3/a.state",
                      message: "/s/chk-3/a.state: cannot write: No space left on device", suggestion: "free space")),
        .failed(.init(code: "invalid_spec", message: "job.yaml is not a valid job spec")),
    ]

    func testEveryKindRoundTripsThroughTheWritersEncoding() throws {
        for event in Self.everyKind {
            let line = RunEventLine(time: time, event)
            let data = try line.encoded()
            XCTAssertFalse(data.contains(0x0A), "one line per event: \(event)")
            XCTAssertEqual(RunEventLine.decode(data), line, String(decoding: data, as: UTF8.self))
            XCTAssertEqual(RunEventLine(json: line.json), line, "through the JSON the lifecycle keeps")
        }
        // Every kind is in the list above.
        let kinds = Set(Self.everyKind.map(\.kind))
        XCTAssertEqual(kinds, ["starting", "restore_preview", "running", "first_record", "startup_times", "splits_added",
                               "restore_adjusted", "snapshot", "snapshot_failed", "savepoint_failed", "stop_failed",
                               "restarting", "metrics", "finished", "stopped", "cancelled", "failed"])
    }

    func testTheLineOnDiskKeepsItsFieldNames() throws {
        func object(_ e: RunEventLine.Event) throws -> [String: Any] {
            try XCTUnwrap(JSONSerialization.jsonObject(with: RunEventLine(time: time, e).encoded()) as? [String: Any])
        }
        let snapshot = try object(Self.everyKind[9])
        XCTAssertEqual(Set(snapshot.keys), ["event", "time", "id", "kind", "checkpoint", "bytes", "durationMs", "offsets",
                                            "sizeBytes", "createdAt"])
        XCTAssertEqual(snapshot["event"] as? String, "snapshot")
        XCTAssertEqual(snapshot["time"] as? String, time)
        XCTAssertEqual((snapshot["offsets"] as? [String: [String: Int]])?["events"]?["t/0"], 250)
        // No first record yet: an explicit null, as before.
        XCTAssertTrue(try object(Self.everyKind[6])["firstRecordMs"] is NSNull)
        XCTAssertEqual(Set(try object(.finished).keys), ["event", "time"])
        let failed = try object(Self.everyKind[19])
        XCTAssertEqual(failed["code"] as? String, "state_dir_full")
        XCTAssertEqual(Set(failed.keys), ["event", "time", "code", "subject", "message", "suggestion"])
        let metrics = try object(Self.everyKind[15])
        XCTAssertEqual(Set(metrics.keys), ["event", "time", "recordsIn", "recordsOut", "decodeErrors", "lateRecords", "lag",
                                           "checkpoints", "lastCheckpointMs", "lastCheckpointBytes", "restarts",
                                           "backpressureMs", "rejectedRecords", "nodes"])
        let text = String(decoding: try RunEventLine(time: time, Self.everyKind[7]).encoded(), as: UTF8.self)
        XCTAssertTrue(text.contains(#""splits":["t/4","t/5"]"#), "slashes are not escaped: \(text)")
    }

    func testTheMetricsTheLifecycleKeepsAreReadByName() throws {
        // What the Prometheus endpoint reads from a run's latest metrics event.
        let json = RunEventLine(time: time, Self.everyKind[15]).json
        XCTAssertEqual(json["recordsIn"]?.double, 100)
        XCTAssertEqual(json["backpressureMs"]?.double, 1.25)
        XCTAssertEqual(json["lag"]?["t/0"]?.double, 5)
        XCTAssertEqual(json["nodes"]?["events"]?["recordsOut"]?.double, 99)
        XCTAssertEqual(json["nodes"]?["events"]?["rejected"]?["malformed"]?.double, 1)
    }

    func testTheRestorePreviewsPredictionIsTyped() {
        guard case .restorePreview(let p) = Self.everyKind[1] else { return XCTFail() }
        XCTAssertEqual(p.predicted, .init(stateBytes: 1_000_000, stateLoadedMillis: 40.5, firstRecordMillis: 140.5))
        XCTAssertNil(RunEventLine.RestorePreview(preview: .object(["snapshot": .string("chk-4")])).predicted)
    }

    func testOnlyTheEndingsAreFinal() {
        XCTAssertEqual(Self.everyKind.filter(\.isFinal).map(\.kind), ["finished", "stopped", "cancelled", "failed", "failed"])
    }

    // MARK: Reading a file

    func testAnUnknownKindIsKeptByNameAndAMalformedLineIsSkipped() {
        XCTAssertEqual(RunEventLine.decode(Data(#"{"event":"telemetry","time":"t","x":[1]}"#.utf8)),
                       RunEventLine(time: "t", .unknown("telemetry")))
        for garbage in ["", "not json", "[1,2]", "{}", #"{"event":"snapshot","time":"t"}"#, #"{"event":7,"time":"t"}"#,
                        #"{"event":"failed","time":"t","code":"io_error"}"#, #"{"event":"stopped"}"#, "\u{0}\u{1}{"] {
            XCTAssertNil(RunEventLine.decode(Data(garbage.utf8)), garbage)
        }
    }

    func testTheTailSkipsWhatItCannotReadAndWaitsForTheRestOfALine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("weir-events-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("events.jsonl")
        let running = RunEventLine(time: time, .running(.init(run: "run-1", restoredFrom: nil)))
        let stopped = RunEventLine(time: time, .stopped(.init(snapshot: "stop-3")))
        let stoppedText = String(decoding: try stopped.encoded(), as: UTF8.self)
        var text = String(decoding: try running.encoded(), as: UTF8.self) + "\n"
        text += "garbage {\n\n" + #"{"event":"from_the_future","time":"t"}"# + "\n"
        text += String(stoppedText.prefix(10))
        try Data(text.utf8).write(to: file)

        var tail = EventTail(path: file.path)
        XCTAssertEqual(tail.readNew(), [running, RunEventLine(time: "t", .unknown("from_the_future"))])
        XCTAssertEqual(tail.readNew(), [], "the last line is not complete yet")
        let h = try FileHandle(forWritingTo: file)
        h.seekToEndOfFile()
        h.write(Data((stoppedText.dropFirst(10) + "\n").utf8))
        try h.close()
        XCTAssertEqual(tail.readNew(), [stopped])
        var missing = EventTail(path: dir.appendingPathComponent("none").path)
        XCTAssertEqual(missing.readNew(), [], "no file yet")
    }
}
