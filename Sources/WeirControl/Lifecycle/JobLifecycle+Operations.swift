import Foundation
import WeirCore
import WeirState
#if canImport(Glibc)
import Glibc
#endif

/// What the actions of one event need besides the job.
///
/// Exists because the state machine decides *that* an operation is recorded
/// or a stop snapshot kept, while the stored formats (an operation's JSON
/// parameters and first result, the ended run's row) belong to the driver.
struct ActionContext {
    /// The parameters of the operation a `.recordOperation` records.
    var params: JSONValue = .object([:])
    /// The result that operation starts with.
    var result: JSONValue? = nil
    /// The run that just ended (for `.recordStopSnapshot`).
    var endedRun: RunRow? = nil
}

extension JobLifecycleStateMachine.Decision {
    /// The actions of an accepted request; throws the refusal.
    func actions() throws -> [JobLifecycleStateMachine.Action] {
        switch self {
        case .refuse(let error): throw error
        case .proceed(let actions): return actions
        }
    }
}

/// The state machine's facts, read from the driver's state.
extension JobLifecycleStateMachine.OperationFacts {
    init(_ op: OperationRow) {
        self.init(id: op.id, type: op.type, phase: op.phase, run: op.run, requestedAt: op.requestedAt,
                  stopWithSnapshot: op.params["snapshot"]?.bool ?? false,
                  version: op.params["version"]?.int.map { Int($0) },
                  restoreFromStop: op.params["restoreFromStop"]?.bool ?? false,
                  allowNonRestoredState: op.params["allowNonRestoredState"]?.bool ?? false)
    }
}

extension JobLifecycleStateMachine.RunFacts {
    init(_ lr: JobLifecycle.LiveRun) {
        self.init(id: lr.row.id, version: lr.row.version, status: lr.row.status, restoredFrom: lr.row.restoredFrom,
                  stopSignalled: lr.stopSignalled)
    }
}

/// The requests that act on runs (run, stop, savepoint), the operation log,
/// and the execution of the state machine's actions.
extension JobLifecycle {
    // MARK: Actions

    /// Carries out the state machine's actions for `job`, in order. Returns
    /// the id of the operation a `.recordOperation` recorded, if any.
    @discardableResult
    func execute(_ actions: [JobLifecycleStateMachine.Action], job: String, _ context: ActionContext = ActionContext()) throws -> String? {
        var recorded: String?
        for action in actions {
            switch action {
            case let .recordOperation(type, phase, run):
                var op = newOperation(job, type, params: context.params)
                op.status = .running
                op.phase = phase
                op.run = run
                op.result = context.result
                try store.insertOperation(op)
                inflight[job] = op
                recorded = op.id
            case .publishVersion:
                throw APIError.internalError("job '\(job)': a version is published by a publish request only")
            case let .recordPublished(version, description):
                var op = newOperation(job, .publish, params: .object(["description": .string(description)]))
                op.status = .succeeded
                op.finishedAt = Clock.now()
                op.result = .object(["version": .int(Int64(version))])
                try store.insertOperation(op)
            case let .startRun(version, snapshot, allowNonRestoredState):
                startRunOrFail(job, version: version, snapshot: snapshot, allowNonRestoredState: allowNonRestoredState)
            case let .startDrill(version, snapshot):
                startDrillOrFail(job, version: version, snapshot: snapshot)
            case .signalStop(let snapshot):
                signalStop(job, snapshot: snapshot)
            case .signalSavepoint:
                guard let lr = live[job] else { break }
                let sent = ProcessControl.send(SIGUSR1, to: lr.row.pid)
                log("job '\(job)': savepoint (SIGUSR1) sent to run \(lr.row.id)" + (sent ? "" : ": the process is gone"))
            case .deleteJob:
                try store.deleteJob(job)
                try? FileManager.default.removeItem(at: jobDir(job))
                log("job '\(job)' deleted")
            case .markRunRunning(let restoredFrom):
                guard var lr = live[job] else { break }
                lr.row.status = .running
                if let restoredFrom { lr.row.restoredFrom = restoredFrom }
                live[job] = lr
                try? store.updateRun(lr.row)
                log("job '\(job)': run \(lr.row.id) is running" + (lr.row.restoredFrom.map { " (restored from \($0))" } ?? ""))
            case .recordFailedStop(let backToRunning):
                guard var lr = live[job] else { break }
                lr.stopSignalled = true
                if backToRunning {
                    lr.row.status = .running
                    try? store.updateRun(lr.row)
                }
                live[job] = lr
            case .recordStopSnapshot(let id):
                if let run = context.endedRun { recordStopSnapshot(job, id: id, run: run) }
            case .succeedOperation(let result):
                succeed(job, result: result)
            case .failOperation(let error):
                fail(job, error)
            case let .advanceOperation(phase, added):
                guard var next = inflight[job] else { break }
                next.phase = phase
                next.run = nil
                if case .object(var r) = next.result ?? .object([:]) {
                    for (k, v) in added { r[k] = v }
                    next.result = .object(r)
                }
                update(next)
            case .warn(let warning):
                try? store.setWarning(job, warning)
            }
        }
        return recorded
    }

    /// `execute` for reactions to a run, which no caller waits on: a failure is logged.
    func react(_ actions: [JobLifecycleStateMachine.Action], job: String, _ context: ActionContext = ActionContext()) {
        do { try execute(actions, job: job, context) } catch { log("job '\(job)': \(error)") }
    }

    // MARK: Operations

    func newOperation(_ job: String, _ type: OperationType, params: JSONValue) -> OperationRow {
        OperationRow(id: Clock.newID("op"), job: job, type: type, status: .pending, requestedAt: Clock.now(),
                     finishedAt: nil, params: params, phase: nil, run: nil, result: nil, error: nil)
    }

    /// The operation as it is now (in flight or finished).
    private func currentOperation(_ id: String) -> OperationRow {
        if let op = inflight.values.first(where: { $0.id == id }) { return op }
        return (try? store.operation(id)) ?? OperationRow(id: id, job: "", type: .run, status: .failed, requestedAt: Clock.now(),
                                                          finishedAt: nil, params: .null, phase: nil, run: nil, result: nil, error: nil)
    }

    /// The operation an accepted request recorded, as it is now; null if none.
    func view(ofRecorded id: String?) throws -> Views.Schemas.Operation? {
        try id.map { try Views.operation(currentOperation($0)) }
    }

    /// The operation an accepted request must have recorded.
    func recordedOperation(_ id: String?) throws -> Views.Schemas.Operation {
        guard let op = try view(ofRecorded: id) else { throw APIError.internalError("the request recorded no operation") }
        return op
    }

    func operation(_ id: String) throws -> Views.Schemas.Operation {
        if let op = inflight.values.first(where: { $0.id == id }) { return try Views.operation(op) }
        guard let op = try store.operation(id) else {
            throw APIError.notFound("operation '\(id)' not found", suggestion: "list a job's operations with GET /api/v1/jobs/{name}/operations")
        }
        return try Views.operation(op)
    }

    func operations(_ job: String) throws -> [Views.Schemas.Operation] {
        _ = try requireJob(job)
        return try store.operations(job: job).map { try Views.operation(inflight[job]?.id == $0.id ? inflight[job]! : $0) }
    }

    func update(_ op: OperationRow) {
        if op.inFlight { inflight[op.job] = op }
        do { try store.updateOperation(op) } catch { log("cannot record operation \(op.id): \(error)") }
    }

    /// Ends the job's operation in flight successfully; clears the job's warning.
    func succeed(_ job: String, result: JSONValue) {
        guard var op = inflight.removeValue(forKey: job) else { return }
        op.status = .succeeded
        op.finishedAt = Clock.now()
        op.phase = nil
        if case .object(var r) = op.result ?? .object([:]), case .object(let add) = result {
            for (k, v) in add { r[k] = v }
            op.result = .object(r)
        } else {
            op.result = result
        }
        update(op)
        try? store.setWarning(job, nil)
        log("job '\(job)': operation \(op.id) (\(op.type.rawValue)) succeeded: \(op.result?.text ?? "")")
    }

    /// Ends the job's operation in flight with an error, which becomes the job's warning.
    func fail(_ job: String, _ error: OperationError) {
        guard var op = inflight.removeValue(forKey: job) else {
            try? store.setWarning(job, error.warning)
            return
        }
        op.status = .failed
        op.finishedAt = Clock.now()
        op.phase = nil
        op.error = error
        update(op)
        try? store.setWarning(job, error.warning)
        log("job '\(job)': operation \(op.id) (\(op.type.rawValue)) failed: \(error.message)")
    }

    // MARK: Run

    func run(_ job: String, version: Int?, snapshot: String?, allowNonRestoredState: Bool) throws -> Views.Schemas.Operation {
        _ = try requireJob(job)
        let latest = try store.latestVersionNumber(job: job)
        let number = JobLifecycleStateMachine.requestedVersion(version, latest: latest)
        let stored = JobLifecycleStateMachine.StoredFacts(
            latestVersion: latest,
            requestedVersionExists: try number.map { try store.version(job: job, number: $0) != nil } ?? false,
            snapshots: snapshot == nil ? [] : storedSnapshots(job).map(\.id))
        let request = JobLifecycleStateMachine.Request.run(version: version, snapshot: snapshot, allowNonRestoredState: allowNonRestoredState)
        let actions = try machine(job).requestReceived(request, stored: stored).actions()
        var context = ActionContext()
        for case let .startRun(number, snapshotID, allowNonRestoredState) in actions {
            context.params = .object(["version": .int(Int64(number)), "snapshot": .optional(snapshotID),
                                      "allowNonRestoredState": .bool(allowNonRestoredState)])
        }
        return try recordedOperation(try execute(actions, job: job, context))
    }

    /// The ids of the job's usable snapshots (directories the store has), oldest first.
    nonisolated func storedSnapshots(_ job: String) -> [SnapshotManifest] {
        guard let store = try? SnapshotStore.openExisting(stateDir(job)) else { return [] }
        return store.list().snapshots
    }

    /// Starts a run for the job's operation in flight; a failure to start fails the operation.
    func startRunOrFail(_ job: String, version: Int, snapshot: String?, allowNonRestoredState: Bool) {
        do {
            try startRun(job, version: version, snapshot: snapshot, allowNonRestoredState: allowNonRestoredState)
        } catch let e as APIError {
            fail(job, OperationError(code: e.code, message: e.message, suggestion: e.suggestion))
        } catch {
            let message = "cannot start the run: \(error)"
            fail(job, OperationError(code: "internal", message: message,
                                     suggestion: Suggestions.suggest(code: "io_error", message: message)))
        }
    }

    private func startRun(_ job: String, version: Int, snapshot: String?, allowNonRestoredState: Bool) throws {
        guard let v = try store.version(job: job, number: version) else {
            throw APIError.notFound("job '\(job)' has no version \(version)")
        }
        let fm = FileManager.default
        try writeVersionFile(v)
        let state = stateDir(job)
        try fm.createDirectory(at: state, withIntermediateDirectories: true)
        let runID = Clock.newID("run")
        let runDir = jobDir(job).appendingPathComponent("runs", isDirectory: true).appendingPathComponent(runID, isDirectory: true)
        try fm.createDirectory(at: runDir, withIntermediateDirectories: true)
        let events = runDir.appendingPathComponent("events.jsonl").path
        let logPath = runDir.appendingPathComponent("log.txt").path
        guard fm.createFile(atPath: events, contents: nil) else {
            throw APIError(500, "io_error", "cannot create \(events)",
                           suggestion: Suggestions.suggest(code: "io_error", message: "cannot create file"))
        }
        var args = ["run", versionFile(job, version).path, "--state-dir", state.path, "--events", events, "--plain", "--job-version", String(version)]
        if let snapshot { args += ["--from-snapshot", snapshot] }
        if allowNonRestoredState { args.append("--allow-non-restored-state") }
        let now = Clock.now()
        let header = "[weir server] \(now) run \(runID) of job '\(job)' version \(version)"
            + (snapshot.map { ", restoring \($0)" } ?? "") + ": \(settings.weirBinary) \(args.joined(separator: " "))\n"
        _ = fm.createFile(atPath: logPath, contents: Data(header.utf8))
        var row = RunRow(id: runID, job: job, version: version, pid: 0, status: .starting, startedAt: now, endedAt: nil,
                         restoredFrom: snapshot, eventsPath: events, logPath: logPath, outcome: nil, outcomeMessage: nil)
        try store.insertRun(row)
        do {
            row.pid = try ProcessControl.spawn(executable: settings.weirBinary, arguments: args, logPath: logPath)
        } catch {
            row.status = .ended
            row.endedAt = Clock.now()
            row.outcome = "failed"
            row.outcomeMessage = "\(error)"
            try? store.updateRun(row)
            throw error
        }
        try? store.updateRun(row)
        live[job] = LiveRun(row: row, isChild: true)
        if var op = inflight[job] {
            op.phase = .starting
            op.run = runID
            update(op)
        }
        log("job '\(job)': run \(runID) of version \(version) started (pid \(row.pid))" + (snapshot.map { ", restoring \($0)" } ?? ""))
        startWatcher(row, isChild: true)
    }

    func startWatcher(_ row: RunRow, isChild: Bool) {
        Task.detached { [self] in await RunWatcher.watch(plane: self, run: row, isChild: isChild) }
    }

    // MARK: Stop and savepoint

    func stop(_ job: String, snapshot: Bool) throws -> Views.Schemas.Operation {
        _ = try requireJob(job)
        let actions = try machine(job).requestReceived(.stop(snapshot: snapshot)).actions()
        return try recordedOperation(try execute(actions, job: job, ActionContext(params: .object(["snapshot": .bool(snapshot)]))))
    }

    /// Sends the stop signal to the job's live run: SIGTERM (stop with
    /// snapshot) or SIGUSR2 (cancel; the server kills the run if it does
    /// not end within `cancelGraceSeconds`).
    private func signalStop(_ job: String, snapshot: Bool) {
        guard var lr = live[job] else { return }
        lr.row.status = .stopping
        if snapshot { lr.stopSignalled = true }
        live[job] = lr
        try? store.updateRun(lr.row)
        let sent = ProcessControl.send(snapshot ? SIGTERM : SIGUSR2, to: lr.row.pid)
        log("job '\(job)': \(snapshot ? "stop with snapshot (SIGTERM)" : "cancel (SIGUSR2)") sent to run \(lr.row.id) (pid \(lr.row.pid))"
            + (sent ? "" : ": the process is gone"))
        if !snapshot {
            let runID = lr.row.id
            Task { [weak self] in
                try? await Task.sleep(nanoseconds: JobLifecycle.cancelGraceSeconds * 1_000_000_000)
                await self?.killIfStillCancelling(job, runID: runID)
            }
        }
    }

    private func killIfStillCancelling(_ job: String, runID: String) {
        guard var lr = live[job], lr.row.id == runID, lr.row.status == .stopping, lr.final == nil else { return }
        lr.killedAfterCancel = true
        live[job] = lr
        log("job '\(job)': run \(runID) did not end within \(JobLifecycle.cancelGraceSeconds) s of the cancel request; killing pid \(lr.row.pid)")
        ProcessControl.send(SIGKILL, to: lr.row.pid)
    }

    func savepoint(_ job: String) throws -> Views.Schemas.Operation {
        _ = try requireJob(job)
        return try recordedOperation(try execute(machine(job).requestReceived(.savepoint).actions(), job: job))
    }
}
