import ArgumentParser
import Foundation
import WeirCore
import WeirKafka

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a job in the foreground until it is stopped (Ctrl-C) or, with --until-idle, its input is complete.")

    @Argument(help: "The job spec (YAML or JSON).") var spec: String

    @Option(help: "End the run once every assigned partition has been at its end for this many seconds; open windows then fire and all output is committed before exit.")
    var untilIdle: Double?

    @Flag(help: "Plain log lines instead of the live progress line, even on a terminal.")
    var plain = false

    @Option(help: "Write run statistics as JSON to this file when the run ends (used by the benchmarks).")
    var stats: String?

    func run() throws {
        try KafkaLibrary.checkVersion()
        let plan = try loadPlan(spec)
        var options = RunOptions()
        options.untilIdleMillis = untilIdle.map { Int64($0 * 1000) }
        options.log = { line in printErr("[weir] \(line)") }
        let runner = JobRunner(plan: plan, options: options)

        let signals = [SIGINT, SIGTERM].map { sig -> any DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler {
                printErr("\n[weir] \(sig == SIGINT ? "interrupted" : "terminated"): cancelling the run (output since the last commit is rolled back)")
                runner.cancel()
            }
            s.resume()
            return s
        }
        defer { signals.forEach { $0.cancel() } }

        let result = Mutex<Result<RunOutcome, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            let r = Result { try runner.run() }
            result.withLock { $0 = r }
            done.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()

        let started = Date()
        let display = ProgressDisplay(metrics: runner.metrics, live: !plain && isatty(STDERR_FILENO) == 1)
        while done.wait(timeout: .now() + .milliseconds(1000)) == .timedOut {
            display.tick()
        }
        display.finish()
        let outcome = result.withLock { $0 }!
        let m = runner.metrics
        let secs = Date().timeIntervalSince(started)
        if let stats {
            let idle = Double(m.idleWaitNanos.load(ordering: .relaxed)) / 1e9
            let json = """
            {"recordsIn": \(m.recordsIn.load), "recordsOut": \(m.recordsOut.load), "decodeErrors": \(m.decodeErrors.load), \
            "lateRecords": \(m.lateRecords.load), "wallSeconds": \(secs), "idleWaitSeconds": \(idle), \
            "processingSeconds": \(max(0.001, secs - idle))}
            """
            try json.write(toFile: stats, atomically: true, encoding: .utf8)
        }
        switch outcome {
        case .success(.finished):
            printErr(String(format: "[weir] finished: %d records in, %d out, %d malformed skipped, %d late dropped in %.1f s",
                            m.recordsIn.load, m.recordsOut.load, m.decodeErrors.load, m.lateRecords.load, secs))
        case .success(.stopped(let id)):
            printErr("[weir] stopped with snapshot \(id)")
        case .success(.cancelled):
            printErr("[weir] cancelled after \(m.recordsIn.load) records")
            throw ExitCode(130)
        case .failure(let e):
            throw CLIError("job '\(plan.name)' failed: \(e)")
        }
    }
}

import Synchronization

/// The live one-line progress display (on a terminal) or periodic log lines.
final class ProgressDisplay {
    let metrics: JobMetrics
    let live: Bool
    private var lastIn = 0, lastOut = 0
    private var last = Date()
    private var ticks = 0

    init(metrics: JobMetrics, live: Bool) { self.metrics = metrics; self.live = live }

    func tick() {
        ticks += 1
        let now = Date()
        let dt = max(0.001, now.timeIntervalSince(last))
        let i = metrics.recordsIn.load, o = metrics.recordsOut.load
        let line = String(format: "in %@ rec/s  out %@ rec/s  total in %@ out %@  lag %@  malformed %@  late %@",
                          fmt(Double(i - lastIn) / dt), fmt(Double(o - lastOut) / dt), fmt(Double(i)), fmt(Double(o)),
                          fmt(Double(metrics.totalLag)), fmt(Double(metrics.decodeErrors.load)), fmt(Double(metrics.lateRecords.load)))
        if live {
            FileHandle.standardError.write(("\r\u{1B}[2K" + line).data(using: .utf8)!)
        } else if ticks % 5 == 0 {
            printErr("[weir] " + line)
        } else {
            return
        }
        lastIn = i; lastOut = o; last = now
    }

    func finish() { if live { FileHandle.standardError.write("\n".data(using: .utf8)!) } }

    private func fmt(_ v: Double) -> String {
        if v >= 1_000_000 { return String(format: "%.2fM", v / 1_000_000) }
        if v >= 10_000 { return String(format: "%.1fk", v / 1_000) }
        return String(Int(v))
    }
}
