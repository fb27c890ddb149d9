import WeirCore
import WeirKafka

/// Writes one `kafka:` source node as Flink Kafka tables (one per topic) and
/// a view named after the node that drops what Weir's decoder rejects.
///
/// It exists to keep the three things that must agree with Weir's source in
/// one place: where each partition starts and stops (spec, snapshot, bounded
/// run), which records survive decoding, and the watermark.
struct FlinkKafkaSource {
    let job: String
    let id: String
    let kafka: KafkaSourceConnector
    let schema: Schema
    let eventTime: EventTimeSpec?
    /// The job's `onError` (sources follow the job's policy).
    let onError: OnError
    /// The snapshot's offsets of this node (`topic/partition` → next offset), nil: none.
    let snapshot: [String: Int64]?
    /// End offsets of a bounded run (`topic/partition` → stop before), nil: unbounded.
    let end: [String: Int64]?

    /// Weir's event times are epoch milliseconds from year 0001 to 9999 (`JSONRowDecoder.eventTimeRange`).
    static let minEventTime = JSONRowDecoder.minEventTime
    static let maxEventTime = JSONRowDecoder.maxEventTime

    /// librdkafka properties with the same name and meaning in Kafka's Java
    /// client (all of them consumer settings that exist in both with the same
    /// values), and the two whose Java name differs.
    static let mappedProperties: [String: String] = [
        "client.id": "client.id",
        "client.rack": "client.rack",
        "isolation.level": "isolation.level",
        "fetch.min.bytes": "fetch.min.bytes",
        "fetch.max.bytes": "fetch.max.bytes",
        "max.partition.fetch.bytes": "max.partition.fetch.bytes",
        "fetch.wait.max.ms": "fetch.max.wait.ms",
        "security.protocol": "security.protocol",
    ]

    /// The table name of one topic.
    func tableName(topic: String) -> String {
        kafka.topics.count == 1 ? "\(id)__kafka" : "\(id)__kafka__\(topic)"
    }

    var tableNames: [String] { kafka.topics.map { tableName(topic: $0) } }

    /// Where a topic's partitions start on Flink.
    enum Start: Equatable {
        case earliest, latest
        case specific([Int32: Int64])
    }

    /// Checks what cannot be written, before anything is: field types and
    /// names, properties.
    func check() throws(ExportRefusal) {
        for f in schema.fields {
            if f.type == .any {
                throw ExportRefusal(id, "field '\(f.name)' is declared 'any': Flink needs a column type",
                                    hint: "declare it int, double, string or bool (with ? if it may be missing)")
            }
        }
        for (key, value) in kafka.properties.sorted(by: { $0.key < $1.key }) {
            guard FlinkKafkaSource.mappedProperties[key] != nil else {
                let known = FlinkKafkaSource.mappedProperties.keys.sorted().joined(separator: ", ")
                throw ExportRefusal(id, "Kafka property '\(key)' is a librdkafka setting with no faithful equivalent in Flink's Java Kafka client (the export maps only \(known))",
                                    hint: "remove it from the spec to export, and set the Java client's own property on the Flink table by hand if it is needed")
            }
            if !FlinkSQL.isWritable(value) { throw ExportRefusal(id, "Kafka property '\(key)' has a value with control characters") }
        }
        if let v = kafka.properties["isolation.level"], !["read_committed", "read_uncommitted"].contains(v) {
            throw ExportRefusal(id, "Kafka property 'isolation.level' is '\(v)'; Kafka's Java client takes read_committed or read_uncommitted")
        }
        if let v = kafka.properties["security.protocol"],
           !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(v.lowercased()) {
            throw ExportRefusal(id, "Kafka property 'security.protocol' is '\(v)', which Kafka's Java client does not know")
        }
        if !FlinkSQL.isWritable(kafka.bootstrap) { throw ExportRefusal(id, "'bootstrap' has control characters") }
    }

    /// Where `topic` starts: the snapshot's offsets for it if the snapshot
    /// lists any of its partitions (others then start at earliest, as in a
    /// Weir restore), else the spec's `startOffsets`.
    func start(topic: String) -> Start {
        if let snapshot {
            let listed = offsets(snapshot, topic: topic, bare: false)
            if !listed.isEmpty { return .specific(listed) }
        }
        switch kafka.startOffsets {
        case .earliest: return .earliest
        case .latest: return .latest
        case .specific(let map):
            let listed = offsets(map, topic: topic, bare: true)
            return listed.isEmpty ? .earliest : .specific(listed)
        }
    }

    /// The partitions of `topic` in an offset map keyed `topic/partition`
    /// (and, with `bare`, by partition alone, meaning that partition of every topic).
    func offsets(_ map: [String: Int64], topic: String, bare: Bool) -> [Int32: Int64] {
        var out: [Int32: Int64] = [:]
        for (key, off) in map {
            if let slash = key.lastIndex(of: "/") {
                guard key[..<slash] == topic, let p = Int32(key[key.index(after: slash)...]) else { continue }
                out[p] = off
            } else if bare, let p = Int32(key) {
                if out[p] == nil { out[p] = off }
            }
        }
        return out
    }

    static func offsetList(_ m: [Int32: Int64]) -> String {
        m.sorted { $0.key < $1.key }.map { "partition:\($0.key),offset:\($0.value)" }.joined(separator: ";")
    }

    /// The statements: one table per topic, then the node's view.
    func statements() throws(ExportRefusal) -> [String] {
        try check()
        var out: [String] = []
        var selects: [String] = []
        for topic in kafka.topics {
            out.append(try table(topic: topic))
            selects.append(viewSelect(table: tableName(topic: topic)))
        }
        var view = "CREATE TEMPORARY VIEW \(FlinkSQL.ident(id)) AS\n" + selects.joined(separator: "\nUNION ALL\n")
        view += ";"
        out.append(view)
        return out
    }

    /// Fields Weir rejects a record without (declared without `?`).
    var required: [Schema.Field] { schema.fields.filter { !$0.nullable } }

    /// The event-time field's value as Weir's epoch milliseconds (a double is floored).
    func eventMillis(_ et: EventTimeSpec) -> String {
        let f = FlinkSQL.ident(et.field)
        return schema.fields.first(where: { $0.name == et.field })?.type == .double ? "CAST(FLOOR(\(f)) AS BIGINT)" : f
    }

    /// The conditions under which Weir's decoder keeps a record (beyond
    /// well-formed JSON with well-typed values, which the JSON format checks).
    var acceptConditions: [String] {
        var c = required.map { "\(FlinkSQL.ident($0.name)) IS NOT NULL" }
        if let et = eventTime {
            let f = FlinkSQL.ident(et.field)
            if !required.contains(where: { $0.name == et.field }) { c.append("\(f) IS NOT NULL") }
            c.append("\(f) >= \(FlinkKafkaSource.minEventTime)")
            c.append("\(f) <= \(FlinkKafkaSource.maxEventTime)")
        }
        return c
    }

    func table(topic: String) throws(ExportRefusal) -> String {
        var cols = schema.fields.map { "  \(FlinkSQL.ident($0.name)) \(FlinkSQL.type($0.type)!)" }
        if let et = eventTime {
            // A record Weir rejects gets the earliest event time Weir knows, so
            // that it never moves the watermark (Weir's decoder rejects it before
            // the watermark sees it; Flink's rowtime may not be NULL); the view then drops it.
            let conds = acceptConditions.joined(separator: " AND ")
            cols.append("  \(FlinkSQL.ident(FlinkView.rowtime)) AS CASE WHEN \(conds) THEN TO_TIMESTAMP_LTZ(\(eventMillis(et)), 3) "
                        + "ELSE TO_TIMESTAMP_LTZ(\(FlinkKafkaSource.minEventTime), 3) END")
            // Weir's watermark is the highest event time minus maxOutOfOrderness minus 1 ms;
            // Flink's is the highest value of this expression.
            cols.append("  WATERMARK FOR \(FlinkSQL.ident(FlinkView.rowtime)) AS \(FlinkSQL.ident(FlinkView.rowtime)) - \(try FlinkSQL.interval(et.maxOutOfOrdernessMillis + 1, node: id, what: "maxOutOfOrderness + 1 ms"))")
        }
        var with: [(String, String)] = [
            ("connector", "kafka"),
            ("topic", topic),
            ("properties.bootstrap.servers", kafka.bootstrap),
            ("properties.group.id", "weir-export-\(job)-\(id)" + (kafka.topics.count > 1 ? "-\(topic)" : "")),
            // librdkafka reads committed records only by default; the Java client reads uncommitted ones.
            ("properties.isolation.level", "read_committed"),
            // Offsets never come from the group: the script says where to start.
            ("properties.commit.offsets.on.checkpoint", "false"),
        ]
        for (key, value) in kafka.properties.sorted(by: { $0.key < $1.key }) {
            let javaKey = FlinkKafkaSource.mappedProperties[key]!
            let v = key == "security.protocol" ? value.uppercased() : value
            if let i = with.firstIndex(where: { $0.0 == "properties." + javaKey }) { with[i].1 = v } else { with.append(("properties." + javaKey, v)) }
        }
        let start = start(topic: topic)
        switch start {
        case .earliest: with.append(("scan.startup.mode", "earliest-offset"))
        case .latest: with.append(("scan.startup.mode", "latest-offset"))
        case .specific(let m):
            with.append(("scan.startup.mode", "specific-offsets"))
            with.append(("scan.startup.specific-offsets", FlinkKafkaSource.offsetList(m)))
        }
        if let end {
            let stop = offsets(end, topic: topic, bare: false)
            guard !stop.isEmpty else {
                throw ExportRefusal("end offsets", "list no partition of topic '\(topic)', which source '\(id)' reads: a bounded Weir run does not read it at all, and Flink would read it without end",
                                    hint: "give an end offset for every partition of '\(topic)' (\(topic)/0=N, ...)")
            }
            if case .specific(let from) = start {
                for (p, off) in stop.sorted(by: { $0.key < $1.key }) where (from[p] ?? 0) > off {
                    throw ExportRefusal("end offsets", "\(topic)/\(p) ends at \(off), before its start offset \(from[p]!)",
                                        hint: "give end offsets at or after the start (the snapshot's offsets)")
                }
            }
            with.append(("scan.bounded.mode", "specific-offsets"))
            with.append(("scan.bounded.specific-offsets", FlinkKafkaSource.offsetList(stop)))
        } else {
            with.append(("scan.topic-partition-discovery.interval",
                         kafka.partitionDiscoveryMillis > 0 ? FlinkSQL.duration(kafka.partitionDiscoveryMillis) : "0 ms"))
        }
        with += [
            ("format", "json"),
            ("json.fail-on-missing-field", "false"),
            // skip / deadLetter: a record that is not JSON, or a value of the wrong type, is dropped
            // (the value becomes NULL and the view drops the record if the field is required); fail: it fails the job.
            ("json.ignore-parse-errors", onError == .fail ? "false" : "true"),
        ]
        let options = with.map { "  \(FlinkSQL.quoted($0.0)) = \(FlinkSQL.quoted($0.1))" }.joined(separator: ",\n")
        return "CREATE TEMPORARY TABLE \(FlinkSQL.ident(tableName(topic: topic))) (\n" + cols.joined(separator: ",\n")
            + "\n) WITH (\n" + options + "\n);"
    }

    /// One topic's part of the node's view: Weir's fields (plus the event
    /// time columns), without the records Weir's decoder rejects.
    func viewSelect(table: String) -> String {
        var cols = schema.fields.map { FlinkSQL.ident($0.name) }
        let whereClause = acceptConditions
        if let et = eventTime {
            cols.append("\(eventMillis(et)) AS \(FlinkSQL.ident(FlinkView.eventTimeMillis))")
            cols.append(FlinkSQL.ident(FlinkView.rowtime))
        }
        var s = "SELECT \(cols.joined(separator: ", "))\nFROM \(FlinkSQL.ident(table))"
        if !whereClause.isEmpty { s += "\nWHERE " + whereClause.joined(separator: " AND ") }
        return s
    }
}
