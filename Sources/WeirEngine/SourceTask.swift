import Foundation
import WeirCore

/// The loop of one source subtask: poll → decode → chained operators,
/// per-split watermarks with idleness, barriers injected between polls.
final class SourceTask: @unchecked Sendable {
    // @unchecked: the task is created on the runner thread and then used only by its own thread.
    let node: PlannedNode
    let subtask: Int
    let taskID: TaskID
    let connector: any SourceConnector
    let splitIndices: [Int]
    /// Who reads splits that appear while the job runs (this subtask among `parallelism`).
    let owner: SplitOwner
    let eventTime: EventTimeSpec?
    let restoredWatermarks: [String: Int64]
    let output: Output
    let options: RunOptions
    let metrics: JobMetrics
    let counters: NodeCounters
    let rejections: Rejections
    let coordinator: any CheckpointCoordination
    let stop: @Sendable () -> Bool
    let firstRecord: @Sendable () -> Void
    /// Called once the reader is open (its partitions assigned and positioned).
    var readerOpened: @Sendable () -> Void = {}
    #if WEIR_BUG_SWITCHES
    var injectedBugs: InjectedBugs = []
    #endif

    init(node: PlannedNode, subtask: Int, parallelism: Int, connector: any SourceConnector, splitIndices: [Int],
         eventTime: EventTimeSpec?, restoredWatermarks: [String: Int64], output: Output, options: RunOptions,
         metrics: JobMetrics, counters: NodeCounters, rejections: Rejections, coordinator: any CheckpointCoordination,
         stop: @escaping @Sendable () -> Bool, firstRecord: @escaping @Sendable () -> Void) {
        self.firstRecord = firstRecord; self.counters = counters; self.rejections = rejections
        self.node = node; self.subtask = subtask; self.taskID = TaskID(node: node.id, subtask: subtask); self.connector = connector
        self.splitIndices = splitIndices; self.owner = SplitOwner(subtask: subtask, parallelism: parallelism); self.eventTime = eventTime; self.restoredWatermarks = restoredWatermarks
        self.output = output; self.options = options; self.metrics = metrics; self.coordinator = coordinator; self.stop = stop
    }

    static func encodeWatermarks(_ m: [String: Int64]) -> [UInt8] {
        var w = StateWriter()
        w.u32(UInt32(m.count))
        for (k, v) in m.sorted(by: { $0.key < $1.key }) { w.string(k); w.i64(v) }
        return w.bytes
    }

    static func decodeWatermarks(_ b: [UInt8]) -> [String: Int64] {
        var r = StateReader(b)
        var m: [String: Int64] = [:]
        guard let n = try? r.u32() else { return m }
        for _ in 0..<n {
            guard let k = try? r.string(), let v = try? r.i64() else { break }
            m[k] = v
        }
        return m
    }

    func run() throws {
        let reader = try connector.openReader(splits: splitIndices, owner: owner)
        defer { reader.close() }
        readerOpened()
        var loop = SourceLoop(task: self, reader: reader, coordination: coordinator,
                              clock: { DispatchTime.now().uptimeNanoseconds })
        while !stop() {
            switch try loop.step() {
            case .polled: break
            case .awaiting(let id):
                // A stop or drain barrier went out: wait for its outcome (nil: the run is shutting down).
                guard coordinator.waitForOutcome(id) != nil else { return }
            case .ended: return
            }
        }
    }

    /// Counts, logs and (dead letter) collects the messages refused by the last poll; throws under `onError: fail`.
    @inline(never)
    func reject(_ bad: [SourceDecoding.BadMessage], topics: [(String?, Int32?)], into rejected: inout [RejectedRecord]) throws {
        for m in bad {
            let r = RejectedRecord(node: node.id, reason: m.failure.reason,
                                   message: m.failure.message(schema: node.schema, eventTimeField: eventTime?.field),
                                   topic: topics[m.split].0, partition: topics[m.split].1, offset: m.offset, value: m.bytes)
            if try rejections.reject(r) { rejected.append(r) }
        }
    }


    /// `events/3` → ("events", 3); a split name without a partition keeps its whole name as the topic.
    static func topicPartition(_ split: String) -> (String?, Int32?) {
        guard let slash = split.lastIndex(of: "/"), let p = Int32(split[split.index(after: slash)...]) else { return (split, nil) }
        return (String(split[..<slash]), p)
    }
}

