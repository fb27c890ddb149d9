import Foundation
import Synchronization
import WeirCore

/// When a bench run read its first and its last record, sampled from the job's
/// `recordsIn` counter every 2 ms on its own thread: it splits the run's
/// seconds into start-up (until the first record), reading, and finishing (the
/// last windows, the final snapshot and the sinks' commits), so that a short
/// run's fixed costs are not mistaken for its throughput.
final class BenchTimeline: Sendable {
    private struct State { var running = true; var first: UInt64 = 0; var last: UInt64 = 0 }
    private let state = Mutex(State())
    private let started: UInt64

    /// Starts sampling `metrics` now; `total` is the number of records the run is bounded to.
    init(metrics: JobMetrics, total: Int) {
        started = DispatchTime.now().uptimeNanoseconds
        let t = Thread { [self] in
            while true {
                let read = metrics.recordsIn.load
                let now = DispatchTime.now().uptimeNanoseconds
                let go = state.withLock { s -> Bool in
                    if s.first == 0 && read > 0 { s.first = now }
                    if s.last == 0 && read >= total { s.last = now }
                    return s.running && s.last == 0
                }
                if !go { return }
                Thread.sleep(forTimeInterval: 0.002)
            }
        }
        t.name = "bench-timeline"
        t.start()
    }

    /// Stops sampling; `ended` is when the run returned.
    func phases(ended: UInt64) -> BenchReport.Phases {
        let s = state.withLock { s -> State in s.running = false; return s }
        func ms(_ a: UInt64, _ b: UInt64) -> Double { b > a ? Double(b - a) / 1e6 : 0 }
        let first = s.first == 0 ? ended : s.first
        let last = s.last == 0 ? ended : s.last
        return .init(startMillis: ms(started, first), readMillis: ms(first, last), finishMillis: ms(last, ended))
    }
}
