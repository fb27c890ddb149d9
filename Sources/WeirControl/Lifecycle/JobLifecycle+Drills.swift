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
        _ = try requireJob(job)
        let stored = storedSnapshots(job)
        let found = id == "latest" ? stored.max { $0.checkpointID < $1.checkpointID } : stored.first { $0.id == id }
        guard let m = found else {
            throw APIError.notFound("job '\(job)' has no snapshot \(id)", suggestion: "see GET /api/v1/jobs/\(job)/snapshots")
        }
        return stateDir(job).appendingPathComponent(m.id, isDirectory: true)
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
