import Foundation
import Synchronization

/// Runs a job with its restart strategy: when a run fails (a subtask threw,
/// a connector broke), it starts a new run in-process from the latest
/// completed snapshot, up to `restart.attempts` times with `restart.delay`
/// between them, then gives up with the last error.
public final class JobSupervisor: Sendable {
    public let plan: JobPlan
    public let options: RunOptions
    let checkpointing: (@Sendable (RestorePoint?) throws -> CheckpointConfig)?
    let latestRestorePoint: @Sendable () throws -> RestorePoint?
    let firstRestore: RestorePoint?
    let allowNonRestoredState: Bool
    private let current = Mutex<JobRunner?>(nil)
    private let cancelled = Atomic<Bool>(false)
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
            do {
                return try runner.run()
            } catch let e as WeirError where e.code == .invalidSpec {
                throw e  // a restart cannot fix the spec or the snapshot's compatibility
            } catch {
                attempt += 1
                guard attempt <= plan.spec.restart.attempts, !cancelled.load(ordering: .relaxed) else { throw error }
                options.log("run \(runner.runID) failed: \(error)")
                options.log("restarting (attempt \(attempt) of \(plan.spec.restart.attempts)) in \(plan.spec.restart.delayMillis) ms from the latest snapshot")
                restarts.add(1)
                options.onEvent(.restarting(attempt: attempt, of: plan.spec.restart.attempts, error: "\(error)"))
                Thread.sleep(forTimeInterval: Double(plan.spec.restart.delayMillis) / 1000)
                if cancelled.load(ordering: .relaxed) { return .cancelled }
                restore = try latestRestorePoint() ?? firstRestore
            }
        }
    }

    public func cancel() {
        cancelled.store(true, ordering: .relaxed)
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
