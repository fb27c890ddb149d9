import Foundation
import Synchronization
import WeirControl
import WeirCore
import WeirState
import WeirEngine

/// `weir run --events FILE`: one `RunEventLine` per line for each lifecycle
/// event of the run, appended and flushed as it happens. The control plane
/// supervises its child runs by decoding the same type; people can `tail -f` it.
///
/// Events: `starting`, `running`, `first_record`, `snapshot`, `snapshot_failed`, `stop_failed`,
/// `restarting`, `metrics` (every 2 s, with backpressure time), and one final `finished`, `stopped`,
/// `cancelled` or `failed`. Every line has `event` and `time` (ISO-8601).
final class EventLog: Sendable {
    private let handle: Mutex<FileHandle?>
    private let ended = Atomic<Bool>(false)

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

    func emit(_ event: RunEventLine.Event) {
        // Exactly one final event per run.
        if event.isFinal, ended.exchange(true, ordering: .relaxed) { return }
        guard enabled, let data = try? RunEventLine(time: SnapshotManifest.timestamp(Date()), event).encoded() else { return }
        handle.withLock { h in
            h?.write(data + [0x0A])
        }
    }

    func emit(_ e: RunEvent, store: SnapshotStore) {
        switch e {
        case .running(let run, let from):
            emit(.running(.init(run: run, restoredFrom: from)))
        case .firstRecord:
            emit(.firstRecord)
        case .snapshot(let id, let kind, let ckpt, let bytes, let ms):
            var s = RunEventLine.Snapshot(id: id, kind: kind.rawValue, checkpoint: ckpt, bytes: bytes, durationMs: ms)
            if let m = try? store.load(id, verify: false).manifest {
                s.offsets = m.offsets
                s.sizeBytes = m.totalBytes
                s.createdAt = m.createdAt
                s.kind = m.kind.rawValue
            }
            emit(.snapshot(s))
        case .snapshotFailed(let ckpt, let kind, let reason):
            emit(.snapshotFailed(.init(checkpoint: ckpt, kind: kind.rawValue, reason: reason)))
        case .restarting(let attempt, let of, let error):
            emit(.restarting(.init(attempt: attempt, of: of, error: error)))
        case .restoreAdjusted(let node, let dropped, let newPartitions, let newTopics):
            emit(.restoreAdjusted(.init(node: node, dropped: dropped, newPartitions: newPartitions, newTopics: newTopics)))
        case .startupTimes(let state, let positioned, let first):
            emit(.startupTimes(.init(stateLoadedMs: state, sourcesPositionedMs: positioned, firstRecordMs: first)))
        case .splitsAdded(let node, let subtask, let splits):
            emit(.splitsAdded(.init(node: node, subtask: subtask, splits: splits)))
        }
    }

    func emitMetrics(_ m: JobMetrics, restarts: Int, backpressureNanos: UInt64 = 0) {
        var lag: [String: Int64] = [:]
        for p in m.splitProgress { lag[p.name] = p.lag }
        let ck = m.lastCheckpointFigures
        emit(.metrics(.init(recordsIn: m.recordsIn.load, recordsOut: m.recordsOut.load, decodeErrors: m.decodeErrors.load,
                            lateRecords: m.lateRecords.load, lag: lag, checkpoints: m.checkpointsCompleted.load,
                            lastCheckpointMs: ck.durationMillis, lastCheckpointBytes: ck.bytes, restarts: restarts,
                            backpressureMs: Double(backpressureNanos) / 1e6, rejectedRecords: m.rejectedRecords.load,
                            nodes: EventLog.nodeFigures(m))))
    }

    /// Per-node figures keyed by node id, as the metrics event and `--stats` carry them.
    static func nodeFigures(_ m: JobMetrics) -> [String: RunEventLine.Metrics.Node] {
        var nodes: [String: RunEventLine.Metrics.Node] = [:]
        let rejected = m.rejected
        for n in m.nodes {
            nodes[n.id] = .init(recordsIn: n.recordsIn, recordsOut: n.recordsOut,
                                backpressureMs: Double(n.backpressureNanos) / 1e6, rejected: rejected[n.id] ?? [:],
                                watermarkMs: n.watermark)
        }
        return nodes
    }

    /// The final `failed` event, with the error's code, subject and suggestion when known.
    func emitFailure(_ error: any Error) {
        emit(.failed(EventLog.failure(error)))
    }

    /// What the `failed` event says about an error: a `WeirError` keeps its code.
    static func failure(_ error: any Error) -> RunEventLine.Failed {
        if let e = error as? WeirError {
            return .init(code: e.code.rawValue, subject: e.subject, message: e.description, suggestion: e.suggestion)
        } else if let e = error as? SpecErrors {
            return .init(code: WeirError.Code.invalidSpec.rawValue, message: e.description)
        }
        return .init(code: WeirError.Code.internalError.rawValue, message: "\(error)")
    }
}
