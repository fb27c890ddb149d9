import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The REST API (`/api/v1/…`), `/metrics`, `/healthz`, `/openapi.json` and the
/// web console at `/`.
///
/// A single responder with explicit routing, rather than Hummingbird's
/// router, so that every answer — including unknown paths, wrong methods,
/// malformed bodies and unexpected errors — has the contract's JSON error
/// shape, and so the bearer-token check covers exactly the `/api` paths.
struct APIResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    let plane: JobLifecycle
    /// The bearer token every `/api` request must carry; nil when not required.
    let token: String?
    /// Refuses requests from other sites (foreign Origin, Host not the listener's).
    let crossSite: CrossSiteGuard
    let log: @Sendable (String) -> Void

    /// Largest request body accepted (specs are small).
    static let maxBody = 4 << 20
    /// Largest log chunk returned per request.
    static let maxLogChunk = 1 << 20

    func respond(to request: Request, context: Context) async throws -> Response {
        let method = request.method
        let path = request.uri.path
        do {
            if let refusal = crossSite.refusal(host: request.head.authority, origin: request.headers[.origin],
                                               fetchSite: request.headers[HTTPField.Name("Sec-Fetch-Site")!],
                                               isAPI: path.hasPrefix("/api/")) {
                throw refusal
            }
            let response = try await route(request, method: method, path: path)
            if method != .get && response.status.code < 300 {
                log("\(method.rawValue) \(path) → \(response.status.code)")
            }
            return response
        } catch let e as APIError {
            if e.status >= 500 || method != .get { log("\(method.rawValue) \(path) → \(e.status) \(e.code): \(e.message)") }
            return APIResponder.json(e.status, e.json)
        } catch {
            log("\(method.rawValue) \(path) → 500: \(error)")
            return APIResponder.json(500, APIError.internalError("\(error)").json)
        }
    }

    private func route(_ request: Request, method: HTTPRequest.Method, path: String) async throws -> Response {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
            .map { String($0).removingPercentEncoding ?? String($0) }
        switch parts {
        case [], ["console"]:
            try allow(method, .get)
            return APIResponder.text(200, Console.html, contentType: "text/html; charset=utf-8")
        case ["favicon.ico"]:
            // Browsers ask for it whatever the page says: the console's mark, not a 404.
            try allow(method, .get)
            return APIResponder.text(200, Console.icon, contentType: "image/svg+xml")
        case ["healthz"]:
            try allow(method, .get)
            return APIResponder.text(200, "ok\n")
        case ["metrics"]:
            try allow(method, .get)
            let m = try await plane.metricsSnapshot()
            return APIResponder.text(200, PrometheusText.render(m), contentType: "text/plain; version=0.0.4; charset=utf-8")
        case ["openapi.json"]:
            try allow(method, .get)
            return APIResponder.text(200, OpenAPI.document, contentType: "application/json")
        default:
            break
        }
        guard parts.count >= 2, parts[0] == "api", parts[1] == "v1" else {
            throw APIError.notFound("no such endpoint: \(path)", suggestion: "see /openapi.json")
        }
        try authorize(request)
        let rest = Array(parts.dropFirst(2))
        switch rest.count {
        case 1 where rest[0] == "jobs":
            switch method {
            case .get:
                return APIResponder.json(200, try await plane.jobs())
            case .post:
                let body = try await APIResponder.body(request)
                let name = try body.string("name", required: true)!
                let spec = try body.string("spec", required: true)!
                return APIResponder.json(201, try await plane.createJob(name: name, spec: spec))
            default:
                throw methodNotAllowed(method, [.get, .post])
            }
        case 2 where rest[0] == "operations":
            try allow(method, .get)
            return APIResponder.json(200, try await plane.operation(rest[1]))
        case 2 where rest[0] == "jobs":
            let name = rest[1]
            switch method {
            case .get:
                return APIResponder.json(200, try await plane.job(name))
            case .delete:
                try await plane.deleteJob(name)
                return Response(status: .noContent)
            default:
                throw methodNotAllowed(method, [.get, .delete])
            }
        case 3 where rest[0] == "jobs":
            return try await jobResource(request, method: method, job: rest[1], resource: rest[2])
        case 5 where rest[0] == "jobs" && rest[2] == "snapshots" && (rest[4] == "diff" || rest[4] == "verify"):
            try allow(method, .get)
            let hooks = try drillHooks()
            let q = request.uri.queryParameters
            let version = try q["version"].map { v -> Int in
                guard let n = Int(v), n >= 1 else { throw APIError.invalidRequest("version must be a positive integer") }
                return n
            }
            let spec = try await plane.versionSpec(rest[1], version).spec
            let dir = try await plane.snapshotDirectory(rest[1], rest[3])
            let stateDir = plane.stateDir(rest[1])
            let allow = q["allowNonRestoredState"] == "true"
            let report = rest[4] == "diff"
                ? try await offloaded { try hooks.preview(spec, dir, allow) }
                : try await offloaded { try hooks.verify(spec, dir, stateDir) }
            return APIResponder.json(200, report)
        default:
            throw APIError.notFound("no such endpoint: \(path)", suggestion: "see /openapi.json")
        }
    }

    private func jobResource(_ request: Request, method: HTTPRequest.Method, job: String, resource: String) async throws -> Response {
        switch resource {
        case "draft":
            switch method {
            case .get:
                return APIResponder.json(200, try await plane.draft(job))
            case .put:
                let body = try await APIResponder.body(request)
                let spec = try body.string("spec", required: true)!
                return APIResponder.json(200, try await plane.putDraft(job, spec: spec))
            default:
                throw methodNotAllowed(method, [.get, .put])
            }
        case "versions":
            switch method {
            case .get:
                return APIResponder.json(200, try await plane.versions(job))
            case .post:
                let body = try await APIResponder.body(request)
                let description = try body.string("description")
                var run: PublishRunRequest?
                if let r = body.value["run"], !r.isNull {
                    guard r.object != nil else { throw APIError.invalidRequest("'run' must be an object or null") }
                    let o = Body(value: r, prefix: "run.")
                    run = PublishRunRequest(stopCurrent: try o.bool("stopCurrent") ?? false, snapshot: try o.bool("snapshot") ?? false,
                                            restoreFromStop: try o.bool("restoreFromStop") ?? false,
                                            allowNonRestoredState: try o.bool("allowNonRestoredState") ?? false)
                }
                return APIResponder.json(201, try await plane.publish(job, description: description, run: run))
            default:
                throw methodNotAllowed(method, [.get, .post])
            }
        case "run":
            try allow(method, .post)
            let body = try await APIResponder.body(request)
            let version = try body.int("version")
            let snapshot = try body.string("snapshot")
            let allow = try body.bool("allowNonRestoredState") ?? false
            // A restore says what it will do: the preview travels with the accepted operation.
            let preview = await restorePreview(job, version: version, snapshot: snapshot, allow: allow)
            var op = try await plane.run(job, version: version, snapshot: snapshot, allowNonRestoredState: allow)
            if case .object(var o) = op, let preview { o["restorePreview"] = preview; op = .object(o) }
            return APIResponder.json(202, op)
        case "stop":
            try allow(method, .post)
            let body = try await APIResponder.body(request)
            return APIResponder.json(202, try await plane.stop(job, snapshot: try body.bool("snapshot") ?? false))
        case "savepoint":
            try allow(method, .post)
            _ = try await APIResponder.body(request)
            return APIResponder.json(202, try await plane.savepoint(job))
        case "drill":
            try allow(method, .post)
            let body = try await APIResponder.body(request)
            let version = try body.int("version")
            if let version, version < 1 { throw APIError.invalidRequest("version must be a positive integer") }
            let shadow = try body.string("shadowDatabase")
            if let shadow, shadow.isEmpty || shadow.count > 64 || !shadow.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) {
                throw APIError.invalidRequest("shadowDatabase must be a MySQL database name: 1 to 64 letters, digits and underscores")
            }
            return APIResponder.json(202, try await plane.drill(job, version: version, snapshot: try body.string("snapshot"), shadowDatabase: shadow))
        case "runs":
            try allow(method, .get)
            return APIResponder.json(200, try await plane.runs(job))
        case "snapshots":
            try allow(method, .get)
            return APIResponder.json(200, try await plane.snapshots(job))
        case "diff":
            try allow(method, .get)
            let q = request.uri.queryParameters
            let from = q["from"].flatMap { Int($0) }, to = q["to"].flatMap { Int($0) }
            guard from != nil || q["from"] == nil || q["from"] == "latest", to != nil || q["to"] == "draft" else {
                throw APIError.invalidRequest("give the versions to compare: ?from=V1&to=V2 (from: a version or latest; to: a version or draft)")
            }
            return APIResponder.json(200, try await plane.versionDiff(job, from: from, to: to))
        case "transactions":
            try allow(method, .get)
            let hooks = try drillHooks()
            let spec = try await plane.versionSpec(job, nil).spec
            let dir = plane.stateDir(job)
            return APIResponder.json(200, try await offloaded { try hooks.transactions(spec, dir) })
        case "operations":
            try allow(method, .get)
            return APIResponder.json(200, try await plane.operations(job))
        case "logs":
            try allow(method, .get)
            let q = request.uri.queryParameters
            let run = q["run"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
            var offset: UInt64 = 0
            if let o = q["offset"], !o.isEmpty {
                guard let v = UInt64(o) else { throw APIError.invalidRequest("offset must be a non-negative integer (bytes)") }
                offset = v
            }
            let target = try await plane.logPath(job, run: run)
            let (text, next) = APIResponder.readLog(target.path, from: offset)
            var r = APIResponder.text(200, Masking.mask(text))
            r.headers[HTTPField.Name("X-Next-Offset")!] = String(next)
            r.headers[HTTPField.Name("X-Run-Id")!] = target.run
            return r
        default:
            throw APIError.notFound("no such endpoint: /api/v1/jobs/\(job)/\(resource)", suggestion: "see /openapi.json")
        }
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

    private func authorize(_ request: Request) throws {
        guard let token else { return }
        let given = request.headers[.authorization] ?? ""
        let expected = "Bearer " + token
        // Constant-time comparison.
        let a = Array(given.utf8), b = Array(expected.utf8)
        var diff = a.count ^ b.count
        for i in 0..<min(a.count, b.count) { diff |= Int(a[i] ^ b[i]) }
        if diff != 0 {
            throw APIError(401, "unauthorized", given.isEmpty ? "this server requires a bearer token" : "the bearer token is not valid",
                           suggestion: "send Authorization: Bearer <token> (for weir job: set WEIR_TOKEN to the contents of the server's --token-file)")
        }
    }

    private func allow(_ method: HTTPRequest.Method, _ allowed: HTTPRequest.Method) throws {
        if method != allowed { throw methodNotAllowed(method, [allowed]) }
    }

    private func methodNotAllowed(_ method: HTTPRequest.Method, _ allowed: [HTTPRequest.Method]) -> APIError {
        APIError(405, "invalid_request", "method \(method.rawValue) is not allowed here",
                 suggestion: "use " + allowed.map(\.rawValue).joined(separator: " or "))
    }

    static func json(_ status: Int, _ value: JSONValue) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        // Every string of every answer is masked here, whatever view built it.
        return Response(status: HTTPResponse.Status(code: status), headers: headers,
                        body: ResponseBody(byteBuffer: ByteBuffer(string: Masking.mask(value).text + "\n")))
    }

    static func text(_ status: Int, _ text: String, contentType: String = "text/plain; charset=utf-8") -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        return Response(status: HTTPResponse.Status(code: status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    /// The request's JSON body (an empty body counts as `{}`).
    static func body(_ request: Request) async throws -> Body {
        var request = request
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: maxBody) } catch {
            throw APIError(413, "invalid_request", "the request body is larger than \(maxBody) bytes")
        }
        let data = Data(buffer.readableBytesView)
        // Only JSON changes anything: a cross-site form or beacon (text/plain, form-urlencoded,
        // multipart) is refused before its body is read. An empty body may come without a type.
        let type = request.headers[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        let blank = data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 })
        if type != "application/json" && (type != nil || !blank) {
            throw APIError(415, "unsupported_media_type",
                           "a request that changes something must be application/json (got \(type.map { "'\($0)'" } ?? "no Content-Type"))",
                           suggestion: "send the body as JSON with Content-Type: application/json")
        }
        if blank { return Body(value: .object([:])) }
        guard let v = JSONValue.parse(data) else {
            throw APIError(400, "invalid_request", "the request body is not valid JSON", suggestion: "send a JSON object")
        }
        guard v.object != nil else { throw APIError(400, "invalid_request", "the request body must be a JSON object") }
        return Body(value: v)
    }

    /// Up to `maxLogChunk` bytes of a log file from `offset`, cut after the
    /// last complete line when the chunk is full; returns the next offset.
    static func readLog(_ path: String, from offset: UInt64) -> (String, UInt64) {
        guard let h = FileHandle(forReadingAtPath: path) else { return ("", offset) }
        defer { try? h.close() }
        let size = (try? h.seekToEnd()) ?? 0
        guard offset < size else { return ("", min(offset, size)) }
        do { try h.seek(toOffset: offset) } catch { return ("", offset) }
        var data = (try? h.read(upToCount: maxLogChunk)) ?? Data()
        if data.count == maxLogChunk, let nl = data.lastIndex(of: 0x0A), nl > data.startIndex {
            data = data[data.startIndex...nl]
        }
        return (String(decoding: data, as: UTF8.self), offset + UInt64(data.count))
    }
}

/// Typed access to a JSON request body, with contract-style errors.
struct Body {
    let value: JSONValue
    var prefix = ""

    func string(_ key: String, required: Bool = false) throws -> String? {
        guard let v = value[key], !v.isNull else {
            if required { throw APIError.invalidRequest("'\(prefix)\(key)' is required") }
            return nil
        }
        guard let s = v.string else { throw APIError.invalidRequest("'\(prefix)\(key)' must be a string") }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value[key], !v.isNull else { return nil }
        guard let b = v.bool else { throw APIError.invalidRequest("'\(prefix)\(key)' must be true or false") }
        return b
    }

    func int(_ key: String) throws -> Int? {
        guard let v = value[key], !v.isNull else { return nil }
        guard let i = v.int, i >= 1, i <= Int64(Int32.max) else {
            throw APIError.invalidRequest("'\(prefix)\(key)' must be a positive integer")
        }
        return Int(i)
    }
}
