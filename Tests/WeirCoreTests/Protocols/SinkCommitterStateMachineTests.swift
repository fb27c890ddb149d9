import XCTest
@testable import WeirCore
@testable import WeirEngine

/// Two-phase commit of a sink's epochs, and the recovery decision, as values.
final class SinkCommitterStateMachineTests: XCTestCase {
    func testEpochsCommitInOrderWhenTheirCheckpointCompletes() {
        var c = SinkCommitterStateMachine(firstEpoch: 3)
        c.barrierAligned(3, hasTransaction: true)   // epoch 3 closed by barrier 3
        c.barrierAligned(4, hasTransaction: false)  // epoch 4 wrote nothing
        c.barrierAligned(5, hasTransaction: true)
        XCTAssertEqual(c.openEpoch, 6)
        XCTAssertEqual(c.checkpointCompleted(4), [.commit(epoch: 3)])
        c.committed(epoch: 3)
        XCTAssertEqual(c.awaitedCheckpoint, 5)
        XCTAssertEqual(c.checkpointCompleted(5), [.commit(epoch: 5)])
    }

    func testAnAbortedCheckpointsEpochIsCoveredByTheNextCompletedOne() {
        var c = SinkCommitterStateMachine(firstEpoch: 1)
        c.barrierAligned(1, hasTransaction: true)  // checkpoint 1 will abort
        c.barrierAligned(2, hasTransaction: true)
        XCTAssertEqual(c.dueCommits(), [])
        XCTAssertEqual(c.checkpointCompleted(2), [.commit(epoch: 1), .commit(epoch: 2)])
    }

    func testAnEpochClosedByASkippedBarrierIsCommittedByTheBarrierThatClosedIt() {
        // The simulator's seed 498: the source skipped barrier 2 (aborted before it was
        // injected), so epoch 2 is closed by barrier 3 and belongs to checkpoint 3.
        var c = SinkCommitterStateMachine(firstEpoch: 2)
        c.barrierAligned(3, hasTransaction: true)
        XCTAssertEqual(c.prepared, [.init(epoch: 2, closedBy: 3)])
        XCTAssertEqual(c.openEpoch, 4)
        XCTAssertEqual(c.checkpointCompleted(2), [], "checkpoint 2 does not cover it")
        XCTAssertEqual(c.checkpointCompleted(3), [.commit(epoch: 2)], "the writer's own epoch number is committed")
    }

    func testCancelCommitsCompletedEpochsThenRollsBackTheRest() {
        var c = SinkCommitterStateMachine(firstEpoch: 1)
        c.barrierAligned(1, hasTransaction: true)
        c.barrierAligned(2, hasTransaction: true)
        _ = c.checkpointCompleted(1)
        XCTAssertEqual(c.nextCancelStep(), .commit(epoch: 1))
        c.committed(epoch: 1)
        XCTAssertEqual(c.nextCancelStep(), .rollBackAll)
        XCTAssertNil(c.nextCancelStep())
    }

    func testAFailedCommitDuringCancelLeavesEverythingInDoubt() {
        var c = SinkCommitterStateMachine(firstEpoch: 1)
        c.barrierAligned(1, hasTransaction: true)
        c.barrierAligned(2, hasTransaction: true)
        _ = c.checkpointCompleted(1)
        XCTAssertEqual(c.nextCancelStep(), .commit(epoch: 1))
        c.commitFailed(epoch: 1)
        XCTAssertNil(c.nextCancelStep(), "no rollback: recovery decides each epoch by its checkpoint")
    }

    func testRecoveryCommitsExactlyWhatACompletedCheckpointCovers() {
        let scope = { (run: String) in SinkTransactionScope(job: "j", run: run, node: "sink", subtask: 0) }
        let r = SinkCommitterStateMachine.Recovery(lineage: ("old", 7), isCompleted: { run, id in run == "mine" && id <= 4 })
        XCTAssertTrue(r.shouldCommit(PreparedTransaction(id: "a", scope: scope("old"), epoch: 7)), "in the restored snapshot's lineage")
        XCTAssertFalse(r.shouldCommit(PreparedTransaction(id: "b", scope: scope("old"), epoch: 8)), "after the restored checkpoint")
        XCTAssertTrue(r.shouldCommit(PreparedTransaction(id: "c", scope: scope("mine"), epoch: 4)), "the store has a checkpoint covering it")
        XCTAssertFalse(r.shouldCommit(PreparedTransaction(id: "d", scope: scope("mine"), epoch: 5)))
        XCTAssertFalse(r.shouldCommit(PreparedTransaction(id: "e", scope: scope("other"), epoch: 1)))
    }
}
