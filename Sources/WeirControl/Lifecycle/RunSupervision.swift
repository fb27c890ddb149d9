import Foundation
import WeirCore
import WeirState
#if canImport(Glibc)
import Glibc
#endif

/// The supervision half of the lifecycle: reacting to what runs report
/// (events and exits), and rebuilding the state after a server restart.
extension JobLifecycle {
    // MARK: What runs report

    private func liveJob(ofRun runID: String) -> String? {
        live.first { $0.value.row.id == runID }?.key
    }

    /// Events read from a run's events file, in order.
    func handle(runID: String, events: [RunEventLine]) {
        for e in events { handle(runID: runID, line: e) }
    }

    /// Records what an event says about the run (its state, snapshots,
    /// metrics, final event) and executes the lifecycle's reaction to it.
    private func handle(runID: String, line: RunEventLine) {
        guard let job = liveJob(ofRun: runID), var lr = live[job] else { return }
        let report: JobLifecycleStateMachine.RunReport
        switch line.event {
        case .running(let r):
            report = .running(restoredFrom: r.restoredFrom)
        case .snapshot(let s):
            let row = SnapshotRow(job: job, id: s.id, version: lr.row.version, run: runID, kind: s.kind,
                                  checkpoint: s.checkpoint, createdAt: s.createdAt ?? line.time,
                                  sizeBytes: s.sizeBytes ?? Int64(s.bytes), offsets: JSONLines.offsets(s.offsets ?? [:]))
            do { try store.insertSnapshot(row) } catch { log("cannot record snapshot \(s.id) of job '\(job)': \(error)") }
            if s.kind != "checkpoint" { log("job '\(job)': run \(runID) took \(s.kind) \(s.id)") }
            lr.history.completed(s, at: line.time)
            live[job] = lr
            report = .snapshot(id: s.id, kind: s.kind)
        case .savepointFailed(let r):
            lr.history.failed(checkpoint: nil, kind: "savepoint", reason: r.reason, at: line.time)
            live[job] = lr
            report = .savepointFailed(reason: r.reason)
        case .stopFailed(let r):
            lr.history.failed(checkpoint: nil, kind: "stop", reason: r.reason, at: line.time)
            live[job] = lr
            report = .stopFailed(reason: r.reason)
        case .snapshotFailed(let f):
            lr.history.failed(checkpoint: f.checkpoint, kind: f.kind, reason: f.reason, at: line.time)
            live[job] = lr
            return
        case .restarting(let r):
            log("job '\(job)': run \(runID) restarting (attempt \(r.attempt) of \(r.of)) after: \(r.error)")
            lr.history.restarted(r, at: line.time)
            live[job] = lr
            return
        case .metrics(let m):
            lr.history.sampled(previous: lr.metrics, at: line.time)
            lr.metrics = m
            live[job] = lr
            return
        case .restorePreview(let p):
            // Time to restore, predicted before the restore and measured by it: the run history keeps both.
            recordTimeToRestore(job, &lr, "predicted", p.predicted.map { .object([
                "stateBytes": .int($0.stateBytes), "stateLoadedMs": .double($0.stateLoadedMillis),
                "firstRecordMs": .double($0.firstRecordMillis)]) })
            return
        case .startupTimes(let t):
            // Sent when the sources are positioned and again at the first record: a first record once seen stays.
            let first = t.firstRecordMs.map { JSONValue.double($0) } ?? lr.row.timeToRestore?["measured"]?["firstRecordMs"] ?? .null
            recordTimeToRestore(job, &lr, "measured", .object([
                "stateLoadedMs": .double(t.stateLoadedMs), "sourcesPositionedMs": .double(t.sourcesPositionedMs), "firstRecordMs": first]))
            return
        case .finished, .stopped, .cancelled, .failed:
            // The first final event is the real one: `weir run` may append a second,
            // generic `failed` (its CLI wrapper re-reporting the same error).
            if lr.final == nil {
                lr.final = line
                live[job] = lr
            }
            return
        case .starting, .firstRecord, .splitsAdded, .restoreAdjusted, .unknown:
            return
        }
        react(machine(job).runReported(report, runID: runID, at: line.time), job: job)
    }

    /// Keeps one half (`predicted` or `measured`) of the run's time to restore (nil: not known).
    private func recordTimeToRestore(_ job: String, _ lr: inout LiveRun, _ half: String, _ value: JSONValue?) {
        var times = lr.row.timeToRestore?.object ?? [:]
        if let value { times[half] = value }
        lr.row.timeToRestore = .object(times)
        live[job] = lr
        try? store.updateRun(lr.row)
    }

    /// How a run ended, as the lifecycle rules take it.
    private typealias Ending = JobLifecycleStateMachine.RunEnding

    /// How a run ended, from its final event or its exit.
    private func ending(_ lr: LiveRun, exit: ProcessExit) -> Ending {
        switch lr.final?.event {
        case .stopped(let s)?:
            return Ending(outcome: "stopped", message: "stopped with snapshot \(s.snapshot)", error: nil, stopSnapshot: s.snapshot)
        case .finished?:
            return Ending(outcome: "finished", message: "finished: its input was complete", error: nil)
        case .cancelled?:
            return Ending(outcome: "cancelled", message: "cancelled without a snapshot", error: nil)
        case .failed(let f)?:
            var message = f.message
            if let given = f.suggestion, message.hasSuffix(" (\(given))") { message = String(message.dropLast(given.count + 3)) }
            return Ending(outcome: "failed", message: message,
                          error: OperationError(code: f.code, message: message,
                                                suggestion: Suggestions.suggest(code: f.code, message: message, given: f.suggestion)))
        default:
            if lr.killedAfterCancel {
                return Ending(outcome: "cancelled",
                              message: "cancelled: killed after not ending within \(JobLifecycle.cancelGraceSeconds) s of the cancel request (uncommitted output is rolled back when the job runs again)",
                              error: nil)
            }
            if let sig = exit.signal {
                let message = sig == SIGKILL ? "the run's process was killed (signal 9, SIGKILL)"
                    : "the run's process was terminated by signal \(sig)"
                return Ending(outcome: "killed", message: message,
                              error: OperationError(code: "process_killed", message: message, suggestion: Suggestions.forSignal(sig)))
            }
            let message = exit.code.map { "the run's process exited with code \($0) without reporting how it ended" }
                ?? "the run's process (pid \(lr.row.pid)) ended without reporting how it ended (killed?)"
            return Ending(outcome: exit.code == nil ? "lost" : "exited", message: message,
                          error: OperationError(code: "process_lost", message: message, suggestion: Suggestions.processLost))
        }
    }

    /// The run's process is gone: record how it ended and execute the
    /// lifecycle's reaction (finish the operation waiting on it, or warn when
    /// it ended by itself; continue a publish-and-run whose stop phase completed).
    func runExited(runID: String, exit: ProcessExit, whileDown: Bool) {
        guard let job = liveJob(ofRun: runID), var lr = live.removeValue(forKey: job) else { return }
        let end = ending(lr, exit: exit)
        lr.row.status = .ended
        lr.row.endedAt = Clock.now()
        lr.row.outcome = end.outcome
        lr.row.outcomeMessage = end.message
        lastEnded[job] = lr
        try? store.updateRun(lr.row)
        try? store.touchJob(job)
        log("job '\(job)': run \(runID) ended (\(exit.description)): \(end.message)" + (whileDown ? " [while the server was down]" : ""))
        react(machine(job).runExited(runID: runID, ending: end, whileDown: whileDown), job: job, ActionContext(endedRun: lr.row))
    }

    /// Makes sure the stop snapshot is recorded with the run's version, even
    /// if its `snapshot` event was missed.
    func recordStopSnapshot(_ job: String, id: String, run: RunRow) {
        guard let m = storedSnapshots(job).first(where: { $0.id == id }) else { return }
        try? store.insertSnapshot(SnapshotRow(job: job, id: id, version: run.version, run: run.id, kind: m.kind.rawValue,
                                              checkpoint: m.checkpointID, createdAt: m.createdAt, sizeBytes: m.totalBytes,
                                              offsets: JSONLines.offsets(m.offsets)))
    }

    // MARK: Restart

    /// Rebuilds the in-memory state after a server start: operations in
    /// flight are taken up again; runs recorded live are re-attached if their
    /// process still runs (pid alive and its command line is that run), else
    /// closed with what their events file says and a warning.
    func reconcile() {
        do {
            // Every stored spec's secrets, so that masking finds them in any text.
            for j in try store.jobs() {
                Masking.register(spec: j.draft)
                for v in try store.versions(job: j.name) { Masking.register(spec: v.spec) }
            }
            for op in try store.inFlightOperations() {
                if inflight[op.job] != nil { fail(op.job, OperationError(code: "interrupted", message: "superseded", suggestion: nil)) }
                inflight[op.job] = op
            }
            for run in try store.liveRuns() {
                if let other = live[run.job] {
                    log("job '\(run.job)': runs \(other.row.id) and \(run.id) were both recorded live")
                }
                if ProcessControl.isRun(run.pid, eventsPath: run.eventsPath) {
                    live[run.job] = LiveRun(row: run, isChild: false)
                    log("job '\(run.job)': re-attached run \(run.id) (pid \(run.pid))")
                    startWatcher(run, isChild: false)
                } else {
                    live[run.job] = LiveRun(row: run, isChild: false)
                    var tail = EventTail(path: run.eventsPath)
                    handle(runID: run.id, events: tail.readNew())
                    runExited(runID: run.id, exit: .unknown, whileDown: true)
                }
            }
            for (job, op) in inflight where live[job] == nil || live[job]!.row.id != op.run {
                fail(job, OperationError(code: "interrupted", message: "the server stopped before operation \(op.id) (\(op.type.rawValue)) finished",
                                         suggestion: "check the job's status, then run the operation again"))
            }
        } catch {
            log("reconcile failed: \(error)")
        }
    }
}

/// Conversions between the engine's types and JSON.
enum JSONLines {
    static func offsets(_ o: [String: [String: Int64]]) -> JSONValue {
        .object(o.mapValues { .object($0.mapValues { .int($0) }) })
    }
}

/// One task per live run: reads its events file whenever it grows, hands new
/// events to the lifecycle, and notices when the process ends. It sleeps
/// until `RunWakeups` says something happened (inotify, the reaper thread).
enum RunWatcher {
    static func watch(plane: JobLifecycle, run: RunRow, isChild: Bool) async {
        var tail = EventTail(path: run.eventsPath)
        let wakeups = RunWakeups(eventsPath: run.eventsPath, pid: run.pid, isChild: isChild)
        let queue = DispatchQueue(label: "watch \(run.id)")
        while true {
            let exit: ProcessExit? = isChild
                ? wakeups.childExit
                : (ProcessControl.isRun(run.pid, eventsPath: run.eventsPath) ? nil : .unknown)
            let events = tail.readNew()
            if !events.isEmpty { await plane.handle(runID: run.id, events: events) }
            if let exit {
                let rest = tail.readNew()
                if !rest.isEmpty { await plane.handle(runID: run.id, events: rest) }
                await plane.runExited(runID: run.id, exit: exit, whileDown: false)
                return
            }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                queue.async { wakeups.wait(); c.resume() }
            }
        }
    }
}
