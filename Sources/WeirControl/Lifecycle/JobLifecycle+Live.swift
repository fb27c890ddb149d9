import Foundation
import WeirCore

/// What the live job view keeps of a run beyond its latest figures: the
/// sample before them (for rates), its checkpoint outcomes and its restarts,
/// all from the run's own events. Bounded, so a run of months stays small.
struct LiveHistory {
    typealias Schemas = Views.Schemas
    static let maxCheckpoints = 50
    static let maxRestarts = 20

    /// The metrics before the latest, and when each of the two was written.
    private(set) var previous: RunEventLine.Metrics?
    private(set) var previousAt: Date?
    private(set) var latestAt: Date?
    private(set) var latestTime: String?
    /// Newest first.
    private(set) var checkpoints: [Schemas.CheckpointEntry] = []
    private(set) var restarts: [Schemas.RestartEntry] = []

    mutating func sampled(previous last: RunEventLine.Metrics?, at time: String) {
        previous = last
        previousAt = latestAt
        latestAt = Clock.date(time)
        latestTime = time
    }

    mutating func completed(_ s: RunEventLine.Snapshot, at time: String) {
        record(.init(checkpoint: s.checkpoint, kind: s.kind, status: .completed, snapshot: s.id, at: time,
                     durationMs: s.durationMs, bytes: Int(s.sizeBytes ?? Int64(s.bytes)), reason: nil))
    }

    mutating func failed(checkpoint: Int64?, kind: String, reason: String, at time: String) {
        record(.init(checkpoint: checkpoint, kind: kind, status: .failed, snapshot: nil, at: time,
                     durationMs: nil, bytes: nil, reason: Masking.mask(reason)))
    }

    mutating func restarted(_ r: RunEventLine.Restarting, at time: String) {
        restarts.insert(.init(at: time, attempt: r.attempt, of: r.of, error: Masking.mask(r.error)), at: 0)
        if restarts.count > LiveHistory.maxRestarts { restarts.removeLast() }
    }

    private mutating func record(_ e: Schemas.CheckpointEntry) {
        checkpoints.insert(e, at: 0)
        if checkpoints.count > LiveHistory.maxCheckpoints { checkpoints.removeLast() }
    }

    /// Seconds between the latest two samples (nil after one, or when the clock went back).
    var interval: Double? {
        guard let a = previousAt, let b = latestAt, previous != nil else { return nil }
        let s = b.timeIntervalSince(a)
        return s > 0 ? s : nil
    }
}

extension JobLifecycle {
    /// The live job view: the live run's figures, else the last ended run's.
    func liveView(_ job: String) throws -> Views.Schemas.LiveView {
        _ = try requireJob(job)
        let lr = live[job] ?? lastEnded[job]
        return Views.live(job: job, run: lr, ended: live[job] == nil, order: lr.map { nodeOrder(job, version: $0.row.version) } ?? [])
    }

    /// Node ids of a version in graph order (sources first), compiled once per version.
    private func nodeOrder(_ job: String, version: Int) -> [String] {
        let key = "\(job)\u{0}\(version)"
        if let known = nodeOrders[key] { return known }
        guard let compile = settings.compile, let v = try? store.version(job: job, number: version),
              let plan = try? compile(v.spec) else { return [] }
        let ids = plan.nodes.map(\.id)
        nodeOrders[key] = ids
        return ids
    }

    /// The compiled graph of a published version.
    func graph(_ job: String, version: Int) throws -> Views.Schemas.JobGraph {
        _ = try requireJob(job)
        guard let v = try store.version(job: job, number: version) else {
            throw APIError.notFound("job '\(job)' has no version \(version)", suggestion: "list its versions (GET /api/v1/jobs/\(job)/versions)")
        }
        guard let compile = settings.compile else {
            throw APIError.internalError("this server cannot compile specs (no compiler was given to it)")
        }
        let plan: JobPlan
        do { plan = try compile(v.spec) } catch {
            throw APIError.invalidRequest("version \(version) of job '\(job)' does not compile any more: \(error)")
        }
        return Views.graph(version: version, plan: plan)
    }
}

extension JobLifecycle {
    /// A published version as a Flink SQL script, from a snapshot's offsets when one is named.
    func exportScript(_ job: String, version: Int?, snapshot: String?) throws -> Views.Schemas.Export {
        let (number, spec) = try versionSpec(job, version)
        guard let export = settings.export else { throw APIError.internalError("this server cannot export jobs") }
        var offsets: [String: [String: Int64]]?
        var snapshotID: String?
        if let snapshot {
            let m = try snapshotManifest(job, snapshot)
            offsets = m.offsets
            snapshotID = m.id
        }
        let note = "job \(job) version \(number)" + (snapshotID.map { ", from snapshot \($0)" } ?? "")
        do {
            return .init(target: .flinkSql, version: number, snapshot: snapshotID, script: try export(spec, offsets, note))
        } catch let e as APIError {
            throw e
        } catch {
            throw APIError(422, "export_refused", "version \(number) of job '\(job)' cannot be exported to Flink SQL: \(error)",
                           suggestion: "change the node the message names (or export an earlier version); see the README's \"Beyond one machine\"")
        }
    }
}
