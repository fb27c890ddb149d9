import XCTest
@testable import WeirCore
@testable import WeirEngine

/// Barrier alignment and watermark tracking as values.
final class BarrierAlignerTests: XCTestCase {
    let b5 = Barrier(id: 5, kind: .checkpoint), b6 = Barrier(id: 6, kind: .checkpoint)

    func replayed(_ o: BarrierAligner<String>.BarrierOutcome?) -> (Barrier?, [String])? {
        switch o {
        case .aligned(let b, let r)?: return (b, r.map(\.1))
        case .superseded(_, let r)?: return (nil, r.map(\.1))
        default: return nil
        }
    }

    func testOneInputAlignsAtOnce() {
        var a = BarrierAligner<String>(inputs: 1)
        XCTAssertEqual(replayed(a.barrier(b5, input: 0))?.0, b5)
        XCTAssertEqual(a.lastAligned, 5)
    }

    func testABlockedInputIsHeldBackUntilEveryInputDeliveredTheBarrier() {
        var a = BarrierAligner<String>(inputs: 2)
        guard case .waiting = a.barrier(b5, input: 0) else { return XCTFail() }
        XCTAssertFalse(a.admit(0, "after-5 on 0"), "input 0 is past the barrier: held back")
        XCTAssertTrue(a.admit(1, "before-5 on 1"), "input 1 has not reached it: processed")
        XCTAssertFalse(a.admit(0, "more on 0"))
        let r = replayed(a.barrier(b5, input: 1))
        XCTAssertEqual(r?.0, b5)
        XCTAssertEqual(r?.1, ["after-5 on 0", "more on 0"], "replayed in arrival order")
        XCTAssertTrue(a.admit(0, "free again"))
    }

    func testAnEndedInputDoesNotHoldAnAlignmentBack() {
        var a = BarrierAligner<String>(inputs: 2)
        _ = a.barrier(b5, input: 0)
        XCTAssertEqual(replayed(a.ended(input: 1))?.0, b5)
        var c = BarrierAligner<String>(inputs: 2)
        XCTAssertNil(c.ended(input: 1))
        XCTAssertEqual(replayed(c.barrier(b5, input: 0))?.0, b5, "one live input left")
    }

    func testANewerBarrierSupersedesOneThatCanNeverAlign() {
        // Input 1's source skipped checkpoint 5 (aborted before it injected it) and sent 6.
        var a = BarrierAligner<String>(inputs: 2)
        _ = a.barrier(b5, input: 0)
        XCTAssertFalse(a.admit(0, "x"))
        guard case .superseded(let old, let replay) = a.barrier(b6, input: 1) else { return XCTFail() }
        XCTAssertEqual(old, b5)
        XCTAssertEqual(replay.map(\.1), ["x"], "what 5 held back precedes 6 on its input: released")
        XCTAssertEqual(a.aligning, b6)
        XCTAssertTrue(a.admit(0, "y"), "input 0 has not delivered 6 yet")
        XCTAssertFalse(a.admit(1, "z"))
        XCTAssertEqual(replayed(a.barrier(b6, input: 0))?.0, b6)
    }

    func testStaleBarriersAreDropped() {
        var a = BarrierAligner<String>(inputs: 2)
        _ = a.barrier(b6, input: 0)
        guard case .stale = a.barrier(b5, input: 1) else { return XCTFail("older than the one aligning") }
        _ = a.barrier(b6, input: 1)
        guard case .stale = a.barrier(b5, input: 0) else { return XCTFail("older than the one aligned") }
    }
}

final class WatermarkTrackerTests: XCTestCase {
    func testTheCombinedWatermarkIsTheMinimumOverLiveInputs() {
        var t = WatermarkTracker(inputs: 2)
        XCTAssertEqual(t.watermark(100, input: 0), .none, "input 1 has no watermark yet")
        XCTAssertEqual(t.watermark(50, input: 1), .advance(50))
        XCTAssertEqual(t.watermark(40, input: 1), .none, "watermarks never go back")
        XCTAssertEqual(t.watermark(200, input: 1), .advance(100))
    }

    func testIdleInputsDoNotHoldItBackAndAllIdleMeansIdle() {
        var t = WatermarkTracker(inputs: 2)
        _ = t.watermark(10, input: 0)
        XCTAssertEqual(t.idle(input: 1), .advance(10))
        XCTAssertEqual(t.idle(input: 0), .idle)
        XCTAssertEqual(t.idle(input: 0), .none, "idle is said once")
        XCTAssertEqual(t.records(input: 1), .none, "active again, but no watermark yet on it")
        XCTAssertEqual(t.watermark(30, input: 1), .advance(30))
    }

    func testEndedInputsAreIgnored() {
        var t = WatermarkTracker(inputs: 2)
        _ = t.watermark(10, input: 0)
        XCTAssertEqual(t.ended(input: 1), .advance(10))
        XCTAssertEqual(t.ended(input: 0), .none, "all ended: neither a watermark nor idle")
    }
}

final class PartitionWatermarkTrackerTests: XCTestCase {
    let ms: UInt64 = 1_000_000

    func testTheWatermarkIsTheSlowestPartitionMinusTheOutOfOrderness() {
        var t = PartitionWatermarkTracker(restored: [.min, .min], maxOutOfOrdernessMillis: 10, idleTimeoutMillis: 100)
        t.observe(0, timestamp: 1_000)
        XCTAssertEqual(t.step(elapsedNanos: ms), .none, "partition 1 has nothing yet")
        t.observe(1, timestamp: 500)
        XCTAssertEqual(t.step(elapsedNanos: ms), .advance(489))
    }

    func testAPartitionAddedWhileRunningHoldsTheWatermarkUntilItHasRecordsOrTurnsIdle() {
        var t = PartitionWatermarkTracker(restored: [.min], maxOutOfOrdernessMillis: 0, idleTimeoutMillis: 100)
        t.observe(0, timestamp: 1_000)
        XCTAssertEqual(t.step(elapsedNanos: ms), .advance(999))
        t.addPartition()
        t.observe(0, timestamp: 2_000)
        XCTAssertEqual(t.step(elapsedNanos: ms), .none, "the new partition has no event time yet")
        t.observe(1, timestamp: 1_500)
        XCTAssertEqual(t.step(elapsedNanos: ms), .advance(1_499))
        // Another one that stays empty and caught up is idle after the timeout and stops holding it back.
        t.addPartition()
        t.setLag(2, false)
        t.observe(0, timestamp: 3_000); t.observe(1, timestamp: 3_000)
        XCTAssertEqual(t.step(elapsedNanos: 60 * ms), .none)
        t.observe(0, timestamp: 3_000); t.observe(1, timestamp: 3_000)
        XCTAssertEqual(t.step(elapsedNanos: 60 * ms), .advance(2_999))
    }

    func testAPartitionWithUnreadRecordsIsNeverIdleHoweverLongItIsSilent() {
        var t = PartitionWatermarkTracker(restored: [.min, .min], maxOutOfOrdernessMillis: 0, idleTimeoutMillis: 100)
        t.observe(0, timestamp: 5_000); t.observe(1, timestamp: 100)
        _ = t.step(elapsedNanos: ms)
        t.setLag(0, false); t.setLag(1, true)  // partition 1's broker is slow: records are waiting
        for _ in 0..<50 { t.observe(0, timestamp: 5_000); XCTAssertEqual(t.step(elapsedNanos: 50 * ms), .none) }
        XCTAssertFalse(t.isIdle)
        XCTAssertEqual(t.emitted, 99, "held back by the lagging partition")
    }

    func testAStallCountsAsOneCappedStep() {
        var t = PartitionWatermarkTracker(restored: [.min], maxOutOfOrdernessMillis: 0, idleTimeoutMillis: 300)
        t.observe(0, timestamp: 100)
        _ = t.step(elapsedNanos: ms)
        t.setLag(0, false)
        XCTAssertEqual(t.step(elapsedNanos: 10_000 * ms), .none, "a 10 s stall adds at most 150 ms of quiet")
        XCTAssertEqual(t.step(elapsedNanos: 100 * ms), .none)
        XCTAssertEqual(t.step(elapsedNanos: 100 * ms), .idle, "150 + 100 + 100 ≥ 300 ms of quiet at the end")
    }

    func testAllIdleAdvancesToTheFurthestPartitionFirst() {
        var t = PartitionWatermarkTracker(restored: [.min, .min], maxOutOfOrdernessMillis: 0, idleTimeoutMillis: 100)
        t.observe(0, timestamp: 1_000); t.observe(1, timestamp: 200)
        XCTAssertEqual(t.step(elapsedNanos: ms), .advance(199))
        t.setLag(0, false); t.setLag(1, false)
        XCTAssertEqual(t.step(elapsedNanos: 60 * ms), .none)
        XCTAssertEqual(t.step(elapsedNanos: 60 * ms), .advanceThenIdle(999), "120 ms of quiet ≥ the 100 ms timeout")
        t.observe(1, timestamp: 1_500)
        XCTAssertEqual(t.step(elapsedNanos: ms), .advance(1_499), "partition 1 is live again; partition 0 stays idle")
        XCTAssertFalse(t.isIdle)
    }
}

final class EndOfInputTrackerTests: XCTestCase {
    let ms: UInt64 = 1_000_000

    func testOnlyQuietTimeAtTheEndCountsAndAStallIsOneCappedStep() {
        var t = EndOfInputTracker()
        XCTAssertEqual(t.polled(got: 0, allAtEnd: false, elapsedNanos: 500 * ms), .live, "records left to read")
        XCTAssertEqual(t.polled(got: 0, allAtEnd: true, elapsedNanos: 100 * ms), .atEnd(nanos: 100 * ms))
        XCTAssertEqual(t.polled(got: 0, allAtEnd: true, elapsedNanos: 60_000 * ms), .atEnd(nanos: 250 * ms),
                       "a minute-long stall adds at most 150 ms")
    }

    func testRecordsArrivingResetTheCount() {
        var t = EndOfInputTracker()
        _ = t.polled(got: 0, allAtEnd: true, elapsedNanos: 100 * ms)
        XCTAssertEqual(t.polled(got: 3, allAtEnd: nil, elapsedNanos: ms), .live, "a consumer that keeps up only looks at the end")
        XCTAssertEqual(t.atEndNanos, 0)
        XCTAssertEqual(t.polled(got: 5, allAtEnd: nil, elapsedNanos: ms), .none, "said once")
        XCTAssertEqual(t.polled(got: 2, allAtEnd: true, elapsedNanos: ms), .atEnd(nanos: 0), "at the end, but records just came")
    }
}
