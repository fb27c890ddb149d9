import Foundation

/// An error the API returns: an HTTP status plus the contract's
/// `{"error": {"code", "message", "suggestion"}}` body.
///
/// Every rule the lifecycle enforces throws one of these, so a refusal always
/// says what is wrong and, where possible, what to do instead.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String
    public var suggestion: String?

    public init(_ status: Int, _ code: String, _ message: String, suggestion: String? = nil) {
        self.status = status; self.code = code; self.message = message; self.suggestion = suggestion
    }

    public static func notFound(_ m: String, suggestion: String? = nil) -> APIError { APIError(404, "not_found", m, suggestion: suggestion) }
    public static func conflict(_ m: String, suggestion: String? = nil) -> APIError { APIError(409, "conflict", m, suggestion: suggestion) }
    public static func invalidRequest(_ m: String, suggestion: String? = nil) -> APIError { APIError(422, "invalid_request", m, suggestion: suggestion) }
    public static func internalError(_ m: String) -> APIError { APIError(500, "internal", m) }

    public var json: JSONValue {
        .object(["error": .object(["code": .string(code), "message": .string(Masking.mask(message)),
                                   "suggestion": .optional(suggestion.map(Masking.mask))])])
    }

    public var description: String { "\(code): \(message)" }
}

/// What the API shows as a job's status.
public enum JobStatus: String, Sendable, CaseIterable {
    case stopped, operating, running
}

/// The kinds of operations in a job's operation log.
public enum OperationType: String, Sendable, CaseIterable {
    case publish, run, stop, savepoint
    case publishAndRun = "publish_and_run"
    /// A restore drill (`weir drill` as a child process), after a stop with snapshot if the job was running.
    case drill
}

/// The states of an operation.
public enum OperationStatus: String, Sendable, CaseIterable {
    case pending, running, succeeded, failed
}

/// A job's warning: the last failure the user should know about, with what to do.
public struct JobWarning: Sendable, Equatable {
    public var code: String?
    public var message: String
    public var suggestion: String?

    public init(code: String?, message: String, suggestion: String?) {
        self.code = code; self.message = message; self.suggestion = suggestion
    }

    var json: JSONValue {
        .object(["code": .optional(code), "message": .string(Masking.mask(message)),
                 "suggestion": .optional(suggestion.map(Masking.mask))])
    }
}

/// The error recorded on a failed operation.
public struct OperationError: Sendable, Equatable {
    public var code: String
    public var message: String
    public var suggestion: String?

    var json: JSONValue {
        .object(["code": .string(code), "message": .string(Masking.mask(message)),
                 "suggestion": .optional(suggestion.map(Masking.mask))])
    }

    var warning: JobWarning { JobWarning(code: code, message: message, suggestion: suggestion) }
}

/// ISO-8601 UTC timestamps with milliseconds, the format of every time the API shows.
enum Clock {
    static func now() -> String { timestamp(Date()) }

    /// Parses a time as `timestamp` writes it (fractional seconds optional); nil when it is not one.
    static func date(_ iso: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: iso) ?? ISO8601DateFormatter().date(from: iso)
    }

    static func timestamp(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: d)
    }

    /// A random lowercase id with a prefix, e.g. `op-k3j9x0c2mz1a`.
    static func newID(_ prefix: String) -> String {
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz")
        return prefix + "-" + String((0..<12).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
    }
}
