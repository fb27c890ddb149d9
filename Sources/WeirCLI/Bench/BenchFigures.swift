import Foundation
import Histogram
import Synchronization

/// Latency of committed rows, from arrival at the source to the sink commit,
/// in an HDR histogram (microseconds, 3 significant digits). Fed by the sink
/// threads at each commit (`RunOptions.sinkLatency`), one call per batch.
final class LatencyHistogram: Sendable {
    private let histogram = Mutex(Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three))

    func record(nanos: UInt64, rows: Int) {
        let micros = min(nanos / 1000, 3_600_000_000)
        histogram.withLock { _ = $0.record(micros, count: UInt64(rows)) }
    }

    var summary: BenchReport.Latency? {
        histogram.withLock { h in
            guard h.totalCount > 0 else { return nil }
            func ms(_ p: Double) -> Double { Double(h.valueAtPercentile(p)) / 1000 }
            return BenchReport.Latency(rows: Int(h.totalCount), p50: ms(50), p90: ms(90), p99: ms(99), p999: ms(99.9),
                                       max: Double(h.max) / 1000)
        }
    }
}

/// Figures of this process that `weir bench` reads around the job's run.
enum ProcessFigures {
    /// Resets the peak RSS (VmHWM) to the current RSS, so the next reading is the run's own peak.
    static func resetPeakRSS() {
        #if os(Linux)
        if let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") {
            h.write(Data("5".utf8))
            try? h.close()
        }
        #endif
    }

    /// Bytes of a `/proc/self/status` line (`VmHWM`, `VmRSS`); nil where there is no /proc.
    static func status(_ field: String) -> Int64? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let kb = line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int64($0) }
            return kb.map { $0 * 1024 }
        }
        return nil
    }

    /// CPU time (user + system) the whole process used so far, in seconds.
    static func cpuSeconds() -> Double {
        var u = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
    }
}

/// What `weir bench` measured: printed as a table, or as JSON with `--json`.
struct BenchReport: Codable, Sendable {
    struct Input: Codable, Sendable {
        var mode: String   // "generated" or "replay"
        /// Source node → the topic the run read.
        var topics: [String: String]
        var partitions: Int?
        var eventsPerSource: Int?
        var seed: UInt64?
        var keys: Int?
        var eventsPerSecond: Int?
        var badShare: Double?
        /// Bad records generated (each must be rejected by the job).
        var badRecords: Int?
        /// Messages the run was bounded to, over all sources.
        var messages: Int
    }
    struct Ceiling: Codable, Sendable {
        var messages: Int; var seconds: Double; var eventsPerSecond: Double
        /// Until the bare consumer's first message (metadata, assignment, first fetch).
        var startMillis: Double
    }
    /// The job's seconds split where its first and last records were read (`BenchTimeline`).
    struct Phases: Codable, Sendable {
        /// From the start of the run to its first record read (sinks checked and opened, consumers started, first fetch).
        var startMillis: Double
        /// From the first record read to the last.
        var readMillis: Double
        /// From the last record read to the end: last windows, the final snapshot, the sinks' commits.
        var finishMillis: Double
    }
    struct Latency: Codable, Sendable { var rows: Int; var p50: Double; var p90: Double; var p99: Double; var p999: Double; var max: Double }
    struct NodeCPU: Codable, Sendable { var node: String; var seconds: Double; var perMillionEvents: Double; var subtasks: [Double] }
    struct CPU: Codable, Sendable {
        var processSeconds: Double
        var perMillionEvents: Double
        var nodes: [NodeCPU]
        /// The rest of the process: librdkafka's threads, the checkpoint coordinator, the sinks' database client.
        var otherSeconds: Double
    }
    struct Checkpoints: Codable, Sendable {
        var completed: Int
        var periodic: Int
        var failed: Int
        var meanMillis: Double?
        var maxMillis: Double?
        var maxBytes: Int?
    }
    struct Records: Codable, Sendable { var read: Int; var rejected: Int; var late: Int; var sinkRows: Int }

    var job: String
    var parallelism: Int
    var input: Input
    var records: Records
    /// From the start of the run (spec compiled, sinks checked, consumers started) to the final commit.
    var seconds: Double
    var eventsPerSecond: Double
    var ceiling: Ceiling?
    var phases: Phases
    /// Records read ÷ the reading phase's seconds: the rate without the run's fixed start and finish.
    var readingEventsPerSecond: Double
    /// Job events/s ÷ ceiling events/s, same data, same run.
    var ratio: Double?
    var latencyMillis: Latency?
    var cpu: CPU
    var peakRSSBytes: Int64?
    var checkpoints: Checkpoints
    var checks: [BenchCheck]
    /// Problems that make the result wrong (a failed check, records not all read or rejected).
    var problems: [String]
    /// No problem (stored, so that the JSON says it too).
    var passed: Bool

    init(job: String, parallelism: Int, input: Input, records: Records, seconds: Double, ceiling: Ceiling?, phases: Phases,
         latencyMillis: Latency?, cpu: CPU, peakRSSBytes: Int64?, checkpoints: Checkpoints, checks: [BenchCheck], problems: [String]) {
        self.job = job; self.parallelism = parallelism; self.input = input; self.records = records; self.seconds = seconds
        let rate = seconds > 0 ? Double(records.read) / seconds : 0
        eventsPerSecond = rate
        self.ceiling = ceiling
        self.phases = phases
        readingEventsPerSecond = phases.readMillis > 0 ? Double(records.read) / phases.readMillis * 1000 : 0
        ratio = ceiling.map { $0.eventsPerSecond > 0 ? rate / $0.eventsPerSecond : 0 }
        self.latencyMillis = latencyMillis; self.cpu = cpu; self.peakRSSBytes = peakRSSBytes
        self.checkpoints = checkpoints; self.checks = checks; self.problems = problems
        passed = problems.isEmpty
    }

    var text: String {
        func rate(_ r: Double) -> String { r >= 1e6 ? String(format: "%.2f M", r / 1e6) : String(format: "%.0f k", r / 1e3) }
        func count(_ n: Int) -> String { n.formatted(.number.grouping(.automatic)) }
        var out: [String] = []
        let topics = input.topics.keys.sorted().map { "\($0) ← \(input.topics[$0]!)" }.joined(separator: ", ")
        if input.mode == "generated" {
            out.append("weir bench \(job): \(count(input.eventsPerSource ?? 0)) events per source generated (seed \(input.seed ?? 0), \(count(input.keys ?? 0)) keys, "
                       + "\(count(input.eventsPerSecond ?? 0)) events/s of event time, \(String(format: "%.1f", (input.badShare ?? 0) * 100))% bad), "
                       + "\(input.partitions ?? 0) partitions; parallelism \(parallelism)")
        } else {
            out.append("weir bench \(job): replay of \(count(input.messages)) messages; parallelism \(parallelism)")
        }
        out.append("  topics: \(topics)")
        out.append("")
        var rows = [["", "events/s", "seconds", "ratio"]]
        if let c = ceiling { rows.append(["ceiling (bare librdkafka)", rate(c.eventsPerSecond), String(format: "%.2f", c.seconds), ""]) }
        rows.append(["job", rate(eventsPerSecond), String(format: "%.2f", seconds), ratio.map { String(format: "%.1f%%", $0 * 100) } ?? "-"])
        out += alignedTable(rows, rightAligned: [1, 2, 3]).map { "  " + $0 }
        out.append("")
        out.append(String(format: "  phases: start-up %.0f ms%@, reading %.0f ms (%@ events/s), finishing %.0f ms (last windows, final snapshot, commits)",
                          phases.startMillis, ceiling.map { String(format: " (ceiling %.0f ms)", $0.startMillis) } ?? "",
                          phases.readMillis, rate(readingEventsPerSecond), phases.finishMillis))
        out.append("  records: \(count(records.read)) read, \(count(records.rejected)) rejected, \(count(records.late)) late, \(count(records.sinkRows)) rows to sinks")
        if let l = latencyMillis {
            out.append(String(format: "  latency, arrival → sink commit (%@ rows): p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, p99.9 %.0f ms, max %.0f ms",
                              count(l.rows), l.p50, l.p90, l.p99, l.p999, l.max))
        } else {
            out.append("  latency: no committed rows")
        }
        let nodes = cpu.nodes.map { n in String(format: "%@ %.2f", n.node, n.perMillionEvents) }.joined(separator: ", ")
        out.append(String(format: "  CPU: %.2f s in all, %.2f s per million events = %@, other threads %.2f (per million events, by node; subtask threads named NODE#SUBTASK)",
                          cpu.processSeconds, cpu.perMillionEvents, nodes,
                          records.read > 0 ? cpu.otherSeconds / Double(records.read) * 1e6 : 0))
        if let rss = peakRSSBytes { out.append("  peak RSS: \(byteCount(rss))") }
        if checkpoints.completed + checkpoints.failed > 0 {
            var line = "  checkpoints: \(checkpoints.completed) completed (\(checkpoints.periodic) periodic), \(checkpoints.failed) failed"
            if let mean = checkpoints.meanMillis, let mx = checkpoints.maxMillis {
                line += String(format: "; duration mean %.0f ms, max %.0f ms", mean, mx)
            }
            if let b = checkpoints.maxBytes { line += "; largest \(byteCount(Int64(b)))" }
            out.append(line)
        }
        for c in checks {
            out.append("  check \(c.sink) (\(c.table)): \(c.status.rawValue.uppercased()): \(c.detail)")
        }
        out.append("")
        out.append(passed ? "bench: OK" : "bench: FAILED:\n" + problems.map { "  - " + $0 }.joined(separator: "\n"))
        return out.joined(separator: "\n")
    }
}
