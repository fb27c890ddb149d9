import Synchronization

/// The watermark each subtask of a node last passed on, so the live view and
/// `/metrics` can show how far event time has got at every node (Flink's
/// "current watermark"). Written only when a watermark advances (once per
/// batch at most), read every metrics interval.
package final class WatermarkGauge: Sendable {
    private let slots: Mutex<[Int64]>

    package init(subtasks: Int) { slots = Mutex(Array(repeating: .min, count: max(subtasks, 1))) }

    package func set(_ subtask: Int, _ watermark: Int64) {
        slots.withLock { s in if s.indices.contains(subtask) { s[subtask] = watermark } }
    }

    /// The node's watermark: the lowest over the subtasks that have one; nil
    /// before any has (a subtask without partitions never has one and does
    /// not hold the node back).
    package var current: Int64? {
        slots.withLock { s in s.filter { $0 != .min }.min() }
    }
}
