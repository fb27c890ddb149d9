import Foundation

/// The JSON shapes of the REST contract (Job, Version, Snapshot, Operation),
/// built from metadata rows. Every optional field is written as an explicit
/// `null`, and every spec or message goes through `Masking`.
enum Views {
    static func job(_ j: JobRow, status: JobStatus, version: Int?, latestVersion: Int?, live: RunRow?) -> JSONValue {
        .object([
            "name": .string(j.name),
            "status": .string(status.rawValue),
            "version": .optional(version),
            "latestVersion": .optional(latestVersion),
            "run": live.map(run) ?? .null,
            "warning": j.warning?.json ?? .null,
            "createdAt": .string(j.createdAt),
            "updatedAt": .string(j.updatedAt),
        ])
    }

    static func run(_ r: RunRow) -> JSONValue {
        .object(["id": .string(r.id), "version": .int(Int64(r.version)), "pid": .int(Int64(r.pid)),
                 "startedAt": .string(r.startedAt), "restoredFrom": .optional(r.restoredFrom)])
    }

    /// A run in the job's run history: how it ended and how long its restore took.
    static func runHistory(_ r: RunRow) -> JSONValue {
        .object(["id": .string(r.id), "version": .int(Int64(r.version)), "status": .string(r.status.rawValue),
                 "startedAt": .string(r.startedAt), "endedAt": .optional(r.endedAt), "restoredFrom": .optional(r.restoredFrom),
                 "outcome": .optional(r.outcome), "outcomeMessage": .optional(r.outcomeMessage.map(Masking.mask)),
                 "timeToRestore": r.timeToRestore ?? .null])
    }

    static func version(_ v: VersionRow) -> JSONValue {
        .object(["version": .int(Int64(v.number)), "description": .string(v.description),
                 "createdAt": .string(v.createdAt), "spec": .string(Masking.mask(v.spec))])
    }

    static func draft(_ j: JobRow) -> JSONValue {
        .object(["spec": .string(Masking.mask(j.draft)), "updatedAt": .string(j.draftUpdatedAt)])
    }

    static func snapshot(_ s: SnapshotRow) -> JSONValue {
        .object(["id": .string(s.id), "kind": .string(s.kind), "version": .optional(s.version), "run": .optional(s.run),
                 "createdAt": .string(s.createdAt), "sizeBytes": .int(s.sizeBytes), "offsets": s.offsets])
    }

    static func operation(_ o: OperationRow) -> JSONValue {
        .object(["id": .string(o.id), "job": .string(o.job), "type": .string(o.type.rawValue),
                 "status": .string(o.status.rawValue), "requestedAt": .string(o.requestedAt),
                 "finishedAt": .optional(o.finishedAt), "result": o.result ?? .null, "error": o.error?.json ?? .null])
    }
}
