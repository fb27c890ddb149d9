import XCTest
@testable import WeirControl

/// The lifecycle's reactions to what a live run reports and to its end.
final class JobLifecycleRunReportTests: XCTestCase {
    /// A report written after the operations of `Facts.operation` were requested.
    let later = "2025-01-01T10:00:05.000Z"
    let earlier = "2025-01-01T09:59:55.000Z"

    let stopFailed = OperationError(code: "stop_failed", message: "stop with snapshot failed, the run keeps going: sink timed out",
                                    suggestion: Suggestions.stopFailed)
    let crashed = OperationError(code: "mysql_unreachable", message: "can't connect to MySQL", suggestion: "check the server")

    // MARK: running

    func testRunningSucceedsTheRunOperation() {
        let m = Facts.machine(operation: Facts.operation(.run, phase: .starting), run: Facts.run(.starting))
        XCTAssertEqual(m.runReported(.running(restoredFrom: "s2"), runID: "run-1", at: later), [
            .markRunRunning(restoredFrom: "s2"),
            .succeedOperation(result: .object(["run": .string("run-1"), "version": .int(2), "restoredFrom": .string("s2")])),
        ])
    }

    func testRunningKeepsTheSnapshotTheRunWasStartedFrom() {
        let m = Facts.machine(operation: Facts.operation(.publishAndRun, phase: .starting), run: Facts.run(.starting, restoredFrom: "s1"))
        XCTAssertEqual(m.runReported(.running(restoredFrom: nil), runID: "run-1", at: later), [
            .markRunRunning(restoredFrom: nil),
            .succeedOperation(result: .object(["run": .string("run-1"), "version": .int(2), "restoredFrom": .string("s1")])),
        ])
    }

    func testRunningOfARunningRunWithoutOperationChangesNothing() {
        XCTAssertEqual(Facts.machine(run: Facts.run(.running)).runReported(.running(restoredFrom: nil), runID: "run-1", at: later), [])
    }

    func testReportsOfAnotherRunAreIgnored() {
        let m = Facts.machine(operation: Facts.operation(.run, phase: .starting), run: Facts.run(.starting))
        XCTAssertEqual(m.runReported(.running(restoredFrom: nil), runID: "run-0", at: later), [])
        XCTAssertEqual(m.runReported(.stopFailed(reason: nil), runID: "run-0", at: later), [])
    }

    // MARK: Savepoints

    func testASavepointSucceedsTheSavepointOperation() {
        let m = Facts.machine(operation: Facts.operation(.savepoint, phase: .savepoint), run: Facts.run(.running))
        XCTAssertEqual(m.runReported(.snapshot(id: "sp-7", kind: "savepoint"), runID: "run-1", at: later),
                       [.succeedOperation(result: .object(["snapshot": .string("sp-7"), "run": .string("run-1")]))])
    }

    func testACheckpointOrAnEarlierSavepointDoesNotEndTheSavepointOperation() {
        let m = Facts.machine(operation: Facts.operation(.savepoint, phase: .savepoint), run: Facts.run(.running))
        XCTAssertEqual(m.runReported(.snapshot(id: "ck-7", kind: "checkpoint"), runID: "run-1", at: later), [])
        XCTAssertEqual(m.runReported(.snapshot(id: "sp-6", kind: "savepoint"), runID: "run-1", at: earlier), [])
    }

    func testAFailedSavepointFailsTheSavepointOperation() {
        let m = Facts.machine(operation: Facts.operation(.savepoint, phase: .savepoint), run: Facts.run(.running))
        XCTAssertEqual(m.runReported(.savepointFailed(reason: "sink timed out"), runID: "run-1", at: later), [
            .failOperation(OperationError(code: "savepoint_failed", message: "savepoint failed, the run goes on: sink timed out",
                                          suggestion: Suggestions.savepointFailed)),
        ])
        XCTAssertEqual(Facts.machine(run: Facts.run(.running)).runReported(.savepointFailed(reason: nil), runID: "run-1", at: later), [])
    }

    // MARK: stop_failed

    func testAFailedStopFailsTheStopAndTheRunGoesOn() {
        let m = Facts.machine(operation: Facts.operation(.stop, phase: .stopping, stopWithSnapshot: true),
                              run: Facts.run(.stopping, stopSignalled: true))
        XCTAssertEqual(m.runReported(.stopFailed(reason: "sink timed out"), runID: "run-1", at: later),
                       [.recordFailedStop(backToRunning: true), .failOperation(stopFailed)])
    }

    func testAFailedStopWithoutOperationWarns() {
        XCTAssertEqual(Facts.machine(run: Facts.run(.running)).runReported(.stopFailed(reason: "sink timed out"), runID: "run-1", at: later),
                       [.recordFailedStop(backToRunning: false), .warn(stopFailed.warning)])
    }

    func testAFailedStopFromBeforeTheOperationDoesNotFailIt() {
        let m = Facts.machine(operation: Facts.operation(.stop, phase: .stopping), run: Facts.run(.stopping))
        XCTAssertEqual(m.runReported(.stopFailed(reason: nil), runID: "run-1", at: earlier), [.recordFailedStop(backToRunning: true)])
    }

    // MARK: Exits

    func testAStopWithSnapshotSucceedsAndKeepsTheSnapshot() {
        let m = Facts.machine(operation: Facts.operation(.stop, phase: .stopping, stopWithSnapshot: true))
        let end = Machine.RunEnding(outcome: "stopped", message: "stopped with snapshot st-9", stopSnapshot: "st-9")
        XCTAssertEqual(m.runExited(runID: "run-1", ending: end, whileDown: false), [
            .recordStopSnapshot("st-9"),
            .succeedOperation(result: .object(["run": .string("run-1"), "snapshot": .string("st-9")])),
        ])
    }

    func testACancelSucceedsTheStop() {
        let m = Facts.machine(operation: Facts.operation(.stop, phase: .stopping))
        let end = Machine.RunEnding(outcome: "cancelled", message: "cancelled without a snapshot")
        XCTAssertEqual(m.runExited(runID: "run-1", ending: end, whileDown: false),
                       [.succeedOperation(result: .object(["run": .string("run-1")]))])
    }

    func testAStopWithSnapshotThatEndedWithoutOneFails() {
        let m = Facts.machine(operation: Facts.operation(.stop, phase: .stopping, stopWithSnapshot: true))
        let end = Machine.RunEnding(outcome: "finished", message: "finished: its input was complete")
        XCTAssertEqual(m.runExited(runID: "run-1", ending: end, whileDown: false), [
            .failOperation(OperationError(code: "stop_failed", message: "the run ended without a stop snapshot: finished: its input was complete",
                                          suggestion: "restore from the latest checkpoint (run with snapshot latest); output is committed up to it")),
        ])
    }

    func testPublishAndRunStartsTheNewVersionFromTheStopSnapshot() {
        let m = Facts.machine(operation: Facts.operation(.publishAndRun, phase: .stopping, stopWithSnapshot: true, version: 3,
                                                         restoreFromStop: true, allowNonRestoredState: true))
        let end = Machine.RunEnding(outcome: "stopped", message: "stopped with snapshot st-9", stopSnapshot: "st-9")
        XCTAssertEqual(m.runExited(runID: "run-1", ending: end, whileDown: false), [
            .recordStopSnapshot("st-9"),
            .advanceOperation(to: .starting, addingResult: ["stoppedRun": .string("run-1"), "snapshot": .string("st-9")]),
            .startRun(version: 3, snapshot: "st-9", allowNonRestoredState: true),
        ])
    }

    func testPublishAndRunWithoutRestoreFromStopStartsTheNewVersionAfresh() {
        let m = Facts.machine(operation: Facts.operation(.publishAndRun, phase: .stopping, stopWithSnapshot: true, version: 3))
        let end = Machine.RunEnding(outcome: "stopped", message: "stopped with snapshot st-9", stopSnapshot: "st-9")
        XCTAssertEqual(m.runExited(runID: "run-1", ending: end, whileDown: false), [
            .recordStopSnapshot("st-9"),
            .advanceOperation(to: .starting, addingResult: ["stoppedRun": .string("run-1"), "snapshot": .string("st-9")]),
            .startRun(version: 3, snapshot: nil, allowNonRestoredState: false),
        ])
    }

    func testPublishAndRunWhoseStoppedRunFailedFails() {
        let m = Facts.machine(operation: Facts.operation(.publishAndRun, phase: .stopping, stopWithSnapshot: true, version: 3, restoreFromStop: true))
        let end = Machine.RunEnding(outcome: "failed", message: crashed.message, error: crashed)
        XCTAssertEqual(m.runExited(runID: "run-1", ending: end, whileDown: false), [.failOperation(crashed)])
    }

    func testPublishAndRunThatLostItsVersionFails() {
        let m = Facts.machine(operation: Facts.operation(.publishAndRun, phase: .stopping))
        let end = Machine.RunEnding(outcome: "cancelled", message: "cancelled without a snapshot")
        XCTAssertEqual(m.runExited(runID: "run-1", ending: end, whileDown: false), [
            .advanceOperation(to: .starting, addingResult: ["stoppedRun": .string("run-1")]),
            .failOperation(OperationError(code: "internal", message: "operation op-1 lost its version", suggestion: nil)),
        ])
    }

    func testAnErrorWhileTheRunIsStartingFailsTheRun() {
        let m = Facts.machine(operation: Facts.operation(.run, phase: .starting))
        let end = Machine.RunEnding(outcome: "failed", message: crashed.message, error: crashed)
        XCTAssertEqual(m.runExited(runID: "run-1", ending: end, whileDown: false), [.failOperation(crashed)])
    }

    func testAnErrorLearntAtRestartSaysSo() {
        let m = Facts.machine(operation: Facts.operation(.publishAndRun, phase: .starting, version: 3))
        let end = Machine.RunEnding(outcome: "failed", message: crashed.message, error: crashed)
        XCTAssertEqual(m.runExited(runID: "run-1", ending: end, whileDown: true), [
            .failOperation(OperationError(code: "mysql_unreachable",
                                          message: "the run's process ended while the server was down: can't connect to MySQL",
                                          suggestion: "check the server")),
        ])
    }

    func testARunThatEndsBeforeItIsUpFails() {
        let m = Facts.machine(operation: Facts.operation(.run, phase: .starting))
        let end = Machine.RunEnding(outcome: "finished", message: "finished: its input was complete")
        XCTAssertEqual(m.runExited(runID: "run-1", ending: end, whileDown: false), [
            .failOperation(OperationError(code: "run_ended", message: "the run ended before it was up: finished: its input was complete",
                                          suggestion: "check the run's log (weir job logs orders)")),
        ])
    }

    func testARunThatEndsDuringASavepointFailsIt() {
        let m = Facts.machine(operation: Facts.operation(.savepoint, phase: .savepoint))
        let end = Machine.RunEnding(outcome: "finished", message: "finished: its input was complete")
        XCTAssertEqual(m.runExited(runID: "run-1", ending: end, whileDown: false), [
            .failOperation(OperationError(code: "savepoint_failed",
                                          message: "the run ended before the savepoint completed: finished: its input was complete",
                                          suggestion: "run the job again from the latest snapshot")),
        ])
    }

    func testAFailedRunWithoutOperationWarns() {
        let end = Machine.RunEnding(outcome: "failed", message: crashed.message, error: crashed)
        XCTAssertEqual(Facts.machine().runExited(runID: "run-1", ending: end, whileDown: false), [.warn(crashed.warning)])
        // An operation waiting on another run is not this run's.
        let m = Facts.machine(operation: Facts.operation(.run, phase: .starting, run: "run-2"))
        XCTAssertEqual(m.runExited(runID: "run-1", ending: end, whileDown: false), [.warn(crashed.warning)])
    }

    func testARunThatEndedWhileTheServerWasDownWarns() {
        let end = Machine.RunEnding(outcome: "finished", message: "finished: its input was complete")
        XCTAssertEqual(Facts.machine().runExited(runID: "run-1", ending: end, whileDown: true), [
            .warn(JobWarning(code: "ended_while_down",
                             message: "the run's process ended while the server was down: finished: its input was complete",
                             suggestion: "check the run's log; run the job again (from the latest snapshot to resume)")),
        ])
        XCTAssertEqual(Facts.machine().runExited(runID: "run-1", ending: end, whileDown: false), [])
    }
}
