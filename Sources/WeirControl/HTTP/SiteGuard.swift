import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The first thing every request meets, before any route: the cross-site
/// rules (`CrossSiteGuard`), the bearer token on `/api`, and the contract's
/// JSON error shape for what no route answers (unknown paths and methods).
/// Also writes one server log line per request that changes something.
struct SiteGuard: RouterMiddleware {
    typealias Context = BasicRequestContext

    let crossSite: CrossSiteGuard
    /// The bearer token every `/api` request must carry; nil when not required.
    let token: String?
    let log: @Sendable (String) -> Void

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let method = request.method, path = request.uri.path
        do {
            if let refusal = crossSite.refusal(host: request.head.authority, origin: request.headers[.origin],
                                               fetchSite: request.headers[HTTPField.Name("Sec-Fetch-Site")!],
                                               isAPI: path.hasPrefix("/api/")) {
                throw refusal
            }
            if path.hasPrefix("/api/") { try authorize(request) }
            let response = try await next(request, context)
            if method != .get && response.status.code < 300 { log("\(method.rawValue) \(path) → \(response.status.code)") }
            return response
        } catch let e as APIError {
            if e.status >= 500 || method != .get { log("\(method.rawValue) \(path) → \(e.status) \(e.code): \(e.message)") }
            return SiteGuard.errorResponse(e)
        } catch let e as HTTPError where e.status == .notFound {
            return SiteGuard.errorResponse(APIError.notFound("no such endpoint: \(method.rawValue) \(path)",
                                                             suggestion: "see /openapi.yaml for the endpoints and their methods"))
        } catch {
            log("\(method.rawValue) \(path) → 500: \(error)")
            return SiteGuard.errorResponse(APIError.internalError("\(error)"))
        }
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

    static func errorResponse(_ e: APIError) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: HTTPResponse.Status(code: e.status), headers: headers,
                        body: ResponseBody(byteBuffer: ByteBuffer(string: e.json.text + "\n")))
    }
}
