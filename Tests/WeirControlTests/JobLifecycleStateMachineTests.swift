import XCTest
@testable import WeirControl

typealias Machine = JobLifecycleStateMachine

/// Facts that the tests of the lifecycle rules build their jobs from.
///
/// Exists so each test states only the facts it is about: a job named
/// `orders`, a live run `run-1` of version 2, an operation `op-1`.
enum Facts {
    static let job = "orders"

    static func run(_ status: RunRow.Status = .running, id: String = "run-1", version: Int = 2,
                    restoredFrom: String? = nil, stopSignalled: Bool = false) -> Machine.RunFacts {
        Machine.RunFacts(id: id, version: version, status: status, restoredFrom: restoredFrom, stopSignalled: stopSignalled)
    }

    static func operation(_ type: OperationType, phase: OperationPhase?, run: String? = "run-1", id: String = "op-1",
                          requestedAt: String = "2025-01-01T10:00:00.000Z", stopWithSnapshot: Bool = false,
                          version: Int? = nil, restoreFromStop: Bool = false,
                          allowNonRestoredState: Bool = false) -> Machine.OperationFacts {
        Machine.OperationFacts(id: id, type: type, phase: phase, run: run, requestedAt: requestedAt,
                               stopWithSnapshot: stopWithSnapshot, version: version, restoreFromStop: restoreFromStop,
                               allowNonRestoredState: allowNonRestoredState)
    }

    static func machine(operation: Machine.OperationFacts? = nil, run: Machine.RunFacts? = nil) -> Machine {
        Machine(job: job, operation: operation, run: run)
    }

    static func publishRun(stopCurrent: Bool = false, snapshot: Bool = false, restoreFromStop: Bool = false,
                           allowNonRestoredState: Bool = false) -> PublishRunRequest {
        PublishRunRequest(stopCurrent: stopCurrent, snapshot: snapshot, restoreFromStop: restoreFromStop,
                          allowNonRestoredState: allowNonRestoredState)
    }

    /// Versions 1 to 3, the requested one exists, snapshots s1 (oldest) and s2.
    static let stored = Machine.StoredFacts(latestVersion: 3, requestedVersionExists: true, snapshots: ["s1", "s2"])
}

/// The lifecycle's answers to requests (refusals with the API's exact errors,
/// and the actions of accepted requests) and the job status it computes.
final class JobLifecycleStateMachineTests: XCTestCase {
    // MARK: Status

    func testStatusIsStoppedWithoutRunOrOperation() {
        XCTAssertEqual(Facts.machine().status, .stopped)
    }

    func testStatusIsRunningOnlyWhileTheLiveRunRuns() {
        XCTAssertEqual(Facts.machine(run: Facts.run(.running)).status, .running)
        XCTAssertEqual(Facts.machine(run: Facts.run(.starting)).status, .operating)
        XCTAssertEqual(Facts.machine(run: Facts.run(.stopping)).status, .operating)
    }

    func testStatusIsOperatingWhileARunStopOrPublishAndRunIsInFlight() {
        for type in [OperationType.run, .stop, .publishAndRun] {
            XCTAssertEqual(Facts.machine(operation: Facts.operation(type, phase: .starting), run: Facts.run(.running)).status,
                           .operating, "\(type)")
            XCTAssertEqual(Facts.machine(operation: Facts.operation(type, phase: .starting, run: nil)).status, .operating, "\(type)")
        }
    }

    func testASavepointInFlightLeavesTheJobRunning() {
        XCTAssertEqual(Facts.machine(operation: Facts.operation(.savepoint, phase: .savepoint), run: Facts.run(.running)).status,
                       .running)
    }

    // MARK: Run

    func testRunWhileRunningIsRefused() {
        let d = Facts.machine(run: Facts.run(.running)).requestReceived(.run(version: nil, snapshot: nil, allowNonRestoredState: false),
                                                                        stored: Facts.stored)
        XCTAssertEqual(d, .refuse(APIError(409, "conflict", "job 'orders' is running version 2 (run run-1); stop the running version 2 first",
                                           suggestion: "stop it (with a snapshot to resume from it), or publish with run.stopCurrent")))
    }

    func testRunWithoutVersionsIsRefused() {
        let d = Facts.machine().requestReceived(.run(version: nil, snapshot: nil, allowNonRestoredState: false),
                                                stored: Machine.StoredFacts())
        XCTAssertEqual(d, .refuse(APIError(409, "conflict", "job 'orders' has no published versions",
                                           suggestion: "publish the draft first (POST /api/v1/jobs/orders/versions)")))
    }

    func testRunOfAnUnknownVersionIsRefused() {
        let stored = Machine.StoredFacts(latestVersion: 3, requestedVersionExists: false)
        let d = Facts.machine().requestReceived(.run(version: 7, snapshot: nil, allowNonRestoredState: false), stored: stored)
        XCTAssertEqual(d, .refuse(APIError(404, "not_found", "job 'orders' has no version 7", suggestion: "its versions are 1 to 3")))
    }

    func testTheRequestedVersionDefaultsToTheLatest() {
        XCTAssertEqual(Machine.requestedVersion(nil, latest: 3), 3)
        XCTAssertEqual(Machine.requestedVersion(1, latest: 3), 1)
        XCTAssertNil(Machine.requestedVersion(nil, latest: nil))
    }

    func testRunFromASnapshotWhenThereAreNoneIsRefused() {
        let stored = Machine.StoredFacts(latestVersion: 3, requestedVersionExists: true, snapshots: [])
        let d = Facts.machine().requestReceived(.run(version: nil, snapshot: "latest", allowNonRestoredState: false), stored: stored)
        XCTAssertEqual(d, .refuse(APIError(409, "conflict", "this job has no snapshots; run without --snapshot",
                                           suggestion: "run without a snapshot; checkpoints, savepoints and stops with a snapshot create them")))
    }

    func testRunFromAnUnknownSnapshotIsRefused() {
        let d = Facts.machine().requestReceived(.run(version: nil, snapshot: "s9", allowNonRestoredState: false), stored: Facts.stored)
        XCTAssertEqual(d, .refuse(APIError(404, "not_found", "snapshot 's9' not found in job 'orders'",
                                           suggestion: "list them with GET /api/v1/jobs/orders/snapshots (the latest is s2)")))
    }

    func testRunStartsTheLatestVersion() {
        let d = Facts.machine().requestReceived(.run(version: nil, snapshot: nil, allowNonRestoredState: false), stored: Facts.stored)
        XCTAssertEqual(d, .proceed([.recordOperation(.run, phase: .starting, run: nil),
                                    .startRun(version: 3, snapshot: nil, allowNonRestoredState: false)]))
    }

    func testRunResolvesTheLatestSnapshotAndKeepsTheRequestedVersion() {
        let d = Facts.machine().requestReceived(.run(version: 1, snapshot: "latest", allowNonRestoredState: true), stored: Facts.stored)
        XCTAssertEqual(d, .proceed([.recordOperation(.run, phase: .starting, run: nil),
                                    .startRun(version: 1, snapshot: "s2", allowNonRestoredState: true)]))
    }

    func testRunRestoresASnapshotChosenById() {
        let d = Facts.machine().requestReceived(.run(version: nil, snapshot: "s1", allowNonRestoredState: false), stored: Facts.stored)
        XCTAssertEqual(d, .proceed([.recordOperation(.run, phase: .starting, run: nil),
                                    .startRun(version: 3, snapshot: "s1", allowNonRestoredState: false)]))
    }

    // MARK: One operation at a time

    func testRequestsWhileAnOperationIsInFlightAreRefused() {
        let m = Facts.machine(operation: Facts.operation(.savepoint, phase: .savepoint), run: Facts.run(.running))
        let refusal = Machine.Decision.refuse(APIError(409, "conflict", "job 'orders' has operation op-1 (savepoint) in progress; one operation at a time",
                                                       suggestion: "wait for it to finish (GET /api/v1/operations/op-1), then retry"))
        XCTAssertEqual(m.requestReceived(.run(version: nil, snapshot: nil, allowNonRestoredState: false), stored: Facts.stored), refusal)
        XCTAssertEqual(m.requestReceived(.stop(snapshot: true)), refusal)
        XCTAssertEqual(m.requestReceived(.savepoint), refusal)
        XCTAssertEqual(m.requestReceived(.publish(description: "v3", run: Facts.publishRun(stopCurrent: true))), refusal)
    }

    func testAPublishWithoutRunIsAcceptedWhileAnOperationIsInFlight() {
        let m = Facts.machine(operation: Facts.operation(.stop, phase: .stopping), run: Facts.run(.stopping))
        XCTAssertEqual(m.requestReceived(.publish(description: "v3", run: nil)),
                       .proceed([.publishVersion(description: "v3", restoreCheck: nil)]))
    }

    // MARK: Stop

    func testStopWhileStoppedIsRefused() {
        XCTAssertEqual(Facts.machine().requestReceived(.stop(snapshot: false)),
                       .refuse(APIError(409, "conflict", "job 'orders' is not running (status stopped)", suggestion: "nothing to stop")))
    }

    func testStopWithSnapshotAfterAFailedOneIsRefused() {
        let m = Facts.machine(run: Facts.run(.running, stopSignalled: true))
        XCTAssertEqual(m.requestReceived(.stop(snapshot: true)), .refuse(APIError(
            409, "conflict", "run run-1 of job 'orders' already failed a stop with snapshot; a second stop signal would cancel it without a snapshot",
            suggestion: "take a savepoint, then stop without a snapshot (restore from the savepoint later); or stop without a snapshot (output stays committed up to the last completed checkpoint)")))
    }

    func testStopWithoutSnapshotAfterAFailedOneIsACancel() {
        let m = Facts.machine(run: Facts.run(.running, stopSignalled: true))
        XCTAssertEqual(m.requestReceived(.stop(snapshot: false)),
                       .proceed([.recordOperation(.stop, phase: .stopping, run: "run-1"), .signalStop(snapshot: false)]))
    }

    func testStopWithSnapshotSignalsTheLiveRun() {
        XCTAssertEqual(Facts.machine(run: Facts.run(.starting)).requestReceived(.stop(snapshot: true)),
                       .proceed([.recordOperation(.stop, phase: .stopping, run: "run-1"), .signalStop(snapshot: true)]))
    }

    // MARK: Savepoint

    func testSavepointWhenNotRunningIsRefused() {
        XCTAssertEqual(Facts.machine().requestReceived(.savepoint), .refuse(APIError(
            409, "conflict", "job 'orders' is not running (status stopped); a savepoint needs a running run",
            suggestion: "run the job, then take the savepoint")))
        XCTAssertEqual(Facts.machine(run: Facts.run(.starting)).requestReceived(.savepoint), .refuse(APIError(
            409, "conflict", "job 'orders' is not running (status operating); a savepoint needs a running run",
            suggestion: "run the job, then take the savepoint")))
    }

    func testSavepointSignalsTheRunningRun() {
        XCTAssertEqual(Facts.machine(run: Facts.run(.running)).requestReceived(.savepoint),
                       .proceed([.recordOperation(.savepoint, phase: .savepoint, run: "run-1"), .signalSavepoint]))
    }

    // MARK: Publish

    func testPublishWithoutDescriptionIsRefused() {
        let refusal = Machine.Decision.refuse(APIError(422, "invalid_request", "a version needs a description: say what changed",
                                                       suggestion: "send {\"description\": \"…\"} (weir job publish orders --description \"…\")"))
        XCTAssertEqual(Facts.machine().requestReceived(.publish(description: nil, run: nil)), refusal)
        XCTAssertEqual(Facts.machine().requestReceived(.publish(description: " \n\t", run: nil)), refusal)
        // Checked before the operation in flight.
        XCTAssertEqual(Facts.machine(operation: Facts.operation(.run, phase: .starting))
            .requestReceived(.publish(description: "", run: Facts.publishRun())), refusal)
    }

    func testPublishTrimsTheDescription() {
        XCTAssertEqual(Facts.machine().requestReceived(.publish(description: "  add a filter \n", run: nil)),
                       .proceed([.publishVersion(description: "add a filter", restoreCheck: nil)]))
    }

    func testPublishAndRunWhileRunningWithoutStopCurrentIsRefused() {
        let d = Facts.machine(run: Facts.run(.running)).requestReceived(.publish(description: "v3", run: Facts.publishRun()))
        XCTAssertEqual(d, .refuse(APIError(409, "conflict", "job 'orders' is running version 2; stop the running version 2 first",
                                           suggestion: "publish with run.stopCurrent true, or stop the job first")))
    }

    func testRestoreFromStopWithoutSnapshotIsRefused() {
        let d = Facts.machine(run: Facts.run(.running))
            .requestReceived(.publish(description: "v3", run: Facts.publishRun(stopCurrent: true, restoreFromStop: true)))
        XCTAssertEqual(d, .refuse(APIError(422, "invalid_request", "restoreFromStop needs snapshot: true (the stop snapshot to restore from)",
                                           suggestion: "set run.snapshot to true, or restoreFromStop to false")))
    }

    func testRestoreFromStopWhenNotRunningIsRefused() {
        let d = Facts.machine().requestReceived(.publish(description: "v3", run: Facts.publishRun(snapshot: true, restoreFromStop: true)))
        XCTAssertEqual(d, .refuse(APIError(409, "conflict", "job 'orders' is not running, so no stop snapshot will be taken to restore from",
                                           suggestion: "publish, then run with snapshot \"latest\" or a snapshot id")))
    }

    func testPublishAndRunWithSnapshotAfterAFailedStopIsRefused() {
        let d = Facts.machine(run: Facts.run(.running, stopSignalled: true))
            .requestReceived(.publish(description: "v3", run: Facts.publishRun(stopCurrent: true, snapshot: true)))
        guard case .refuse(let error) = d else { return XCTFail("expected a refusal, got \(d)") }
        XCTAssertEqual(error.status, 409)
        XCTAssertEqual(error.message, "run run-1 of job 'orders' already failed a stop with snapshot; a second stop signal would cancel it without a snapshot")
    }

    func testPublishAndRunRestoringTheStopSnapshotChecksTheRunningVersionFirst() {
        let d = Facts.machine(run: Facts.run(.running)).requestReceived(.publish(
            description: "v3", run: Facts.publishRun(stopCurrent: true, snapshot: true, restoreFromStop: true, allowNonRestoredState: true)))
        XCTAssertEqual(d, .proceed([.publishVersion(description: "v3",
                                                    restoreCheck: Machine.RestoreCheck(runningVersion: 2, allowNonRestoredState: true))]))
    }

    func testPublishAndRunWhenStoppedPublishesWithoutACheck() {
        XCTAssertEqual(Facts.machine().requestReceived(.publish(description: "v1", run: Facts.publishRun())),
                       .proceed([.publishVersion(description: "v1", restoreCheck: nil)]))
    }

    func testAPublishedVersionWithoutRunIsRecorded() {
        XCTAssertEqual(Facts.machine(run: Facts.run(.running)).versionPublished(3, description: "v3", run: nil),
                       [.recordPublished(version: 3, description: "v3")])
    }

    func testAPublishedVersionToRunStopsTheLiveRunFirst() {
        XCTAssertEqual(Facts.machine(run: Facts.run(.running)).versionPublished(3, description: "v3", run: Facts.publishRun(stopCurrent: true, snapshot: true)),
                       [.recordOperation(.publishAndRun, phase: .stopping, run: "run-1"), .signalStop(snapshot: true)])
    }

    func testAPublishedVersionToRunStartsAtOnceWhenStopped() {
        XCTAssertEqual(Facts.machine().versionPublished(1, description: "v1", run: Facts.publishRun(allowNonRestoredState: true)),
                       [.recordOperation(.publishAndRun, phase: .starting, run: nil),
                        .startRun(version: 1, snapshot: nil, allowNonRestoredState: true)])
    }

    // MARK: Delete

    func testDeleteWithAnOperationInFlightIsRefused() {
        let d = Facts.machine(operation: Facts.operation(.run, phase: .starting), run: Facts.run(.starting)).requestReceived(.delete)
        XCTAssertEqual(d, .refuse(APIError(409, "conflict", "job 'orders' has operation op-1 (run) in progress",
                                           suggestion: "wait for it to finish, stop the job, then delete it")))
    }

    func testDeleteWithALiveRunIsRefused() {
        XCTAssertEqual(Facts.machine(run: Facts.run(.running)).requestReceived(.delete), .refuse(APIError(
            409, "conflict", "job 'orders' is running (run run-1 of version 2)",
            suggestion: "stop it first (POST /api/v1/jobs/orders/stop), then delete it")))
    }

    func testDeleteOfAStoppedJobProceeds() {
        XCTAssertEqual(Facts.machine().requestReceived(.delete), .proceed([.deleteJob]))
    }

    // MARK: Phases

    func testPhasesKeepTheStoredFormat() {
        XCTAssertEqual(OperationPhase.allCases.map(\.rawValue), ["starting", "stopping", "savepoint", "drilling"])
        XCTAssertEqual(OperationPhase(rawValue: "stopping"), .stopping)
        XCTAssertNil(OperationPhase(rawValue: "Stopping"))
    }
}
