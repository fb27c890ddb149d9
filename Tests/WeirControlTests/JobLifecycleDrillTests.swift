import XCTest
@testable import WeirControl

/// The rules of `weir job drill`: when a drill is refused, how a running job is
/// stopped first, and how the drill's report ends the operation.
final class JobLifecycleDrillTests: XCTestCase {
    func testADrillOfAStoppedJobRestoresTheLatestSnapshotIntoTheLatestVersion() {
        XCTAssertEqual(Facts.machine().requestReceived(.drill(version: nil, snapshot: nil), stored: Facts.stored),
                       .proceed([.recordOperation(.drill, phase: .drilling, run: nil), .startDrill(version: 3, snapshot: "s2")]))
        XCTAssertEqual(Facts.machine().requestReceived(.drill(version: 1, snapshot: "s1"), stored: Facts.stored),
                       .proceed([.recordOperation(.drill, phase: .drilling, run: nil), .startDrill(version: 1, snapshot: "s1")]))
    }

    func testADrillWithoutSnapshotsOrVersionsIsRefused() {
        var none = Facts.stored
        none.snapshots = []
        guard case .refuse(let e) = Facts.machine().requestReceived(.drill(version: nil, snapshot: nil), stored: none) else {
            return XCTFail("a drill needs a snapshot")
        }
        XCTAssertEqual(e.status, 409)
        XCTAssertTrue(e.message.contains("no snapshot to drill from"), e.message)
        guard case .refuse(let v) = Facts.machine().requestReceived(.drill(version: nil, snapshot: nil), stored: Machine.StoredFacts()) else {
            return XCTFail("a drill needs a version")
        }
        XCTAssertEqual(v.status, 409)
        guard case .refuse(let s) = Facts.machine().requestReceived(.drill(version: nil, snapshot: "s9"), stored: Facts.stored) else {
            return XCTFail("an unknown snapshot")
        }
        XCTAssertEqual(s.status, 404)
    }

    func testADrillOfARunningJobStopsItWithASnapshotFirst() {
        let m = Facts.machine(run: Facts.run(.running))
        XCTAssertEqual(m.requestReceived(.drill(version: nil, snapshot: nil), stored: Facts.stored),
                       .proceed([.recordOperation(.drill, phase: .stopping, run: "run-1"), .signalStop(snapshot: true)]))
        XCTAssertEqual(Facts.machine(operation: Facts.operation(.drill, phase: .stopping)).status, .operating)
        XCTAssertEqual(Facts.machine(operation: Facts.operation(.drill, phase: .drilling, run: nil)).status, .operating)
    }

    func testADrillOfARunningJobFromAnotherSnapshotOrBesideAnOperationIsRefused() {
        guard case .refuse(let e) = Facts.machine(run: Facts.run(.running)).requestReceived(.drill(version: nil, snapshot: "s1"), stored: Facts.stored) else {
            return XCTFail("a running job is drilled from its stop snapshot only")
        }
        XCTAssertEqual(e.status, 409)
        let busy = Facts.machine(operation: Facts.operation(.drill, phase: .drilling, run: nil))
        guard case .refuse(let b) = busy.requestReceived(.drill(version: nil, snapshot: nil), stored: Facts.stored),
              case .refuse = busy.requestReceived(.run(version: nil, snapshot: nil, allowNonRestoredState: false), stored: Facts.stored) else {
            return XCTFail("one operation at a time: a drill holds the job's tables")
        }
        XCTAssertEqual(b.status, 409)
        guard case .refuse = Facts.machine(run: Facts.run(.running, stopSignalled: true)).requestReceived(.drill(version: nil, snapshot: nil), stored: Facts.stored) else {
            return XCTFail("after a failed stop with snapshot a second SIGTERM would cancel")
        }
    }

    func testTheStopSnapshotIsDrilledIntoTheOperationsVersion() {
        let m = Facts.machine(operation: Facts.operation(.drill, phase: .stopping, version: 2))
        let end = Machine.RunEnding(outcome: "stopped", message: "stopped with snapshot st-9", stopSnapshot: "st-9")
        XCTAssertEqual(m.runExited(runID: "run-1", ending: end, whileDown: false), [
            .recordStopSnapshot("st-9"),
            .advanceOperation(to: .drilling, addingResult: ["stoppedRun": .string("run-1"), "snapshot": .string("st-9")]),
            .startDrill(version: 2, snapshot: "st-9"),
        ])
    }

    func testAStopWithoutSnapshotFailsTheDrill() {
        let m = Facts.machine(operation: Facts.operation(.drill, phase: .stopping, version: 2))
        let end = Machine.RunEnding(outcome: "cancelled", message: "cancelled without a snapshot")
        guard case .failOperation(let e)? = m.runExited(runID: "run-1", ending: end, whileDown: false).first else {
            return XCTFail("no snapshot, no drill")
        }
        XCTAssertEqual(e.code, "stop_failed")
    }

    func testAPassedDrillSucceedsWithItsReportAndAFailedOneFailsNamingTheProblem() {
        let m = Facts.machine(operation: Facts.operation(.drill, phase: .drilling, run: nil))
        let passed: JSONValue = .object(["passed": .bool(true), "problems": .array([])])
        XCTAssertEqual(m.drillEnded(operationID: "op-1", .init(report: passed, failure: "")),
                       [.succeedOperation(result: .object(["passed": .bool(true), "report": passed]))])
        let differs: JSONValue = .object(["passed": .bool(false), "problems": .array([.string("table `t` differs from its shadow: 1 row only in the table")])])
        let actions = m.drillEnded(operationID: "op-1", .init(report: differs, failure: ""))
        XCTAssertEqual(actions.first, .advanceOperation(to: .drilling, addingResult: ["passed": .bool(false), "report": differs]))
        guard case .failOperation(let e)? = actions.last else { return XCTFail("differences fail the drill") }
        XCTAssertEqual(e.code, "drill_failed")
        XCTAssertTrue(e.message.contains("table `t` differs"), e.message)
        guard case .failOperation(let crash)? = m.drillEnded(operationID: "op-1", .init(report: nil, failure: "exited with code 1: cannot restore")).first else {
            return XCTFail("no report, no pass")
        }
        XCTAssertTrue(crash.message.contains("cannot restore"), crash.message)
        XCTAssertEqual(m.drillEnded(operationID: "op-0", .init(report: passed, failure: "")), [], "another operation's drill")
    }
}
