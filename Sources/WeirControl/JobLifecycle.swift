import Foundation
import WeirCore
#if canImport(Glibc)
import Glibc
#endif

/// What the control plane needs from its host (the `weir server` command).
public struct ControlSettings: Sendable {
    /// The server's home: `weir.db` and `jobs/<job>/…`.
    public var home: URL
    /// The `weir` executable that runs jobs (`weir run …`).
    public var weirBinary: String
    /// Checks a spec (parse, references, types, expressions) without
    /// connecting to anything; throws `SpecErrors` or `WeirError`. Injected
    /// by the CLI layer, which knows the connector kinds.
    /// Validates a spec and returns its `name` (which must be the job's name).
    public var validate: @Sendable (String) throws -> String
    /// Receives the server's log lines (already masked).
    public var log: @Sendable (String) -> Void
    /// Checks that a snapshot of a run of the first spec could be restored by
    /// the second (allowing dropped state or not); throws why not. Used by
    /// publish-and-run before it stops anything.
    public var checkRestore: @Sendable (_ previous: String, _ next: String, _ allowNonRestoredState: Bool) throws -> Void = { _, _, _ in }

    public init(home: URL, weirBinary: String, validate: @escaping @Sendable (String) throws -> String,
                log: @escaping @Sendable (String) -> Void) {
        self.home = home; self.weirBinary = weirBinary; self.validate = validate; self.log = log
    }
}

/// The publish-and-run options of `POST /jobs/{name}/versions`.
struct PublishRunRequest: Sendable {
    var stopCurrent: Bool
    var snapshot: Bool
    var restoreFromStop: Bool
    var allowNonRestoredState: Bool
}

/// The lifecycle of every job: the rules of §1 of the product spec, the
/// in-memory state of live runs and operations in flight, and the reactions
/// to what runs report.
///
/// One actor for all jobs, so each request's check-then-act happens without
/// interleaving: two simultaneous run requests for a job get exactly one
/// 202 and one 409, and a job never has two live runs. Requests validate,
/// record an operation and act (spawn or signal a run); the outcome arrives
/// later through `handle(runID:events:)` and `runExited`, fed by one watcher
/// task per run (`RunWatcher`). Everything is persisted in `MetadataStore`
/// as it changes, and `reconcile()` rebuilds the state after a restart.
actor JobLifecycle {
    /// A run whose process is (believed) alive.
    struct LiveRun {
        var row: RunRow
        /// Spawned by this server process (reaped with waitpid) rather than re-attached.
        var isChild: Bool
        /// The latest `metrics` event.
        var metrics: JSONValue?
        /// The final event (`finished`, `stopped`, `cancelled`, `failed`) once seen.
        var final: JSONValue?
        /// A SIGTERM (stop with snapshot) was already sent: the engine treats a second one as a cancel.
        var stopSignalled = false
        /// The server killed it after a cancel did not end it in time.
        var killedAfterCancel = false
    }

    let store: MetadataStore
    let settings: ControlSettings
    var live: [String: LiveRun] = [:]
    var inflight: [String: OperationRow] = [:]

    /// How long a cancel (stop without snapshot) may take before the run is killed.
    static let cancelGraceSeconds: UInt64 = 60

    init(store: MetadataStore, settings: ControlSettings) {
        self.store = store
        self.settings = settings
    }

    // MARK: Paths

    nonisolated func jobDir(_ job: String) -> URL {
        settings.home.appendingPathComponent("jobs", isDirectory: true).appendingPathComponent(job, isDirectory: true)
    }
    nonisolated func stateDir(_ job: String) -> URL { jobDir(job).appendingPathComponent("state", isDirectory: true) }
    nonisolated func versionFile(_ job: String, _ n: Int) -> URL {
        jobDir(job).appendingPathComponent("versions", isDirectory: true).appendingPathComponent("\(n).yaml")
    }

    func log(_ line: String) { settings.log(Masking.mask(line)) }

    // MARK: Jobs

    static func checkName(_ name: String) throws {
        let ok = !name.isEmpty && name.count <= 128 && name != "." && name != ".."
            && name.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0)) }
        if !ok {
            throw APIError.invalidRequest("invalid job name '\(name)': use 1 to 128 letters, digits, '.', '_' or '-'",
                                          suggestion: "for example user-spend or orders_v2")
        }
    }

    func requireJob(_ name: String) throws -> JobRow {
        guard let j = try store.job(name) else {
            throw APIError.notFound("job '\(name)' not found", suggestion: "list the jobs with GET /api/v1/jobs, or create it")
        }
        return j
    }

    func status(of job: String) -> JobStatus {
        if let op = inflight[job], op.type != .savepoint, op.type != .publish { return .operating }
        if let lr = live[job] { return lr.row.status == .running ? .running : .operating }
        return .stopped
    }

    private func view(_ j: JobRow) throws -> JSONValue {
        let lr = live[j.name]?.row
        let version = try lr?.version ?? store.lastRun(job: j.name)?.version
        return Views.job(j, status: status(of: j.name), version: version,
                         latestVersion: try store.latestVersionNumber(job: j.name), live: lr)
    }

    func job(_ name: String) throws -> JSONValue { try view(try requireJob(name)) }

    func jobs() throws -> JSONValue { .array(try store.jobs().map { try view($0) }) }

    func createJob(name: String, spec: String) throws -> JSONValue {
        try JobLifecycle.checkName(name)
        if try store.job(name) != nil {
            throw APIError.conflict("job '\(name)' already exists",
                                    suggestion: "choose another name, or replace its draft (PUT /api/v1/jobs/\(name)/draft)")
        }
        let fm = FileManager.default
        let dir = jobDir(name)
        if fm.fileExists(atPath: dir.path) {
            // Leftovers of a job of the same name whose deletion did not finish: a new job starts empty.
            try? fm.removeItem(at: dir)
        }
        for sub in ["versions", "runs", "state"] {
            try fm.createDirectory(at: dir.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        let now = Clock.now()
        try store.insertJob(JobRow(name: name, draft: spec, createdAt: now, updatedAt: now, draftUpdatedAt: now, warning: nil))
        log("job '\(name)' created")
        return try job(name)
    }

    func deleteJob(_ name: String) throws {
        _ = try requireJob(name)
        if let op = inflight[name] {
            throw APIError.conflict("job '\(name)' has operation \(op.id) (\(op.type.rawValue)) in progress",
                                    suggestion: "wait for it to finish, stop the job, then delete it")
        }
        if let lr = live[name] {
            throw APIError.conflict("job '\(name)' is \(status(of: name).rawValue) (run \(lr.row.id) of version \(lr.row.version))",
                                    suggestion: "stop it first (POST /api/v1/jobs/\(name)/stop), then delete it")
        }
        try store.deleteJob(name)
        try? FileManager.default.removeItem(at: jobDir(name))
        log("job '\(name)' deleted")
    }

    // MARK: Drafts and versions

    func draft(_ name: String) throws -> JSONValue { Views.draft(try requireJob(name)) }

    func putDraft(_ name: String, spec: String) throws -> JSONValue {
        let j = try requireJob(name)
        // A spec read through the API shows passwords as ***: keep the stored ones.
        var restored = Masking.unmask(spec, original: j.draft)
        if restored.contains(":\(Masking.placeholder)@"), let latest = try store.latestVersionNumber(job: name),
           let v = try store.version(job: name, number: latest) {
            restored = Masking.unmask(restored, original: v.spec)
        }
        try store.updateDraft(name, draft: restored, at: Clock.now())
        return try draft(name)
    }

    func versions(_ name: String) throws -> JSONValue {
        _ = try requireJob(name)
        return .array(try store.versions(job: name).reversed().map(Views.version))
    }

    func publish(_ name: String, description: String?, run: PublishRunRequest?) throws -> JSONValue {
        let j = try requireJob(name)
        let description = description?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard !description.isEmpty else {
            throw APIError.invalidRequest("a version needs a description: say what changed",
                                          suggestion: "send {\"description\": \"…\"} (weir job publish \(name) --description \"…\")")
        }
        if let run {
            try checkNoOperation(name)
            if run.restoreFromStop && !run.snapshot {
                throw APIError.invalidRequest("restoreFromStop needs snapshot: true (the stop snapshot to restore from)",
                                              suggestion: "set run.snapshot to true, or restoreFromStop to false")
            }
            if let lr = live[name] {
                if !run.stopCurrent {
                    throw APIError.conflict("job '\(name)' is running version \(lr.row.version); stop the running version \(lr.row.version) first",
                                            suggestion: "publish with run.stopCurrent true, or stop the job first")
                }
                if run.snapshot { try checkCanStopWithSnapshot(name, lr) }
            } else if run.restoreFromStop {
                throw APIError.conflict("job '\(name)' is not running, so no stop snapshot will be taken to restore from",
                                        suggestion: "publish, then run with snapshot \"latest\" or a snapshot id")
            }
        }
        let type: OperationType = run == nil ? .publish : .publishAndRun
        do {
            // The spec's name keys sink transactions and their recovery: it must be the job's.
            let specName = try settings.validate(j.draft)
            if specName != name {
                throw WeirError.spec("name", "the spec is named '\(specName)' but the job is '\(name)': they must be the same (sink transactions are recovered by this name)")
            }
        } catch {
            throw try refusePublish(name, type, description: description, code: "invalid_spec",
                                    message: JobLifecycle.describeSpecError(error),
                                    suggestion: "fix the draft (PUT /api/v1/jobs/\(name)/draft) and publish again")
        }
        if let run, run.restoreFromStop, let lr = live[name], let running = try store.version(job: name, number: lr.row.version) {
            // Refuse before stopping anything: the current run stays untouched.
            do { try settings.checkRestore(running.spec, j.draft, run.allowNonRestoredState) } catch {
                throw try refusePublish(name, type, description: description, code: "snapshot_incompatible",
                                        message: "the new version cannot restore the stop snapshot of running version \(lr.row.version): \(JobLifecycle.describeSpecError(error))",
                                        suggestion: "keep the node ids, keys, windows, aggregates and maxParallelism of stateful nodes, or publish with allowNonRestoredState, or without restoreFromStop; the running version was not stopped")
            }
        }
        let v = try store.insertVersion(job: name, description: description, spec: j.draft)
        try? writeVersionFile(v)
        log("job '\(name)': published version \(v.number)")
        guard let run else {
            var op = newOperation(name, .publish, params: .object(["description": .string(description)]))
            op.status = .succeeded
            op.finishedAt = Clock.now()
            op.result = .object(["version": .int(Int64(v.number))])
            try store.insertOperation(op)
            return .object(["version": Views.version(v), "operation": .null])
        }
        var op = newOperation(name, .publishAndRun, params: .object([
            "version": .int(Int64(v.number)), "stopCurrent": .bool(run.stopCurrent), "snapshot": .bool(run.snapshot),
            "restoreFromStop": .bool(run.restoreFromStop), "allowNonRestoredState": .bool(run.allowNonRestoredState),
        ]))
        op.status = .running
        op.result = .object(["version": .int(Int64(v.number))])
        if let lr = live[name] {
            op.phase = "stopping"
            op.run = lr.row.id
            try store.insertOperation(op)
            inflight[name] = op
            signalStop(name, snapshot: run.snapshot)
        } else {
            op.phase = "starting"
            try store.insertOperation(op)
            inflight[name] = op
            startRunOrFail(name, version: v.number, snapshot: nil, allowNonRestoredState: run.allowNonRestoredState)
        }
        return .object(["version": Views.version(v), "operation": Views.operation(currentOperation(op.id))])
    }

    /// Records a refused publish as a failed operation and returns the 422 to throw.
    private func refusePublish(_ name: String, _ type: OperationType, description: String, code: String,
                               message: String, suggestion: String) throws -> APIError {
        var op = newOperation(name, type, params: .object(["description": .string(description)]))
        op.status = .failed
        op.finishedAt = Clock.now()
        op.error = OperationError(code: code, message: message, suggestion: suggestion)
        try store.insertOperation(op)
        log("job '\(name)': \(type == .publish ? "publish" : "publish-and-run") refused: \(message)")
        return APIError(422, code, message, suggestion: suggestion)
    }

    static func describeSpecError(_ error: any Error) -> String {
        if let e = error as? SpecErrors {
            return "the draft is not a valid job spec:\n" + e.errors.map { "  \($0.description)" }.joined(separator: "\n")
        }
        if let e = error as? WeirError { return "the draft is not a valid job spec: \(e.description)" }
        return "the draft is not a valid job spec: \(error)"
    }

    private func writeVersionFile(_ v: VersionRow) throws {
        let file = versionFile(v.job, v.number)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        if (try? String(contentsOf: file, encoding: .utf8)) == v.spec { return }
        try v.spec.write(to: file, atomically: true, encoding: .utf8)
        chmod(file.path, 0o600)  // it holds the real password
    }

    // MARK: Operations

    private func newOperation(_ job: String, _ type: OperationType, params: JSONValue) -> OperationRow {
        OperationRow(id: Clock.newID("op"), job: job, type: type, status: .pending, requestedAt: Clock.now(),
                     finishedAt: nil, params: params, phase: nil, run: nil, result: nil, error: nil)
    }

    private func checkNoOperation(_ job: String) throws {
        if let op = inflight[job] {
            throw APIError.conflict("job '\(job)' has operation \(op.id) (\(op.type.rawValue)) in progress; one operation at a time",
                                    suggestion: "wait for it to finish (GET /api/v1/operations/\(op.id)), then retry")
        }
    }

    /// The operation as it is now (in flight or finished).
    private func currentOperation(_ id: String) -> OperationRow {
        if let op = inflight.values.first(where: { $0.id == id }) { return op }
        return (try? store.operation(id)) ?? OperationRow(id: id, job: "", type: .run, status: .failed, requestedAt: Clock.now(),
                                                          finishedAt: nil, params: .null, phase: nil, run: nil, result: nil, error: nil)
    }

    func operation(_ id: String) throws -> JSONValue {
        if let op = inflight.values.first(where: { $0.id == id }) { return Views.operation(op) }
        guard let op = try store.operation(id) else {
            throw APIError.notFound("operation '\(id)' not found", suggestion: "list a job's operations with GET /api/v1/jobs/{name}/operations")
        }
        return Views.operation(op)
    }

    func operations(_ job: String) throws -> JSONValue {
        _ = try requireJob(job)
        return .array(try store.operations(job: job).map { inflight[job]?.id == $0.id ? Views.operation(inflight[job]!) : Views.operation($0) })
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

    func run(_ job: String, version: Int?, snapshot: String?, allowNonRestoredState: Bool) throws -> JSONValue {
        _ = try requireJob(job)
        try checkNoOperation(job)
        if let lr = live[job] {
            throw APIError.conflict("job '\(job)' is running version \(lr.row.version) (run \(lr.row.id)); stop the running version \(lr.row.version) first",
                                    suggestion: "stop it (with a snapshot to resume from it), or publish with run.stopCurrent")
        }
        guard let latest = try store.latestVersionNumber(job: job) else {
            throw APIError.conflict("job '\(job)' has no published versions",
                                    suggestion: "publish the draft first (POST /api/v1/jobs/\(job)/versions)")
        }
        let number = version ?? latest
        guard try store.version(job: job, number: number) != nil else {
            throw APIError.notFound("job '\(job)' has no version \(number)", suggestion: "its versions are 1 to \(latest)")
        }
        let snapshotID = try resolveSnapshot(job, snapshot)
        var op = newOperation(job, .run, params: .object([
            "version": .int(Int64(number)), "snapshot": .optional(snapshotID),
            "allowNonRestoredState": .bool(allowNonRestoredState),
        ]))
        op.status = .running
        op.phase = "starting"
        try store.insertOperation(op)
        inflight[job] = op
        startRunOrFail(job, version: number, snapshot: snapshotID, allowNonRestoredState: allowNonRestoredState)
        return Views.operation(currentOperation(op.id))
    }

    /// The ids of the job's usable snapshots (directories the store has), oldest first.
    nonisolated func storedSnapshots(_ job: String) -> [SnapshotManifest] {
        guard let store = try? SnapshotStore.openExisting(stateDir(job)) else { return [] }
        return store.list().snapshots
    }

    private func resolveSnapshot(_ job: String, _ requested: String?) throws -> String? {
        guard let requested else { return nil }
        let snaps = storedSnapshots(job)
        guard let latest = snaps.last else {
            throw APIError.conflict("this job has no snapshots; run without --snapshot",
                                    suggestion: "run without a snapshot; checkpoints, savepoints and stops with a snapshot create them")
        }
        if requested == "latest" { return latest.id }
        guard snaps.contains(where: { $0.id == requested }) else {
            throw APIError.notFound("snapshot '\(requested)' not found in job '\(job)'",
                                    suggestion: "list them with GET /api/v1/jobs/\(job)/snapshots (the latest is \(latest.id))")
        }
        return requested
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
            op.phase = "starting"
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

    func stop(_ job: String, snapshot: Bool) throws -> JSONValue {
        _ = try requireJob(job)
        try checkNoOperation(job)
        guard let lr = live[job] else {
            throw APIError.conflict("job '\(job)' is not running (status stopped)", suggestion: "nothing to stop")
        }
        if snapshot { try checkCanStopWithSnapshot(job, lr) }
        var op = newOperation(job, .stop, params: .object(["snapshot": .bool(snapshot)]))
        op.status = .running
        op.phase = "stopping"
        op.run = lr.row.id
        try store.insertOperation(op)
        inflight[job] = op
        signalStop(job, snapshot: snapshot)
        return Views.operation(currentOperation(op.id))
    }

    /// The engine stops with a snapshot on the first SIGTERM and cancels on the
    /// second; after a stop with snapshot failed, another would cancel.
    private func checkCanStopWithSnapshot(_ job: String, _ lr: LiveRun) throws {
        if lr.stopSignalled {
            throw APIError.conflict("run \(lr.row.id) of job '\(job)' already failed a stop with snapshot; a second stop signal would cancel it without a snapshot",
                                    suggestion: "take a savepoint, then stop without a snapshot (restore from the savepoint later); or stop without a snapshot (output stays committed up to the last completed checkpoint)")
        }
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

    func savepoint(_ job: String) throws -> JSONValue {
        _ = try requireJob(job)
        try checkNoOperation(job)
        guard let lr = live[job], lr.row.status == .running else {
            throw APIError.conflict("job '\(job)' is not running (status \(status(of: job).rawValue)); a savepoint needs a running run",
                                    suggestion: "run the job, then take the savepoint")
        }
        var op = newOperation(job, .savepoint, params: .object([:]))
        op.status = .running
        op.phase = "savepoint"
        op.run = lr.row.id
        try store.insertOperation(op)
        inflight[job] = op
        let sent = ProcessControl.send(SIGUSR1, to: lr.row.pid)
        log("job '\(job)': savepoint (SIGUSR1) sent to run \(lr.row.id)" + (sent ? "" : ": the process is gone"))
        return Views.operation(currentOperation(op.id))
    }

    // MARK: Snapshots, logs, metrics

    /// The job's snapshots as they really are: recorded ones whose directory
    /// the store still has (retention deletes old checkpoints), plus any the
    /// store has that were never recorded; newest first.
    func snapshots(_ job: String) throws -> JSONValue {
        _ = try requireJob(job)
        let stored = storedSnapshots(job)
        let present = Set(stored.map(\.id))
        let rows = try store.snapshots(job: job)
        let gone = rows.filter { !present.contains($0.id) }
        try? store.deleteSnapshots(job: job, ids: gone.map(\.id))
        var result = rows.filter { present.contains($0.id) }
        let recorded = Set(result.map(\.id))
        for m in stored where !recorded.contains(m.id) {
            result.append(SnapshotRow(job: job, id: m.id, version: m.version, run: nil, kind: m.kind.rawValue,
                                      checkpoint: m.checkpointID, createdAt: m.createdAt, sizeBytes: m.totalBytes,
                                      offsets: JSONLines.offsets(m.offsets)))
        }
        result.sort { ($0.checkpoint, $0.createdAt) > ($1.checkpoint, $1.createdAt) }
        return .array(result.map(Views.snapshot))
    }

    /// The log file of a run of the job: `run`, else the live run, else the last.
    func logPath(_ job: String, run: String?) throws -> (run: String, path: String) {
        _ = try requireJob(job)
        if let run {
            guard let r = try store.run(run), r.job == job else {
                throw APIError.notFound("job '\(job)' has no run '\(run)'")
            }
            return (r.id, r.logPath)
        }
        if let lr = live[job] { return (lr.row.id, lr.row.logPath) }
        guard let r = try store.lastRun(job: job) else {
            throw APIError.notFound("job '\(job)' has not run yet, so it has no log", suggestion: "run it first")
        }
        return (r.id, r.logPath)
    }

    /// What the metrics endpoint shows.
    func metricsSnapshot() throws -> MetricsSnapshot {
        var counts: [JobStatus: Int] = [:]
        for j in try store.jobs() { counts[status(of: j.name), default: 0] += 1 }
        let ops = try store.operationCounts()
        let runs = live.values.sorted { $0.row.job < $1.row.job }.compactMap { lr in lr.metrics.map { (lr.row.job, $0) } }
        return MetricsSnapshot(jobs: counts, operations: ops, runs: runs)
    }
}

