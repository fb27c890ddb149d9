import WeirCore

/// The comment block at the top of an exported script: where it came from,
/// what exactly-once means with Flink's JDBC sink, and what of Weir's
/// behaviour does not carry over.
///
/// It exists so that whoever submits the script to a cluster reads, next to
/// the SQL, the differences they accept by doing so; the README says the same.
enum FlinkScriptHeader {
    static func text(job: JobSpec, options: FlinkExportOptions, sinks: [(id: String, mode: String, policy: ErrorPolicy)],
                     hasSessions: Bool, hasContinuous: Bool) -> String {
        var lines: [String] = [
            "Flink SQL script exported by `weir export --target flink-sql` from Weir job '\(job.name)'.",
        ]
        if let note = options.note, FlinkSQL.isWritable(note) { lines.append("Exported from: \(note).") }
        if let snap = options.startOffsets {
            let n = snap.values.reduce(0) { $0 + $1.count }
            lines.append("Start: the snapshot's offsets (\(n) partition\(n == 1 ? "" : "s")); partitions of those topics the")
            lines.append("snapshot does not list start at their earliest offset, other topics at the spec's startOffsets.")
        }
        if options.endOffsets != nil {
            lines.append("Bounded: each listed partition stops before its end offset; the job then ends and every open window fires.")
        }
        lines += [
            "Target: Apache Flink 2.0 with flink-connector-kafka 4.0 and flink-connector-jdbc 4.0 (with a MySQL dialect),",
            "run statement by statement (SQL client: sql-client.sh -f FILE). Statements end with ';' at the end of a line;",
            "the INSERTs inside EXECUTE STATEMENT SET BEGIN ... END; end with ';' too and belong to that one statement.",
            "A TableEnvironment (PyFlink, Java) takes the SET lines as configuration (config.set(key, value)), not",
            "through execute_sql.",
            "",
            "EXACTLY-ONCE ON FLINK. Flink checkpoints the Kafka offsets and all operator state together, so state is",
            "exactly-once. The JDBC sink is not: it writes its buffered rows at each checkpoint and every second,",
            "outside any transaction, and after a failover Flink replays the records since the last completed",
            "checkpoint and writes their rows again (at-least-once). An upsert sink (PRIMARY KEY ... NOT ENFORCED,",
            "written as INSERT ... ON DUPLICATE KEY UPDATE) rewrites the same keys with the same final values, so its",
            "table ends up as Weir's would; while the replay runs it may show older values of a continuous aggregate.",
            "An append sink writes the replayed rows again: duplicates after a Flink failover. (Weir commits each",
            "checkpoint's rows in one XA transaction with the checkpoint: exactly-once in both modes.)",
            "",
            "WHAT DOES NOT CARRY OVER.",
            "- Weir's snapshots: only offsets go over. Keyed state, open windows and the running values of",
            "  continuous aggregates stay in Weir; Flink starts them empty at the start offsets. For a stateful job,",
            "  either stop Weir with a snapshot when no window is open (after the watermark passed the end of the last",
            "  window that received records, e.g. with the input paused for maxOutOfOrderness plus one window), or",
            "  export with earlier start offsets (an older snapshot, or none) so that Flink recomputes the open",
            "  windows; an upsert sink keyed by the window (key includes window_start) then overwrites Weir's rows",
            "  with identical ones. A continuous aggregate is only complete on Flink if it starts from the beginning.",
            "- Records Weir rejects: the export is faithful for records Weir accepts. For the others: not JSON, or a",
            "  value Flink cannot convert (\"seven\" for an int): dropped (onError skip/deadLetter) or the job fails",
            "  (fail); a required field missing or null, or an event time outside years 0001-9999: dropped, also under",
            "  onError fail (Weir fails the job). Flink's JSON format converts where Weir rejects: a number in quotes",
            "  (\"42\") is read as a number, a fraction into an int field is truncated (5.7 -> 5), a string into a bool",
            "  is true only for \"true\", a value of the wrong type in an optional (?) field becomes NULL and the record",
            "  is kept, text after the JSON object is ignored; a number read into a string field keeps its JSON text",
            "  (1.50, where Weir writes 1.5), and a nested object or array is re-serialized compactly.",
            "- Dead-letter tables are not written: records Weir would send there are dropped.",
            "- Rows MySQL refuses (NULL into NOT NULL, too long, out of range): Weir skips them or sends them to the",
            "  dead-letter table (onError), Flink's JDBC sink fails the job. A NULL in an upsert key column is dropped",
            "  (onError skip/deadLetter) or fails the job (fail), by table.exec.sink.not-null-enforcer.",
            "- Column types: the sink tables' columns are typed from the fields (int BIGINT, double DOUBLE, string",
            "  STRING, bool BOOLEAN, window_start/window_end BIGINT epoch ms). Weir converts to the MySQL column's type",
            "  (epoch ms into a DATETIME(3) column as that instant); Flink's JDBC sink does not: use matching columns.",
            "- Integer overflow: Weir computes an int + - * (and unary -, abs) whose result leaves 64 bits in double",
            "  precision, and rejects the row of an int sum that overflows; Flink wraps around (Java long arithmetic).",
            "- Text: Weir compares, groups and counts distinct strings by Unicode canonical equivalence (e + U+0301",
            "  equals U+00E9), Flink by code points; the same for text in NFC. lower()/upper() of non-ASCII text use",
            "  the JVM's default locale on Flink (run it with an English or ROOT locale) and Java lowercases a",
            "  word-final capital sigma to the final form, Weir does not. A double key of -0.0 and one of 0.0 are one",
            "  group in Weir, two in Flink; round() of a double between -0.5 and 0 gives -0.0 in Weir, 0.0 in Flink.",
            "- Timing: which records are late depends, in both engines, on how far the other partitions have been",
            "  read when they arrive. Records in order within maxOutOfOrderness on every partition are never late in",
            "  either. Idleness: Weir declares a partition idle only when it has no unread records and was quiet for",
            "  idleTimeout; Flink when it delivered no record for idleTimeout (table.exec.source.idle-timeout).",
        ]
        if hasSessions {
            lines += [
                "- Windows: Flink's session windows fire 1 ms earlier than Weir's (same sessions, same bounds); a",
                "  record that arrives in that millisecond is late on Flink only.",
            ]
        }
        if hasContinuous {
            lines += [
                "- Continuous aggregates: Weir emits one row per key per input batch, Flink one per record; the",
                "  upsert sink ends with the same row per key.",
            ]
        }
        lines += [
            "- Offsets removed by retention: Weir refuses to start there (unless accepted); Flink starts from the",
            "  earliest offset still held.",
            "- A Flink job has one checkpoint and restart setting for the whole job; Weir's `retain` is not set here.",
        ]
        for s in sinks where s.policy.deadLetterTable != nil {
            lines.append("- Sink '\(s.id)': its dead-letter table \(s.policy.deadLetterTable!) is not written.")
        }
        return lines.map { $0.isEmpty ? "--" : "-- " + $0 }.joined(separator: "\n")
    }
}
