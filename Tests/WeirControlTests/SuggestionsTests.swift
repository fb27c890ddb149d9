import XCTest
import WeirCore
@testable import WeirControl

/// The suggestion catalogue is keyed by error code; phrases count only for an
/// error whose code is missing or generic.
final class SuggestionsTests: XCTestCase {
    func entry(_ code: String) throws -> String {
        try XCTUnwrap(Suggestions.catalogue.first { $0.code == code }?.suggestion, code)
    }

    func testEachCodeHasOneEntry() {
        let codes = Suggestions.catalogue.map(\.code)
        XCTAssertEqual(codes.count, Set(codes).count)
    }

    func testTheNewCodesFindTheirSuggestionByCodeAlone() throws {
        let expected: [(String, String)] = [
            ("state_dir_full", "the disk holding the job's state directory is full"),
            ("state_dir_unwritable", "the job's state directory is not writable by the server's user"),
            ("snapshot_corrupt", "the snapshot is corrupt: run again from an earlier snapshot"),
            ("snapshot_incompatible", "the snapshot does not fit this version of the job"),
            ("offsets_removed", "the topic no longer holds the records the snapshot would resume from"),
            ("process_killed", "the run's process was killed (signal 9"),
        ]
        for (code, start) in expected {
            let s = Suggestions.suggest(code: code, message: "something went wrong")
            XCTAssertTrue(s?.hasPrefix(start) ?? false, "\(code): \(String(describing: s))")
            XCTAssertEqual(s, try entry(code))
        }
    }

    func testTheEnginesCodesAreTheCatalogues() {
        XCTAssertEqual(WeirError.Code.stateDirFull.rawValue, "state_dir_full")
        XCTAssertEqual(WeirError.Code.stateDirUnwritable.rawValue, "state_dir_unwritable")
        XCTAssertEqual(WeirError.Code.snapshotCorrupt.rawValue, "snapshot_corrupt")
        XCTAssertEqual(WeirError.Code.snapshotIncompatible.rawValue, "snapshot_incompatible")
        XCTAssertEqual(WeirError.Code.offsetsRemoved.rawValue, "offsets_removed")
        XCTAssertTrue(WeirError.Code.snapshotIncompatible.isPermanent, "a restart restores the same snapshot")
    }

    func testDiskAndCorruptionSuggestionsWinOverTheEnginesOwn() throws {
        let given = "restore from an earlier snapshot (weir snapshot list --state-dir /tmp/x)"
        XCTAssertEqual(Suggestions.suggest(code: "snapshot_corrupt", message: "x", given: given), try entry("snapshot_corrupt"))
        XCTAssertEqual(Suggestions.suggest(code: "state_dir_full", message: "x", given: given), try entry("state_dir_full"))
        XCTAssertEqual(Suggestions.suggest(code: "state_dir_unwritable", message: "x", given: given), try entry("state_dir_unwritable"))
        // The others keep the engine's, which knows the case better.
        XCTAssertEqual(Suggestions.suggest(code: "snapshot_incompatible", message: "x", given: "keep the keys"), "keep the keys")
        XCTAssertEqual(Suggestions.suggest(code: "offsets_removed", message: "x", given: "restore a newer one"), "restore a newer one")
        XCTAssertEqual(Suggestions.suggest(code: "offsets_removed", message: "x", given: ""), try entry("offsets_removed"))
    }

    func testASpecificCodeIsNotOverruledByAPhrase() throws {
        // A message quoting an OS or server text does not change what the error is.
        XCTAssertEqual(Suggestions.suggest(code: "mysql_unreachable", message: "connect: permission denied"), try entry("mysql_unreachable"))
        XCTAssertEqual(Suggestions.suggest(code: "topic_missing", message: "connection refused"), try entry("topic_missing"))
        XCTAssertEqual(Suggestions.suggest(code: "table_missing", message: "disk full? no"), try entry("table_missing"))
        XCTAssertNil(Suggestions.suggest(code: "drill_failed", message: "no space left on device"), "no entry, nothing given")
    }

    func testPhrasesAreTheFallbackForGenericOrMissingCodes() throws {
        XCTAssertEqual(Suggestions.code("io_error", message: "/s/a.state: cannot write: No space left on device"), "state_dir_full")
        XCTAssertEqual(Suggestions.code("io_error", message: "cannot create: Permission denied"), "state_dir_unwritable")
        XCTAssertEqual(Suggestions.code("io_error", message: "checksum mismatch (expected crc32 0a): the file is corrupt"), "snapshot_corrupt")
        XCTAssertEqual(Suggestions.code("invalid_spec", message: "holds state for node 'x' that the job no longer has"), "invalid_spec")
        XCTAssertEqual(Suggestions.code(nil, message: "holds state for node 'x' that the job no longer has"), "snapshot_incompatible")
        XCTAssertEqual(Suggestions.code("kafka_error", message: "start offset 3 is below the partition's low watermark 9"), "offsets_removed")
        XCTAssertEqual(Suggestions.code("kafka_error", message: "broker transport failure"), "broker_unreachable")
        XCTAssertEqual(Suggestions.code("kafka_error", message: "something else"), "kafka_error")
        XCTAssertNil(Suggestions.code(nil, message: "something else"))
        // An io_error (e.g. from an older weir run) still gets the override.
        XCTAssertEqual(Suggestions.suggest(code: "io_error", message: "write: ENOSPC", given: "see the CLI"), try entry("state_dir_full"))
        XCTAssertEqual(Suggestions.suggest(code: "io_error", message: "cannot create file"), try entry("io_error"))
        XCTAssertEqual(Suggestions.suggest(code: nil, message: "sink timed out"), nil)
    }

    func testSignals() throws {
        XCTAssertEqual(Suggestions.forSignal(9), try entry("process_killed"))
        XCTAssertTrue(Suggestions.forSignal(15).contains("terminated by signal 15"))
    }
}
