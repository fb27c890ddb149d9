import Foundation

/// Where a multi-step operation in flight is.
///
/// Exists so the lifecycle's rules can match on a closed set of phases instead
/// of strings; the raw values are the `operations.phase` column's format.
enum OperationPhase: String, Sendable, CaseIterable {
    /// Waiting for a started run to report `running`.
    case starting
    /// Waiting for a signalled run to end.
    case stopping
    /// Waiting for a run to report its savepoint.
    case savepoint
    /// Waiting for a drill's process to end with its report.
    case drilling
}

/// The publish-and-run options of `POST /jobs/{name}/versions`.
///
/// Exists as one value so a publish request (and the state machine's rules
/// about it) can carry "and run it" as a whole, or not at all.
struct PublishRunRequest: Sendable, Equatable {
    var stopCurrent: Bool
    var snapshot: Bool
    var restoreFromStop: Bool
    var allowNonRestoredState: Bool
}

/// The rules of a job's lifecycle (§1 of the product spec), as pure decisions.
///
/// Exists so the rules can be read and unit tested apart from what carries
/// them out: it knows no SQL, files, processes, signals, clocks or HTTP. The
/// `JobLifecycle` actor gathers the facts about one job (its operation in
/// flight, its live run, what the store holds), builds this value, feeds it an
/// event (a request, a run's report, a run's exit) and executes the `Action`s
/// it returns, the way postgres-nio's `ConnectionStateMachine` turns events
/// into actions for its channel handler. A refused request comes back as the
/// exact `APIError` the API returns.
struct JobLifecycleStateMachine: Sendable, Equatable {
    /// What the lifecycle knows of the job's operation in flight.
    ///
    /// Exists so the rules see an operation as typed values, not as a stored
    /// row with JSON parameters.
    struct OperationFacts: Sendable, Equatable {
        var id: String
        var type: OperationType
        var phase: OperationPhase?
        /// The run the operation is acting on now.
        var run: String?
        /// When it was requested: a run's reports from before then are not about it.
        var requestedAt: String
        /// Stop and publish-and-run: whether the stop takes a snapshot.
        var stopWithSnapshot = false
        /// Publish-and-run: the version to start once the running one is down.
        var version: Int? = nil
        /// Publish-and-run: whether the new version restores the stop snapshot.
        var restoreFromStop = false
        /// Publish-and-run: whether the new run may drop state it has no node for.
        var allowNonRestoredState = false
    }

    /// What the lifecycle knows of the job's live run.
    ///
    /// Exists so the rules see a run without its process, paths and metrics.
    struct RunFacts: Sendable, Equatable {
        var id: String
        var version: Int
        /// `starting`, `running` or `stopping`.
        var status: RunRow.Status
        var restoredFrom: String? = nil
        /// A stop with snapshot (SIGTERM) was already sent: a second one would cancel.
        var stopSignalled = false
    }

    /// What the metadata store and the snapshot store hold for a run request.
    ///
    /// Exists so the run rules can refuse unknown versions and snapshots without
    /// reading the store themselves.
    struct StoredFacts: Sendable, Equatable {
        /// The job's newest version, nil before its first publish.
        var latestVersion: Int? = nil
        /// Whether the version the request asks for (see `requestedVersion`) exists.
        var requestedVersionExists = false
        /// The ids of the job's usable snapshots, oldest first.
        var snapshots: [String] = []
    }

    /// A request of the REST API that changes the job's lifecycle.
    ///
    /// Exists so every such request enters the rules through one door.
    enum Request: Sendable, Equatable {
        /// Run a version (nil: the latest), restoring a snapshot id or `latest`.
        case run(version: Int?, snapshot: String?, allowNonRestoredState: Bool)
        case stop(snapshot: Bool)
        case savepoint
        /// Rehearse a restore of a snapshot (an id, `latest`, or nil: the
        /// latest; a running job: its stop snapshot) into a version (nil: the
        /// running version, else the latest).
        case drill(version: Int?, snapshot: String?)
        /// Publish the draft; with `run`, also run the new version.
        case publish(description: String?, run: PublishRunRequest?)
        case delete
    }

    /// What a live run reported in its events file that the rules react to.
    ///
    /// Exists to keep the events' JSON out of the rules.
    enum RunReport: Sendable, Equatable {
        case running(restoredFrom: String?)
        /// A snapshot was taken; `kind` is `checkpoint`, `savepoint` or `stop`.
        case snapshot(id: String, kind: String)
        case savepointFailed(reason: String?)
        case stopFailed(reason: String?)
    }

    /// How a run ended, from its final event or its process's exit.
    ///
    /// Exists so the reaction to an exit depends on the outcome only, not on
    /// how the outcome was learnt (event, exit code, signal, restart).
    struct RunEnding: Sendable, Equatable {
        /// `finished`, `stopped`, `cancelled`, `failed`, `killed`, `exited` or `lost`.
        var outcome: String
        var message: String
        /// Set when the ending is a failure.
        var error: OperationError? = nil
        /// The snapshot a stop with snapshot took.
        var stopSnapshot: String? = nil
    }

    /// Publish-and-run with `restoreFromStop`: the draft must be able to restore
    /// a snapshot of the running version, checked before anything is stopped.
    struct RestoreCheck: Sendable, Equatable {
        var runningVersion: Int
        var allowNonRestoredState: Bool
    }

    /// What the driver does, in order, for the job.
    ///
    /// Exists so a decision is a value that tests compare, not side effects.
    enum Action: Sendable, Equatable {
        /// Record the request as an operation in flight of this type, in this
        /// phase, acting on this run.
        case recordOperation(OperationType, phase: OperationPhase, run: String?)
        /// Validate the draft (its name must be the job's), check `restoreCheck`
        /// if any, then store the draft as the next version. A failed check
        /// refuses the publish (recorded as a failed operation, 422).
        case publishVersion(description: String, restoreCheck: RestoreCheck?)
        /// Record a publish without run as a succeeded operation.
        case recordPublished(version: Int, description: String)
        /// Spawn a run of the version; if it cannot start, the operation in flight fails.
        case startRun(version: Int, snapshot: String?, allowNonRestoredState: Bool)
        /// Stop the live run: with a snapshot (SIGTERM) or as a cancel (SIGUSR2).
        case signalStop(snapshot: Bool)
        /// Ask the live run for a savepoint (SIGUSR1).
        case signalSavepoint
        /// Spawn the drill of the operation in flight: restore `snapshot` into
        /// `version`; if it cannot start, the operation fails.
        case startDrill(version: Int, snapshot: String)
        /// Delete the job's metadata and files.
        case deleteJob
        /// The live run reported `running`: mark it so (with the snapshot it restored, if told).
        case markRunRunning(restoredFrom: String?)
        /// The live run's stop with snapshot failed: remember that a second SIGTERM
        /// would cancel it and, if it was stopping, mark it running again.
        case recordFailedStop(backToRunning: Bool)
        /// Record the stop snapshot with the ended run's version.
        case recordStopSnapshot(String)
        /// End the operation in flight successfully, adding `result` to its result.
        case succeedOperation(result: JSONValue)
        /// End the operation in flight with this error (it becomes the job's warning).
        case failOperation(OperationError)
        /// Move the operation in flight to another phase, acting on no run yet,
        /// adding these fields to its result.
        case advanceOperation(to: OperationPhase, addingResult: [String: JSONValue])
        /// Set the job's warning (nothing was waiting for what happened).
        case warn(JobWarning)
    }

    /// The answer to a request.
    ///
    /// Exists so a refusal and the actions of an accepted request are one value.
    enum Decision: Sendable, Equatable {
        case refuse(APIError)
        case proceed([Action])
    }

    var job: String
    var operation: OperationFacts?
    var run: RunFacts?

    init(job: String, operation: OperationFacts? = nil, run: RunFacts? = nil) {
        self.job = job
        self.operation = operation
        self.run = run
    }

    /// What the API shows: operating while a run, stop or publish-and-run is in
    /// flight or the live run is starting or stopping; running while the live
    /// run runs; stopped without a live run.
    var status: JobStatus {
        if let op = operation, op.type != .savepoint, op.type != .publish { return .operating }
        if let run { return run.status == .running ? .running : .operating }
        return .stopped
    }

    /// The version a run request means: the one asked for, else the latest.
    static func requestedVersion(_ requested: Int?, latest: Int?) -> Int? { requested ?? latest }

    // MARK: Requests

    /// Decides a request. `stored` matters to run requests only.
    func requestReceived(_ request: Request, stored: StoredFacts = StoredFacts()) -> Decision {
        switch request {
        case let .run(version, snapshot, allowNonRestoredState):
            return runRequested(version: version, snapshot: snapshot, allowNonRestoredState: allowNonRestoredState, stored: stored)
        case .stop(let snapshot):
            return stopRequested(snapshot: snapshot)
        case .savepoint:
            return savepointRequested()
        case let .drill(version, snapshot):
            return drillRequested(version: version, snapshot: snapshot, stored: stored)
        case let .publish(description, run):
            return publishRequested(description: description, run: run)
        case .delete:
            return deleteRequested()
        }
    }

    /// The actions once a publish stored version `number`: record the publish,
    /// or start the publish-and-run (stopping the live run first, if any).
    func versionPublished(_ number: Int, description: String, run options: PublishRunRequest?) -> [Action] {
        guard let options else { return [.recordPublished(version: number, description: description)] }
        if let run {
            return [.recordOperation(.publishAndRun, phase: .stopping, run: run.id), .signalStop(snapshot: options.snapshot)]
        }
        return [.recordOperation(.publishAndRun, phase: .starting, run: nil),
                .startRun(version: number, snapshot: nil, allowNonRestoredState: options.allowNonRestoredState)]
    }

    /// One operation at a time per job.
    private var operationInFlightRefusal: APIError? {
        guard let op = operation else { return nil }
        return .conflict("job '\(job)' has operation \(op.id) (\(op.type.rawValue)) in progress; one operation at a time",
                         suggestion: "wait for it to finish (GET /api/v1/operations/\(op.id)), then retry")
    }

    /// The engine stops with a snapshot on the first SIGTERM and cancels on the
    /// second; after a stop with snapshot failed, another would cancel.
    private func stopWithSnapshotRefusal(_ run: RunFacts) -> APIError? {
        guard run.stopSignalled else { return nil }
        return .conflict("run \(run.id) of job '\(job)' already failed a stop with snapshot; a second stop signal would cancel it without a snapshot",
                         suggestion: "take a savepoint, then stop without a snapshot (restore from the savepoint later); or stop without a snapshot (output stays committed up to the last completed checkpoint)")
    }

    private func runRequested(version: Int?, snapshot: String?, allowNonRestoredState: Bool, stored: StoredFacts) -> Decision {
        if let refusal = operationInFlightRefusal { return .refuse(refusal) }
        if let run {
            return .refuse(.conflict("job '\(job)' is running version \(run.version) (run \(run.id)); stop the running version \(run.version) first",
                                     suggestion: "stop it (with a snapshot to resume from it), or publish with run.stopCurrent"))
        }
        guard let latest = stored.latestVersion else {
            return .refuse(.conflict("job '\(job)' has no published versions",
                                     suggestion: "publish the draft first (POST /api/v1/jobs/\(job)/versions)"))
        }
        let number = JobLifecycleStateMachine.requestedVersion(version, latest: latest) ?? latest
        guard stored.requestedVersionExists else {
            return .refuse(.notFound("job '\(job)' has no version \(number)", suggestion: "its versions are 1 to \(latest)"))
        }
        var snapshotID: String?
        if let requested = snapshot {
            switch resolveSnapshot(requested, stored: stored) {
            case .success(let id): snapshotID = id
            case .failure(let refusal): return .refuse(refusal)
            }
        }
        return .proceed([.recordOperation(.run, phase: .starting, run: nil),
                         .startRun(version: number, snapshot: snapshotID, allowNonRestoredState: allowNonRestoredState)])
    }

    /// A snapshot id or `latest`, among the stored ones.
    private func resolveSnapshot(_ requested: String, stored: StoredFacts) -> Result<String, APIError> {
        guard let newest = stored.snapshots.last else {
            return .failure(.conflict("this job has no snapshots; run without --snapshot",
                                      suggestion: "run without a snapshot; checkpoints, savepoints and stops with a snapshot create them"))
        }
        if requested == "latest" { return .success(newest) }
        if stored.snapshots.contains(requested) { return .success(requested) }
        return .failure(.notFound("snapshot '\(requested)' not found in job '\(job)'",
                                  suggestion: "list them with GET /api/v1/jobs/\(job)/snapshots (the latest is \(newest))"))
    }

    /// A drill holds the job's sink tables and state directory: never beside a
    /// run. A running job is stopped with a snapshot first and drilled from it
    /// (and stays stopped); a stopped one is drilled from a stored snapshot.
    private func drillRequested(version: Int?, snapshot: String?, stored: StoredFacts) -> Decision {
        if let refusal = operationInFlightRefusal { return .refuse(refusal) }
        if let run {
            if let snapshot {
                return .refuse(.conflict("job '\(job)' is running: a drill of a running job stops it with a snapshot and rehearses the restore of that one, not of \(snapshot)",
                                         suggestion: "drill without a snapshot, or stop the job first and then drill from \(snapshot)"))
            }
            if let version, version != run.version, !stored.requestedVersionExists {
                return .refuse(.notFound("job '\(job)' has no version \(version)", suggestion: "see GET /api/v1/jobs/\(job)/versions"))
            }
            if let refusal = stopWithSnapshotRefusal(run) { return .refuse(refusal) }
            return .proceed([.recordOperation(.drill, phase: .stopping, run: run.id), .signalStop(snapshot: true)])
        }
        guard let latest = stored.latestVersion else {
            return .refuse(.conflict("job '\(job)' has no published versions", suggestion: "publish the draft first"))
        }
        let number = version ?? latest
        guard stored.requestedVersionExists else {
            return .refuse(.notFound("job '\(job)' has no version \(number)", suggestion: "its versions are 1 to \(latest)"))
        }
        guard !stored.snapshots.isEmpty else {
            return .refuse(.conflict("job '\(job)' has no snapshot to drill from",
                                     suggestion: "run the job: a drill of a running job stops it with a snapshot and rehearses its restore"))
        }
        switch resolveSnapshot(snapshot ?? "latest", stored: stored) {
        case .failure(let refusal): return .refuse(refusal)
        case .success(let id):
            return .proceed([.recordOperation(.drill, phase: .drilling, run: nil), .startDrill(version: number, snapshot: id)])
        }
    }

    private func stopRequested(snapshot: Bool) -> Decision {
        if let refusal = operationInFlightRefusal { return .refuse(refusal) }
        guard let run else {
            return .refuse(.conflict("job '\(job)' is not running (status stopped)", suggestion: "nothing to stop"))
        }
        if snapshot, let refusal = stopWithSnapshotRefusal(run) { return .refuse(refusal) }
        return .proceed([.recordOperation(.stop, phase: .stopping, run: run.id), .signalStop(snapshot: snapshot)])
    }

    private func savepointRequested() -> Decision {
        if let refusal = operationInFlightRefusal { return .refuse(refusal) }
        guard let run, run.status == .running else {
            return .refuse(.conflict("job '\(job)' is not running (status \(status.rawValue)); a savepoint needs a running run",
                                     suggestion: "run the job, then take the savepoint"))
        }
        return .proceed([.recordOperation(.savepoint, phase: .savepoint, run: run.id), .signalSavepoint])
    }

    private func publishRequested(description: String?, run options: PublishRunRequest?) -> Decision {
        let description = description?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard !description.isEmpty else {
            return .refuse(.invalidRequest("a version needs a description: say what changed",
                                           suggestion: "send {\"description\": \"…\"} (weir job publish \(job) --description \"…\")"))
        }
        guard let options else { return .proceed([.publishVersion(description: description, restoreCheck: nil)]) }
        if let refusal = operationInFlightRefusal { return .refuse(refusal) }
        if options.restoreFromStop && !options.snapshot {
            return .refuse(.invalidRequest("restoreFromStop needs snapshot: true (the stop snapshot to restore from)",
                                           suggestion: "set run.snapshot to true, or restoreFromStop to false"))
        }
        guard let run else {
            if options.restoreFromStop {
                return .refuse(.conflict("job '\(job)' is not running, so no stop snapshot will be taken to restore from",
                                         suggestion: "publish, then run with snapshot \"latest\" or a snapshot id"))
            }
            return .proceed([.publishVersion(description: description, restoreCheck: nil)])
        }
        if !options.stopCurrent {
            return .refuse(.conflict("job '\(job)' is running version \(run.version); stop the running version \(run.version) first",
                                     suggestion: "publish with run.stopCurrent true, or stop the job first"))
        }
        if options.snapshot, let refusal = stopWithSnapshotRefusal(run) { return .refuse(refusal) }
        let check = options.restoreFromStop
            ? RestoreCheck(runningVersion: run.version, allowNonRestoredState: options.allowNonRestoredState) : nil
        return .proceed([.publishVersion(description: description, restoreCheck: check)])
    }

    private func deleteRequested() -> Decision {
        if let op = operation {
            return .refuse(.conflict("job '\(job)' has operation \(op.id) (\(op.type.rawValue)) in progress",
                                     suggestion: "wait for it to finish, stop the job, then delete it"))
        }
        if let run {
            return .refuse(.conflict("job '\(job)' is \(status.rawValue) (run \(run.id) of version \(run.version))",
                                     suggestion: "stop it first (POST /api/v1/jobs/\(job)/stop), then delete it"))
        }
        return .proceed([.deleteJob])
    }
}
