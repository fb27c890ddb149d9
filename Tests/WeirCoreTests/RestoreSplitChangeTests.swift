import XCTest
@testable import WeirCore

/// What a restore reports when a source's splits changed since the snapshot.
final class RestoreSplitChangeTests: XCTestCase {
    func testDroppedTopicsNewPartitionsAndNewTopicsAreTold() throws {
        let c = try XCTUnwrap(RestoreSplitChange(snapshot: ["a/0": 5, "a/1": 6, "b/0": 1, "b/1": 2],
                                                 now: ["a/0", "a/1", "a/2", "c/0", "c/1"]))
        XCTAssertEqual(c.dropped, ["b/0", "b/1"])
        XCTAssertEqual(c.newPartitions, ["a/2"])
        XCTAssertEqual(c.newTopics, ["c"])
        XCTAssertEqual(c.description, "restore: snapshot offsets of splits this job no longer reads are dropped: b/0, b/1; "
                       + "partitions new since the snapshot are read from earliest: a/2; topics new to the job start from their startOffsets: c")
    }

    func testNothingChangedSaysNothing() {
        XCTAssertNil(RestoreSplitChange(snapshot: ["a/0": 5], now: ["a/0"]))
    }
}
