import Foundation
import HTTPTypes
import OpenAPIRuntime

/// Wraps every generated operation: what the document alone cannot say.
///
/// - Request bodies: at most `maxBody` bytes (413); anything with a body must
///   be `application/json` (415: a cross-site form or beacon is refused
///   before it is read); an empty body counts as none; it must be a JSON
///   object (400).
/// - `Accept` is not negotiated: each operation has one media type.
/// - Errors, whether thrown by the lifecycle (`APIError`) or by the generated
///   decoding (a field of the wrong type, a number out of range: 422), leave
///   as the contract's `{"error": {code, message, suggestion}}`.
/// - Every string of every JSON answer goes through `Masking`.
/// - Answers keep the document's explicit `null`s: the generated encoders
///   leave out a required nullable field that is nil
///   (swift-openapi-generator issue 934); `OpenAPIDocument` puts them back.
struct ContractMiddleware: ServerMiddleware {
    /// Largest request body accepted (specs are small).
    static let maxBody = 4 << 20
    /// The server log: refusals of requests that change something, and internal errors.
    var log: @Sendable (String) -> Void = { _ in }

    func intercept(_ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
                   next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?))
        async throws -> (HTTPResponse, HTTPBody?) {
        let response: HTTPResponse, responseBody: HTTPBody?
        do {
            let checked = try await ContractMiddleware.checkedBody(request, body)
            // Each operation answers in one media type: an Accept that names
            // another (a client asking JSON of /logs) gets that one, not an error.
            var request = request
            request.headerFields[.accept] = nil
            (response, responseBody) = try await next(request, checked, metadata)
        } catch {
            let e = ContractMiddleware.apiError(error)
            if e.status >= 500 || request.method != .get {
                log("\(request.method.rawValue) \(request.path ?? "") → \(e.status) \(e.code): \(e.message)")
            }
            return ContractMiddleware.error(e)
        }
        guard let responseBody, response.headerFields[.contentType]?.hasPrefix("application/json") == true,
              let data = try? await Data(collecting: responseBody, upTo: 64 << 20), let value = JSONValue.parse(data) else {
            return (response, responseBody)
        }
        // Every string of every answer is masked here, whatever built it.
        let completed = OpenAPIDocument.withExplicitNulls(Masking.mask(value), operationID: operationID, status: response.status.code)
        let full = Data((completed.text + "\n").utf8)
        var answer = response
        answer.headerFields[.contentLength] = String(full.count)
        return (answer, HTTPBody(full))
    }

    /// The request's body as the generated code may read it (nil when empty).
    static func checkedBody(_ request: HTTPRequest, _ body: HTTPBody?) async throws -> HTTPBody? {
        guard let body, request.method != .get, request.method != .head else { return nil }
        let data: Data
        do { data = try await Data(collecting: body, upTo: maxBody) } catch {
            throw APIError(413, "invalid_request", "the request body is larger than \(maxBody) bytes")
        }
        let type = request.headerFields[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        let blank = data.allSatisfy { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        if type != "application/json" && (type != nil || !blank) {
            throw APIError(415, "unsupported_media_type",
                           "a request that changes something must be application/json (got \(type.map { "'\($0)'" } ?? "no Content-Type"))",
                           suggestion: "send the body as JSON with Content-Type: application/json")
        }
        if blank { return nil }
        guard let v = JSONValue.parse(data) else {
            throw APIError(400, "invalid_request", "the request body is not valid JSON", suggestion: "send a JSON object")
        }
        guard v.object != nil else { throw APIError(400, "invalid_request", "the request body must be a JSON object") }
        return HTTPBody(data)
    }

    /// What went wrong, as the contract names it.
    static func apiError(_ error: any Error) -> APIError {
        if let e = error as? APIError { return e }
        if let e = error as? ServerError {
            if let inner = e.underlyingError as? APIError { return inner }
            // Thrown while decoding the request: it does not fit the document.
            return APIError.invalidRequest("the request does not fit the API: \(describe(e.underlyingError))",
                                           suggestion: "see /openapi.yaml for the request's fields and their types")
        }
        return APIError.internalError("\(error)")
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c),
             DecodingError.keyNotFound(_, let c), DecodingError.dataCorrupted(let c):
            let path = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            if case DecodingError.keyNotFound(let key, _) = error { return "'\((path.isEmpty ? "" : path + ".") + key.stringValue)' is required" }
            return (path.isEmpty ? "" : "'\(path)': ") + c.debugDescription
        default:
            return "\(error)"
        }
    }

    static func error(_ e: APIError) -> (HTTPResponse, HTTPBody?) {
        var fields = HTTPFields()
        fields[.contentType] = "application/json; charset=utf-8"
        return (HTTPResponse(status: .init(code: e.status), headerFields: fields), HTTPBody(e.json.text + "\n"))
    }
}
