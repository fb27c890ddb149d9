import ArgumentParser
import Foundation
import HTTPTypes
import OpenAPIRuntime
import OpenAPIURLSession
import Synchronization
import WeirAPI
import WeirControl
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

// The HTTP side of `weir job …`: the client generated from the REST contract
// (Sources/WeirAPI/openapi.yaml) over URLSession, the error envelope, and the
// wait for an operation's end.

/// Options every `weir job` subcommand takes.
struct JobGlobalOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The control-plane server (default: $WEIR_SERVER, else http://127.0.0.1:8080). The API token, if the server needs one, is read from $WEIR_TOKEN.",
                               valueName: "url"))
    var server: String?

    @Flag(help: "Print the server's JSON response unchanged (for scripts).")
    var json = false

    func api() throws -> JobAPI {
        let env = ProcessInfo.processInfo.environment
        var s = server ?? env["WEIR_SERVER"] ?? ""
        if s.isEmpty { s = "http://127.0.0.1:8080" }
        if !s.contains("://") { s = "http://" + s }
        while s.hasSuffix("/") { s.removeLast() }
        let token = env["WEIR_TOKEN"].map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.flatMap { $0.isEmpty ? nil : $0 }
        guard let url = URL(string: s), url.host != nil else {
            throw JobFailure(message: "invalid server URL '\(s)'", suggestion: "give --server http://HOST:PORT")
        }
        return JobAPI(base: s, url: url, token: token)
    }
}

/// A failure the CLI reports as `error: …` / `suggestion: …` and an exit code
/// (1: the request failed; 2: the server could not be reached).
struct JobFailure: Error {
    var message: String
    var suggestion: String?
    var exitCode: Int32 = 1
    /// The raw JSON error body, printed to stdout under --json.
    var body: Data?
}

/// Runs a command body, turning `JobFailure`s into the documented output and exit codes.
func reportingJobFailures(json: Bool = false, _ body: () async throws -> Void) async throws {
    do { try await body() } catch let f as JobFailure {
        if json, let b = f.body, !b.isEmpty { writeOut(b) }
        printErr("error: \(f.message)")
        if let s = f.suggestion, !s.isEmpty { printErr("suggestion: \(s)") }
        throw ExitCode(f.exitCode)
    }
}

/// The generated client of one server, with what the commands need around it:
/// the token, the raw body of the last answer (`--json` prints it unchanged)
/// and refusals as `JobFailure`s.
struct JobAPI: Sendable {
    let base: String
    let client: Client
    private let last: LastBody

    init(base: String, url: URL, token: String?) {
        self.base = base
        let last = LastBody()
        self.last = last
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = 60
        config.requestCachePolicy = .reloadIgnoringLocalCacheData
        config.urlCache = nil
        client = Client(serverURL: url, transport: URLSessionTransport(configuration: .init(session: URLSession(configuration: config))),
                        middlewares: [Envelope(base: base, token: token, last: last)])
    }

    /// The body of the last answer, as the server sent it.
    var lastBody: Data { last.value.withLock { $0 } }

    /// One call; a refusal (4xx/5xx) or an unreachable server is thrown as a `JobFailure`.
    func call<T>(_ body: (Client) async throws -> T) async throws -> T {
        do { return try await body(client) } catch let e as ClientError {
            if let f = e.underlyingError as? JobFailure { throw f }
            throw JobAPI.transportFailure(e.underlyingError, base: base)
        }
    }

    final class LastBody: Sendable {
        let value = Mutex<Data>(Data())
    }

    /// Sends the token, keeps the answer's body, and turns an error answer
    /// into a `JobFailure` carrying the server's message and suggestion.
    struct Envelope: ClientMiddleware {
        let base: String
        let token: String?
        let last: LastBody

        func intercept(_ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
                       next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?))
            async throws -> (HTTPResponse, HTTPBody?) {
            var request = request
            if let token { request.headerFields[.authorization] = "Bearer \(token)" }
            let (response, responseBody) = try await next(request, body, baseURL)
            var data = Data()
            if let responseBody { data = try await Data(collecting: responseBody, upTo: 256 << 20) }
            last.value.withLock { $0 = data }
            if response.status.code >= 400 { throw failure(response.status.code, data) }
            return (response, responseBody == nil ? nil : HTTPBody(data))
        }

        private func failure(_ status: Int, _ data: Data) -> JobFailure {
            if let err = JSONValue.parse(data)?["error"], let m = err["message"]?.string {
                var suggestion = err["suggestion"]?.string
                if status == 401 && (suggestion ?? "").isEmpty {
                    suggestion = token == nil
                        ? "this server needs an API token: set WEIR_TOKEN to the contents of its --token-file"
                        : "WEIR_TOKEN does not match the server's token (its --token-file)"
                }
                return JobFailure(message: m.isEmpty ? "HTTP \(status)" : m, suggestion: suggestion, body: data)
            }
            var text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if text.count > 500 { text = String(text.prefix(500)) + "…" }
            var suggestion: String?
            if status == 401 { suggestion = "set WEIR_TOKEN to the server's API token" }
            if status == 404 && text.isEmpty { suggestion = "is \(base) a weir server? (`weir server --listen HOST:PORT`)" }
            return JobFailure(message: "HTTP \(status) \(HTTPURLResponse.localizedString(forStatusCode: status))" + (text.isEmpty ? "" : ": \(text)"),
                              suggestion: suggestion, body: data)
        }
    }

    static func transportFailure(_ e: any Error, base: String) -> JobFailure {
        let hostPort = base.components(separatedBy: "://").last ?? base
        if let u = e as? URLError {
            switch u.code {
            case .cannotConnectToHost, .cannotFindHost, .networkConnectionLost, .notConnectedToInternet,
                 .dnsLookupFailed, .secureConnectionFailed:
                let why = u.code == .cannotConnectToHost ? "connection refused" : u.localizedDescription
                return JobFailure(message: "cannot connect to the weir server at \(base) (\(why))",
                                  suggestion: "start it with `weir server --listen \(hostPort)`, or point --server / WEIR_SERVER at the running one",
                                  exitCode: 2)
            case .timedOut:
                return JobFailure(message: "the weir server at \(base) did not answer in time", suggestion: nil, exitCode: 2)
            default: break
            }
        }
        let ns = e as NSError
        if ns.code == NSURLErrorCannotConnectToHost || ns.code == Int(ECONNREFUSED) {
            return JobFailure(message: "cannot connect to the weir server at \(base): connection refused",
                              suggestion: "start it with `weir server --listen \(hostPort)`", exitCode: 2)
        }
        if e is DecodingError {
            return JobFailure(message: "the server at \(base) answered outside the API this weir knows: \(e)",
                              suggestion: "use a weir of the same version as the server")
        }
        return JobFailure(message: "request to \(base) failed: \(e.localizedDescription)", suggestion: nil, exitCode: 2)
    }
}

// MARK: - Typed views used by several commands

typealias Job = Components.Schemas.Job
typealias Operation = Components.Schemas.Operation

extension Job {
    /// `running`, or `⚠ stopped` when the job carries a warning.
    var statusText: String { warning == nil ? status.rawValue : "⚠ \(status.rawValue)" }

    /// The warning and suggestion lines shown under a job, indented.
    func warningLines(indent: String) -> [String] {
        guard let w = warning?.value1 else { return [] }
        var lines = ["\(indent)⚠ warning: \(w.message)"]
        if let s = w.suggestion, !s.isEmpty { lines.append("\(indent)  suggestion: \(s)") }
        return lines
    }
}

extension Operation {
    var finished: Bool { status == .succeeded || status == .failed }
    /// The free-form result, as JSON.
    var resultJSON: JSONValue? { result.flatMap { jsonOf($0) } }

    var durationSeconds: Double? {
        guard let a = parseTime(requestedAt), let f = finishedAt, let b = parseTime(f) else { return nil }
        return b.timeIntervalSince(a)
    }
}

/// Any typed value as JSON (for free-form parts: results, offsets, reports).
func jsonOf<T: Encodable>(_ value: T) -> JSONValue? {
    (try? JSONEncoder().encode(value)).flatMap { JSONValue.parse($0) }
}

// MARK: - Waiting for operations

/// Polls the operation every 200 ms until it has succeeded or failed, showing
/// progress on stderr (a spinner on a terminal, a line per status change
/// otherwise). Returns the final operation; its raw JSON is `api.lastBody`.
func waitForOperation(_ api: JobAPI, _ op: Operation, quiet: Bool = false) async throws -> Operation {
    let what = "\(op._type.rawValue) of \(op.job)"
    let tty = isatty(STDERR_FILENO) == 1
    let spinner = Array("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
    let started = Date()
    var lastStatus = ""
    var tick = 0
    var transportErrorsSince: Date?
    while true {
        let o: Operation
        do {
            o = try await api.call { try await $0.getOperation(path: .init(id: op.id)).ok.body.json }
            transportErrorsSince = nil
        } catch let f as JobFailure where f.exitCode == 2 {
            // The server may be restarting: keep trying for a while.
            let since = transportErrorsSince ?? Date()
            transportErrorsSince = since
            if Date().timeIntervalSince(since) > 15 { throw f }
            try await Task.sleep(for: .milliseconds(500))
            continue
        }
        let elapsed = Date().timeIntervalSince(started)
        if o.finished {
            if tty && !quiet { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
            return o
        }
        let status = o.status.rawValue
        if !quiet {
            if tty {
                let line = String(format: "\r\u{1B}[2K%@ %@ (operation %@): %@ %.1fs", String(spinner[tick % spinner.count]),
                                  what, op.id, status, elapsed)
                FileHandle.standardError.write(Data(line.utf8))
            } else if status != lastStatus {
                printErr(String(format: "operation %@ (%@): %@ after %.1fs", op.id, what, status, elapsed))
            }
        }
        lastStatus = status
        tick += 1
        try await Task.sleep(for: .milliseconds(200))
    }
}

/// Prints the outcome of a finished operation; throws a `JobFailure` (exit 1) when it failed.
func reportFinishedOperation(_ o: Operation, api: JobAPI, json: Bool, raw: Data) async throws {
    if json { writeOut(raw) }
    // A drill's report, passed or not.
    if !json, let text = drillReportText(o.resultJSON?["report"]) {
        print(text)
        print("")
    }
    if o.status == .failed {
        let message = o.error.map(\.message) ?? "operation \(o.id) failed"
        throw JobFailure(message: message, suggestion: o.error?.suggestion)
    }
    if json { return }
    var line = "operation \(o.id) (\(o._type.rawValue)) succeeded"
    if let secs = o.durationSeconds { line += String(format: " in %.1f s", secs) }
    print(line)
    for (k, v) in resultRows(o.resultJSON) { print("  \(k): \(v)") }
    // Show where the job ended up.
    if let job = try? await api.call({ try await $0.getJob(path: .init(name: o.job)).ok.body.json }) {
        var s = "\(job.name): \(job.statusText)"
        if let v = job.version { s += ", version \(v)" }
        print(s)
        for l in job.warningLines(indent: "  ") { print(l) }
    }
}

/// Result fields in a stable, readable order.
func resultRows(_ result: JSONValue?) -> [(String, String)] {
    let r = result?.object ?? [:]
    return r.keys.sorted().filter { $0 != "report" }.map { k in
        let v = r[k]!
        if let o = v.object, k == "offsets" { return (k, offsetsSummary(o, style: .result)) }
        if let o = v.object { return (k, o.keys.sorted().map { "\($0)=\(cell(o[$0]))" }.joined(separator: " ")) }
        return (k, cell(v))
    }
}

/// Per source node: how many partitions and records a snapshot's offsets cover.
func offsetsSummary(_ offsets: [String: JSONValue], style: OffsetsStyle) -> String {
    offsets.keys.sorted().map { node in
        let splits = offsets[node]?.object ?? [:]
        let total = splits.values.compactMap(\.int).reduce(0, +)
        switch style {
        case .result: return "\(node): \(splits.count) partitions, \(total) records"
        case .table: return "\(node): \(total) in \(splits.count) partition\(splits.count == 1 ? "" : "s")"
        }
    }.joined(separator: "; ")
}

enum OffsetsStyle { case result, table }

func parseTime(_ s: String?) -> Date? {
    guard let s else { return nil }
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let d = f.date(from: s) { return d }
    f.formatOptions = [.withInternetDateTime]
    return f.date(from: s)
}

/// The text of a drill's report (an operation's `result.report`), as `weir drill` prints it.
func drillReportText(_ report: JSONValue?) -> String? {
    guard let report, report.object != nil,
          let decoded = try? JSONDecoder().decode(DrillReport.self, from: Data(report.text.utf8)) else { return nil }
    return decoded.text
}

// MARK: - Cells

/// A JSON value as a table cell: `-` for null or absent.
func cell(_ v: JSONValue?) -> String {
    switch v {
    case nil, .null?: return "-"
    case .string(let s)?: return s
    case .bool(let b)?: return b ? "true" : "false"
    case .int(let i)?: return String(i)
    case .double(let d)?: return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
    case .array(let a)?: return a.map { cell($0) }.joined(separator: ", ")
    case .object(let o)?: return o.keys.sorted().map { "\($0)=\(cell(o[$0]))" }.joined(separator: " ")
    }
}

func cell(_ v: Int?) -> String { v.map(String.init) ?? "-" }
func cell(_ v: String?) -> String { v ?? "-" }

/// A timestamp as the tables show it (`-` when there is none).
func shortTime(_ v: String?) -> String { v.map(displayTime) ?? "-" }

func writeOut(_ data: Data) {
    FileHandle.standardOutput.write(data)
    if data.last != UInt8(ascii: "\n") { FileHandle.standardOutput.write(Data("\n".utf8)) }
}
