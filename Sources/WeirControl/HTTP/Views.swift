import Foundation
import WeirAPI

/// The REST contract's shapes (Job, Version, Snapshot, Operation, …) built
/// from metadata rows, as the types generated from `openapi.yaml`: a field
/// the document changes is a compile error here. Specs and messages go
/// through `Masking` (every answer is masked once more on its way out).
enum Views {
    typealias Schemas = Components.Schemas

    static func job(_ j: JobRow, status: JobStatus, version: Int?, latestVersion: Int?, live: RunRow?) throws -> Schemas.Job {
        Schemas.Job(name: j.name, status: try enumValue(status.rawValue), version: version, latestVersion: latestVersion,
                    run: live.map { .init(value1: run($0)) },
                    warning: j.warning.map { .init(value1: .init(code: $0.code, message: Masking.mask($0.message),
                                                                 suggestion: $0.suggestion.map(Masking.mask))) },
                    createdAt: j.createdAt, updatedAt: j.updatedAt)
    }

    static func run(_ r: RunRow) -> Schemas.LiveRun {
        .init(id: r.id, version: r.version, pid: Int(r.pid), startedAt: r.startedAt, restoredFrom: r.restoredFrom)
    }

    /// A run in the job's run history: how it ended and how long its restore took.
    static func runHistory(_ r: RunRow) throws -> Schemas.RunHistoryEntry {
        .init(id: r.id, version: r.version, status: try enumValue(r.status.rawValue), startedAt: r.startedAt,
              endedAt: r.endedAt, restoredFrom: r.restoredFrom, outcome: r.outcome,
              outcomeMessage: r.outcomeMessage.map(Masking.mask), timeToRestore: try r.timeToRestore.map(converted))
    }

    static func version(_ v: VersionRow) -> Schemas.Version {
        .init(version: v.number, description: v.description, createdAt: v.createdAt, spec: Masking.mask(v.spec))
    }

    static func draft(_ j: JobRow) -> Schemas.Draft {
        .init(spec: Masking.mask(j.draft), updatedAt: j.draftUpdatedAt)
    }

    static func snapshot(_ s: SnapshotRow) throws -> Schemas.Snapshot {
        .init(id: s.id, kind: try enumValue(s.kind), version: s.version, run: s.run, createdAt: s.createdAt,
              sizeBytes: Int(s.sizeBytes), offsets: try converted(s.offsets))
    }

    static func operation(_ o: OperationRow) throws -> Schemas.Operation {
        .init(id: o.id, job: o.job, _type: try enumValue(o._typeRaw), status: try enumValue(o.status.rawValue),
              requestedAt: o.requestedAt, finishedAt: o.finishedAt, result: try o.result.map { try converted(Masking.mask($0)) },
              error: o.error.map { .init(code: $0.code, message: Masking.mask($0.message), suggestion: $0.suggestion.map(Masking.mask)) })
    }

    /// A stored enum value as the document's enum; one the document does not
    /// list is a bug of the server, not of the request.
    static func enumValue<E: RawRepresentable>(_ raw: String) throws -> E where E.RawValue == String {
        guard let v = E(rawValue: raw) else { throw APIError.internalError("'\(raw)' is not a value the API's \(E.self) documents") }
        return v
    }
}

private extension OperationRow {
    var _typeRaw: String { type.rawValue }
}

/// A free-form JSON part (an operation's result, a snapshot's offsets, an
/// engine report) as the document's type for it.
func converted<T: Decodable>(_ value: JSONValue) throws -> T {
    do {
        return try JSONDecoder().decode(T.self, from: Data(value.text.utf8))
    } catch {
        throw APIError.internalError("the answer does not fit the API's \(T.self): \(error)")
    }
}
