import Foundation
import Synchronization
import WeirCore
import WeirState
import WeirEngine

/// `weir run --events FILE`: one JSON object per line for each lifecycle
/// event of the run, appended and flushed as it happens. The control plane
/// supervises its child runs by reading this file; people can `tail -f` it.
///
/// Events: `starting`, `running`, `first_record`, `snapshot`, `snapshot_failed`, `stop_failed`,
/// `restarting`, `metrics` (every 2 s, with backpressure time), and one final `finished`, `stopped`,
/// `cancelled` or `failed`. Every line has `event` and `time` (ISO-8601).
final class EventLog: Sendable {
    private let handle: Mutex<FileHandle?>
    private let ended = Atomic<Bool>(false)
    static let finalEvents: Set<String> = ["finished", "stopped", "cancelled", "failed"]

    init(path: String?) throws {
        guard let path else { handle = Mutex(nil); return }
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw CLIError("cannot create the events file \(path)")
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw CLIError("cannot open the events file \(path)") }
        h.seekToEndOfFile()
        handle = Mutex(h)
    }

    var enabled: Bool { handle.withLock { $0 != nil } }

    func emit(_ event: String, _ fields: [String: Any] = [:]) {
        // Exactly one final event per run.
        if EventLog.finalEvents.contains(event), ended.exchange(true, ordering: .relaxed) { return }
        var obj = fields
        obj["event"] = event
        obj["time"] = SnapshotManifest.timestamp(Date())
        guard let data = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) else { return }
        handle.withLock { h in
            h?.write(data)
            h?.write(Data([0x0A]))
        }
    }

    func emit(_ e: RunEvent, store: SnapshotStore) {
        switch e {
        case .running(let run, let from):
            var f: [String: Any] = ["run": run]
            if let from { f["restoredFrom"] = from }
            emit("running", f)
        case .firstRecord:
            emit("first_record")
        case .snapshot(let id, let kind, let ckpt, let bytes, let ms):
            var f: [String: Any] = ["id": id, "kind": kind.rawValue, "checkpoint": ckpt, "bytes": bytes, "durationMs": ms]
            if let m = try? store.load(id, verify: false).manifest {
                f["offsets"] = m.offsets
                f["sizeBytes"] = m.totalBytes
                f["createdAt"] = m.createdAt
                f["kind"] = m.kind.rawValue
            }
            emit("snapshot", f)
        case .snapshotFailed(let ckpt, let kind, let reason):
            emit("snapshot_failed", ["checkpoint": ckpt, "kind": kind.rawValue, "reason": reason])
        case .restarting(let attempt, let of, let error):
            emit("restarting", ["attempt": attempt, "of": of, "error": error])
        case .restoreAdjusted(let node, let dropped, let newPartitions, let newTopics):
            emit("restore_adjusted", ["node": node, "dropped": dropped, "newPartitions": newPartitions, "newTopics": newTopics])
        case .startupTimes(let state, let positioned, let first):
            emit("startup_times", ["stateLoadedMs": state, "sourcesPositionedMs": positioned, "firstRecordMs": first.map { $0 as Any } ?? NSNull()])
        case .splitsAdded(let node, let subtask, let splits):
            emit("splits_added", ["node": node, "subtask": subtask, "splits": splits])
        }
    }

    func emitMetrics(_ m: JobMetrics, restarts: Int, backpressureNanos: UInt64 = 0) {
        var lag: [String: Int64] = [:]
        for p in m.splitProgress { lag[p.name] = p.lag }
        let ck = m.lastCheckpointFigures
        emit("metrics", ["recordsIn": m.recordsIn.load, "recordsOut": m.recordsOut.load, "decodeErrors": m.decodeErrors.load,
                         "lateRecords": m.lateRecords.load, "lag": lag, "checkpoints": m.checkpointsCompleted.load,
                         "lastCheckpointMs": ck.durationMillis, "lastCheckpointBytes": ck.bytes, "restarts": restarts,
                         "backpressureMs": Double(backpressureNanos) / 1e6, "rejectedRecords": m.rejectedRecords.load,
                         "nodes": EventLog.nodeFigures(m)])
    }

    /// Per-node figures keyed by node id, as the metrics event and `--stats` carry them.
    static func nodeFigures(_ m: JobMetrics) -> [String: Any] {
        var nodes: [String: Any] = [:]
        let rejected = m.rejected
        for n in m.nodes {
            nodes[n.id] = ["recordsIn": n.recordsIn, "recordsOut": n.recordsOut,
                           "backpressureMs": Double(n.backpressureNanos) / 1e6,
                           "rejected": rejected[n.id] ?? [:]]
        }
        return nodes
    }

    /// The final `failed` event, with the error's code, subject and suggestion when known.
    func emitFailure(_ error: any Error) {
        if let e = error as? WeirError {
            var f: [String: Any] = ["code": e.code.rawValue, "subject": e.subject, "message": e.description]
            if let s = e.suggestion { f["suggestion"] = s }
            emit("failed", f)
        } else if let e = error as? SpecErrors {
            emit("failed", ["code": WeirError.Code.invalidSpec.rawValue, "message": e.description])
        } else {
            emit("failed", ["code": WeirError.Code.internalError.rawValue, "message": "\(error)"])
        }
    }
}
