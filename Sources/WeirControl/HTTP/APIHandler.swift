import Foundation
import OpenAPIRuntime
import WeirAPI

/// The server side of the REST contract: one method per operation of
/// `openapi.yaml`, generated as `APIProtocol`. Requests arrive decoded and
/// typed (a body or query that does not fit the document never gets here);
/// answers leave as the document's types, built by `Views`. The engine's
/// reports (restore previews, verifications, ledgers, state mappings) are
/// JSON from the drill hooks, converted here (`typed`): one that drifts from
/// the document fails loudly on its first answer, in the tests.
struct APIHandler: APIProtocol {
    let plane: JobLifecycle

    // MARK: Jobs, drafts, versions

    func listJobs(_ input: Operations.ListJobs.Input) async throws -> Operations.ListJobs.Output {
        .ok(.init(body: .json(try await plane.jobs())))
    }

    func createJob(_ input: Operations.CreateJob.Input) async throws -> Operations.CreateJob.Output {
        guard case .json(let body) = input.body else { throw APIHandler.notJSON }
        return .created(.init(body: .json(try await plane.createJob(name: body.name, spec: body.spec))))
    }

    func getJob(_ input: Operations.GetJob.Input) async throws -> Operations.GetJob.Output {
        .ok(.init(body: .json(try await plane.job(input.path.name))))
    }

    func deleteJob(_ input: Operations.DeleteJob.Input) async throws -> Operations.DeleteJob.Output {
        try await plane.deleteJob(input.path.name)
        return .noContent(.init())
    }

    func getDraft(_ input: Operations.GetDraft.Input) async throws -> Operations.GetDraft.Output {
        .ok(.init(body: .json(try await plane.draft(input.path.name))))
    }

    func putDraft(_ input: Operations.PutDraft.Input) async throws -> Operations.PutDraft.Output {
        guard case .json(let body) = input.body else { throw APIHandler.notJSON }
        return .ok(.init(body: .json(try await plane.putDraft(input.path.name, spec: body.spec))))
    }

    func listVersions(_ input: Operations.ListVersions.Input) async throws -> Operations.ListVersions.Output {
        .ok(.init(body: .json(try await plane.versions(input.path.name))))
    }

    func publish(_ input: Operations.Publish.Input) async throws -> Operations.Publish.Output {
        guard case .json(let body) = input.body else { throw APIHandler.notJSON }
        let run = body.run.map {
            PublishRunRequest(stopCurrent: $0.stopCurrent ?? false, snapshot: $0.snapshot ?? false,
                              restoreFromStop: $0.restoreFromStop ?? false, allowNonRestoredState: $0.allowNonRestoredState ?? false)
        }
        return .created(.init(body: .json(try await plane.publish(input.path.name, description: body.description, run: run))))
    }

    func diffVersions(_ input: Operations.DiffVersions.Input) async throws -> Operations.DiffVersions.Output {
        let q = input.query
        let from = q.from.flatMap { Int($0) }, to = Int(q.to)
        guard from != nil || q.from == nil || q.from == "latest", to != nil || q.to == "draft",
              (from ?? 1) >= 1, (to ?? 1) >= 1 else {
            throw APIError.invalidRequest("give the versions to compare: ?from=V1&to=V2 (from: a version or latest; to: a version or draft)")
        }
        return .ok(.init(body: .json(try typed(await plane.versionDiff(input.path.name, from: from, to: to)))))
    }

    // MARK: Runs and operations

    func runJob(_ input: Operations.RunJob.Input) async throws -> Operations.RunJob.Output {
        var version: Int?, snapshot: String?, allow = false
        if case .json(let body)? = input.body {
            version = try APIHandler.positive(body.version, "version")
            snapshot = body.snapshot
            allow = body.allowNonRestoredState ?? false
        }
        let job = input.path.name
        // A restore says what it will do: the preview travels with the accepted operation.
        let preview = await restorePreview(job, version: version, snapshot: snapshot, allow: allow)
        var op = try await plane.run(job, version: version, snapshot: snapshot, allowNonRestoredState: allow)
        op.restorePreview = try preview.map { .init(value1: try typed($0)) }
        return .accepted(.init(body: .json(op)))
    }

    func stopJob(_ input: Operations.StopJob.Input) async throws -> Operations.StopJob.Output {
        var snapshot = false
        if case .json(let body)? = input.body { snapshot = body.snapshot ?? false }
        return .accepted(.init(body: .json(try await plane.stop(input.path.name, snapshot: snapshot))))
    }

    func savepoint(_ input: Operations.Savepoint.Input) async throws -> Operations.Savepoint.Output {
        .accepted(.init(body: .json(try await plane.savepoint(input.path.name))))
    }

    func drill(_ input: Operations.Drill.Input) async throws -> Operations.Drill.Output {
        var version: Int?, snapshot: String?, shadow: String?
        if case .json(let body)? = input.body {
            version = try APIHandler.positive(body.version, "version")
            snapshot = body.snapshot
            shadow = body.shadowDatabase
        }
        if let shadow, shadow.isEmpty || shadow.count > 64 || !shadow.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) {
            throw APIError.invalidRequest("shadowDatabase must be a MySQL database name: 1 to 64 letters, digits and underscores")
        }
        return .accepted(.init(body: .json(try await plane.drill(input.path.name, version: version, snapshot: snapshot, shadowDatabase: shadow))))
    }

    func listRuns(_ input: Operations.ListRuns.Input) async throws -> Operations.ListRuns.Output {
        .ok(.init(body: .json(try await plane.runs(input.path.name))))
    }

    func exportJob(_ input: Operations.ExportJob.Input) async throws -> Operations.ExportJob.Output {
        let q = input.query
        return .ok(.init(body: .json(try await plane.exportScript(input.path.name, version: q.version, snapshot: q.snapshot))))
    }

    func getLive(_ input: Operations.GetLive.Input) async throws -> Operations.GetLive.Output {
        .ok(.init(body: .json(try await plane.liveView(input.path.name))))
    }

    func getGraph(_ input: Operations.GetGraph.Input) async throws -> Operations.GetGraph.Output {
        .ok(.init(body: .json(try await plane.graph(input.path.name, version: input.path.version))))
    }

    func listOperations(_ input: Operations.ListOperations.Input) async throws -> Operations.ListOperations.Output {
        .ok(.init(body: .json(try await plane.operations(input.path.name))))
    }

    func getOperation(_ input: Operations.GetOperation.Input) async throws -> Operations.GetOperation.Output {
        .ok(.init(body: .json(try await plane.operation(input.path.id))))
    }

    func getLogs(_ input: Operations.GetLogs.Input) async throws -> Operations.GetLogs.Output {
        let run = input.query.run.flatMap { $0.isEmpty ? nil : $0 }
        let offset = input.query.offset ?? 0
        guard offset >= 0 else { throw APIError.invalidRequest("offset must be a non-negative integer (bytes)") }
        let target = try await plane.logPath(input.path.name, run: run)
        let (text, next) = LogChunk.read(target.path, from: UInt64(offset))
        return .ok(.init(headers: .init(xNextOffset: Int(clamping: next), xRunId: target.run),
                         body: .plainText(HTTPBody(Masking.mask(text)))))
    }

    // MARK: Snapshots and restore drills

    func listSnapshots(_ input: Operations.ListSnapshots.Input) async throws -> Operations.ListSnapshots.Output {
        .ok(.init(body: .json(try await plane.snapshots(input.path.name))))
    }

    func previewRestore(_ input: Operations.PreviewRestore.Input) async throws -> Operations.PreviewRestore.Output {
        let hooks = try drillHooks()
        let job = input.path.name
        let spec = try await plane.versionSpec(job, try APIHandler.positive(input.query.version, "version")).spec
        let dir = try await plane.snapshotDirectory(job, input.path.id)
        let allow = input.query.allowNonRestoredState ?? false
        return .ok(.init(body: .json(try typed(try await offloaded { try hooks.preview(spec, dir, allow) }))))
    }

    func verifySnapshot(_ input: Operations.VerifySnapshot.Input) async throws -> Operations.VerifySnapshot.Output {
        let hooks = try drillHooks()
        let job = input.path.name
        let spec = try await plane.versionSpec(job, try APIHandler.positive(input.query.version, "version")).spec
        let dir = try await plane.snapshotDirectory(job, input.path.id)
        let stateDir = plane.stateDir(job)
        return .ok(.init(body: .json(try typed(try await offloaded { try hooks.verify(spec, dir, stateDir) }))))
    }

    func listTransactions(_ input: Operations.ListTransactions.Input) async throws -> Operations.ListTransactions.Output {
        let hooks = try drillHooks()
        let job = input.path.name
        let spec = try await plane.versionSpec(job, nil).spec
        let dir = plane.stateDir(job)
        return .ok(.init(body: .json(try typed(try await offloaded { try hooks.transactions(spec, dir) }))))
    }

    // MARK: Public pages

    func metrics(_ input: Operations.Metrics.Input) async throws -> Operations.Metrics.Output {
        .ok(.init(body: .plainText(HTTPBody(PrometheusText.render(try await plane.metricsSnapshot())))))
    }

    func console(_ input: Operations.Console.Input) async throws -> Operations.Console.Output {
        .ok(.init(body: .html(HTTPBody(Console.html))))
    }

    func favicon(_ input: Operations.Favicon.Input) async throws -> Operations.Favicon.Output {
        // Browsers ask for it whatever the page says: the console's mark, not a 404.
        .ok(.init(body: .imageSvgXml(HTTPBody(Console.icon))))
    }

    func healthz(_ input: Operations.Healthz.Input) async throws -> Operations.Healthz.Output {
        .ok(.init(body: .plainText(HTTPBody("ok\n"))))
    }

    func openapi(_ input: Operations.Openapi.Input) async throws -> Operations.Openapi.Output {
        .ok(.init(body: .json(try typed(OpenAPIDocument.json))))
    }

    func openapiYAML(_ input: Operations.OpenapiYAML.Input) async throws -> Operations.OpenapiYAML.Output {
        .ok(.init(body: .yaml(HTTPBody(WeirAPIDocument.yaml))))
    }

    // MARK: Helpers

    /// The preview of restoring `snapshot` into `version` (nil: no snapshot, no
    /// drills, or it cannot be worked out; the run itself then says what is wrong).
    private func restorePreview(_ job: String, version: Int?, snapshot: String?, allow: Bool) async -> JSONValue? {
        guard let snapshot, let hooks = plane.settings.drills,
              let spec = try? await plane.versionSpec(job, version).spec,
              let dir = try? await plane.snapshotDirectory(job, snapshot) else { return nil }
        return try? await offloaded { try hooks.preview(spec, dir, allow) }
    }

    private func drillHooks() throws -> DrillHooks {
        guard let hooks = plane.settings.drills else { throw APIError.internalError("this server offers no restore drills") }
        return hooks
    }

    private static let notJSON = APIError(415, "unsupported_media_type", "the request body must be application/json",
                                          suggestion: "send the body as JSON with Content-Type: application/json")

    /// A version number from a request: absent, or 1 and up.
    static func positive(_ value: Int?, _ name: String) throws -> Int? {
        guard let value else { return nil }
        guard value >= 1, value <= Int(Int32.max) else { throw APIError.invalidRequest("\(name) must be a positive integer") }
        return value
    }
}

/// An engine report as the document's type. A report that does
/// not decode as its schema is a bug of the server, reported as such; so is,
/// in debug builds (the tests), a field the schema does not know, which the
/// typed answer would silently drop.
func typed<T: Codable>(_ value: JSONValue) throws -> T {
    let result: T
    do {
        result = try JSONDecoder().decode(T.self, from: Data(value.text.utf8))
    } catch {
        throw APIError.internalError("the answer does not fit the API's \(T.self): \(error)")
    }
    #if DEBUG
    if let encoded = try? JSONEncoder().encode(result), let back = JSONValue.parse(encoded),
       let lost = undocumented(value, back, path: "") {
        throw APIError.internalError("the answer has a field the API's \(T.self) does not document: \(lost) (add it to openapi.yaml)")
    }
    #endif
    return result
}

/// The first non-null field of `view` that `typed` lost, as a path.
private func undocumented(_ view: JSONValue, _ typed: JSONValue, path: String) -> String? {
    switch (view, typed) {
    case (.object(let a), .object(let b)):
        for (k, v) in a.sorted(by: { $0.key < $1.key }) where !v.isNull {
            guard let w = b[k] else { return path + "." + k }
            if let lost = undocumented(v, w, path: path + "." + k) { return lost }
        }
    case (.array(let a), .array(let b)):
        for (i, (v, w)) in zip(a, b).enumerated() {
            if let lost = undocumented(v, w, path: path + "[\(i)]") { return lost }
        }
    default:
        break
    }
    return nil
}
