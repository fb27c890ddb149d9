#if WEIR_BUG_SWITCHES
import Foundation
@testable import WeirCore
@testable import WeirEngine

/// The simulator's driver of the real `CheckpointCoordinatorStateMachine`:
/// acknowledgements travel over a simulated network (where they can be lost,
/// duplicated or delayed), persisting is a separate step (which can fail),
/// and time is the world's clock. Tasks see it through the same
/// `CheckpointCoordination` protocol as the live coordinator.
final class SimCoordination: CheckpointCoordination, @unchecked Sendable {
    // @unchecked: the simulation is single-threaded.
    let world: SimWorld
    var machine: CheckpointCoordinatorStateMachine<TaskAck>
    let shape: JobRunner.CoordinationShape
    let runID: String
    /// Acknowledgements on their way to the coordinator.
    var network: [(Barrier, TaskAck)] = []
    var toPersist: (Barrier, [TaskID: TaskAck])?
    var outcomes: [Int64: CheckpointCoordinator.Outcome] = [:]
    var completed: Int64 = -1
    var listeners: [@Sendable (Int64) -> Void] = []
    /// Faults armed for the next acknowledgement or persist.
    var dropNextAck = false, duplicateNextAck = false, failNextPersist = false

    init(world: SimWorld, shape: JobRunner.CoordinationShape, runID: String, intervalMillis: Int64, timeoutMillis: Int64,
         untilIdleMillis: Int64, firstCheckpointID: Int64, bugs: InjectedBugs) {
        self.world = world; self.shape = shape; self.runID = runID
        machine = CheckpointCoordinatorStateMachine(.init(tasks: shape.tasks, sourceTasks: shape.sourceTasks,
                                                          intervalNanos: UInt64(intervalMillis) * 1_000_000,
                                                          timeoutNanos: UInt64(timeoutMillis) * 1_000_000,
                                                          untilIdleNanos: UInt64(untilIdleMillis) * 1_000_000,
                                                          firstCheckpointID: firstCheckpointID), now: world.now)
        machine.bugs = bugs
    }

    // MARK: CheckpointCoordination

    func barrier(after: Int64) -> Barrier? {
        if let b = machine.pendingBarrier, b.id > after { return b }
        return nil
    }

    func ack(_ barrier: Barrier, _ a: TaskAck) {
        if dropNextAck { dropNextAck = false; world.note("ack \(barrier.id) from \(a.task) lost"); return }
        network.append((barrier, a))
        if duplicateNextAck { duplicateNextAck = false; network.append((barrier, a)); world.note("ack \(barrier.id) from \(a.task) duplicated") }
    }

    func sourceAtEnd(_ task: TaskID, atEndFor nanos: UInt64?) {
        execute(machine.sourceAtEnd(task, atEndFor: nanos, now: world.now))
    }

    func outcome(of id: Int64) -> CheckpointCoordinator.Outcome? { outcomes[id] }
    func waitForOutcome(_ id: Int64) -> CheckpointCoordinator.Outcome? { outcomes[id] }
    var completedCheckpoint: Int64 { completed }
    func onCompleted(_ listener: @escaping @Sendable (Int64) -> Void) { listeners.append(listener) }

    // MARK: Steps the scheduler can take

    func tick() { execute(machine.tick(now: world.now)) }

    func request(_ kind: BarrierKind) {
        world.note("request \(kind.rawValue)")
        execute(machine.request(kind, now: world.now))
    }

    /// Delivers one acknowledgement in flight (the `index`-th: the network reorders).
    func deliverAck(_ index: Int) {
        let (b, a) = network.remove(at: index)
        let (outcome, actions) = machine.ack(checkpoint: b.id, from: a.task, a, now: world.now)
        if outcome != .accepted { world.note("ack \(b.id) from \(a.task): \(outcome)") }
        execute(actions)
    }

    /// Finishes the persist in flight (or fails it, if a fault is armed).
    func finishPersist() {
        guard let (b, acks) = toPersist else { return }
        toPersist = nil
        if failNextPersist {
            failNextPersist = false
            world.note("persist of checkpoint \(b.id) failed (injected)")
            execute(machine.persistFailed(checkpoint: b.id, reason: "injected", now: world.now))
            return
        }
        let p = shape.plan
        let c = CompletedCheckpoint(b, acks: acks, job: p.name, run: runID, nodes: p.nodes.map(\.id), parallelism: p.parallelism,
                                    maxParallelism: p.maxParallelism, layouts: shape.layouts)
        world.snapshots.append(c)
        world.note("checkpoint \(b.id) (\(b.kind.rawValue)) persisted")
        execute(machine.persisted(checkpoint: b.id, snapshotID: "chk-\(b.id)", now: world.now))
    }

    /// The run is cancelled: the machine aborts what it was collecting.
    func cancel() { execute(machine.cancel()) }

    private func execute(_ actions: [CheckpointCoordinatorStateMachine<TaskAck>.Action]) {
        for a in actions {
            switch a {
            case .injectBarrier(let b):
                world.note("barrier \(b.id) (\(b.kind.rawValue)) triggered")
            case .persist(let b, let acks, _):
                toPersist = (b, acks)
            case .complete(let b, let sid):
                outcomes[b.id] = .completed(snapshotID: sid)
                completed = max(completed, b.id)
                world.note("checkpoint \(b.id) complete")
                for l in listeners { l(b.id) }
            case .abort(let b, let reason):
                outcomes[b.id] = .failed(reason)
                world.note("checkpoint \(b.id) aborted: \(reason)")
            case .noteIdleWait:
                break
            }
        }
    }
}
#endif
