import ArgumentParser
import Foundation
import Logging
import Synchronization
import WeirCore
import WeirEngine
import WeirKafka
import WeirMySQL
import WeirState

/// `weir bench JOB.yaml`: how fast a job runs on this machine, against what
/// the broker and machine allow. Generates events from each source's schema
/// into a bench topic (or replays the source's own topics), reads them once
/// with a bare librdkafka consumer (the ceiling), then runs the job bounded
/// to exactly those messages, writing to its real sinks (or shadow tables),
/// and reports events/s, the ratio to the ceiling, latency from arrival to
/// sink commit, CPU by node, peak RSS, checkpoints, and a check of every sink
/// table against an independent reference.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark a job against the same-run ceiling (a bare librdkafka read of the same data).",
        discussion: """
        Generated data goes to a new topic per source, weir-bench-JOB-NODE-RUN (RUN: 8 hex digits of this bench, on the source's broker); \
        the job reads it from the start and stops at its end (a bounded run), writing to its sinks. \
        Exit status 1 when a check fails: a sink table differs from the reference, or records were neither read nor rejected.
        """)

    @Argument(help: "The job spec (YAML or JSON).") var spec: String
    @Option(help: "Events to generate per source.") var events = 1_000_000
    @Option(help: "Partitions of each generated topic.") var partitions = 4
    @Option(help: "Distinct values of each key field (keyBy fields and upsert keys).") var keys = 1000
    @Option(help: "Event-time rate of generated events: events per second of event time.") var eventsPerSecond = 10_000
    @Option(help: "Share of bad records among generated events, 0 to 1 (cut-off JSON, missing required field, text in a number field, in turn).")
    var badShare = 0.0
    @Option(help: "Seed of the generators.") var seed: UInt64 = 42
    @Flag(help: "Read each source's own topics, from its start offsets to their current end, instead of generating data (no reference check).")
    var replay = false
    @Option(help: "Write into empty copies of the sink tables in this database instead of the tables themselves.")
    var shadowDatabase: String?
    @Option(help: "Run the job at this parallelism instead of the spec's.") var parallelism: Int?
    @Flag(help: "Skip the ceiling run.") var noCeiling = false
    @Flag(help: "Keep the generated topics (deleted after the run by default).") var keepTopics = false
    @Option(help: "Directory for the run's snapshots (default: a temporary directory, removed afterwards).") var stateDir: String?
    @Flag(help: "Print the report as JSON on stdout.") var json = false

    func validate() throws {
        guard events > 0 else { throw ValidationError("--events must be positive") }
        guard (1...10_000).contains(partitions) else { throw ValidationError("--partitions must be between 1 and 10000") }
        guard keys > 0 else { throw ValidationError("--keys must be positive") }
        guard eventsPerSecond > 0 else { throw ValidationError("--events-per-second must be positive") }
        guard (0...1).contains(badShare) else { throw ValidationError("--bad-share must be between 0 and 1") }
        if let p = parallelism, !(1...1024).contains(p) { throw ValidationError("--parallelism must be between 1 and 1024") }
    }

    func run() throws {
        CLILogging.configure(prefix: { "[weir] " }, level: .warning)
        try KafkaLibrary.checkVersion()
        let loaded = try loadPlan(spec)
        var jobSpec = loaded.spec
        if let parallelism {
            guard parallelism <= jobSpec.maxParallelism else {
                throw CLIError("--parallelism \(parallelism) is above the job's maxParallelism \(jobSpec.maxParallelism)")
            }
            jobSpec.parallelism = parallelism
        }
        let progress = BenchProgress(live: isatty(STDERR_FILENO) == 1)
        defer { progress.finish() }

        // What can be refused without a server comes first: a source to generate for needs a schema.
        for node in jobSpec.nodes where !replay {
            guard case .source(_, let source, let settings) = node.kind, source is KafkaSourceConnector else { continue }
            guard loaded.nodes.first(where: { $0.id == node.id })!.schema.count > 0, settings.schema != nil else {
                throw CLIError("source '\(node.id)' declares no schema, so weir bench cannot generate its events: give it `schema: {…}` or use --replay")
            }
        }
        // 1. Sinks, before any event is generated: shadow tables on request, each
        // table checked against what its node writes (a missing or mismatched
        // table is refused now, not after minutes of generating), and what each
        // table holds before the run.
        var sinks: [(node: String, sink: MySQLSinkConnector, before: Result<BenchCheck.Before, any Error>)] = []
        for (i, node) in jobSpec.nodes.enumerated() {
            guard case .sink(let kind, let sink) = node.kind, var mysql = sink as? MySQLSinkConnector else { continue }
            if let shadowDatabase {
                mysql = try mysql.shadow(database: shadowDatabase)
                jobSpec.nodes[i].kind = .sink(connector: kind, sink: mysql)
            }
            do { try mysql.check(schema: loaded.nodes.first { $0.id == node.id }!.schema) } catch {
                throw CLIError("sink '\(node.id)' is not ready for the bench (nothing was generated): \(error)")
            }
            sinks.append((node.id, mysql, replay ? .success(.init(columns: [], rows: [])) : BenchCheck.before(mysql, fresh: shadowDatabase != nil)))
        }
        // 2. The input: generated into bench topics, or the sources' own topics as they are.
        let benchRun = String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(8)).lowercased()
        var generators: [String: (BenchGenerator, Int)] = [:]
        var bound: [String: [String: Int64]] = [:]
        var ceilingRanges: [String: [(split: String, start: Int64, end: Int64)]] = [:]   // by bootstrap
        var topics: [String: String] = [:]
        var created: [(bootstrap: String, topic: String)] = []
        // Generated topics go when the bench ends, also when a later source, the ceiling or the job fails.
        defer {
            if !keepTopics { for c in created { try? KafkaProducer.deleteTopic(bootstrap: c.bootstrap, name: c.topic) } }
        }
        var badRecords = 0
        for (i, node) in jobSpec.nodes.enumerated() {
            guard case .source(let kind, let source, let settings) = node.kind else { continue }
            guard let kafka = source as? KafkaSourceConnector else {
                throw CLIError("source '\(node.id)' is a \(kind) source; weir bench reads Kafka sources only")
            }
            var reading = kafka
            if !replay {
                let planned = loaded.nodes.first { $0.id == node.id }!
                let topic = Self.benchTopic(job: jobSpec.name, node: node.id, run: benchRun)
                let gen = BenchGenerator(schema: planned.schema, eventTimeField: settings.eventTime?.field,
                                         keyFields: Self.keyFields(of: node.id, in: loaded), keys: keys,
                                         seed: seed ^ UInt64(truncatingIfNeeded: i &* 0x9E37_79B9), eventsPerSecond: eventsPerSecond,
                                         badShare: badShare)
                generators[node.id] = (gen, events)
                badRecords += try produce(gen, topic: topic, bootstrap: kafka.bootstrap, properties: kafka.properties, progress: progress)
                created.append((kafka.bootstrap, topic))
                reading = KafkaSourceConnector(bootstrap: kafka.bootstrap, topics: [topic], startOffsets: .earliest,
                                               properties: kafka.properties, partitionDiscoveryMillis: 0, logger: kafka.logger)
                jobSpec.nodes[i].kind = .source(connector: kind, source: reading, settings: settings)
            }
            topics[node.id] = reading.topics.joined(separator: ",")
            progress.phase("reading the end offsets of \(topics[node.id]!)")
            var ends: [String: Int64] = [:]
            for r in try reading.ranges() {
                guard let high = r.high else { throw CLIError("cannot read the end offset of \(r.name) (source '\(node.id)')") }
                ends[r.name] = high
                ceilingRanges[kafka.bootstrap, default: []].append((r.name, r.start ?? r.low ?? 0, high))
            }
            bound[node.id] = ends
        }

        let plan: JobPlan
        do { plan = try JobPlan.compile(jobSpec) } catch { throw CLIError(describeSpecError(error, path: spec)) }
        let messages = bound.values.reduce(0) { $0 + $1.values.reduce(0) { $0 + Int($1) } }
            - ceilingRanges.values.reduce(0) { $0 + $1.reduce(0) { $0 + Int($1.start) } }

        // 3. The ceiling: the same messages, read bare.
        var ceiling: BenchReport.Ceiling?
        if !noCeiling {
            progress.phase("ceiling: bare librdkafka read of \(messages.formatted()) messages")
            var read = 0, secs = 0.0, start = 0.0
            for (bootstrap, ranges) in ceilingRanges.sorted(by: { $0.key < $1.key }) {
                let props = plan.nodes.compactMap { n -> [String: String]? in
                    if case .source(_, let s, _) = n.kind, let k = s as? KafkaSourceConnector, k.bootstrap == bootstrap { return k.properties }
                    return nil
                }.first ?? [:]
                let r = try KafkaCeiling.consume(bootstrap: bootstrap, ranges: ranges, properties: props)
                read += r.messages; secs += r.seconds; start += r.firstMessageSeconds
            }
            ceiling = .init(messages: read, seconds: secs, eventsPerSecond: secs > 0 ? Double(read) / secs : 0, startMillis: start * 1000)
        }

        // 4. The job, bounded to exactly those messages.
        let scratch = stateDir.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("weir-bench-\(UUID().uuidString)")
        defer { if stateDir == nil { try? FileManager.default.removeItem(at: scratch) } }
        let store = try SnapshotStore(directory: scratch, retain: plan.spec.checkpoint.retain)
        let latency = LatencyHistogram()
        let snapshots = Mutex<(done: [(kind: BarrierKind, bytes: Int, millis: Double)], failed: Int)>(([], 0))
        var options = RunOptions()
        options.stopOffsets = bound
        options.logger = Logger(label: "weir.bench")
        options.sinkLatency = { nanos, rows in latency.record(nanos: nanos, rows: rows) }
        options.onEvent = { e in
            switch e {
            case .snapshot(_, let kind, _, let bytes, let ms): snapshots.withLock { $0.done.append((kind, bytes, ms)) }
            case .snapshotFailed: snapshots.withLock { $0.failed += 1 }
            default: break
            }
        }
        let runner = JobRunner(plan: plan, options: options, checkpointing: store.checkpointConfig(for: plan.spec, restoring: nil))
        progress.job(runner.metrics, total: messages)
        ProcessFigures.resetPeakRSS()
        let cpuBefore = ProcessFigures.cpuSeconds()
        let started = DispatchTime.now().uptimeNanoseconds
        let timeline = BenchTimeline(metrics: runner.metrics, total: messages)
        let outcome = Result { try runner.run() }
        let ended = DispatchTime.now().uptimeNanoseconds
        let phases = timeline.phases(ended: ended)
        let seconds = Double(ended - started) / 1e9
        let cpuSeconds = ProcessFigures.cpuSeconds() - cpuBefore
        let peakRSS = ProcessFigures.status("VmHWM")
        progress.finish()
        if case .failure(let e) = outcome { throw CLIError("job '\(plan.name)' failed during the bench: \(e)") }

        // 5. Figures and checks.
        let m = runner.metrics
        var problems: [String] = []
        let read = m.recordsIn.load
        if read != messages { problems.append("the job read \(read) of the \(messages) messages it was bounded to") }
        if !replay && m.rejectedRecords.load != badRecords {
            problems.append("\(badRecords) bad records were generated, the job rejected \(m.rejectedRecords.load)")
        }
        var checks: [BenchCheck] = []
        if !replay {
            progress.phase("checking the sink tables")
            let reference = BenchReference.expected(plan: plan, generators: generators)
            for s in sinks {
                switch s.before {
                case .failure(let e):
                    checks.append(BenchCheck(sink: s.node, table: "\(s.sink.url.database).\(s.sink.table)", status: .skipped,
                                             detail: "the table could not be read before the run: \(e)"))
                case .success(let before):
                    checks.append(BenchCheck.compare(node: s.node, sink: s.sink, before: before,
                                                     expected: reference[s.node] ?? .unavailable("no reference")))
                }
            }
        } else {
            checks = sinks.map { BenchCheck(sink: $0.node, table: "\($0.sink.url.database).\($0.sink.table)", status: .skipped,
                                            detail: "replayed data: there is no reference to compare with") }
        }
        progress.finish()
        for c in checks where c.status == .fail { problems.append("sink \(c.sink) (\(c.table)): \(c.detail)") }

        let report = BenchReport(
            job: plan.name, parallelism: plan.parallelism,
            input: .init(mode: replay ? "replay" : "generated", topics: topics, partitions: replay ? nil : partitions,
                         eventsPerSource: replay ? nil : events, seed: replay ? nil : seed, keys: replay ? nil : keys,
                         eventsPerSecond: replay ? nil : eventsPerSecond, badShare: replay ? nil : badShare,
                         badRecords: replay ? nil : badRecords, messages: messages),
            records: .init(read: read, rejected: m.rejectedRecords.load, late: m.lateRecords.load,
                           sinkRows: plan.nodes.filter(\.isSink).reduce(0) { total, n in total + (m.nodes.first { $0.id == n.id }?.recordsOut ?? 0) }),
            seconds: seconds, ceiling: ceiling, phases: phases, latencyMillis: latency.summary,
            cpu: Self.cpu(m.threadCPUNanos, plan: plan, processSeconds: cpuSeconds, events: read),
            peakRSSBytes: peakRSS, checkpoints: Self.checkpoints(snapshots.withLock { $0 }), checks: checks, problems: problems)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
        } else {
            print(report.text)
        }
        if !report.passed { throw ExitCode(1) }
    }

    /// Generates `events` records into a fresh topic; returns how many were bad.
    private func produce(_ generator: BenchGenerator, topic: String, bootstrap: String, properties: [String: String],
                         progress: BenchProgress) throws -> Int {
        progress.phase("generating \(events.formatted()) events into \(topic)")
        try KafkaProducer.deleteTopic(bootstrap: bootstrap, name: topic)
        try KafkaProducer.createTopic(bootstrap: bootstrap, name: topic, partitions: partitions)
        let producer = try KafkaProducer(bootstrap: bootstrap)
        var gen = generator
        var buf: [UInt8] = []
        buf.reserveCapacity(256)
        var bad = 0
        for i in 0..<events {
            if case .bad = gen.next(into: &buf) { bad += 1 }
            try producer.produce(topic: topic, partition: Int32(i % partitions), value: buf)
            if i % 65_536 == 0 { progress.fraction(Double(i) / Double(events)) }
        }
        try producer.flush(timeoutMillis: 120_000)
        return bad
    }

    /// `weir-bench-JOB-NODE-RUN`, with characters Kafka does not allow in topic
    /// names replaced. `run` sets one bench's topics apart from another's: two
    /// benches of the same job at once, or a bench after a `--keep-topics` one,
    /// must not delete or refill each other's topics.
    static func benchTopic(job: String, node: String, run: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        let suffix = "-" + run
        return String(String("weir-bench-\(job)-\(node)".map { allowed.contains($0) ? $0 : "_" }).prefix(249 - suffix.count)) + suffix
    }

    /// Fields of a source that some downstream node groups or upserts by (generated with `--keys` values).
    static func keyFields(of source: String, in plan: JobPlan) -> Set<String> {
        guard let start = plan.nodes.firstIndex(where: { $0.id == source }) else { return [] }
        var reach: Set<Int> = [start]
        var keys = Set<String>()
        for (i, n) in plan.nodes.enumerated() where n.inputs.contains(where: reach.contains) {
            reach.insert(i)
            let input = plan.nodes[n.inputs[0]].schema
            switch n.kind {
            case .aggregate(let fields, _, _): for f in fields { keys.insert(input.fields[f].name) }
            case .sink(_, let sink): for k in sink.rowKey { keys.insert(k) }
            default: break
            }
        }
        return keys
    }

    static func cpu(_ threads: [String: UInt64], plan: JobPlan, processSeconds: Double, events: Int) -> BenchReport.CPU {
        let perMillion = { (s: Double) in events > 0 ? s / Double(events) * 1e6 : 0 }
        var nodes: [BenchReport.NodeCPU] = []
        var inNodes = 0.0
        for n in plan.nodes {
            let subtasks = (0..<plan.parallelism).compactMap { threads["\(n.id)#\($0)"].map { Double($0) / 1e9 } }
            guard !subtasks.isEmpty else { continue }   // chained into its input's thread
            let total = subtasks.reduce(0, +)
            inNodes += total
            nodes.append(.init(node: n.id, seconds: total, perMillionEvents: perMillion(total), subtasks: subtasks))
        }
        return .init(processSeconds: processSeconds, perMillionEvents: perMillion(processSeconds), nodes: nodes,
                     otherSeconds: max(0, processSeconds - inNodes))
    }

    static func checkpoints(_ s: (done: [(kind: BarrierKind, bytes: Int, millis: Double)], failed: Int)) -> BenchReport.Checkpoints {
        let ms: [Double] = s.done.map(\.millis)
        let periodic = s.done.filter { $0.kind == .checkpoint }.count
        let mean: Double? = ms.isEmpty ? nil : ms.reduce(0, +) / Double(ms.count)
        let bytes: [Int] = s.done.map(\.bytes)
        return .init(completed: s.done.count, periodic: periodic, failed: s.failed, meanMillis: mean, maxMillis: ms.max(),
                     maxBytes: bytes.max())
    }
}

/// The progress bar on stderr (only on a terminal): the phase, and how far the job has read.
final class BenchProgress: @unchecked Sendable {
    // @unchecked: every field is behind `lock`; the ticker thread and the command's thread share it.
    private let lock = NSLock()
    private let live: Bool
    private var text = ""
    private var fractionDone: Double?
    private var metrics: JobMetrics?
    private var total = 0
    private var running = false

    init(live: Bool) { self.live = live }

    func phase(_ t: String) {
        lock.withLock { text = t; fractionDone = nil; metrics = nil }
        if !live { printErr("[weir] bench: " + t) } else { draw(); startTicker() }
    }

    func fraction(_ f: Double) { lock.withLock { fractionDone = f } }

    func job(_ m: JobMetrics, total: Int) {
        lock.withLock { text = "job"; metrics = m; self.total = total; fractionDone = 0 }
        if !live { printErr("[weir] bench: running the job over \(total.formatted()) messages") } else { startTicker() }
    }

    private func startTicker() {
        let start = lock.withLock { () -> Bool in if running { return false }; running = true; return true }
        guard start else { return }
        let t = Thread { [self] in
            while lock.withLock({ running }) {
                draw()
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
        t.start()
    }

    private func draw() {
        let (t, f) = lock.withLock { () -> (String, Double?) in
            if let m = metrics, total > 0 { return ("\(text) \(m.recordsIn.load.formatted())/\(total.formatted())", Double(m.recordsIn.load) / Double(total)) }
            return (text, fractionDone)
        }
        var line = "\r\u{1B}[2K"
        if let f {
            let filled = Int((min(max(f, 0), 1) * 30).rounded())
            line += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled) + "] "
                + String(format: "%3.0f%% ", min(max(f, 0), 1) * 100)
        }
        FileHandle.standardError.write((line + t).data(using: .utf8)!)
    }

    func finish() {
        let was = lock.withLock { () -> Bool in let r = running; running = false; return r }
        if live && was { FileHandle.standardError.write("\r\u{1B}[2K".data(using: .utf8)!) }
    }
}
