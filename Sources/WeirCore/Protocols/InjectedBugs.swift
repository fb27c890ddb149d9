#if WEIR_BUG_SWITCHES
/// Deliberate protocol bugs, switched on by the deterministic simulator's
/// tests to prove that it catches each of them. The type and every check of
/// it exist only in debug (test) builds: a release `weir` cannot carry them.
public struct InjectedBugs: OptionSet, Sendable, CaseIterable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// The coordinator tells sinks to commit before the checkpoint is durable.
    public static let commitBeforePersist = InjectedBugs(rawValue: 1 << 0)
    /// The coordinator completes a checkpoint with one acknowledgement missing.
    public static let completeWithOneAckMissing = InjectedBugs(rawValue: 1 << 1)
    /// A cancel rolls back every prepared epoch, completed ones included.
    public static let cancelRollsBackCompleted = InjectedBugs(rawValue: 1 << 2)
    /// A partition is idle after silence by the clock, even with unread records.
    public static let idlenessByWallClock = InjectedBugs(rawValue: 1 << 3)
    /// Recovery rolls back every in-doubt transaction, completed epochs included.
    public static let recoveryRollsBackCompleted = InjectedBugs(rawValue: 1 << 4)
    /// Sources never look for partitions added while the job runs.
    public static let newPartitionsIgnored = InjectedBugs(rawValue: 1 << 5)

    public static let allCases: [InjectedBugs] = [
        .commitBeforePersist, .completeWithOneAckMissing, .cancelRollsBackCompleted, .idlenessByWallClock, .recoveryRollsBackCompleted,
        .newPartitionsIgnored,
    ]

    public var description: String {
        let names = ["commitBeforePersist", "completeWithOneAckMissing", "cancelRollsBackCompleted", "idlenessByWallClock",
                     "recoveryRollsBackCompleted", "newPartitionsIgnored"]
        return names.indices.filter { rawValue & (1 << $0) != 0 }.map { names[$0] }.joined(separator: "+")
    }
}
#endif
