import XCTest
@testable import WeirCore
@testable import WeirEngine

/// The checkpoint protocol as a value: every outcome, with no threads, clocks or storage.
final class CheckpointCoordinatorStateMachineTests: XCTestCase {
    typealias Machine = CheckpointCoordinatorStateMachine<String>
    let src = TaskID(node: "src", subtask: 0), agg = TaskID(node: "agg", subtask: 0), sink = TaskID(node: "sink", subtask: 0)
    let ms: UInt64 = 1_000_000

    func machine(interval: UInt64? = 100, timeout: UInt64 = 50, untilIdle: UInt64? = nil) -> Machine {
        Machine(.init(tasks: [src, agg, sink], sourceTasks: [src], intervalNanos: interval.map { $0 * ms }, timeoutNanos: timeout * ms,
                      untilIdleNanos: untilIdle.map { $0 * ms }, firstCheckpointID: 7), now: 0)
    }

    func barriers(_ actions: [Machine.Action]) -> [Barrier] {
        actions.compactMap { if case .injectBarrier(let b) = $0 { return b } else { return nil } }
    }
    func persists(_ actions: [Machine.Action]) -> [Int64] {
        actions.compactMap { if case .persist(let b, _, _) = $0 { return b.id } else { return nil } }
    }
    func completes(_ actions: [Machine.Action]) -> [Int64] {
        actions.compactMap { if case .complete(let b, _) = $0 { return b.id } else { return nil } }
    }
    func aborts(_ actions: [Machine.Action]) -> [String] {
        actions.compactMap { if case .abort(_, let r) = $0 { return r } else { return nil } }
    }

    /// Acks every task for checkpoint `id` at `now`; returns the actions of the last one.
    func ackAll(_ m: inout Machine, _ id: Int64, now: UInt64) -> [Machine.Action] {
        var last: [Machine.Action] = []
        for t in [src, agg, sink] { last = m.ack(checkpoint: id, from: t, "\(t)", now: now).1 }
        return last
    }

    func testPeriodicTriggerWaitsForTheInterval() {
        var m = machine()
        XCTAssertEqual(barriers(m.tick(now: 99 * ms)), [])
        XCTAssertEqual(m.nextDeadline(), 100 * ms)
        XCTAssertEqual(barriers(m.tick(now: 100 * ms)), [Barrier(id: 7, kind: .checkpoint)])
        XCTAssertEqual(m.pendingBarrier, Barrier(id: 7, kind: .checkpoint))
        XCTAssertEqual(m.nextDeadline(), 150 * ms + 1, "the timeout is the next deadline")
    }

    func testCompletesOnlyAfterEveryTaskAcknowledgedAndPersisted() {
        var m = machine()
        _ = m.tick(now: 100 * ms)
        XCTAssertEqual(m.ack(checkpoint: 7, from: src, "offsets", now: 101 * ms).0, .accepted)
        XCTAssertEqual(m.ack(checkpoint: 7, from: agg, "state", now: 102 * ms).1.count, 0, "one task is still missing")
        XCTAssertEqual(m.missingAcks, [sink])
        let (outcome, actions) = m.ack(checkpoint: 7, from: sink, "xid", now: 103 * ms)
        XCTAssertEqual(outcome, .accepted)
        guard case .persist(_, let acks, _)? = actions.first else { return XCTFail("\(actions)") }
        XCTAssertEqual(acks, [src: "offsets", agg: "state", sink: "xid"], "the acks are handed over by task")
        XCTAssertNil(m.pendingBarrier, "sources inject nothing while persisting")
        XCTAssertEqual(completes(m.persisted(checkpoint: 7, snapshotID: "chk-7", now: 110 * ms)), [7])
        XCTAssertEqual(m.completedID, 7)
    }

    func testDuplicateUnknownAndLateAcksAreExplicit() {
        var m = machine()
        _ = m.tick(now: 100 * ms)
        XCTAssertEqual(m.ack(checkpoint: 7, from: src, "a", now: 101 * ms).0, .accepted)
        XCTAssertEqual(m.ack(checkpoint: 7, from: src, "again", now: 102 * ms).0, .duplicate)
        XCTAssertEqual(m.ack(checkpoint: 8, from: agg, "future", now: 102 * ms).0, .unknown, "checkpoint 8 was never triggered")
        XCTAssertEqual(m.ack(checkpoint: 7, from: TaskID(node: "ghost", subtask: 0), "x", now: 102 * ms).0, .unknown, "no such task")
        XCTAssertEqual(aborts(m.tick(now: 151 * ms)).count, 1)
        XCTAssertEqual(m.ack(checkpoint: 7, from: agg, "b", now: 152 * ms).0, .late, "checkpoint 7 timed out")
        XCTAssertEqual(m.ack(checkpoint: 6, from: agg, "c", now: 152 * ms).0, .late)
    }

    func testATimeoutAbortsAndNamesTheTasksThatAcknowledged() {
        var m = machine()
        _ = m.tick(now: 100 * ms)
        _ = m.ack(checkpoint: 7, from: src, "a", now: 101 * ms)
        XCTAssertEqual(aborts(m.tick(now: 150 * ms)), [], "not overdue yet")
        let reason = aborts(m.tick(now: 151 * ms))
        XCTAssertEqual(reason.count, 1)
        XCTAssertTrue(reason[0].contains("2 of 3 tasks did not acknowledge (acknowledged: src#0)"), reason[0])
        XCTAssertNil(m.pendingBarrier)
        XCTAssertEqual(barriers(m.tick(now: 151 * ms)), [Barrier(id: 8, kind: .checkpoint)], "the run goes on with the next id")
    }

    func testTheLastAckAfterTheDeadlineIsLate() {
        var m = machine()
        _ = m.tick(now: 100 * ms)
        _ = m.ack(checkpoint: 7, from: src, "a", now: 101 * ms)
        _ = m.ack(checkpoint: 7, from: agg, "b", now: 101 * ms)
        let actions = m.ack(checkpoint: 7, from: sink, "c", now: 160 * ms).1
        XCTAssertEqual(persists(actions), [])
        XCTAssertEqual(aborts(actions).count, 1, "late is late, even when it completes the set")
    }

    func testAFailedPersistAbortsAndTheNextCheckpointFollows() {
        var m = machine()
        _ = m.tick(now: 100 * ms)
        XCTAssertEqual(persists(ackAll(&m, 7, now: 101 * ms)), [7])
        let a = m.persistFailed(checkpoint: 7, reason: "disk full", now: 102 * ms)
        XCTAssertEqual(aborts(a), ["the snapshot could not be stored: disk full"])
        XCTAssertEqual(m.completedID, -1)
        XCTAssertEqual(barriers(m.tick(now: 202 * ms)), [Barrier(id: 8, kind: .checkpoint)])
    }

    func testARequestWaitsForTheCheckpointInFlightThenGoesFirst() {
        var m = machine()
        _ = m.tick(now: 100 * ms)
        XCTAssertEqual(barriers(m.request(.savepoint, now: 101 * ms)), [], "one checkpoint at a time")
        _ = ackAll(&m, 7, now: 102 * ms)
        _ = m.persisted(checkpoint: 7, snapshotID: "chk-7", now: 103 * ms)
        XCTAssertEqual(barriers(m.tick(now: 104 * ms)), [Barrier(id: 8, kind: .savepoint)])
    }

    func testACompletedStopEndsTheProtocol() {
        var m = machine()
        XCTAssertEqual(barriers(m.request(.stop, now: 10 * ms)), [Barrier(id: 7, kind: .stop)])
        _ = ackAll(&m, 7, now: 11 * ms)
        _ = m.persisted(checkpoint: 7, snapshotID: "stop-7", now: 12 * ms)
        XCTAssertTrue(m.isFinished)
        XCTAssertEqual(barriers(m.tick(now: 500 * ms)), [], "nothing is triggered after the stop")
        XCTAssertNil(m.nextDeadline())
    }

    func testAFailedStopLetsTheRunGoOn() {
        var m = machine()
        _ = m.request(.stop, now: 10 * ms)
        _ = m.tick(now: 61 * ms)
        XCTAssertFalse(m.isFinished)
        XCTAssertEqual(barriers(m.tick(now: 200 * ms)), [Barrier(id: 8, kind: .checkpoint)])
    }

    func testDrainOnlyOnceEverySourceWaitedAtItsEnd() {
        var m = machine(interval: nil, untilIdle: 100)
        XCTAssertEqual(barriers(m.sourceAtEnd(src, atEndFor: 60 * ms, now: 60 * ms)), [])
        XCTAssertEqual(barriers(m.sourceAtEnd(src, atEndFor: nil, now: 70 * ms)), [], "records arrived again")
        let a = m.sourceAtEnd(src, atEndFor: 100 * ms, now: 200 * ms)
        XCTAssertEqual(barriers(a), [Barrier(id: 7, kind: .drain)])
        XCTAssertTrue(a.contains { if case .noteIdleWait = $0 { return true } else { return false } })
    }

    func testAnAbortedDrainForgetsWhatTheSourcesReported() {
        var m = machine(interval: nil, untilIdle: 100)
        _ = m.sourceAtEnd(src, atEndFor: 100 * ms, now: 100 * ms)
        XCTAssertEqual(aborts(m.tick(now: 151 * ms)).count, 1)
        XCTAssertEqual(barriers(m.tick(now: 152 * ms)), [], "a new drain needs a new report")
        XCTAssertEqual(barriers(m.sourceAtEnd(src, atEndFor: 120 * ms, now: 153 * ms)), [Barrier(id: 8, kind: .drain)])
    }

    func testCancelAbortsWhatIsCollectedButNotWhatIsBeingPersisted() {
        var m = machine()
        _ = m.tick(now: 100 * ms)
        XCTAssertEqual(aborts(m.cancel()), ["the run was cancelled"])
        XCTAssertTrue(m.isFinished)

        var n = machine()
        _ = n.tick(now: 100 * ms)
        _ = ackAll(&n, 7, now: 101 * ms)
        XCTAssertEqual(aborts(n.cancel()), [], "a checkpoint being persisted is not aborted")
        XCTAssertEqual(completes(n.persisted(checkpoint: 7, snapshotID: "chk-7", now: 102 * ms)), [7], "durable is complete")
        XCTAssertTrue(n.isFinished)
    }

    func testNothingMovedMeansNoPeriodicCheckpoint() {
        var m = machine()
        _ = m.tick(now: 100 * ms, activity: 5)
        _ = ackAll(&m, 7, now: 101 * ms)
        _ = m.persisted(checkpoint: 7, snapshotID: "chk-7", now: 102 * ms)
        XCTAssertEqual(barriers(m.tick(now: 202 * ms, activity: 5)), [], "same activity: skipped")
        XCTAssertEqual(barriers(m.tick(now: 302 * ms, activity: 6)), [Barrier(id: 8, kind: .checkpoint)])
    }
}
