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

/// Partitions found while a job runs: every subtask decides alone who reads one.
final class SplitOwnerTests: XCTestCase {
    func testEveryNewSplitHasExactlyOneOwnerAndTheyAreSpread() {
        let names = (0..<64).map { "events/\($0)" } + (0..<64).map { "other/\($0)" }
        for p in 1...5 {
            let owners = (0..<p).map { SplitOwner(subtask: $0, parallelism: p) }
            var perSubtask = Array(repeating: 0, count: p)
            for n in names {
                let mine = owners.indices.filter { owners[$0].owns(newSplit: n) }
                XCTAssertEqual(mine.count, 1, "\(n) at parallelism \(p)")
                perSubtask[mine[0]] += 1
            }
            // No subtask is left out or takes most of them (the hash spreads 128 names).
            XCTAssertGreaterThan(perSubtask.min()!, 128 / p / 3, "parallelism \(p): \(perSubtask)")
        }
        XCTAssertTrue(names.allSatisfy(SplitOwner.all.owns(newSplit:)))
    }

    func testTheDecisionIsStableAcrossProcesses() {
        // FNV-1a of the name, not Swift's Hasher (seeded per process): every subtask process agrees.
        let fnv = "events/2".utf8.reduce(UInt64(0xcbf2_9ce4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
        XCTAssertTrue(SplitOwner(subtask: Int(fnv % 3), parallelism: 3).owns(newSplit: "events/2"))
    }
}
