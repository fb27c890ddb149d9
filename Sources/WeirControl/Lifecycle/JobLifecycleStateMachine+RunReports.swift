/// The reactions to what a live run reports and to its end: which operation
/// in flight they finish, fail or move on, and when the job gets a warning
/// instead because nothing was waiting.
extension JobLifecycleStateMachine {
    /// Reacts to an event of run `runID` written at `time` (the event's own
    /// timestamp: reports from before the operation was requested are not about it).
    func runReported(_ report: RunReport, runID: String, at time: String) -> [Action] {
        guard let run, run.id == runID else { return [] }
        switch report {
        case .running(let reportedFrom):
            var actions: [Action] = []
            var restoredFrom = run.restoredFrom
            if run.status == .starting {
                actions.append(.markRunRunning(restoredFrom: reportedFrom))
                if let reportedFrom { restoredFrom = reportedFrom }
            }
            if let op = operation, op.phase == .starting, op.run == runID {
                var result: [String: JSONValue] = ["run": .string(runID), "version": .int(Int64(run.version))]
                if let restoredFrom { result["restoredFrom"] = .string(restoredFrom) }
                actions.append(.succeedOperation(result: .object(result)))
            }
            return actions

        case let .snapshot(id, kind):
            guard kind == "savepoint", let op = operation, op.type == .savepoint, op.run == runID, time >= op.requestedAt else { return [] }
            return [.succeedOperation(result: .object(["snapshot": .string(id), "run": .string(runID)]))]

        case .savepointFailed(let reason):
            guard let op = operation, op.type == .savepoint, op.run == runID, time >= op.requestedAt else { return [] }
            let reason = reason ?? "unknown reason"
            return [.failOperation(OperationError(code: "savepoint_failed", message: "savepoint failed, the run goes on: \(reason)",
                                                  suggestion: Suggestions.suggest(code: nil, message: reason) ?? Suggestions.savepointFailed))]

        case .stopFailed(let reason):
            let reason = reason ?? "unknown reason"
            let error = OperationError(code: "stop_failed", message: "stop with snapshot failed, the run keeps going: \(reason)",
                                       suggestion: Suggestions.stopFailed)
            var actions: [Action] = [.recordFailedStop(backToRunning: run.status == .stopping)]
            if let op = operation {
                if op.phase == .stopping, op.run == runID, time >= op.requestedAt { actions.append(.failOperation(error)) }
            } else {
                actions.append(.warn(error.warning))
            }
            return actions
        }
    }

    /// Reacts to the end of run `runID` (`whileDown`: it ended while the server
    /// was down, learnt at restart): finishes the operation waiting on it, or
    /// warns when it ended by itself; a publish-and-run whose stop phase
    /// completed goes on to start the new version.
    func runExited(runID: String, ending: RunEnding, whileDown: Bool) -> [Action] {
        let prefix = whileDown ? "the run's process ended while the server was down: " : ""
        func prefixed(_ e: OperationError) -> OperationError {
            OperationError(code: e.code, message: prefix + e.message, suggestion: e.suggestion)
        }

        guard let op = operation, op.run == runID else {
            if let error = ending.error { return [.warn(prefixed(error).warning)] }
            if whileDown {
                return [.warn(JobWarning(code: "ended_while_down", message: prefix + ending.message,
                                         suggestion: "check the run's log; run the job again (from the latest snapshot to resume)"))]
            }
            return []
        }
        switch (op.type, op.phase) {
        case (.stop, _), (.publishAndRun, .stopping?), (.drill, _):
            if let error = ending.error { return [.failOperation(prefixed(error))] }
            if (op.stopWithSnapshot || op.type == .drill) && ending.stopSnapshot == nil {
                return [.failOperation(OperationError(code: "stop_failed", message: prefix + "the run ended without a stop snapshot: \(ending.message)",
                                                      suggestion: "restore from the latest checkpoint (run with snapshot latest); output is committed up to it"))]
            }
            var actions: [Action] = []
            var result: [String: JSONValue] = ["run": .string(runID)]
            if let s = ending.stopSnapshot {
                result["snapshot"] = .string(s)
                actions.append(.recordStopSnapshot(s))
            }
            if op.type == .stop { return actions + [.succeedOperation(result: .object(result))] }
            if op.type == .drill {
                // The job is down with its stop snapshot: rehearse restoring it.
                guard let s = ending.stopSnapshot, let version = op.version else {  // (the snapshot was checked above)
                    return actions + [.failOperation(OperationError(code: "internal", message: "operation \(op.id) lost its version", suggestion: nil))]
                }
                return actions + [.advanceOperation(to: .drilling, addingResult: ["stoppedRun": .string(runID), "snapshot": .string(s)]),
                                  .startDrill(version: version, snapshot: s)]
            }
            // Publish and run: the old run is down, start the new version.
            var added: [String: JSONValue] = ["stoppedRun": .string(runID)]
            if let s = ending.stopSnapshot { added["snapshot"] = .string(s) }
            actions.append(.advanceOperation(to: .starting, addingResult: added))
            guard let version = op.version else {
                return actions + [.failOperation(OperationError(code: "internal", message: "operation \(op.id) lost its version", suggestion: nil))]
            }
            return actions + [.startRun(version: version, snapshot: op.restoreFromStop ? ending.stopSnapshot : nil,
                                        allowNonRestoredState: op.allowNonRestoredState)]
        case (.run, _), (.publishAndRun, _):
            let error = ending.error ?? OperationError(code: "run_ended", message: "the run ended before it was up: \(ending.message)",
                                                       suggestion: "check the run's log (weir job logs \(job))")
            return [.failOperation(prefixed(error))]
        case (.savepoint, _):
            let error = ending.error ?? OperationError(code: "savepoint_failed", message: "the run ended before the savepoint completed: \(ending.message)",
                                                       suggestion: "run the job again from the latest snapshot")
            return [.failOperation(prefixed(error))]
        case (.publish, _):
            return [.failOperation(prefixed(ending.error ?? OperationError(code: "internal", message: ending.message, suggestion: nil)))]
        }
    }

    /// How a drill's process ended: its report (nil when it wrote none) and
    /// what the server saw of the process.
    ///
    /// Exists so the reaction depends on what the drill found, not on how the
    /// report was read.
    struct DrillEnding: Sendable, Equatable {
        /// The drill's JSON report, if it wrote one.
        var report: JSONValue?
        /// Why there is no report (the process's exit and the last error line of its log).
        var failure: String
    }

    /// Reacts to the end of the drill of operation `operationID`: a passed
    /// drill succeeds with its report; differences, a refused restore or a
    /// drill that could not finish fail it, naming what went wrong.
    func drillEnded(operationID: String, _ ending: DrillEnding) -> [Action] {
        guard let op = operation, op.id == operationID, op.type == .drill, op.phase == .drilling else { return [] }
        guard let report = ending.report else {
            return [.failOperation(OperationError(code: "drill_failed", message: "the drill did not finish: \(ending.failure)",
                                                  suggestion: "read the drill's log (GET /api/v1/jobs/\(job)/logs?run=\(op.id)); fix what it names, then drill again"))]
        }
        let fields: [String: JSONValue] = ["passed": report["passed"] ?? .bool(false), "report": report]
        if report["passed"]?.bool == true { return [.succeedOperation(result: .object(fields))] }
        let problems = report["problems"]?.array?.compactMap(\.string) ?? []
        return [.advanceOperation(to: .drilling, addingResult: fields),
                .failOperation(OperationError(code: "drill_failed",
                                              message: "the drill of job '\(job)' found problems: " + (problems.isEmpty ? "see its report" : problems.joined(separator: "; ")),
                                              suggestion: "compare the report's rows only in the table with those only in the shadow; a restore of this snapshot would not reproduce the job's output"))]
    }
}
