import Foundation

/// The catalogue of suggested fixes for the errors users meet most.
///
/// A warning on a job or a failed operation should say what to do, not only
/// what broke. The engine attaches a suggestion to many of its errors; this
/// catalogue fills in the rest, keyed by the engine's error codes
/// (`WeirError.Code` raw values) and by recognisable phrases in the message
/// (snapshot incompatibility, checksums, ENOSPC, signals, …).
public enum Suggestions {
    /// One entry: matches an error by code and/or message phrases.
    struct Entry: Sendable {
        let codes: Set<String>
        let phrases: [String]
        let suggestion: String
        /// Wins over the engine's own suggestion (which speaks of local CLI paths).
        var overridesGiven = false
    }

    /// Order matters: the first entry that matches wins, and message
    /// phrases are checked before bare codes.
    static let catalogue: [Entry] = [
        Entry(codes: [], phrases: ["no space left on device", "enospc", "disk full", "disk quota"],
              suggestion: "the disk holding the job's state directory is full: free space (or delete old savepoints with weir snapshot delete) and run the job again from the latest snapshot", overridesGiven: true),
        Entry(codes: [], phrases: ["permission denied", "eacces", "read-only file system", "erofs", "operation not permitted"],
              suggestion: "the job's state directory is not writable by the server's user: fix its ownership or permissions, then run the job again from the latest snapshot", overridesGiven: true),
        Entry(codes: [], phrases: ["checksum mismatch", "size mismatch", "is corrupt", "the file is corrupt", "is not a valid manifest", "snapshot is incomplete"],
              suggestion: "the snapshot is corrupt: run again from an earlier snapshot (see weir job snapshots), or without a snapshot", overridesGiven: true),
        Entry(codes: [], phrases: ["that the job no longer has", "state layout changed", "allow-non-restored-state", "snapshot incompatible"],
              suggestion: "the snapshot does not fit this version of the job (a node it has state for is missing or its keys, window or aggregates changed): run with allowNonRestoredState to drop the state of removed nodes, keep the changed node's id only if its state is compatible (give a changed node a new id), or run without a snapshot"),
        Entry(codes: [], phrases: ["low watermark", "would be skipped"],
              suggestion: "the topic no longer holds the records the snapshot would resume from (retention deleted them): restore a newer snapshot, or run without a snapshot to start from startOffsets"),
        Entry(codes: [], phrases: ["signal 9", "sigkill", "killed"],
              suggestion: "the run's process was killed (signal 9 — by a user, a supervisor or the out-of-memory killer): check the machine's memory (dmesg), then run the job again from the latest snapshot; output stays exactly-once"),
        Entry(codes: ["broker_unreachable"], phrases: ["broker transport failure", "all brokers are down", "connection refused"],
              suggestion: "check that the Kafka broker in the spec's bootstrap address is up and reachable from this host, then run the job again (from the latest snapshot to resume where it stopped)"),
        Entry(codes: ["topic_deleted"], phrases: [],
              suggestion: "a topic the job read was deleted while it ran: re-create it (or publish a version without it), then run from the latest snapshot; output is exactly-once up to it"),
        Entry(codes: ["topic_missing"], phrases: ["unknown topic", "topic does not exist", "topic or partition does not exist", "': does not exist on"],
              suggestion: "create the topic (or fix the topic name in the spec and publish a new version); if it was deleted while the job ran, recreate it and run from the latest snapshot"),
        Entry(codes: ["mysql_unreachable"], phrases: ["can't connect to", "lost connection to", "server has gone away"],
              suggestion: "check that the MySQL/MariaDB server in the sink's url is up and reachable, then run the job again from the latest snapshot"),
        Entry(codes: ["access_denied"], phrases: ["access denied"],
              suggestion: "check the user name and password in the sink's url, and that the user may connect from this host and has SELECT, INSERT and UPDATE on the table"),
        Entry(codes: ["table_missing"], phrases: ["doesn't exist"],
              suggestion: "create the table (the error shows a matching CREATE TABLE) or fix the table name in the spec, then run again"),
        Entry(codes: ["sink_schema_changed"], phrases: [],
              suggestion: "the sink table was altered or dropped while the job ran: restore its columns (or the table), or publish a version whose output matches the new table, then run from the latest snapshot (output is exactly-once up to it)"),
        Entry(codes: ["column_mismatch"], phrases: ["unknown column"],
              suggestion: "make the table's columns match the job's output fields (names are matched case-insensitively), or change the job's select/aggregate names and publish a new version"),
        Entry(codes: ["lock_wait_timeout"], phrases: ["lock wait timeout"],
              suggestion: "another session holds locks on the sink table (a long transaction, or a prepared XA transaction — see XA RECOVER): end it, then run again from the latest snapshot"),
        Entry(codes: ["bad_record"], phrases: [],
              suggestion: "a record (or a row the sink table refused, e.g. by a constraint added while the job ran) stopped the job under onError: fail: fix the record or the table, or publish a version with onError: skip or deadLetter, then run from the latest snapshot"),
        Entry(codes: ["invalid_spec"], phrases: [],
              suggestion: "fix the spec (the message names the place), publish a new version and run it"),
        Entry(codes: ["kafka_error"], phrases: [],
              suggestion: "check the broker's health and the topic, then run again from the latest snapshot"),
        Entry(codes: ["mysql_error"], phrases: [],
              suggestion: "check the MySQL server's log and the sink table, then run again from the latest snapshot"),
        Entry(codes: ["io_error"], phrases: [],
              suggestion: "check the job's state directory (space, permissions) and its snapshots, then run again"),
        Entry(codes: ["unsupported_library"], phrases: [],
              suggestion: "install a supported librdkafka (≥ 2.1, see scripts/setup.sh) on the server's host"),
    ]

    /// A suggestion for an error: `given` (the engine's own) when there is
    /// one, else the first catalogue entry matching the message, else the
    /// first matching the code.
    public static func suggest(code: String?, message: String, given: String? = nil) -> String? {
        let lower = message.lowercased()
        if let e = catalogue.first(where: { $0.overridesGiven && $0.phrases.contains(where: { lower.contains($0) }) }) {
            return e.suggestion
        }
        if let given, !given.isEmpty { return given }
        for e in catalogue where !e.phrases.isEmpty && e.phrases.contains(where: { lower.contains($0) }) {
            // A phrase match only counts if the entry is code-agnostic or the code agrees (or is generic).
            if e.codes.isEmpty || code == nil || e.codes.contains(code!) || ["kafka_error", "mysql_error", "io_error", "internal_error"].contains(code!) {
                return e.suggestion
            }
        }
        if let code, let e = catalogue.first(where: { $0.codes.contains(code) }) { return e.suggestion }
        return nil
    }

    /// For a run that ended by a signal.
    public static func forSignal(_ signal: Int32) -> String {
        if signal == 9 { return suggest(code: nil, message: "signal 9")! }
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
