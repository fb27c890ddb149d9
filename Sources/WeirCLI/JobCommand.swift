import ArgumentParser
import Foundation
import WeirAPI
import WeirControl
import WeirEngine

/// `weir job …`: manage jobs on a control-plane server (`weir server`) through
/// its REST API: drafts, numbered versions, runs from snapshots, stops with
/// snapshots, status with warnings, operations and logs.
struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job",
        abstract: "Manage jobs on a weir server: create, draft, publish, run, stop, status, snapshots, logs.",
        discussion: """
        Every subcommand talks to the server named by --server (default $WEIR_SERVER, else \
        http://127.0.0.1:8080), sends $WEIR_TOKEN as a bearer token when set, prints readable \
        tables (or the server's JSON with --json), and exits 1 when the server refuses the request \
        (printing its error and suggestion) or 2 when no server answers.

        Lifecycle: `create` a job with a draft spec, `publish` the draft as a numbered version with \
        a description, `run` a version (optionally from a snapshot), `stop` it (optionally with a \
        snapshot). run/stop/savepoint return at once with an operation; --wait follows it to the end.
        """,
        subcommands: [JobCreate.self, JobDraft.self, JobPublish.self, JobRun.self, JobStop.self,
                      JobSavepoint.self, JobDrill.self, JobRuns.self, JobExport.self, JobStatus.self, JobList.self, JobVersions.self, JobDiff.self,
                      JobSnapshots.self, JobOps.self, JobOperation.self, JobLogs.self, JobDelete.self])
}

private func readSpec(_ path: String) throws -> String {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        throw JobFailure(message: "cannot read the job spec \(path): no such file", suggestion: nil)
    }
    if isDir.boolValue { throw JobFailure(message: "cannot read the job spec \(path): it is a directory", suggestion: nil) }
    do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
        throw JobFailure(message: "cannot read the job spec \(path): \(error.localizedDescription)", suggestion: nil)
    }
}

/// Orders snapshots oldest first: by time, then by the number in the id (`chk-12`).
private func snapshotOrder(_ a: Components.Schemas.Snapshot, _ b: Components.Schemas.Snapshot) -> Bool {
    if a.createdAt != b.createdAt { return a.createdAt < b.createdAt }
    func num(_ s: Components.Schemas.Snapshot) -> Int { Int(s.id.split(separator: "-").last ?? "") ?? 0 }
    return num(a) < num(b)
}

/// What run/stop/savepoint (and publish --run) print: the operation, or with
/// --wait its outcome.
private func handleOperation(_ api: JobAPI, _ op: Operation, raw: Data, wait: Bool, json: Bool) async throws {
    if !wait {
        if json { writeOut(raw); return }
        print("\(op._type.rawValue) of \(op.job) requested: operation \(op.id) is \(op.status.rawValue)")
        print("  follow it with `weir job status \(op.job)` or `weir job op \(op.id)` (or pass --wait)")
        return
    }
    let final = try await waitForOperation(api, op)
    try await reportFinishedOperation(final, api: api, json: json, raw: api.lastBody)
}

// MARK: - create / draft / publish

struct JobCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a job with a draft spec (nothing runs until a version is published and run).")

    @Argument(help: "The job name (letters, digits, - _ .).") var name: String
    @Option(name: .shortAndLong, help: ArgumentHelp("The job spec (YAML or JSON) to use as the first draft.", valueName: "job.yaml"))
    var file: String
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            let job = try await api.call { try await $0.createJob(body: .json(.init(name: name, spec: try readSpec(file)))).created.body.json }
            if global.json { writeOut(api.lastBody); return }
            print("created job \(name) (\(job.status.rawValue), draft saved, no version yet)")
            print("  next: weir job publish \(name) --description \"…\"")
        }
    }
}

struct JobDraft: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "draft",
        abstract: "Replace a job's draft with a spec file, or print the current draft (editing a draft never affects a running job).")

    @Argument(help: "The job name.") var name: String
    @Option(name: .shortAndLong, help: ArgumentHelp("The new draft spec (YAML or JSON). Without it, the current draft is printed.", valueName: "job.yaml"))
    var file: String?
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            guard let file else {
                let draft = try await api.call { try await $0.getDraft(path: .init(name: name)).ok.body.json }
                if global.json { writeOut(api.lastBody); return }
                print(draft.spec, terminator: draft.spec.hasSuffix("\n") ? "" : "\n")
                return
            }
            let spec = try readSpec(file)
            _ = try await api.call { try await $0.putDraft(path: .init(name: name), body: .json(.init(spec: spec))).ok.body.json }
            if global.json { writeOut(api.lastBody); return }
            print("saved the draft of \(name) (a running version is not affected)")
            print("  next: weir job publish \(name) --description \"…\"")
        }
    }
}

struct JobPublish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish the draft as the next numbered version (validated first); optionally run it at once.",
        discussion: """
        With --run the new version is started in the same request; --stop-current first stops the \
        running version (--snapshot: with a stop snapshot), and --restore-from-stop starts the new \
        version from that stop snapshot.
        """)

    @Argument(help: "The job name.") var name: String
    @Option(name: .shortAndLong, help: "What changed in this version (required).") var description: String
    @Flag(name: .customLong("run"), help: "Run the new version right after publishing it.") var runIt = false
    @Flag(help: "With --run: stop the running version first.") var stopCurrent = false
    @Flag(help: "With --stop-current: stop it with a snapshot.") var snapshot = false
    @Flag(help: "With --run: start the new version from the stop snapshot.") var restoreFromStop = false
    @Flag(help: "With --run: wait until the run is up (or has failed), showing progress.") var wait = false
    @OptionGroup var global: JobGlobalOptions

    func validate() throws {
        if !runIt && (stopCurrent || snapshot || restoreFromStop || wait) {
            throw ValidationError("--stop-current, --snapshot, --restore-from-stop and --wait go with --run")
        }
        if snapshot && !stopCurrent { throw ValidationError("--snapshot goes with --stop-current (it stops the current run with a snapshot)") }
    }

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            let run = runIt ? Components.Schemas.Publish.RunPayload(stopCurrent: stopCurrent, snapshot: snapshot, restoreFromStop: restoreFromStop) : nil
            let published = try await api.call {
                try await $0.publish(path: .init(name: name), body: .json(.init(description: description, run: run))).created.body.json
            }
            let raw = api.lastBody
            let op = published.operation?.value1
            if global.json && !(wait && op != nil) { writeOut(raw); return }
            if !global.json {
                print("published \(name) version \(published.version.version)")
                // Where the previous version's state goes: only what is not simply restored.
                for n in published.stateMapping?.value1.nodes ?? [] where n.outcome != .restored {
                    let detail = n.was == nil ? cell(n.reason) : "was \(cell(n.was)), now \(cell(n.now))"
                    print("  state of \(n.node) from the previous version: \(n.outcome.rawValue) (\(detail))")
                }
            }
            guard let op else { return }
            if !wait {
                print("\(op._type.rawValue) requested: operation \(op.id) is \(op.status.rawValue)")
                print("  follow it with `weir job status \(name)` or `weir job op \(op.id)` (or pass --wait)")
                return
            }
            let final = try await waitForOperation(api, op)
            if global.json {
                // One document: the published version and the finished operation.
                let combined: JSONValue = .object(["version": JSONValue.parse(raw)?["version"] ?? .null,
                                                   "operation": JSONValue.parse(api.lastBody) ?? .null])
                writeOut(Data(combined.text.utf8))
                if final.status == .failed {
                    throw JobFailure(message: final.error.map(\.message) ?? "operation \(final.id) failed", suggestion: final.error?.suggestion)
                }
                return
            }
            try await reportFinishedOperation(final, api: api, json: false, raw: api.lastBody)
        }
    }
}

// MARK: - run / stop / savepoint

struct JobRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a published version (default: the latest), optionally restoring a snapshot.",
        discussion: "Refused while the job is running or operating: stop it first (or use publish --run --stop-current).")

    @Argument(help: "The job name.") var name: String
    @Option(help: "The version to run (default: the latest).") var version: Int?
    @Option(help: ArgumentHelp("Restore from this snapshot: an id from `weir job snapshots`, or `latest`.", valueName: "id|latest"))
    var snapshot: String?
    @Flag(help: "When restoring, drop the state of nodes the version no longer has instead of refusing.")
    var allowNonRestoredState = false
    @Flag(help: "Wait until the run is up (or has failed), showing progress.") var wait = false
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            let op = try await api.call {
                try await $0.runJob(path: .init(name: name),
                                    body: .json(.init(version: version, snapshot: snapshot, allowNonRestoredState: allowNonRestoredState))).accepted.body.json
            }
            let raw = api.lastBody
            // What the restore will do, as the server previewed it.
            if !global.json, let object = JSONValue.parse(raw)?["restorePreview"], object.object != nil,
               let preview = try? JSONDecoder().decode(RestorePreview.self, from: Data(object.text.utf8)) {
                print(preview.text)
                print("")
            }
            try await handleOperation(api, op, raw: raw, wait: wait, json: global.json)
        }
    }
}

struct JobStop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop the running version, optionally with a snapshot to restore later.")

    @Argument(help: "The job name.") var name: String
    @Flag(help: "Stop with a snapshot: sources stop at a barrier, sinks commit exactly up to it.") var snapshot = false
    @Flag(help: "Wait until the run is down (or the stop has failed), showing progress.") var wait = false
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            let op = try await api.call { try await $0.stopJob(path: .init(name: name), body: .json(.init(snapshot: snapshot))).accepted.body.json }
            try await handleOperation(api, op, raw: api.lastBody, wait: wait, json: global.json)
        }
    }
}

struct JobSavepoint: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "savepoint", abstract: "Take a savepoint of the running job (it keeps running).")

    @Argument(help: "The job name.") var name: String
    @Flag(help: "Wait until the savepoint is taken (or has failed), showing progress.") var wait = false
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            let op = try await api.call { try await $0.savepoint(path: .init(name: name)).accepted.body.json }
            try await handleOperation(api, op, raw: api.lastBody, wait: wait, json: global.json)
        }
    }
}

struct JobDrill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Rehearse a restore on the server: stop the job with a snapshot (or take a stored one), restore it to a bounded point, replay from the start into a shadow database, compare the tables row by row.",
        discussion: """
        A running job is stopped with a snapshot and drilled from it; it stays stopped (run it again \
        from the latest snapshot). A stopped job is drilled from --snapshot (default: the latest). \
        The report stays in the job's operations (`weir job ops`) and shows in the console. Exit 1 \
        when the drill finds a difference or cannot finish.
        """)

    @Argument(help: "The job name.") var name: String
    @Option(help: "The version to restore into (default: the running version, else the latest).") var version: Int?
    @Option(help: ArgumentHelp("A stopped job's snapshot to drill from: an id, or `latest` (the default).", valueName: "id|latest"))
    var snapshot: String?
    @Option(help: "The shadow database (default: the sink's database + `_shadow`).") var shadowDatabase: String?
    @Flag(help: "Wait for the report, showing progress.") var wait = false
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            let op = try await api.call {
                try await $0.drill(path: .init(name: name),
                                   body: .json(.init(version: version, snapshot: snapshot, shadowDatabase: shadowDatabase))).accepted.body.json
            }
            try await handleOperation(api, op, raw: api.lastBody, wait: wait, json: global.json)
        }
    }
}

struct JobRuns: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs", abstract: "List a job's runs: version, how each ended, the snapshot it restored, and its time to restore (predicted and measured).")

    @Argument(help: "The job name.") var name: String
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            let runs = try await api.call { try await $0.listRuns(path: .init(name: name)).ok.body.json }.reversed()  // oldest first
            if global.json { writeOut(api.lastBody); return }
            if runs.isEmpty { print("\(name) has not run yet"); return }
            func ms(_ v: Double?) -> String { v.map { String(format: "%.0f ms", $0) } ?? "-" }
            var rows = [["RUN", "VERSION", "STARTED", "ENDED", "OUTCOME", "RESTORED FROM", "PREDICTED", "STATE LOADED", "FIRST RECORD"]]
            for run in runs {
                let predicted = run.timeToRestore?.predicted, measured = run.timeToRestore?.measured
                rows.append([run.id, String(run.version), shortTime(run.startedAt), shortTime(run.endedAt),
                             run.outcome ?? run.status.rawValue, cell(run.restoredFrom),
                             ms(predicted?.firstRecordMs), ms(measured?.stateLoadedMs), ms(measured?.firstRecordMs)])
            }
            alignedTable(rows, rightAligned: [1, 6, 7, 8]).forEach { print($0) }
        }
    }
}

/// `weir job export`: a published version as a Flink SQL script, through the server (secrets come back as ***).
struct JobExport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a published version to a Flink SQL script, optionally starting at a snapshot's offsets (passwords come back as ***).")

    @Argument(help: "The job name.") var name: String
    @Option(help: "The version (default: the latest).") var version: Int?
    @Option(help: "Start at this snapshot's offsets (an id, or 'latest').") var snapshot: String?
    @Option(help: "The target: flink-sql (the only one).") var target = "flink-sql"
    @Option(name: [.customShort("o"), .long], help: "Write the script to this file instead of stdout.") var output: String?
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        guard target == "flink-sql" else { throw ValidationError("--target must be flink-sql") }
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            let answer = try await api.call {
                try await $0.exportJob(path: .init(name: name), query: .init(target: .flinkSql, version: version, snapshot: snapshot)).ok.body.json
            }
            if global.json { writeOut(api.lastBody); return }
            if let output {
                try Data(answer.script.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
                printErr("[weir] wrote the Flink SQL script of \(name) v\(answer.version)" +
                         (answer.snapshot.map { " from snapshot \($0)" } ?? "") + " to \(output)")
            } else {
                print(answer.script, terminator: answer.script.hasSuffix("\n") ? "" : "\n")
            }
        }
    }
}

// MARK: - status / list / versions / snapshots / ops

struct JobStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show a job's status, its run and its warning (with a suggested fix) if any.")

    @Argument(help: "The job name.") var name: String
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            let j = try await api.call { try await $0.getJob(path: .init(name: name)).ok.body.json }
            if global.json { writeOut(api.lastBody); return }
            var version = cell(j.version)
            if let latest = j.latestVersion, latest != j.version {
                version += " (latest published: \(latest))"
            } else if j.latestVersion == nil {
                version = "- (nothing published yet)"
            }
            var rows: [[String]] = [["job:", j.name], ["status:", j.statusText], ["version:", version]]
            if let run = j.run?.value1 {
                var desc = "\(run.id) of version \(run.version), pid \(run.pid), started \(shortTime(run.startedAt))"
                if let from = run.restoredFrom { desc += ", restored from \(from)" }
                rows.append(["run:", desc])
            } else {
                rows.append(["run:", "-"])
            }
            rows.append(["created:", shortTime(j.createdAt)])
            rows.append(["updated:", shortTime(j.updatedAt)])
            var lines = alignedTable(rows)
            // The warning and its suggestion go right under the status line.
            lines.insert(contentsOf: j.warningLines(indent: "  "), at: 2)
            print(lines.joined(separator: "\n"))
        }
    }
}

struct JobList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the jobs with their status.")

    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            let jobs = try await api.call { try await $0.listJobs().ok.body.json }.sorted { $0.name < $1.name }
            if global.json { writeOut(api.lastBody); return }
            if jobs.isEmpty { print("no jobs (create one with `weir job create NAME --file job.yaml`)"); return }
            var rows = [["NAME", "STATUS", "VERSION", "LATEST", "RUN", "PID", "STARTED", "UPDATED"]]
            for j in jobs {
                let run = j.run?.value1
                rows.append([j.name, j.statusText, cell(j.version), cell(j.latestVersion),
                             cell(run?.id), cell(run?.pid), shortTime(run?.startedAt), shortTime(j.updatedAt)])
            }
            let lines = alignedTable(rows, rightAligned: [2, 3, 5])
            print(lines[0])
            for (i, j) in jobs.enumerated() {
                print(lines[i + 1])
                for l in j.warningLines(indent: "  ") { print(l) }
            }
        }
    }
}

struct JobVersions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "versions", abstract: "List a job's published versions (* marks the version of its current run).")

    @Argument(help: "The job name.") var name: String
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            let versions = try await api.call { try await $0.listVersions(path: .init(name: name)).ok.body.json }.sorted { $0.version < $1.version }
            if global.json { writeOut(api.lastBody); return }
            if versions.isEmpty { print("\(name) has no versions yet (publish the draft with `weir job publish \(name) --description …`)"); return }
            let job = try? await api.call { try await $0.getJob(path: .init(name: name)).ok.body.json }
            let current = job?.run != nil ? job?.version : nil
            var rows = [["", "VERSION", "CREATED", "DESCRIPTION"]]
            for v in versions {
                rows.append([v.version == current ? "*" : "", String(v.version), shortTime(v.createdAt),
                             v.description.replacingOccurrences(of: "\n", with: " ")])
            }
            print(alignedTable(rows, rightAligned: [1]).joined(separator: "\n"))
        }
    }
}

struct JobDiff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show where each node's state goes between two versions: restored, new (starts empty), dropped (needs allowNonRestoredState) or incompatible (refused, with both layouts); exit 1 when a restore would be refused.")

    @Argument(help: "The job name.") var name: String
    @Argument(help: "The version a snapshot was taken by.") var from: Int
    @Argument(help: "The version that would restore it.") var to: Int
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        var refused = false
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            let diff = try await api.call {
                try await $0.diffVersions(path: .init(name: name), query: .init(from: String(from), to: String(to))).ok.body.json
            }
            let nodes = diff.mapping.nodes
            let regrouped = diff.mapping.maxParallelismChange
            refused = regrouped != nil || nodes.contains { $0.outcome == .incompatible || $0.outcome == .dropped }
            if global.json { writeOut(api.lastBody); return }
            print("\(name): version \(from) → version \(to)")
            var rows = [["  NODE", "OUTCOME", "DETAIL"]]
            for n in nodes {
                let detail = n.was == nil ? (n.reason ?? "") : "was \(cell(n.was)), now \(cell(n.now))"
                rows.append(["  " + n.node, n.outcome.rawValue, detail])
            }
            print(alignedTable(rows).joined(separator: "\n"))
            if let g = regrouped {
                print("  maxParallelism: \(cell(g.from)) → \(cell(g.to)): keyed state cannot be restored")
            }
            print(refused ? "a snapshot of version \(from) cannot be restored by version \(to) without dropping or refusing state"
                  : "a snapshot of version \(from) restores into version \(to)")
        }
        if refused { throw ExitCode(1) }
    }
}

struct JobSnapshots: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshots", abstract: "List a job's snapshots (checkpoints, savepoints, stop snapshots), oldest first.")

    @Argument(help: "The job name.") var name: String
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            let snaps = try await api.call { try await $0.listSnapshots(path: .init(name: name)).ok.body.json }.sorted(by: snapshotOrder)
            if global.json { writeOut(api.lastBody); return }
            if snaps.isEmpty { print("\(name) has no snapshots"); return }
            var rows = [["ID", "KIND", "VERSION", "RUN", "CREATED", "SIZE", "OFFSETS"]]
            for s in snaps {
                let summary = offsetsSummary(jsonOf(s.offsets)?.object ?? [:], style: .table)
                rows.append([s.id, s.kind.rawValue, cell(s.version), cell(s.run),
                             shortTime(s.createdAt), byteCount(Int64(s.sizeBytes)), summary.isEmpty ? "-" : summary])
            }
            print(alignedTable(rows, rightAligned: [2, 5]).joined(separator: "\n"))
        }
    }
}

struct JobOps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops", abstract: "List a job's operations (publish, run, stop, savepoint) with their results or errors.")

    @Argument(help: "The job name.") var name: String
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            // Oldest first, like the other listings (the newest ends next to the prompt).
            let ops = try await api.call { try await $0.listOperations(path: .init(name: name)).ok.body.json }
                .sorted { ($0.requestedAt, $0.id) < ($1.requestedAt, $1.id) }
            if global.json { writeOut(api.lastBody); return }
            if ops.isEmpty { print("\(name) has no operations yet"); return }
            var rows = [["ID", "TYPE", "STATUS", "REQUESTED", "TOOK", "RESULT"]]
            var notes: [Int: String] = [:]
            for (i, o) in ops.enumerated() {
                var detail = "-"
                let result = resultRows(o.resultJSON)
                if !result.isEmpty { detail = result.map { "\($0.0)=\($0.1)" }.joined(separator: " ") }
                if let err = o.error {
                    detail = "✗ \(err.message)".replacingOccurrences(of: "\n", with: " ")
                    if let s = err.suggestion, !s.isEmpty { notes[i] = s }
                }
                let took = o.durationSeconds.map { String(format: "%.1fs", $0) } ?? "-"
                rows.append([o.id, o._type.rawValue, o.status.rawValue, shortTime(o.requestedAt), took, detail])
            }
            let lines = alignedTable(rows, rightAligned: [4])
            print(lines[0])
            for i in ops.indices {
                print(lines[i + 1])
                if let s = notes[i] { print("    suggestion: \(s)") }
            }
        }
    }
}

struct JobOperation: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "op", abstract: "Show one operation (--wait: follow it until it has succeeded or failed).")

    @Argument(help: "The operation id.") var id: String
    @Flag(help: "Wait until the operation has finished, showing progress.") var wait = false
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            var o = try await api.call { try await $0.getOperation(path: .init(id: id)).ok.body.json }
            if wait { o = try await waitForOperation(api, o) }
            if o.finished {
                try await reportFinishedOperation(o, api: api, json: global.json, raw: api.lastBody)
                return
            }
            if global.json { writeOut(api.lastBody); return }
            print("operation \(o.id) (\(o._type.rawValue) of \(o.job)): \(o.status.rawValue) since \(shortTime(o.requestedAt))")
        }
    }
}

// MARK: - logs / delete

struct JobLogs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Print a job's run logs (--follow: keep printing new lines until interrupted).")

    @Argument(help: "The job name.") var name: String
    @Flag(name: .shortAndLong, help: "Keep printing new log lines as they arrive (Ctrl-C ends).") var follow = false
    @Option(help: "Start at this byte offset of the log.") var offset: Int = 0
    @Option(name: .customLong("run"), help: "An earlier run's log (a run id from `weir job runs`), or a drill's (its operation id).")
    var runID: String?
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            var offset = self.offset
            while true {
                let chunk = try await api.call { try await $0.getLogs(path: .init(name: name), query: .init(run: runID, offset: offset)).ok }
                let text = try await Data(collecting: chunk.body.plainText, upTo: 64 << 20)
                if !text.isEmpty { FileHandle.standardOutput.write(text) }
                let next = chunk.headers.xNextOffset ?? offset + text.count
                if !follow { return }
                if next == offset { try await Task.sleep(for: .milliseconds(500)) }
                offset = next
            }
        }
    }
}

struct JobDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a job with its versions, snapshots and history (stop it first).")

    @Argument(help: "The job name.") var name: String
    @OptionGroup var global: JobGlobalOptions

    func run() async throws {
        try await reportingJobFailures(json: global.json) {
            let api = try global.api()
            _ = try await api.call { try await $0.deleteJob(path: .init(name: name)).noContent }
            if global.json { if !api.lastBody.isEmpty { writeOut(api.lastBody) }; return }
            print("deleted job \(name)")
        }
    }
}
