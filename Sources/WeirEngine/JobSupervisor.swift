import Foundation
import WeirCore
import Logging
import Synchronization

/// Runs a job with its restart strategy: when a run fails (a subtask threw,
/// a connector broke), it starts a new run in-process from the latest
/// completed snapshot, up to `restart.attempts` times, waiting `restart.delay`
/// and doubling it for each further attempt (at most a minute), then gives up
/// with the last error. A run that was healthy for a while before it failed
/// starts a fresh count.
public final class JobSupervisor: Sendable {
    public let plan: JobPlan
    public let options: RunOptions
    let checkpointing: (@Sendable (RestorePoint?) throws -> CheckpointConfig)?
    let latestRestorePoint: @Sendable () throws -> RestorePoint?
    let firstRestore: RestorePoint?
    let allowNonRestoredState: Bool
    private let current = Mutex<JobRunner?>(nil)
    private let cancelled = Atomic<Bool>(false)
    /// Signalled by `cancel()`: a restart backoff ends at once instead of sleeping on.
    private let cancelSignal = DispatchSemaphore(value: 0)
    /// Metrics of the run in progress (a restart starts a new set).
    public var metrics: JobMetrics? { current.withLock { $0?.metrics } }
    public let restarts = Counter()
    /// Backpressure time of the run in progress.
    public var backpressureNanos: UInt64 { current.withLock { $0?.backpressureNanos } ?? 0 }

    /// - Parameters:
    ///   - checkpointing: builds the checkpoint settings for each run (ids continue from the store).
    ///   - latestRestorePoint: the snapshot a restart resumes from.
    public init(plan: JobPlan, options: RunOptions, checkpointing: (@Sendable (RestorePoint?) throws -> CheckpointConfig)?,
                restore: RestorePoint?, allowNonRestoredState: Bool,
                latestRestorePoint: @escaping @Sendable () throws -> RestorePoint?) {
        self.plan = plan; self.options = options; self.checkpointing = checkpointing
        self.firstRestore = restore; self.allowNonRestoredState = allowNonRestoredState
        self.latestRestorePoint = latestRestorePoint
    }

    public func run() throws -> RunOutcome {
        var restore = firstRestore
        var attempt = 0
        while true {
            let runner = JobRunner(plan: plan, options: options, checkpointing: try checkpointing?(restore), restore: restore,
                                   allowNonRestoredState: allowNonRestoredState)
            current.withLock { $0 = runner }
            if cancelled.load(ordering: .relaxed) { return .cancelled }
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                return try runner.run()
            } catch let e as WeirError where e.code.isPermanent {
                throw e  // a restart cannot fix it
            } catch {
                // A run that was healthy for a while (checkpoints completed) starts a fresh count.
                let ranMillis = Int64((DispatchTime.now().uptimeNanoseconds &- started) / 1_000_000)
                if runner.metrics.checkpointsCompleted.load > 0 && ranMillis >= JobSupervisor.healthyMillis(plan.spec.restart) { attempt = 0 }
                attempt += 1
                guard attempt <= plan.spec.restart.attempts, !cancelled.load(ordering: .relaxed) else { throw error }
                let delay = JobSupervisor.backoffMillis(plan.spec.restart, attempt: attempt)
                options.logger.warning("run \(runner.runID) failed: \(error)")
                options.logger.warning("restarting (attempt \(attempt) of \(plan.spec.restart.attempts)) in \(delay) ms from the latest snapshot")
                restarts.add(1)
                options.onEvent(.restarting(attempt: attempt, of: plan.spec.restart.attempts, error: "\(error)"))
                _ = cancelSignal.wait(timeout: .now() + .milliseconds(Int(min(delay, 3_600_000))))
                if cancelled.load(ordering: .relaxed) { return .cancelled }
                restore = try latestRestorePoint() ?? firstRestore
            }
        }
    }

    /// The wait before restart `attempt` (1-based): the configured delay,
    /// doubled for each further attempt, at most 60 s (or the delay itself if longer).
    static func backoffMillis(_ r: JobSpec.RestartSettings, attempt: Int) -> Int64 {
        let cap = max(r.delayMillis, 60_000)
        var d = r.delayMillis
        for _ in 1..<max(1, min(attempt, 40)) { d = min(cap, d &* 2) }
        return d
    }

    /// How long a run must have been up (with a completed checkpoint) for its
    /// failure to start a fresh count of attempts.
    static func healthyMillis(_ r: JobSpec.RestartSettings) -> Int64 { max(60_000, r.delayMillis &* 10) }

    public func cancel() {
        cancelled.store(true, ordering: .relaxed)
        cancelSignal.signal()
        current.withLock { $0 }?.cancel()
    }

    public func savepoint(timeoutSeconds: Double = 120) -> JobRunner.StopResult {
        guard let r = current.withLock({ $0 }) else { return .failed(reason: "the run has not started yet") }
        return r.savepoint(timeoutSeconds: timeoutSeconds)
    }

    public func stopWithSnapshot(timeoutSeconds: Double = 120) -> JobRunner.StopResult {
        guard let r = current.withLock({ $0 }) else { return .failed(reason: "the run has not started yet") }
        return r.stopWithSnapshot(timeoutSeconds: timeoutSeconds)
    }
}
