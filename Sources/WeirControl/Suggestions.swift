import Foundation
import WeirCore

/// The catalogue of suggested fixes for the errors users meet most.
///
/// A warning on a job or a failed operation should say what to do, not only
/// what broke. The engine attaches a suggestion to many of its errors; this
/// catalogue fills in the rest, keyed by error code: the engine's
/// (`WeirError.Code` raw values, kept across the process boundary by the
/// `failed` run event) and the control plane's own (`process_killed`).
/// Phrases in the message count only for an error without a specific code
/// (none, or a generic `io_error`, `kafka_error`, `mysql_error`,
/// `internal_error`, e.g. one written by an older `weir run`).
public enum Suggestions {
    /// One entry: the code it is for, and the phrases that stand for that code
    /// in a message whose own code is generic.
    struct Entry: Sendable {
        let code: String
        let phrases: [String]
        let suggestion: String
        /// Wins over the engine's own suggestion (which speaks of local CLI paths).
        var overridesGiven = false

        init(_ code: WeirError.Code, phrases: [String] = [], suggestion: String, overridesGiven: Bool = false) {
            self.init(code: code.rawValue, phrases: phrases, suggestion: suggestion, overridesGiven: overridesGiven)
        }

        init(code: String, phrases: [String] = [], suggestion: String, overridesGiven: Bool = false) {
            self.code = code
            self.phrases = phrases
            self.suggestion = suggestion
            self.overridesGiven = overridesGiven
        }
    }

    /// Codes that say only which system failed: the message may tell more.
    static let genericCodes = Set([WeirError.Code.io, .kafka, .mysql, .internalError].map(\.rawValue))

    /// One entry per code. For phrase matching, order matters: the first
    /// entry with a phrase in the message wins.
    static let catalogue: [Entry] = [
        Entry(.stateDirFull, phrases: ["no space left on device", "enospc", "disk full", "disk quota"],
              suggestion: "the disk holding the job's state directory is full: free space (or delete old savepoints with weir snapshot delete) and run the job again from the latest snapshot", overridesGiven: true),
        Entry(.stateDirUnwritable, phrases: ["permission denied", "eacces", "read-only file system", "erofs", "operation not permitted"],
              suggestion: "the job's state directory is not writable by the server's user: fix its ownership or permissions, then run the job again from the latest snapshot", overridesGiven: true),
        Entry(.snapshotCorrupt, phrases: ["checksum mismatch", "size mismatch", "is corrupt", "the file is corrupt", "is not a valid manifest", "snapshot is incomplete"],
              suggestion: "the snapshot is corrupt: run again from an earlier snapshot (see weir job snapshots), or without a snapshot", overridesGiven: true),
        Entry(.snapshotIncompatible, phrases: ["that the job no longer has", "state layout changed", "allow-non-restored-state", "snapshot incompatible"],
              suggestion: "the snapshot does not fit this version of the job (a node it has state for is missing or its keys, window or aggregates changed): run with allowNonRestoredState to drop the state of removed nodes, keep the changed node's id only if its state is compatible (give a changed node a new id), or run without a snapshot"),
        Entry(.offsetsRemoved, phrases: ["low watermark", "would be skipped", "deleted by retention"],
              suggestion: "the topic no longer holds the records the snapshot would resume from (retention deleted them): restore a newer snapshot, or run without a snapshot to start from startOffsets"),
        Entry(code: "process_killed", phrases: ["signal 9", "sigkill", "killed"],
              suggestion: "the run's process was killed (signal 9 — by a user, a supervisor or the out-of-memory killer): check the machine's memory (dmesg), then run the job again from the latest snapshot; output stays exactly-once"),
        Entry(.brokerUnreachable, phrases: ["broker transport failure", "all brokers are down", "connection refused"],
              suggestion: "check that the Kafka broker in the spec's bootstrap address is up and reachable from this host, then run the job again (from the latest snapshot to resume where it stopped)"),
        Entry(.topicDeleted,
              suggestion: "a topic the job read was deleted while it ran: re-create it (or publish a version without it), then run from the latest snapshot; output is exactly-once up to it"),
        Entry(.topicMissing, phrases: ["unknown topic", "topic does not exist", "topic or partition does not exist", "': does not exist on"],
              suggestion: "create the topic (or fix the topic name in the spec and publish a new version); if it was deleted while the job ran, recreate it and run from the latest snapshot"),
        Entry(.mysqlUnreachable, phrases: ["can't connect to", "lost connection to", "server has gone away"],
              suggestion: "check that the MySQL/MariaDB server in the sink's url is up and reachable, then run the job again from the latest snapshot"),
        Entry(.accessDenied, phrases: ["access denied"],
              suggestion: "check the user name and password in the sink's url, and that the user may connect from this host and has SELECT, INSERT and UPDATE on the table"),
        Entry(.tableMissing, phrases: ["doesn't exist"],
              suggestion: "create the table (the error shows a matching CREATE TABLE) or fix the table name in the spec, then run again"),
        Entry(.sinkSchemaChanged,
              suggestion: "the sink table was altered or dropped while the job ran: restore its columns (or the table), or publish a version whose output matches the new table, then run from the latest snapshot (output is exactly-once up to it)"),
        Entry(.columnMismatch, phrases: ["unknown column"],
              suggestion: "make the table's columns match the job's output fields (names are matched case-insensitively), or change the job's select/aggregate names and publish a new version"),
        Entry(.lockWaitTimeout, phrases: ["lock wait timeout"],
              suggestion: "another session holds locks on the sink table (a long transaction, or a prepared XA transaction — see XA RECOVER): end it, then run again from the latest snapshot"),
        Entry(.badRecord,
              suggestion: "a record (or a row the sink table refused, e.g. by a constraint added while the job ran) stopped the job under onError: fail: fix the record or the table, or publish a version with onError: skip or deadLetter, then run from the latest snapshot"),
        Entry(.invalidSpec,
              suggestion: "fix the spec (the message names the place), publish a new version and run it"),
        Entry(.kafka,
              suggestion: "check the broker's health and the topic, then run again from the latest snapshot"),
        Entry(.mysql,
              suggestion: "check the MySQL server's log and the sink table, then run again from the latest snapshot"),
        Entry(.io,
              suggestion: "check the job's state directory (space, permissions) and its snapshots, then run again"),
        Entry(.unsupportedLibrary,
              suggestion: "install a supported librdkafka (≥ 2.1, see scripts/setup.sh) on the server's host"),
    ]

    /// The code an error is taken for: its own when specific; when it is
    /// missing or generic, the code of the first entry with a phrase in the
    /// message, if any (an `io_error` saying ENOSPC is `state_dir_full`).
    public static func code(_ code: String?, message: String) -> String? {
        if let code, !genericCodes.contains(code) { return code }
        let lower = message.lowercased()
        return catalogue.first { $0.phrases.contains { lower.contains($0) } }?.code ?? code
    }

    /// A suggestion for an error: the catalogue's for its code (see `code(_:message:)`)
    /// when that entry overrides the engine's, else `given` (the engine's own)
    /// when there is one, else the catalogue's.
    public static func suggest(code: String?, message: String, given: String? = nil) -> String? {
        let given = given.flatMap { $0.isEmpty ? nil : $0 }
        guard let code = Suggestions.code(code, message: message),
              let entry = catalogue.first(where: { $0.code == code }) else { return given }
        return entry.overridesGiven ? entry.suggestion : given ?? entry.suggestion
    }

    /// For a run that ended by a signal.
    public static func forSignal(_ signal: Int32) -> String {
        if signal == SIGKILL { return suggest(code: "process_killed", message: "signal 9")! }
        return "the run's process was terminated by signal \(signal): check what sent it, then run the job again from the latest snapshot"
    }

    /// For a run whose process vanished without reporting how it ended.
    public static let processLost =
        "the run's process ended without reporting an outcome (killed, or crashed): check its log (weir job logs), then run the job again from the latest snapshot"

    /// For a stop with snapshot that failed while the run goes on.
    public static let stopFailed =
        "the run keeps going: take a savepoint and then stop without a snapshot (restore from the savepoint later), or stop without a snapshot (output stays committed up to the last completed checkpoint); a second stop with snapshot of the same run is not possible (weir run treats a second SIGTERM as a cancel)"

    /// For a savepoint that failed while the run goes on.
    public static let savepointFailed =
        "the run keeps going: retry the savepoint; if checkpoints keep failing, check the sink database and the state directory"
}
