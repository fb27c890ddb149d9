import Foundation
import WeirState

/// Restore drills through the control plane: the same state mapping, restore
/// preview, dry-run restore and transaction ledger as `weir snapshot
/// diff|verify|transactions`, for a job's published versions and snapshots.
/// They need the connectors (the broker, the sink database), so the host
/// provides them; each returns its report as JSON.
public struct DrillHooks: Sendable {
    /// Where each node's state goes between two versions' specs (compiling only).
    public var mapping: @Sendable (_ previous: String, _ next: String) throws -> JSONValue
    /// What restoring the snapshot in a directory into a spec would do.
    public var preview: @Sendable (_ spec: String, _ snapshot: URL, _ allowNonRestoredState: Bool) throws -> JSONValue
    /// A dry-run restore of the snapshot (`passed` tells the outcome).
    public var verify: @Sendable (_ spec: String, _ snapshot: URL, _ stateDir: URL) throws -> JSONValue
    /// The job's prepared sink transactions with their decisions.
    public var transactions: @Sendable (_ spec: String, _ stateDir: URL) throws -> JSONValue

    public init(mapping: @escaping @Sendable (String, String) throws -> JSONValue,
                preview: @escaping @Sendable (String, URL, Bool) throws -> JSONValue,
                verify: @escaping @Sendable (String, URL, URL) throws -> JSONValue,
                transactions: @escaping @Sendable (String, URL) throws -> JSONValue) {
        self.mapping = mapping; self.preview = preview; self.verify = verify; self.transactions = transactions
    }
}

extension JobLifecycle {
    /// The spec of version `number` (nil: the latest), refused when there is none.
    func versionSpec(_ job: String, _ number: Int?) throws -> (number: Int, spec: String) {
        _ = try requireJob(job)
        let versions = try store.versions(job: job)
        guard let v = number.map({ n in versions.first { $0.number == n } }) ?? versions.last else {
            if let number {
                throw APIError.notFound("job '\(job)' has no version \(number)", suggestion: "see GET /api/v1/jobs/\(job)/versions")
            }
            throw APIError(409, "conflict", "job '\(job)' has no published version yet", suggestion: "publish the draft first")
        }
        return (v.number, v.spec)
    }

    /// A snapshot's directory in the job's state directory (`latest`: the newest).
    func snapshotDirectory(_ job: String, _ id: String) throws -> URL {
        stateDir(job).appendingPathComponent(try snapshotManifest(job, id).id, isDirectory: true)
    }

    /// A snapshot's manifest (`latest`: the newest), refused when the state directory has no such snapshot.
    func snapshotManifest(_ job: String, _ id: String) throws -> SnapshotManifest {
        _ = try requireJob(job)
        let stored = storedSnapshots(job)
        let found = id == "latest" ? stored.max { $0.checkpointID < $1.checkpointID } : stored.first { $0.id == id }
        guard let m = found else {
            throw APIError.notFound("job '\(job)' has no snapshot \(id)", suggestion: "see GET /api/v1/jobs/\(job)/snapshots")
        }
        return m
    }

    /// The state mapping between two versions of a job: `from` nil is the
    /// latest version, `to` nil the draft (what publishing it would do).
    func versionDiff(_ job: String, from: Int?, to: Int?) throws -> JSONValue {
        guard let hooks = settings.drills else { throw APIError.internalError("this server has no restore drills") }
        let a = try versionSpec(job, from)
        let b: (label: JSONValue, spec: String) = try to.map { n in (JSONValue.int(Int64(n)), try versionSpec(job, n).spec) }
            ?? (.string("draft"), try requireJob(job).draft)
        do {
            return .object(["from": .int(Int64(a.number)), "to": b.label, "mapping": try hooks.mapping(a.spec, b.spec)])
        } catch {
            throw APIError(422, "invalid_spec", JobLifecycle.describeSpecError(error), suggestion: "fix the draft first")
        }
    }

    /// What publishing the draft as the next version does to the state of the latest one (nil: no version yet).
    func publishMapping(_ job: String, draft: String) -> JSONValue? {
        guard let hooks = settings.drills, let latest = try? store.versions(job: job).last else { return nil }
        return try? hooks.mapping(latest.spec, draft)
    }
}

/// Runs blocking work (broker and database calls) off the concurrency pool.
func offloaded<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        DispatchQueue.global().async { c.resume(with: Result { try work() }) }
    }
}

/// `weir job drill`: the drill runs as a child process (`weir drill … --report
/// FILE`), like a run, so a job's code never runs inside the server; its
/// report becomes the operation's result, kept in the job's history.
extension JobLifecycle {
    /// Where a drill operation keeps its log and report.
    nonisolated func drillDir(_ job: String, _ operationID: String) -> URL {
        jobDir(job).appendingPathComponent("drills", isDirectory: true).appendingPathComponent(operationID, isDirectory: true)
    }

    func drill(_ job: String, version: Int?, snapshot: String?, shadowDatabase: String?) throws -> Views.Schemas.Operation {
        _ = try requireJob(job)
        let latest = try store.latestVersionNumber(job: job)
        let number = version ?? live[job]?.row.version ?? latest
        let stored = JobLifecycleStateMachine.StoredFacts(
            latestVersion: latest,
            requestedVersionExists: try number.map { try store.version(job: job, number: $0) != nil } ?? false,
            snapshots: storedSnapshots(job).map(\.id))
        let actions = try machine(job).requestReceived(.drill(version: version, snapshot: snapshot), stored: stored).actions()
        var params: [String: JSONValue] = ["version": .optional(number)]
        if let shadowDatabase { params["shadowDatabase"] = .string(shadowDatabase) }
        for case let .startDrill(_, id) in actions { params["snapshot"] = .string(id) }
        return try recordedOperation(try execute(actions, job: job, ActionContext(params: .object(params))))
    }

    /// Spawns the drill of the job's operation in flight; a failure to start fails the operation.
    func startDrillOrFail(_ job: String, version: Int, snapshot: String) {
        guard var op = inflight[job] else { return }
        do {
            guard let v = try store.version(job: job, number: version) else {
                throw APIError.notFound("job '\(job)' has no version \(version)")
            }
            try writeVersionFile(v)
            let dir = drillDir(job, op.id)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let report = dir.appendingPathComponent("report.json").path
            let logPath = dir.appendingPathComponent("log.txt").path
            _ = FileManager.default.createFile(atPath: report, contents: nil)
            var args = ["drill", versionFile(job, version).path, "--state-dir", stateDir(job).path, "--snapshot", snapshot,
                        "--report", report]
            if let db = op.params["shadowDatabase"]?.string { args += ["--shadow-database", db] }
            let header = "[weir server] \(Clock.now()) drill \(op.id) of job '\(job)': snapshot \(snapshot) into version \(version): "
                + "\(settings.weirBinary) \(args.joined(separator: " "))\n"
            _ = FileManager.default.createFile(atPath: logPath, contents: Data(header.utf8))
            let pid = try ProcessControl.spawn(executable: settings.weirBinary, arguments: args, logPath: logPath)
            if case .object(var r) = op.result ?? .object([:]) {
                r["snapshot"] = .string(snapshot)
                r["version"] = .int(Int64(version))
                op.result = .object(r)
            }
            update(op)
            log("job '\(job)': drill \(op.id) of snapshot \(snapshot) into version \(version) started (pid \(pid))")
            let opID = op.id
            Task.detached { [self] in
                let wakeups = RunWakeups(eventsPath: report, pid: pid, isChild: true)
                let queue = DispatchQueue(label: "drill \(opID)")
                var exit = wakeups.childExit
                while exit == nil {
                    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in queue.async { wakeups.wait(); c.resume() } }
                    exit = wakeups.childExit
                }
                await drillExited(job, operationID: opID, exit: exit!, report: report, logPath: logPath)
            }
        } catch let e as APIError {
            fail(job, OperationError(code: e.code, message: e.message, suggestion: e.suggestion))
        } catch {
            fail(job, OperationError(code: "drill_failed", message: "cannot start the drill: \(error)",
                                     suggestion: Suggestions.suggest(code: "io_error", message: "\(error)")))
        }
    }

    /// The drill's process ended: its report (if it wrote one) decides the operation.
    func drillExited(_ job: String, operationID: String, exit: ProcessExit, report: String, logPath: String) {
        let data = FileManager.default.contents(atPath: report) ?? Data()
        let parsed = data.isEmpty ? nil : JSONValue.parse(data)
        var failure = "the drill's process \(exit.description)"
        if let text = try? String(contentsOfFile: logPath, encoding: .utf8),
           let line = text.split(separator: "\n").last(where: { $0.hasPrefix("Error:") || $0.hasPrefix("error:") }) {
            failure += ": " + line.drop { $0 != ":" }.dropFirst().trimmingCharacters(in: .whitespaces)
        }
        log("job '\(job)': drill \(operationID) ended (\(exit.description))")
        react(machine(job).drillEnded(operationID: operationID, .init(report: parsed, failure: failure)), job: job)
    }
}
