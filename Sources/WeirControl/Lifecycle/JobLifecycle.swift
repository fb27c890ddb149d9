import Foundation
import Logging
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
    /// Where the server logs (lines are masked before they get here).
    public var logger: Logger
    /// Exports a spec to a Flink SQL script, starting at the given source offsets
    /// (by node, then `topic/partition`) when given; throws the refusal (nil: not offered).
    public var export: (@Sendable (_ spec: String, _ startOffsets: [String: [String: Int64]]?, _ note: String) throws -> String)?
    /// Compiles a spec into its job graph, for the console's drawing (nil: not offered).
    public var compile: (@Sendable (String) throws -> JobPlan)?
    /// Checks that a snapshot of a run of the first spec could be restored by
    /// the second (allowing dropped state or not); throws why not. Used by
    /// publish-and-run before it stops anything.
    public var checkRestore: @Sendable (_ previous: String, _ next: String, _ allowNonRestoredState: Bool) throws -> Void = { _, _, _ in }
    /// Restore previews, dry runs and the transaction ledger (nil: not offered).
    public var drills: DrillHooks?
    /// Why a draft may not even be stored (a client property that loads code
    /// or runs a command), nil when it may; drafts are otherwise unchecked.
    public var screenDraft: @Sendable (String) -> String? = { _ in nil }

    public init(home: URL, weirBinary: String, validate: @escaping @Sendable (String) throws -> String,
                logger: Logger) {
        self.home = home; self.weirBinary = weirBinary; self.validate = validate; self.logger = logger
    }
}

/// The driver of every job's lifecycle: the in-memory state of live runs and
/// operations in flight, and the side effects (metadata rows, files, spawned
/// processes, signals, log lines) of what `JobLifecycleStateMachine` decides.
///
/// The rules of §1 of the product spec live in the state machine; this actor
/// gathers a job's facts, asks it, and executes the actions it returns
/// (`execute`). One actor for all jobs, so each request's check-then-act
/// happens without interleaving: two simultaneous run requests for a job get
/// exactly one 202 and one 409, and a job never has two live runs. Requests
/// validate, record an operation and act (spawn or signal a run); the outcome
/// arrives later through `handle(runID:events:)` and `runExited`, fed by one
/// watcher task per run (`RunWatcher`). Everything is persisted in
/// `MetadataStore` as it changes, and `reconcile()` rebuilds the state after a restart.
actor JobLifecycle {
    /// A run whose process is (believed) alive.
    struct LiveRun {
        var row: RunRow
        /// Spawned by this server process (reaped with waitpid) rather than re-attached.
        var isChild: Bool
        /// The latest `metrics` event.
        var metrics: RunEventLine.Metrics?
        /// What the live job view shows beyond it: the sample before, checkpoints and restarts.
        var history = LiveHistory()
        /// The final event (`finished`, `stopped`, `cancelled`, `failed`) once seen.
        var final: RunEventLine?
        /// A SIGTERM (stop with snapshot) was already sent: the engine treats a second one as a cancel.
        var stopSignalled = false
        /// The server killed it after a cancel did not end it in time.
        var killedAfterCancel = false
    }

    let store: MetadataStore
    let settings: ControlSettings
    var live: [String: LiveRun] = [:]
    /// Each job's last ended run since this server started, for the live view's final figures.
    var lastEnded: [String: LiveRun] = [:]
    /// Node ids in graph order by job and version (versions are immutable).
    var nodeOrders: [String: [String]] = [:]
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

    func log(_ line: String) { settings.logger.info("\(Masking.mask(line))") }

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

    /// The lifecycle rules over what is known of the job now.
    func machine(_ job: String) -> JobLifecycleStateMachine {
        JobLifecycleStateMachine(job: job, operation: inflight[job].map(JobLifecycleStateMachine.OperationFacts.init),
                                 run: live[job].map(JobLifecycleStateMachine.RunFacts.init))
    }

    func status(of job: String) -> JobStatus { machine(job).status }

    private func view(_ j: JobRow) throws -> Views.Schemas.Job {
        let lr = live[j.name]?.row
        let version = try lr?.version ?? store.lastRun(job: j.name)?.version
        return try Views.job(j, status: status(of: j.name), version: version,
                         latestVersion: try store.latestVersionNumber(job: j.name), live: lr)
    }

    func job(_ name: String) throws -> Views.Schemas.Job { try view(try requireJob(name)) }

    func jobs() throws -> [Views.Schemas.Job] { try store.jobs().map { try view($0) } }

    func createJob(name: String, spec: String) throws -> Views.Schemas.Job {
        try JobLifecycle.checkName(name)
        if try store.job(name) != nil {
            throw APIError.conflict("job '\(name)' already exists",
                                    suggestion: "choose another name, or replace its draft (PUT /api/v1/jobs/\(name)/draft)")
        }
        try screen(spec)
        Masking.register(spec: spec)
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
        try execute(machine(name).requestReceived(.delete).actions(), job: name)
        lastEnded[name] = nil
        nodeOrders = nodeOrders.filter { !$0.key.hasPrefix(name + "\u{0}") }  // a new job of that name starts again at version 1
    }

    // MARK: Drafts and versions

    func draft(_ name: String) throws -> Views.Schemas.Draft { Views.draft(try requireJob(name)) }

    func putDraft(_ name: String, spec: String) throws -> Views.Schemas.Draft {
        let j = try requireJob(name)
        // A spec read through the API shows passwords as ***: keep the stored ones.
        var restored = Masking.unmask(spec, original: j.draft)
        if restored.contains(":\(Masking.placeholder)@"), let latest = try store.latestVersionNumber(job: name),
           let v = try store.version(job: name, number: latest) {
            restored = Masking.unmask(restored, original: v.spec)
        }
        try screen(restored)
        Masking.register(spec: restored)
        try store.updateDraft(name, draft: restored, at: Clock.now())
        return try draft(name)
    }

    /// Refuses a draft that names a client property loading code or running a command.
    private func screen(_ spec: String) throws {
        if let why = settings.screenDraft(spec) {
            throw APIError(422, "invalid_spec", why,
                           suggestion: "remove that property: Weir does not load code or run commands named by a job spec")
        }
    }

    func versions(_ name: String) throws -> [Views.Schemas.Version] {
        _ = try requireJob(name)
        return try store.versions(job: name).reversed().map(Views.version)
    }

    func publish(_ name: String, description: String?, run: PublishRunRequest?) throws -> Views.Schemas.PublishResult {
        let j = try requireJob(name)
        // Where each node's state goes from the latest version to this one.
        let mappingFromPrevious = publishMapping(name, draft: j.draft)
        let type: OperationType = run == nil ? .publish : .publishAndRun
        var published: (version: VersionRow, description: String)?
        for action in try machine(name).requestReceived(.publish(description: description, run: run)).actions() {
            guard case let .publishVersion(description, restoreCheck) = action else {
                try execute([action], job: name)
                continue
            }
            published = (try publishVersion(j, type, description: description, restoreCheck: restoreCheck), description)
        }
        guard let published else {
            throw APIError.internalError("publishing job '\(name)' stored no version")
        }
        let v = published.version
        var context = ActionContext()
        if let run {
            context.params = .object([
                "version": .int(Int64(v.number)), "stopCurrent": .bool(run.stopCurrent), "snapshot": .bool(run.snapshot),
                "restoreFromStop": .bool(run.restoreFromStop), "allowNonRestoredState": .bool(run.allowNonRestoredState),
            ])
            context.result = .object(["version": .int(Int64(v.number))])
        }
        let recorded = try execute(machine(name).versionPublished(v.number, description: published.description, run: run), job: name, context)
        return .init(version: Views.version(v), operation: try view(ofRecorded: recorded).map { .init(value1: $0) },
                     stateMapping: try mappingFromPrevious.map { .init(value1: try converted($0)) })
    }

    /// Validates the draft (and, for `restoreCheck`, that it can restore a
    /// snapshot of the running version), then stores it as the next version.
    /// A refusal is recorded as a failed operation of `type`.
    private func publishVersion(_ j: JobRow, _ type: OperationType, description: String,
                                restoreCheck: JobLifecycleStateMachine.RestoreCheck?) throws -> VersionRow {
        let name = j.name
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
        if let check = restoreCheck, let running = try store.version(job: name, number: check.runningVersion) {
            // Refuse before stopping anything: the current run stays untouched.
            do { try settings.checkRestore(running.spec, j.draft, check.allowNonRestoredState) } catch {
                throw try refusePublish(name, type, description: description, code: "snapshot_incompatible",
                                        message: "the new version cannot restore the stop snapshot of running version \(check.runningVersion): \(JobLifecycle.describeSpecError(error))",
                                        suggestion: "keep the node ids, keys, windows, aggregates and maxParallelism of stateful nodes, or publish with allowNonRestoredState, or without restoreFromStop; the running version was not stopped")
            }
        }
        let v = try store.insertVersion(job: name, description: description, spec: j.draft)
        try? writeVersionFile(v)
        log("job '\(name)': published version \(v.number)")
        return v
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

    func writeVersionFile(_ v: VersionRow) throws {
        let file = versionFile(v.job, v.number)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        if (try? String(contentsOf: file, encoding: .utf8)) == v.spec { return }
        try v.spec.write(to: file, atomically: true, encoding: .utf8)
        chmod(file.path, 0o600)  // it holds the real password
    }

    // MARK: Snapshots, logs, metrics

    /// The job's snapshots as they really are: recorded ones whose directory
    /// the store still has (retention deletes old checkpoints), plus any the
    /// store has that were never recorded; newest first.
    func snapshots(_ job: String) throws -> [Views.Schemas.Snapshot] {
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
        return try result.map(Views.snapshot)
    }

    /// The log file of a run of the job: `run`, else the live run, else the last.
    func logPath(_ job: String, run: String?) throws -> (run: String, path: String) {
        _ = try requireJob(job)
        if let run {
            // A drill's log: its operation id.
            if run.hasPrefix("op-"), let op = try store.operation(run), op.job == job, op.type == .drill {
                return (run, drillDir(job, run).appendingPathComponent("log.txt").path)
            }
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

    /// The job's run history, newest first.
    func runs(_ job: String) throws -> [Views.Schemas.RunHistoryEntry] {
        _ = try requireJob(job)
        return try store.runs(job: job).map { try Views.runHistory(live[job]?.row.id == $0.id ? live[job]!.row : $0) }
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

