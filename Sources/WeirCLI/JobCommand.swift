import ArgumentParser
import Foundation
import WeirEngine

/// `weir job …`: manage jobs on a control-plane server (`weir server`) through
/// its REST API: drafts, numbered versions, runs from snapshots, stops with
/// snapshots, status with warnings, operations and logs.
struct JobCommand: ParsableCommand {
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
                      JobSavepoint.self, JobDrill.self, JobRuns.self, JobStatus.self, JobList.self, JobVersions.self, JobDiff.self,
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
private func snapshotOrder(_ a: [String: Any], _ b: [String: Any]) -> Bool {
    let ta = cell(a["createdAt"]), tb = cell(b["createdAt"])
    if ta != tb { return ta < tb }
    func num(_ s: [String: Any]) -> Int { Int(cell(s["id"]).split(separator: "-").last ?? "") ?? 0 }
    return num(a) < num(b)
}

/// What run/stop/savepoint (and publish --run) print: the operation, or with
/// --wait its outcome.
private func handleOperation(_ client: JobClient, _ reply: HTTPReply, wait: Bool, json: Bool) throws {
    let op = reply.object
    if !wait {
        if json { writeOut(reply.body); return }
        let job = cell(op["job"])
        print("\(cell(op["type"])) of \(job) requested: operation \(cell(op["id"])) is \(cell(op["status"]))")
        print("  follow it with `weir job status \(job)` or `weir job op \(cell(op["id"]))` (or pass --wait)")
        return
    }
    let final = try waitForOperation(client, op)
    try reportFinishedOperation(final.object, client: client, json: json, raw: final.body)
}

// MARK: - create / draft / publish

struct JobCreate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a job with a draft spec (nothing runs until a version is published and run).")

    @Argument(help: "The job name (letters, digits, - _ .).") var name: String
    @Option(name: .shortAndLong, help: ArgumentHelp("The job spec (YAML or JSON) to use as the first draft.", valueName: "job.yaml"))
    var file: String
    @OptionGroup var global: JobGlobalOptions

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let client = global.client()
            let r = try client.call("POST", "/api/v1/jobs", json: ["name": name, "spec": try readSpec(file)])
            if global.json { writeOut(r.body); return }
            print("created job \(name) (\(cell(r.object["status"] ?? "stopped")), draft saved, no version yet)")
            print("  next: weir job publish \(name) --description \"…\"")
        }
    }
}

struct JobDraft: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "draft",
        abstract: "Replace a job's draft with a spec file, or print the current draft (editing a draft never affects a running job).")

    @Argument(help: "The job name.") var name: String
    @Option(name: .shortAndLong, help: ArgumentHelp("The new draft spec (YAML or JSON). Without it, the current draft is printed.", valueName: "job.yaml"))
    var file: String?
    @OptionGroup var global: JobGlobalOptions

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let client = global.client()
            guard let file else {
                let r = try client.call("GET", jobPath(name, "/draft"))
                if global.json { writeOut(r.body); return }
                let spec = r.object["spec"]
                if let s = spec as? String {
                    print(s, terminator: s.hasSuffix("\n") ? "" : "\n")
                } else if let o = spec, !isNull(o),
                          let d = try? JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys]) {
                    writeOut(d)
                } else {
                    print("job \(name) has no draft")
                }
                return
            }
            let r = try client.call("PUT", jobPath(name, "/draft"), json: ["spec": try readSpec(file)])
            if global.json { writeOut(r.body); return }
            print("saved the draft of \(name) (a running version is not affected)")
            print("  next: weir job publish \(name) --description \"…\"")
        }
    }
}

struct JobPublish: ParsableCommand {
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

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let client = global.client()
            var body: [String: Any] = ["description": description]
            body["run"] = runIt
                ? ["stopCurrent": stopCurrent, "snapshot": snapshot, "restoreFromStop": restoreFromStop] as [String: Any]
                : NSNull()
            let r = try client.call("POST", jobPath(name, "/versions"), json: body)
            let o = r.object
            let version = (o["version"] as? [String: Any]) ?? [:]
            let op = o["operation"] as? [String: Any]
            if global.json && !(wait && op != nil) { writeOut(r.body); return }
            if !global.json {
                print("published \(name) version \(cell(version["version"]))")
                // Where the previous version's state goes: only what is not simply restored.
                let nodes = ((o["stateMapping"] as? [String: Any])?["nodes"] as? [[String: Any]]) ?? []
                for n in nodes where cell(n["outcome"]) != "restored" {
                    let detail = isNull(n["was"]) ? cell(n["reason"]) : "was \(cell(n["was"])), now \(cell(n["now"]))"
                    print("  state of \(cell(n["node"])) from the previous version: \(cell(n["outcome"])) (\(detail))")
                }
            }
            guard let op else { return }
            if !wait {
                print("\(cell(op["type"])) requested: operation \(cell(op["id"])) is \(cell(op["status"]))")
                print("  follow it with `weir job status \(name)` or `weir job op \(cell(op["id"]))` (or pass --wait)")
                return
            }
            let final = try waitForOperation(client, op)
            if global.json {
                // One document: the published version and the finished operation.
                let combined: [String: Any] = ["version": version, "operation": final.object]
                writeOut(try JSONSerialization.data(withJSONObject: combined, options: [.sortedKeys]))
                if cell(final.object["status"]) == "failed" {
                    let err = final.object["error"] as? [String: Any]
                    throw JobFailure(message: cell(err?["message"]), suggestion: err?["suggestion"] as? String)
                }
                return
            }
            try reportFinishedOperation(final.object, client: client, json: false, raw: final.body)
        }
    }
}

// MARK: - run / stop / savepoint

struct JobRun: ParsableCommand {
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

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let client = global.client()
            let body: [String: Any] = [
                "version": version.map { $0 as Any } ?? NSNull(),
                "snapshot": snapshot.map { $0 as Any } ?? NSNull(),
                "allowNonRestoredState": allowNonRestoredState,
            ]
            let r = try client.call("POST", jobPath(name, "/run"), json: body)
            // What the restore will do, as the server previewed it.
            if !global.json, let object = r.object["restorePreview"] as? [String: Any],
               let data = try? JSONSerialization.data(withJSONObject: object),
               let preview = try? JSONDecoder().decode(RestorePreview.self, from: data) {
                print(preview.text)
                print("")
            }
            try handleOperation(client, r, wait: wait, json: global.json)
        }
    }
}

struct JobStop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop the running version, optionally with a snapshot to restore later.")

    @Argument(help: "The job name.") var name: String
    @Flag(help: "Stop with a snapshot: sources stop at a barrier, sinks commit exactly up to it.") var snapshot = false
    @Flag(help: "Wait until the run is down (or the stop has failed), showing progress.") var wait = false
    @OptionGroup var global: JobGlobalOptions

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let client = global.client()
            let r = try client.call("POST", jobPath(name, "/stop"), json: ["snapshot": snapshot])
            try handleOperation(client, r, wait: wait, json: global.json)
        }
    }
}

struct JobSavepoint: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "savepoint", abstract: "Take a savepoint of the running job (it keeps running).")

    @Argument(help: "The job name.") var name: String
    @Flag(help: "Wait until the savepoint is taken (or has failed), showing progress.") var wait = false
    @OptionGroup var global: JobGlobalOptions

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let client = global.client()
            let r = try client.call("POST", jobPath(name, "/savepoint"))
            try handleOperation(client, r, wait: wait, json: global.json)
        }
    }
}

struct JobDrill: ParsableCommand {
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

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let client = global.client()
            var body: [String: Any] = [:]
            if let version { body["version"] = version }
            if let snapshot { body["snapshot"] = snapshot }
            if let shadowDatabase { body["shadowDatabase"] = shadowDatabase }
            let r = try client.call("POST", jobPath(name, "/drill"), json: body)
            try handleOperation(client, r, wait: wait, json: global.json)
        }
    }
}

struct JobRuns: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs", abstract: "List a job's runs: version, how each ended, the snapshot it restored, and its time to restore (predicted and measured).")

    @Argument(help: "The job name.") var name: String
    @OptionGroup var global: JobGlobalOptions

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let r = try global.client().call("GET", jobPath(name, "/runs"))
            if global.json { writeOut(r.body); return }
            let runs = r.array.reversed()  // oldest first
            if runs.isEmpty { print("\(name) has not run yet"); return }
            func ms(_ v: Any?) -> String { (v as? NSNumber).map { String(format: "%.0f ms", $0.doubleValue) } ?? "-" }
            var rows = [["RUN", "VERSION", "STARTED", "ENDED", "OUTCOME", "RESTORED FROM", "PREDICTED", "STATE LOADED", "FIRST RECORD"]]
            for run in runs {
                let restore = run["timeToRestore"] as? [String: Any]
                let predicted = restore?["predicted"] as? [String: Any], measured = restore?["measured"] as? [String: Any]
                rows.append([cell(run["id"]), cell(run["version"]), shortTime(run["startedAt"]), shortTime(run["endedAt"]),
                             cell(isNull(run["outcome"]) ? run["status"] : run["outcome"]), cell(run["restoredFrom"]),
                             ms(predicted?["firstRecordMs"]), ms(measured?["stateLoadedMs"]), ms(measured?["firstRecordMs"])])
            }
            alignedTable(rows, rightAligned: [1, 6, 7, 8]).forEach { print($0) }
        }
    }
}

// MARK: - status / list / versions / snapshots / ops

struct JobStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show a job's status, its run and its warning (with a suggested fix) if any.")

    @Argument(help: "The job name.") var name: String
    @OptionGroup var global: JobGlobalOptions

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let r = try global.client().call("GET", jobPath(name))
            if global.json { writeOut(r.body); return }
            let j = r.object
            var version = isNull(j["version"]) ? "-" : cell(j["version"])
            if !isNull(j["latestVersion"]) && cell(j["latestVersion"]) != cell(j["version"]) {
                version += " (latest published: \(cell(j["latestVersion"])))"
            } else if isNull(j["latestVersion"]) {
                version = "- (nothing published yet)"
            }
            var rows: [[String]] = [["job:", cell(j["name"])], ["status:", statusText(j)], ["version:", version]]
            if let run = j["run"] as? [String: Any] {
                var desc = "\(cell(run["id"])) of version \(cell(run["version"]))"
                if !isNull(run["pid"]) { desc += ", pid \(cell(run["pid"]))" }
                if !isNull(run["startedAt"]) { desc += ", started \(shortTime(run["startedAt"]))" }
                if !isNull(run["restoredFrom"]) { desc += ", restored from \(cell(run["restoredFrom"]))" }
                rows.append(["run:", desc])
            } else {
                rows.append(["run:", "-"])
            }
            rows.append(["created:", shortTime(j["createdAt"])])
            rows.append(["updated:", shortTime(j["updatedAt"])])
            var lines = alignedTable(rows)
            // The warning and its suggestion go right under the status line.
            lines.insert(contentsOf: warningLines(j, indent: "  "), at: 2)
            print(lines.joined(separator: "\n"))
        }
    }
}

struct JobList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the jobs with their status.")

    @OptionGroup var global: JobGlobalOptions

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let r = try global.client().call("GET", "/api/v1/jobs")
            if global.json { writeOut(r.body); return }
            let jobs = r.array.sorted { cell($0["name"]) < cell($1["name"]) }
            if jobs.isEmpty { print("no jobs (create one with `weir job create NAME --file job.yaml`)"); return }
            var rows = [["NAME", "STATUS", "VERSION", "LATEST", "RUN", "PID", "STARTED", "UPDATED"]]
            for j in jobs {
                let run = j["run"] as? [String: Any]
                rows.append([cell(j["name"]), statusText(j), cell(j["version"]), cell(j["latestVersion"]),
                             cell(run?["id"]), cell(run?["pid"]), shortTime(run?["startedAt"]), shortTime(j["updatedAt"])])
            }
            let lines = alignedTable(rows, rightAligned: [2, 3, 5])
            print(lines[0])
            for (i, j) in jobs.enumerated() {
                print(lines[i + 1])
                for l in warningLines(j, indent: "  ") { print(l) }
            }
        }
    }
}

struct JobVersions: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "versions", abstract: "List a job's published versions (* marks the version of its current run).")

    @Argument(help: "The job name.") var name: String
    @OptionGroup var global: JobGlobalOptions

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let client = global.client()
            let r = try client.call("GET", jobPath(name, "/versions"))
            if global.json { writeOut(r.body); return }
            let versions = r.array.sorted { (intValue($0["version"]) ?? 0) < (intValue($1["version"]) ?? 0) }
            if versions.isEmpty { print("\(name) has no versions yet (publish the draft with `weir job publish \(name) --description …`)"); return }
            let job = (try? client.call("GET", jobPath(name)).object) ?? [:]
            let current = job["run"] is [String: Any] ? cell(job["version"]) : nil
            var rows = [["", "VERSION", "CREATED", "DESCRIPTION"]]
            for v in versions {
                let mark = cell(v["version"]) == current ? "*" : ""
                rows.append([mark, cell(v["version"]), shortTime(v["createdAt"]),
                             cell(v["description"]).replacingOccurrences(of: "\n", with: " ")])
            }
            print(alignedTable(rows, rightAligned: [1]).joined(separator: "\n"))
        }
    }
}

struct JobDiff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show where each node's state goes between two versions: restored, new (starts empty), dropped (needs allowNonRestoredState) or incompatible (refused, with both layouts); exit 1 when a restore would be refused.")

    @Argument(help: "The job name.") var name: String
    @Argument(help: "The version a snapshot was taken by.") var from: Int
    @Argument(help: "The version that would restore it.") var to: Int
    @OptionGroup var global: JobGlobalOptions

    func run() throws {
        var refused = false
        try reportingJobFailures(json: global.json) {
            let r = try global.client().call("GET", jobPath(name, "/diff?from=\(from)&to=\(to)"))
            let mapping = r.object["mapping"] as? [String: Any] ?? [:]
            let nodes = mapping["nodes"] as? [[String: Any]] ?? []
            let regrouped = mapping["maxParallelismChange"] as? [String: Any]
            refused = regrouped != nil || nodes.contains { ["incompatible", "dropped"].contains(cell($0["outcome"])) }
            if global.json { writeOut(r.body); return }
            print("\(name): version \(from) → version \(to)")
            var rows = [["  NODE", "OUTCOME", "DETAIL"]]
            for n in nodes {
                let detail = isNull(n["was"]) ? (isNull(n["reason"]) ? "" : cell(n["reason"])) : "was \(cell(n["was"])), now \(cell(n["now"]))"
                rows.append(["  " + cell(n["node"]), cell(n["outcome"]), detail])
            }
            print(alignedTable(rows).joined(separator: "\n"))
            if let g = regrouped {
                print("  maxParallelism: \(cell(g["from"])) → \(cell(g["to"])): keyed state cannot be restored")
            }
            print(refused ? "a snapshot of version \(from) cannot be restored by version \(to) without dropping or refusing state"
                  : "a snapshot of version \(from) restores into version \(to)")
        }
        if refused { throw ExitCode(1) }
    }
}

struct JobSnapshots: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshots", abstract: "List a job's snapshots (checkpoints, savepoints, stop snapshots), oldest first.")

    @Argument(help: "The job name.") var name: String
    @OptionGroup var global: JobGlobalOptions

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let r = try global.client().call("GET", jobPath(name, "/snapshots"))
            if global.json { writeOut(r.body); return }
            let snaps = r.array.sorted(by: snapshotOrder)
            if snaps.isEmpty { print("\(name) has no snapshots"); return }
            var rows = [["ID", "KIND", "VERSION", "RUN", "CREATED", "SIZE", "OFFSETS"]]
            for s in snaps {
                let offsets = (s["offsets"] as? [String: Any]) ?? [:]
                let summary = offsets.keys.sorted().map { node -> String in
                    let splits = (offsets[node] as? [String: Any]) ?? [:]
                    let total = splits.values.compactMap { ($0 as? NSNumber)?.int64Value }.reduce(0, +)
                    return "\(node): \(total) in \(splits.count) partition\(splits.count == 1 ? "" : "s")"
                }.joined(separator: "; ")
                rows.append([cell(s["id"]), cell(s["kind"]), cell(s["version"]), cell(s["run"]),
                             shortTime(s["createdAt"]), sizeText(s["sizeBytes"]), summary.isEmpty ? "-" : summary])
            }
            print(alignedTable(rows, rightAligned: [2, 5]).joined(separator: "\n"))
        }
    }
}

struct JobOps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops", abstract: "List a job's operations (publish, run, stop, savepoint) with their results or errors.")

    @Argument(help: "The job name.") var name: String
    @OptionGroup var global: JobGlobalOptions

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let r = try global.client().call("GET", jobPath(name, "/operations"))
            if global.json { writeOut(r.body); return }
            // Oldest first, like the other listings (the newest ends next to the prompt).
            let ops = r.array.sorted { (cell($0["requestedAt"]), cell($0["id"])) < (cell($1["requestedAt"]), cell($1["id"])) }
            if ops.isEmpty { print("\(name) has no operations yet"); return }
            var rows = [["ID", "TYPE", "STATUS", "REQUESTED", "TOOK", "RESULT"]]
            var notes: [Int: String] = [:]
            for (i, o) in ops.enumerated() {
                var detail = "-"
                if let result = o["result"] as? [String: Any], !result.isEmpty {
                    detail = resultRows(result).map { "\($0.0)=\($0.1)" }.joined(separator: " ")
                }
                if let err = o["error"] as? [String: Any] {
                    detail = "✗ \(cell(err["message"]))".replacingOccurrences(of: "\n", with: " ")
                    if let s = err["suggestion"] as? String, !s.isEmpty { notes[i] = s }
                }
                let took = durationSeconds(o).map { String(format: "%.1fs", $0) } ?? "-"
                rows.append([cell(o["id"]), cell(o["type"]), cell(o["status"]), shortTime(o["requestedAt"]), took, detail])
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

struct JobOperation: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "op", abstract: "Show one operation (--wait: follow it until it has succeeded or failed).")

    @Argument(help: "The operation id.") var id: String
    @Flag(help: "Wait until the operation has finished, showing progress.") var wait = false
    @OptionGroup var global: JobGlobalOptions

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let client = global.client()
            var r = try client.call("GET", "/api/v1/operations/\(seg(id))")
            if wait { r = try waitForOperation(client, r.object) }
            let o = r.object
            let status = cell(o["status"])
            if status == "succeeded" || status == "failed" {
                try reportFinishedOperation(o, client: client, json: global.json, raw: r.body)
                return
            }
            if global.json { writeOut(r.body); return }
            print("operation \(cell(o["id"])) (\(cell(o["type"])) of \(cell(o["job"]))): \(status) since \(shortTime(o["requestedAt"]))")
        }
    }
}

// MARK: - logs / delete

struct JobLogs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Print a job's run logs (--follow: keep printing new lines until interrupted).")

    @Argument(help: "The job name.") var name: String
    @Flag(name: .shortAndLong, help: "Keep printing new log lines as they arrive (Ctrl-C ends).") var follow = false
    @Option(help: "Start at this byte offset of the log.") var offset: Int = 0
    @Option(name: .customLong("run"), help: "An earlier run's log (a run id from `weir job runs`), or a drill's (its operation id).")
    var runID: String?
    @OptionGroup var global: JobGlobalOptions

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let client = global.client()
            var offset = self.offset
            let which = runID.map { "&run=" + seg($0) } ?? ""
            while true {
                let r = try client.call("GET", jobPath(name, "/logs?offset=\(offset)\(which)"))
                if !r.body.isEmpty { FileHandle.standardOutput.write(r.body) }
                let next = r.headers["x-next-offset"].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                    ?? offset + r.body.count
                if !follow { return }
                if next == offset { Thread.sleep(forTimeInterval: 0.5) }
                offset = next
            }
        }
    }
}

struct JobDelete: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a job with its versions, snapshots and history (stop it first).")

    @Argument(help: "The job name.") var name: String
    @OptionGroup var global: JobGlobalOptions

    func run() throws {
        try reportingJobFailures(json: global.json) {
            let r = try global.client().call("DELETE", jobPath(name))
            if global.json { if !r.body.isEmpty { writeOut(r.body) }; return }
            print("deleted job \(name)")
        }
    }
}
