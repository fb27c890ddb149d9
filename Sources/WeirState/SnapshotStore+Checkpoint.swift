import Foundation
import WeirCore

/// The snapshot store is where the checkpoint coordinator persists
/// completed checkpoints, and where restores read them back.
extension SnapshotStore: CheckpointStorage {
    public func persist(_ c: CompletedCheckpoint, retain: Int) throws -> String {
        try persist(c, retain: retain, version: nil)
    }

    /// Persists a checkpoint, recording the published job version it came from.
    public func persist(_ c: CompletedCheckpoint, retain: Int, version: Int?) throws -> String {
        let kind: SnapshotKind
        switch c.kind {
        case .savepoint: kind = .savepoint
        case .stop: kind = .stop
        case .checkpoint, .drain: kind = .checkpoint
        }
        let w = try begin(kind: kind, checkpointID: c.id)
        for b in c.state { try w.addState(node: b.node, subtask: b.subtask, keyGroups: b.keyGroups, bytes: b.bytes) }
        var manifest = SnapshotManifest(job: c.job, version: version, run: c.run, parallelism: c.parallelism, maxParallelism: c.maxParallelism,
                                        nodes: c.nodes, offsets: c.offsets, sinkTransactions: c.sinkTransactions, layouts: c.layouts)
        manifest.decodeBytesPerSecond = c.decodeBytesPerSecond
        return try w.commit(manifest, retain: retain).id
    }

    /// Checkpoint settings for a run writing into this store.
    public func checkpointConfig(for spec: JobSpec, restoring: RestorePoint?, version: Int? = nil) -> CheckpointConfig {
        let next = max(nextCheckpointID(), (restoring?.checkpointID ?? 0) + 1)
        return CheckpointConfig(storage: VersionedStorage(store: self, version: version), intervalMillis: spec.checkpoint.intervalMillis,
                                timeoutMillis: spec.checkpoint.timeoutMillis, retain: spec.checkpoint.retain,
                                firstCheckpointID: next,
                                isCompleted: { [self] run, id in isCompleted(run: run, checkpointID: id) })
    }
}

extension LoadedSnapshot {
    /// Reads (and verifies) every state file into a restore point for the runtime.
    public func restorePoint() throws -> RestorePoint {
        var state: [String: [[UInt8]]] = [:]
        for f in manifest.state { state[f.node, default: []].append(try read(f)) }
        var r = RestorePoint(snapshotID: manifest.id, checkpointID: manifest.checkpointID, run: manifest.run,
                             nodes: manifest.nodes, offsets: manifest.offsets, state: state, layouts: manifest.layouts,
                             maxParallelism: manifest.maxParallelism)
        r.decodeBytesPerSecond = manifest.decodeBytesPerSecond
        return r
    }
}

/// Stamps the published job version (from the control plane) into every manifest.
struct VersionedStorage: CheckpointStorage {
    let store: SnapshotStore
    let version: Int?
    func persist(_ checkpoint: CompletedCheckpoint, retain: Int) throws -> String {
        try store.persist(checkpoint, retain: retain, version: version)
    }
}
