import Foundation
import WeirCore

/// The live job view and the job graph, as the document's types.
extension Views {
    /// A run's latest figures with rates over the last interval; `run` nil: no run since this server started.
    static func live(job: String, run lr: JobLifecycle.LiveRun?, ended: Bool, order: [String]) -> Schemas.LiveView {
        guard let lr else {
            return .init(job: job, run: nil, ended: true, sampledAt: nil, intervalMs: nil, totals: nil, nodes: [],
                         partitions: [], checkpoints: [], restarts: [])
        }
        let h = lr.history
        let m = lr.metrics
        let seconds = h.interval
        /// Per second over the interval; nil without one, or when the counter went back (an in-process restart).
        func rate(_ now: Double, _ before: Double?) -> Double? {
            guard let seconds, let before, now >= before else { return nil }
            return (now - before) / seconds
        }
        let order = Dictionary(order.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let nodes = (m?.nodes ?? [:]).sorted { (order[$0.key] ?? .max, $0.key) < (order[$1.key] ?? .max, $1.key) }.map { id, n in
            let was = h.previous?.nodes[id]
            return Schemas.LiveNode(id: id, recordsIn: n.recordsIn, recordsOut: n.recordsOut,
                                    inPerSecond: rate(Double(n.recordsIn), was.map { Double($0.recordsIn) }),
                                    outPerSecond: rate(Double(n.recordsOut), was.map { Double($0.recordsOut) }),
                                    backpressureMs: n.backpressureMs,
                                    backpressureMsPerSecond: rate(n.backpressureMs, was?.backpressureMs),
                                    watermarkMs: n.watermarkMs, rejected: .init(additionalProperties: n.rejected))
        }
        let totals = m.map {
            Schemas.LiveTotals(recordsIn: $0.recordsIn, recordsOut: $0.recordsOut, decodeErrors: $0.decodeErrors,
                               lateRecords: $0.lateRecords, rejectedRecords: $0.rejectedRecords, checkpoints: $0.checkpoints,
                               lastCheckpointMs: $0.lastCheckpointMs, lastCheckpointBytes: $0.lastCheckpointBytes,
                               restarts: $0.restarts, backpressureMs: $0.backpressureMs)
        }
        let partitions = (m?.lag ?? [:]).sorted { $0.key.localizedStandardCompare($1.key) == .orderedAscending }
            .map { Schemas.PartitionLag(partition: $0.key, lag: $0.value) }
        return .init(job: job, run: .init(value1: run(lr.row)), ended: ended, sampledAt: h.latestTime,
                     intervalMs: seconds.map { $0 * 1000 }, totals: totals.map { .init(value1: $0) }, nodes: nodes,
                     partitions: partitions, checkpoints: h.checkpoints, restarts: h.restarts)
    }

    /// A compiled version as nodes with their kind, a one-line description, parallelism and inputs.
    static func graph(version: Int, plan: JobPlan) -> Schemas.JobGraph {
        let specs = Dictionary(plan.spec.nodes.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let nodes = plan.nodes.map { n -> Schemas.GraphNode in
            let spec = specs[n.id]
            let (kind, connector, detail) = describe(n, spec: spec)
            return .init(id: n.id, kind: kind, connector: connector, detail: Masking.mask(detail), parallelism: plan.parallelism,
                         inputs: n.inputs.map { plan.nodes[$0].id })
        }
        return .init(version: version, parallelism: plan.parallelism, maxParallelism: plan.maxParallelism, nodes: nodes)
    }

    private static func describe(_ n: PlannedNode, spec: NodeSpec?) -> (Schemas.GraphNode.KindPayload, String?, String) {
        let fields = n.schema.names.joined(separator: ", ")
        switch spec?.kind {
        case .source(let connector, _, let settings)?:
            let time = settings.eventTime.map { "; event time \($0.field), out of order ≤ \(duration($0.maxOutOfOrdernessMillis))" } ?? ""
            return (.source, connector, "fields: \(fields)\(time)")
        case .filter(let expr)?:
            return (.filter, nil, expr)
        case .select(let items)?:
            let plain = { (name: String, expr: String) in expr == name || expr == "`\(name)`" }
            return (.select, nil, items.map { plain($0.name, $0.expr) ? $0.name : "\($0.name): \($0.expr)" }.joined(separator: ", "))
        case .aggregate(let keys, let window, let aggs)?:
            let by = keys.isEmpty ? "one global group" : "by " + keys.joined(separator: ", ")
            let what = aggs.map { "\($0.name) = \($0.expr)" }.joined(separator: ", ")
            guard let window else { return (.aggregate, nil, "\(by): \(what)") }
            let w: String
            switch window {
            case .tumbling(let size): w = "tumbling \(duration(size))"
            case .sliding(let size, let slide): w = "sliding \(duration(size)) every \(duration(slide))"
            case .session(let gap): w = "session gap \(duration(gap))"
            }
            return (.window, nil, "\(w) \(by): \(what)")
        case .union?:
            return (.union, nil, "union of \(n.inputs.count) inputs")
        case .sink(let connector, let sink)?:
            let key = sink.rowKey.isEmpty ? "" : "; key \(sink.rowKey.joined(separator: ", "))"
            return (.sink, connector, "fields: \(fields)\(key)")
        case nil:
            return (n.isSource ? .source : n.isSink ? .sink : .select, nil, fields)
        }
    }

    /// Milliseconds as the spec writes durations (`500ms`, `2s`, `1.5s`, `5m`).
    static func duration(_ ms: Int64) -> String {
        if ms % 3_600_000 == 0 && ms > 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0 && ms > 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 && ms > 0 { return "\(ms / 1000)s" }
        return ms < 1000 ? "\(ms)ms" : "\(Double(ms) / 1000)s"
    }
}
