import Foundation
import GRDB

/// A job's row: its draft and its current warning.
struct JobRow: Sendable {
    var name: String
    var draft: String
    var createdAt: String
    var updatedAt: String
    var draftUpdatedAt: String
    var warning: JobWarning?
}

/// One immutable published version of a job.
struct VersionRow: Sendable {
    var job: String
    var number: Int
    var description: String
    var spec: String
    var createdAt: String
}

/// One run (one supervised `weir run` process) of a job version.
struct RunRow: Sendable {
    /// `starting`, `running`, `stopping` while the process lives; `ended` after.
    enum Status: String, Sendable { case starting, running, stopping, ended }

    var id: String
    var job: String
    var version: Int
    var pid: Int32
    var status: Status
    var startedAt: String
    var endedAt: String?
    var restoredFrom: String?
    var eventsPath: String
    var logPath: String
    /// How it ended: `finished`, `stopped`, `cancelled`, `failed`, `killed`, `exited`, `lost`.
    var outcome: String?
    var outcomeMessage: String?
    /// A restore's time to restore: `predicted` (from the run's restore
    /// preview) and `measured` (its startup times), each in milliseconds.
    var timeToRestore: JSONValue? = nil

    var isLive: Bool { status != .ended }
}

/// One entry of a job's operation log.
struct OperationRow: Sendable {
    var id: String
    var job: String
    var type: OperationType
    var status: OperationStatus
    var requestedAt: String
    var finishedAt: String?
    /// The request's parameters (so an operation in flight can be resumed after a server restart).
    var params: JSONValue
    /// Where a multi-step operation is, or nil (stored as the raw value).
    var phase: OperationPhase?
    /// The run the operation is acting on now.
    var run: String?
    var result: JSONValue?
    var error: OperationError?

    var inFlight: Bool { status == .pending || status == .running }
}

/// One snapshot recorded from a run's `snapshot` events.
struct SnapshotRow: Sendable {
    var job: String
    var id: String
    var version: Int?
    var run: String?
    var kind: String
    var checkpoint: Int64
    var createdAt: String
    var sizeBytes: Int64
    var offsets: JSONValue
}

/// The control plane's durable metadata: jobs, versions, runs, operations
/// and snapshots, in SQLite (`<home>/weir.db`) through GRDB.
///
/// It exists so that everything a user created or started survives a restart
/// of the server, and so that the server can reconcile what it recorded with
/// what is really running. Schema changes go through numbered migrations.
/// All methods are synchronous and thread-safe (one serialized queue).
final class MetadataStore: Sendable {
    let queue: DatabaseQueue

    init(path: String) throws {
        var config = Configuration()
        config.busyMode = .timeout(5)
        queue = try DatabaseQueue(path: path, configuration: config)
        try MetadataStore.migrator.migrate(queue)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE jobs (
                    name TEXT PRIMARY KEY NOT NULL,
                    draft TEXT NOT NULL,
                    createdAt TEXT NOT NULL,
                    updatedAt TEXT NOT NULL,
                    draftUpdatedAt TEXT NOT NULL,
                    warningCode TEXT,
                    warningMessage TEXT,
                    warningSuggestion TEXT
                );
                CREATE TABLE versions (
                    job TEXT NOT NULL,
                    number INTEGER NOT NULL,
                    description TEXT NOT NULL CHECK (length(description) > 0),
                    spec TEXT NOT NULL,
                    createdAt TEXT NOT NULL,
                    PRIMARY KEY (job, number)
                );
                CREATE TABLE runs (
                    id TEXT PRIMARY KEY NOT NULL,
                    job TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    pid INTEGER NOT NULL,
                    status TEXT NOT NULL,
                    startedAt TEXT NOT NULL,
                    endedAt TEXT,
                    restoredFrom TEXT,
                    eventsPath TEXT NOT NULL,
                    logPath TEXT NOT NULL,
                    outcome TEXT,
                    outcomeMessage TEXT
                );
                CREATE INDEX runs_job ON runs(job);
                CREATE TABLE operations (
                    id TEXT PRIMARY KEY NOT NULL,
                    job TEXT NOT NULL,
                    type TEXT NOT NULL,
                    status TEXT NOT NULL,
                    requestedAt TEXT NOT NULL,
                    finishedAt TEXT,
                    params TEXT NOT NULL DEFAULT '{}',
                    phase TEXT,
                    run TEXT,
                    result TEXT,
                    errorCode TEXT,
                    errorMessage TEXT,
                    errorSuggestion TEXT
                );
                CREATE INDEX operations_job ON operations(job);
                CREATE TABLE snapshots (
                    job TEXT NOT NULL,
                    id TEXT NOT NULL,
                    version INTEGER,
                    run TEXT,
                    kind TEXT NOT NULL,
                    checkpoint INTEGER NOT NULL,
                    createdAt TEXT NOT NULL,
                    sizeBytes INTEGER NOT NULL,
                    offsets TEXT NOT NULL,
                    PRIMARY KEY (job, id)
                );
                """)
        }
        m.registerMigration("v2: runs.timeToRestore") { db in
            try db.execute(sql: "ALTER TABLE runs ADD COLUMN timeToRestore TEXT")
        }
        return m
    }

    // MARK: Jobs

    func job(_ name: String) throws -> JobRow? {
        try queue.read { db in try Row.fetchOne(db, sql: "SELECT * FROM jobs WHERE name = ?", arguments: [name]).map(jobRow) }
    }

    func jobs() throws -> [JobRow] {
        try queue.read { db in try Row.fetchAll(db, sql: "SELECT * FROM jobs ORDER BY name").map(jobRow) }
    }

    func insertJob(_ j: JobRow) throws {
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO jobs (name, draft, createdAt, updatedAt, draftUpdatedAt) VALUES (?, ?, ?, ?, ?)
                """, arguments: [j.name, j.draft, j.createdAt, j.updatedAt, j.draftUpdatedAt])
        }
    }

    func updateDraft(_ name: String, draft: String, at: String) throws {
        try queue.write { db in
            try db.execute(sql: "UPDATE jobs SET draft = ?, draftUpdatedAt = ?, updatedAt = ? WHERE name = ?",
                           arguments: [draft, at, at, name])
        }
    }

    func setWarning(_ name: String, _ w: JobWarning?) throws {
        try queue.write { db in
            try db.execute(sql: """
                UPDATE jobs SET warningCode = ?, warningMessage = ?, warningSuggestion = ?, updatedAt = ? WHERE name = ?
                """, arguments: [w?.code, w?.message, w?.suggestion, Clock.now(), name])
        }
    }

    func touchJob(_ name: String) throws {
        try queue.write { db in try db.execute(sql: "UPDATE jobs SET updatedAt = ? WHERE name = ?", arguments: [Clock.now(), name]) }
    }

    /// Removes a job and everything recorded about it.
    func deleteJob(_ name: String) throws {
        try queue.write { db in
            for table in ["versions", "runs", "operations", "snapshots"] {
                try db.execute(sql: "DELETE FROM \(table) WHERE job = ?", arguments: [name])
            }
            try db.execute(sql: "DELETE FROM jobs WHERE name = ?", arguments: [name])
        }
    }

    private func jobRow(_ r: Row) -> JobRow {
        var w: JobWarning?
        if let m: String = r["warningMessage"] {
            w = JobWarning(code: r["warningCode"], message: m, suggestion: r["warningSuggestion"])
        }
        return JobRow(name: r["name"], draft: r["draft"], createdAt: r["createdAt"], updatedAt: r["updatedAt"],
                      draftUpdatedAt: r["draftUpdatedAt"], warning: w)
    }

    // MARK: Versions

    /// Inserts the next version (numbered max + 1) atomically and returns it.
    func insertVersion(job: String, description: String, spec: String) throws -> VersionRow {
        try queue.write { db in
            let n = (try Int.fetchOne(db, sql: "SELECT MAX(number) FROM versions WHERE job = ?", arguments: [job]) ?? 0) + 1
            let v = VersionRow(job: job, number: n, description: description, spec: spec, createdAt: Clock.now())
            try db.execute(sql: "INSERT INTO versions (job, number, description, spec, createdAt) VALUES (?, ?, ?, ?, ?)",
                           arguments: [v.job, v.number, v.description, v.spec, v.createdAt])
            try db.execute(sql: "UPDATE jobs SET updatedAt = ? WHERE name = ?", arguments: [v.createdAt, job])
            return v
        }
    }

    func versions(job: String) throws -> [VersionRow] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM versions WHERE job = ? ORDER BY number", arguments: [job]).map(versionRow)
        }
    }

    func version(job: String, number: Int) throws -> VersionRow? {
        try queue.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM versions WHERE job = ? AND number = ?", arguments: [job, number]).map(versionRow)
        }
    }

    func latestVersionNumber(job: String) throws -> Int? {
        try queue.read { db in try Int.fetchOne(db, sql: "SELECT MAX(number) FROM versions WHERE job = ?", arguments: [job]) }
    }

    private func versionRow(_ r: Row) -> VersionRow {
        VersionRow(job: r["job"], number: r["number"], description: r["description"], spec: r["spec"], createdAt: r["createdAt"])
    }

    // MARK: Runs

    func insertRun(_ run: RunRow) throws {
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO runs (id, job, version, pid, status, startedAt, endedAt, restoredFrom, eventsPath, logPath, outcome, outcomeMessage)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [run.id, run.job, run.version, run.pid, run.status.rawValue, run.startedAt, run.endedAt,
                                 run.restoredFrom, run.eventsPath, run.logPath, run.outcome, run.outcomeMessage])
        }
    }

    func updateRun(_ run: RunRow) throws {
        try queue.write { db in
            try db.execute(sql: """
                UPDATE runs SET pid = ?, status = ?, endedAt = ?, restoredFrom = ?, outcome = ?, outcomeMessage = ?, timeToRestore = ?
                WHERE id = ?
                """, arguments: [run.pid, run.status.rawValue, run.endedAt, run.restoredFrom, run.outcome, run.outcomeMessage,
                                 run.timeToRestore?.text, run.id])
        }
    }

    func run(_ id: String) throws -> RunRow? {
        try queue.read { db in try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE id = ?", arguments: [id]).map(runRow) }
    }

    /// The job's most recent run.
    func lastRun(job: String) throws -> RunRow? {
        try queue.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE job = ? ORDER BY rowid DESC LIMIT 1", arguments: [job]).map(runRow)
        }
    }

    /// The job's runs, newest first.
    func runs(job: String) throws -> [RunRow] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM runs WHERE job = ? ORDER BY rowid DESC", arguments: [job]).map(runRow)
        }
    }

    /// Runs recorded as live (their process was alive when last seen).
    func liveRuns() throws -> [RunRow] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM runs WHERE status != 'ended' ORDER BY rowid").map(runRow)
        }
    }

    private func runRow(_ r: Row) -> RunRow {
        RunRow(id: r["id"], job: r["job"], version: r["version"], pid: r["pid"],
               status: RunRow.Status(rawValue: r["status"]) ?? .ended, startedAt: r["startedAt"], endedAt: r["endedAt"],
               restoredFrom: r["restoredFrom"], eventsPath: r["eventsPath"], logPath: r["logPath"],
               outcome: r["outcome"], outcomeMessage: r["outcomeMessage"],
               timeToRestore: (r["timeToRestore"] as String?).flatMap { JSONValue.parse($0) })
    }

    // MARK: Operations

    func insertOperation(_ op: OperationRow) throws {
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO operations (id, job, type, status, requestedAt, finishedAt, params, phase, run, result,
                                        errorCode, errorMessage, errorSuggestion)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [op.id, op.job, op.type.rawValue, op.status.rawValue, op.requestedAt, op.finishedAt,
                                 op.params.text, op.phase?.rawValue, op.run, op.result?.text,
                                 op.error?.code, op.error?.message, op.error?.suggestion])
        }
    }

    func updateOperation(_ op: OperationRow) throws {
        try queue.write { db in
            try db.execute(sql: """
                UPDATE operations SET status = ?, finishedAt = ?, params = ?, phase = ?, run = ?, result = ?,
                                      errorCode = ?, errorMessage = ?, errorSuggestion = ? WHERE id = ?
                """, arguments: [op.status.rawValue, op.finishedAt, op.params.text, op.phase?.rawValue, op.run, op.result?.text,
                                 op.error?.code, op.error?.message, op.error?.suggestion, op.id])
        }
    }

    func operation(_ id: String) throws -> OperationRow? {
        try queue.read { db in try Row.fetchOne(db, sql: "SELECT * FROM operations WHERE id = ?", arguments: [id]).map(operationRow) }
    }

    /// The job's operations, newest first.
    func operations(job: String) throws -> [OperationRow] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM operations WHERE job = ? ORDER BY rowid DESC", arguments: [job]).map(operationRow)
        }
    }

    func inFlightOperations() throws -> [OperationRow] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM operations WHERE status IN ('pending', 'running') ORDER BY rowid")
                .map(operationRow)
        }
    }

    /// Counts by type and status, for the metrics endpoint.
    func operationCounts() throws -> [(type: String, status: String, count: Int)] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT type, status, COUNT(*) AS n FROM operations GROUP BY type, status")
                .map { (type: $0["type"], status: $0["status"], count: $0["n"]) }
        }
    }

    private func operationRow(_ r: Row) -> OperationRow {
        var error: OperationError?
        if let code: String = r["errorCode"] {
            error = OperationError(code: code, message: r["errorMessage"] ?? "", suggestion: r["errorSuggestion"])
        }
        let result: String? = r["result"]
        return OperationRow(id: r["id"], job: r["job"], type: OperationType(rawValue: r["type"]) ?? .run,
                            status: OperationStatus(rawValue: r["status"]) ?? .failed,
                            requestedAt: r["requestedAt"], finishedAt: r["finishedAt"],
                            params: JSONValue.parse(r["params"] as String) ?? .object([:]),
                            phase: (r["phase"] as String?).flatMap(OperationPhase.init(rawValue:)), run: r["run"], result: result.flatMap { JSONValue.parse($0) }, error: error)
    }

    // MARK: Snapshots

    /// Records a snapshot (a snapshot id is recorded once; later events for it are ignored).
    func insertSnapshot(_ s: SnapshotRow) throws {
        try queue.write { db in
            try db.execute(sql: """
                INSERT OR IGNORE INTO snapshots (job, id, version, run, kind, checkpoint, createdAt, sizeBytes, offsets)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [s.job, s.id, s.version, s.run, s.kind, s.checkpoint, s.createdAt, s.sizeBytes, s.offsets.text])
        }
    }

    /// The job's recorded snapshots, newest first.
    func snapshots(job: String) throws -> [SnapshotRow] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM snapshots WHERE job = ? ORDER BY checkpoint DESC, createdAt DESC",
                             arguments: [job]).map { r in
                SnapshotRow(job: r["job"], id: r["id"], version: r["version"], run: r["run"], kind: r["kind"],
                            checkpoint: r["checkpoint"], createdAt: r["createdAt"], sizeBytes: r["sizeBytes"],
                            offsets: JSONValue.parse(r["offsets"] as String) ?? .object([:]))
            }
        }
    }

    func deleteSnapshots(job: String, ids: [String]) throws {
        guard !ids.isEmpty else { return }
        try queue.write { db in
            for id in ids { try db.execute(sql: "DELETE FROM snapshots WHERE job = ? AND id = ?", arguments: [job, id]) }
        }
    }
}
