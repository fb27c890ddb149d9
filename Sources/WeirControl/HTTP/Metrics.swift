import Foundation

/// What `/metrics` reports, gathered from the lifecycle in one step.
struct MetricsSnapshot: Sendable {
    var jobs: [JobStatus: Int]
    var operations: [(type: String, status: String, count: Int)]
    /// (job, latest `metrics` event) of each live run that reported one.
    var runs: [(job: String, metrics: RunEventLine.Metrics)]
}

/// Renders the Prometheus text exposition format (version 0.0.4).
///
/// Hand-written rather than through a metrics library: the values already
/// live in the runs' `metrics` events and the metadata store, so the
/// endpoint only has to print them, per job, at scrape time.
enum PrometheusText {
    static func render(_ m: MetricsSnapshot) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
            let l = labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",")
            out += name + (l.isEmpty ? "" : "{\(l)}") + " " + format(value) + "\n"
        }

        family("weir_jobs", "gauge", "Jobs by status.")
        for s in JobStatus.allCases { sample("weir_jobs", [("status", s.rawValue)], Double(m.jobs[s] ?? 0)) }

        family("weir_operations_total", "counter", "Operations requested, by type and final or current status.")
        var ops: [String: Int] = [:]
        for o in m.operations { ops["\(o.type)\u{0}\(o.status)", default: 0] += o.count }
        for t in OperationType.allCases {
            for s in OperationStatus.allCases {
                sample("weir_operations_total", [("type", t.rawValue), ("status", s.rawValue)], Double(ops["\(t.rawValue)\u{0}\(s.rawValue)"] ?? 0))
            }
        }

        typealias Figures = RunEventLine.Metrics
        let perRun: [(String, String, String, (Figures) -> Double)] = [
            ("weir_records_in_total", "counter", "Records read by the job's live run (since its last in-process restart).", { Double($0.recordsIn) }),
            ("weir_records_out_total", "counter", "Records written by the job's sinks.", { Double($0.recordsOut) }),
            ("weir_decode_errors_total", "counter", "Malformed or schema-violating records rejected by the sources.", { Double($0.decodeErrors) }),
            ("weir_rejected_records_total", "counter", "Records rejected anywhere in the job (sources, operators, sinks).", { Double($0.rejectedRecords) }),
            ("weir_late_records_total", "counter", "Late records dropped by windows.", { Double($0.lateRecords) }),
            ("weir_checkpoints_total", "counter", "Checkpoints completed by the live run.", { Double($0.checkpoints) }),
            ("weir_checkpoint_duration_ms", "gauge", "Duration of the last completed checkpoint in milliseconds.", { $0.lastCheckpointMs }),
            ("weir_checkpoint_size_bytes", "gauge", "State size of the last completed checkpoint in bytes.", { Double($0.lastCheckpointBytes) }),
            ("weir_restarts_total", "counter", "In-process restarts of the live run.", { Double($0.restarts) }),
            ("weir_backpressure_ms_total", "counter", "Time subtasks spent blocked on full channels (backpressure), in milliseconds.", { $0.backpressureMs }),
        ]
        for (name, type, help, value) in perRun {
            family(name, type, help)
            for r in m.runs { sample(name, [("job", r.job)], value(r.metrics)) }
        }
        let perNode: [(String, String, (Figures.Node) -> Double)] = [
            ("weir_node_records_in_total", "Records into the node (a source: read from Kafka, malformed included).", { Double($0.recordsIn) }),
            ("weir_node_records_out_total", "Records out of the node (a sink: rows written).", { Double($0.recordsOut) }),
            ("weir_node_backpressure_ms_total",
             "Milliseconds upstream subtasks spent blocked because this node's inbox was full (high when this node is the bottleneck).",
             { $0.backpressureMs }),
        ]
        for (name, help, value) in perNode {
            family(name, "counter", help)
            for r in m.runs {
                for (node, f) in r.metrics.nodes.sorted(by: { $0.key < $1.key }) {
                    sample(name, [("job", r.job), ("node", node)], value(f))
                }
            }
        }
        family("weir_node_rejected_records_total", "counter",
               "Records a node rejected (bad input, overflow, refused by the sink), by reason; handled by the job's onError policy.")
        for r in m.runs {
            for (node, f) in r.metrics.nodes.sorted(by: { $0.key < $1.key }) {
                for (reason, n) in f.rejected.sorted(by: { $0.key < $1.key }) {
                    sample("weir_node_rejected_records_total", [("job", r.job), ("node", node), ("reason", reason)], Double(n))
                }
            }
        }
        family("weir_node_watermark_ms", "gauge",
               "Event time (epoch ms) the node's slowest subtask has reached (nodes of jobs with event time, once a watermark passed).")
        for r in m.runs {
            for (node, f) in r.metrics.nodes.sorted(by: { $0.key < $1.key }) {
                if let w = f.watermarkMs { sample("weir_node_watermark_ms", [("job", r.job), ("node", node)], Double(w)) }
            }
        }
        family("weir_partition_lag", "gauge", "Records between a partition's position and its high watermark.")
        for r in m.runs {
            for (partition, lag) in r.metrics.lag.sorted(by: { $0.key < $1.key }) {
                sample("weir_partition_lag", [("job", r.job), ("partition", partition)], Double(lag))
            }
        }
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func format(_ v: Double) -> String {
        if v.rounded() == v && abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }
}
