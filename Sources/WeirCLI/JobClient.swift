import ArgumentParser
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

// The HTTP side of `weir job …`: a small synchronous client for the control
// plane's REST API (/api/v1), its error envelope, and the shared output helpers
// (tables, times, sizes, the progress line of `--wait`).

/// Options every `weir job` subcommand takes.
struct JobGlobalOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The control-plane server (default: $WEIR_SERVER, else http://127.0.0.1:8080). The API token, if the server needs one, is read from $WEIR_TOKEN.",
                               valueName: "url"))
    var server: String?

    @Flag(help: "Print the server's JSON response unchanged (for scripts).")
    var json = false

    func client() -> JobClient {
        let env = ProcessInfo.processInfo.environment
        var s = server ?? env["WEIR_SERVER"] ?? ""
        if s.isEmpty { s = "http://127.0.0.1:8080" }
        if !s.contains("://") { s = "http://" + s }
        while s.hasSuffix("/") { s.removeLast() }
        let token = env["WEIR_TOKEN"].flatMap { $0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        return JobClient(base: s, token: token)
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
func reportingJobFailures(json: Bool = false, _ body: () throws -> Void) throws {
    do { try body() } catch let f as JobFailure {
        if json, let b = f.body, !b.isEmpty { writeOut(b) }
        printErr("error: \(f.message)")
        if let s = f.suggestion, !s.isEmpty { printErr("suggestion: \(s)") }
        throw ExitCode(f.exitCode)
    }
}

struct HTTPReply {
    let status: Int
    let headers: [String: String]  // lower-cased names
    let body: Data

    var object: [String: Any] { ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any]) ?? [:] }
    var array: [[String: Any]] {
        let v = try? JSONSerialization.jsonObject(with: body)
        if let a = v as? [[String: Any]] { return a }
        // Tolerate an envelope such as {"jobs": [...]} or {"items": [...]}.
        if let o = v as? [String: Any] {
            for (_, x) in o { if let a = x as? [[String: Any]] { return a } }
        }
        return []
    }
    var text: String { String(decoding: body, as: UTF8.self) }
}

private final class ReplyBox: Sendable {
    /// Written once by the URLSession callback before the semaphore is signalled.
    let reply = Mutex<(data: Data?, response: URLResponse?, error: (any Error)?)>((nil, nil, nil))
}

final class JobClient {
    let base: String
    let token: String?
    private let session: URLSession

    init(base: String, token: String?) {
        self.base = base
        self.token = token
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = 60
        config.requestCachePolicy = .reloadIgnoringLocalCacheData
        config.urlCache = nil
        session = URLSession(configuration: config)
    }

    /// One request. Transport failures become `JobFailure`s (exit 2 when nothing listens);
    /// HTTP error statuses are returned as they are.
    func send(_ method: String, _ path: String, json body: [String: Any]? = nil) throws -> HTTPReply {
        guard let url = URL(string: base + path) else {
            throw JobFailure(message: "invalid server URL '\(base)'", suggestion: "give --server http://HOST:PORT")
        }
        var req = URLRequest(url: url)
        req.httpMethod = method
        req.setValue("application/json", forHTTPHeaderField: "Accept")
        if let token { req.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body {
            req.httpBody = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
            req.setValue("application/json", forHTTPHeaderField: "Content-Type")
        } else if method == "POST" || method == "PUT" {
            req.httpBody = Data("{}".utf8)
            req.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let box = ReplyBox()
        let done = DispatchSemaphore(value: 0)
        let task = session.dataTask(with: req) { d, r, e in
            box.reply.withLock { $0 = (d, r, e) }
            done.signal()
        }
        task.resume()
        done.wait()
        let reply = box.reply.withLock { $0 }
        if let e = reply.error { throw transportFailure(e) }
        guard let http = reply.response as? HTTPURLResponse else {
            throw JobFailure(message: "no HTTP response from \(base)", suggestion: nil, exitCode: 2)
        }
        var headers: [String: String] = [:]
        for (k, v) in http.allHeaderFields {
            headers[String(describing: k).lowercased()] = String(describing: v)
        }
        return HTTPReply(status: http.statusCode, headers: headers, body: reply.data ?? Data())
    }

    /// A request that must succeed (2xx); an error status becomes a `JobFailure`
    /// carrying the server's message and suggestion.
    func call(_ method: String, _ path: String, json body: [String: Any]? = nil) throws -> HTTPReply {
        let r = try send(method, path, json: body)
        guard (200..<300).contains(r.status) else { throw apiFailure(r) }
        return r
    }

    func apiFailure(_ r: HTTPReply) -> JobFailure {
        let obj = (try? JSONSerialization.jsonObject(with: r.body)) as? [String: Any]
        if let err = obj?["error"] as? [String: Any] {
            var message = (err["message"] as? String) ?? "HTTP \(r.status)"
            if message.isEmpty { message = "HTTP \(r.status)" }
            var suggestion = err["suggestion"] as? String
            // Located problems, when the server lists them apart from the message.
            for key in ["errors", "details", "problems"] {
                guard let list = err[key] as? [Any] else { continue }
                for item in list {
                    let line: String
                    if let o = item as? [String: Any] {
                        let loc = o["location"] ?? o["path"] ?? o["at"]
                        let m = cell(o["message"] ?? o["error"])
                        line = isNull(loc) ? m : "\(cell(loc)): \(m)"
                    } else {
                        line = cell(item)
                    }
                    if !message.contains(line) { message += "\n  " + line }
                }
            }
            if r.status == 401 && (suggestion ?? "").isEmpty {
                suggestion = token == nil
                    ? "this server needs an API token: set WEIR_TOKEN to the contents of its --token-file"
                    : "WEIR_TOKEN does not match the server's token (its --token-file)"
            }
            return JobFailure(message: message, suggestion: suggestion, body: r.body)
        }
        var text = r.text.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.count > 500 { text = String(text.prefix(500)) + "…" }
        let reason = HTTPURLResponse.localizedString(forStatusCode: r.status)
        var suggestion: String?
        if r.status == 401 { suggestion = "set WEIR_TOKEN to the server's API token" }
        if r.status == 404 && text.isEmpty { suggestion = "is \(base) a weir server? (`weir server --listen HOST:PORT`)" }
        return JobFailure(message: "HTTP \(r.status) \(reason)" + (text.isEmpty ? "" : ": \(text)"),
                          suggestion: suggestion, body: r.body)
    }

    private func transportFailure(_ e: any Error) -> JobFailure {
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
        return JobFailure(message: "request to \(base) failed: \(e.localizedDescription)", suggestion: nil, exitCode: 2)
    }
}

// MARK: - Paths and values

/// Percent-encodes one path segment (job names are letters, digits, - _ .).
func seg(_ s: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-_.~")
    return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
}

func jobPath(_ name: String, _ rest: String = "") -> String { "/api/v1/jobs/\(seg(name))\(rest)" }

/// Renders a JSON value for a table cell: null → "-".
func cell(_ v: Any?) -> String {
    switch v {
    case nil: return "-"
    case is NSNull: return "-"
    case let s as String: return s
    case let n as NSNumber where String(cString: n.objCType) == "c":  // a JSON true/false
        return n.boolValue ? "true" : "false"
    case let n as NSNumber:
        let d = n.doubleValue
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return n.stringValue
    case let b as Bool: return b ? "true" : "false"
    case let a as [Any]: return a.map { cell($0) }.joined(separator: ", ")
    case let o as [String: Any]:
        return o.keys.sorted().map { "\($0)=\(cell(o[$0]))" }.joined(separator: " ")
    default: return "\(v!)"
    }
}

func isNull(_ v: Any?) -> Bool { v == nil || v is NSNull }

func intValue(_ v: Any?) -> Int? {
    if let n = v as? NSNumber { return n.intValue }
    if let s = v as? String { return Int(s) }
    return nil
}

/// `2024-05-01T12:34:56.789Z` → `2024-05-01 12:34:56Z`; epoch numbers are formatted too.
func shortTime(_ v: Any?) -> String {
    if isNull(v) { return "-" }
    if let n = v as? NSNumber {
        var secs = n.doubleValue
        if secs > 1e11 { secs /= 1000 }  // epoch milliseconds
        let f = ISO8601DateFormatter()
        return shortTime(f.string(from: Date(timeIntervalSince1970: secs)))
    }
    return displayTime(cell(v))
}

/// 1536 → `1.5 KiB`.
func sizeText(_ v: Any?) -> String {
    guard let n = (v as? NSNumber)?.int64Value else { return cell(v) }
    return byteCount(n)
}

func writeOut(_ data: Data) {
    FileHandle.standardOutput.write(data)
    if data.last != UInt8(ascii: "\n") { FileHandle.standardOutput.write(Data("\n".utf8)) }
}

/// `running`, or `⚠ stopped` when the job carries a warning.
func statusText(_ job: [String: Any]) -> String {
    let s = cell(job["status"])
    return isNull(job["warning"]) ? s : "⚠ \(s)"
}

/// The warning and suggestion lines shown under a job, indented.
func warningLines(_ job: [String: Any], indent: String) -> [String] {
    guard let w = job["warning"] as? [String: Any] else { return [] }
    var lines = ["\(indent)⚠ warning: \(cell(w["message"]))"]
    if let s = w["suggestion"] as? String, !s.isEmpty { lines.append("\(indent)  suggestion: \(s)") }
    return lines
}

// MARK: - Waiting for operations

/// Polls GET /api/v1/operations/{id} every 200 ms until the operation has
/// succeeded or failed, showing progress on stderr (a spinner on a terminal,
/// a line per status change otherwise). Returns the final reply.
func waitForOperation(_ client: JobClient, _ op: [String: Any], quiet: Bool = false) throws -> HTTPReply {
    let id = cell(op["id"])
    let what = "\(cell(op["type"])) of \(cell(op["job"]))"
    let tty = isatty(STDERR_FILENO) == 1
    let spinner = Array("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
    let started = Date()
    var lastStatus = ""
    var tick = 0
    var transportErrorsSince: Date?
    while true {
        let reply: HTTPReply
        do {
            reply = try client.call("GET", "/api/v1/operations/\(seg(id))")
            transportErrorsSince = nil
        } catch let f as JobFailure where f.exitCode == 2 {
            // The server may be restarting: keep trying for a while.
            let since = transportErrorsSince ?? Date()
            transportErrorsSince = since
            if Date().timeIntervalSince(since) > 15 { throw f }
            Thread.sleep(forTimeInterval: 0.5)
            continue
        }
        let o = reply.object
        let status = cell(o["status"])
        let elapsed = Date().timeIntervalSince(started)
        if status == "succeeded" || status == "failed" {
            if tty && !quiet { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
            return reply
        }
        if !quiet {
            if tty {
                let line = String(format: "\r\u{1B}[2K%@ %@ (operation %@): %@ %.1fs", String(spinner[tick % spinner.count]),
                                  what, id, status, elapsed)
                FileHandle.standardError.write(Data(line.utf8))
            } else if status != lastStatus {
                printErr(String(format: "operation %@ (%@): %@ after %.1fs", id, what, status, elapsed))
            }
        }
        lastStatus = status
        tick += 1
        Thread.sleep(forTimeInterval: 0.2)
    }
}

/// Prints the outcome of a finished operation; throws a `JobFailure` (exit 1) when it failed.
func reportFinishedOperation(_ o: [String: Any], client: JobClient, json: Bool, raw: Data) throws {
    let status = cell(o["status"])
    if json { writeOut(raw) }
    // A drill's report, passed or not.
    if !json, let result = o["result"] as? [String: Any], let text = drillReportText(result["report"]) {
        print(text)
        print("")
    }
    if status == "failed" {
        let err = o["error"] as? [String: Any]
        var msg = cell(err?["message"])
        if msg == "-" { msg = "operation \(cell(o["id"])) failed" }
        throw JobFailure(message: msg, suggestion: err?["suggestion"] as? String)
    }
    if json { return }
    var line = "operation \(cell(o["id"])) (\(cell(o["type"]))) succeeded"
    if let secs = durationSeconds(o) { line += String(format: " in %.1f s", secs) }
    print(line)
    if let result = o["result"] as? [String: Any] {
        for (k, v) in resultRows(result) { print("  \(k): \(v)") }
    }
    // Show where the job ended up.
    if let job = try? client.call("GET", jobPath(cell(o["job"]))).object, !job.isEmpty {
        var s = "\(cell(job["name"])): \(statusText(job))"
        if !isNull(job["version"]) { s += ", version \(cell(job["version"]))" }
        print(s)
        for l in warningLines(job, indent: "  ") { print(l) }
    }
}

/// Result fields in a stable, readable order.
func resultRows(_ r: [String: Any]) -> [(String, String)] {
    r.keys.sorted().filter { $0 != "report" }.map { k in
        let v = r[k]
        if let o = v as? [String: Any], k == "offsets" {
            return (k, o.keys.sorted().map { node in
                let splits = (o[node] as? [String: Any]) ?? [:]
                let total = splits.values.compactMap { ($0 as? NSNumber)?.int64Value }.reduce(0, +)
                return "\(node): \(splits.count) partitions, \(total) records"
            }.joined(separator: "; "))
        }
        if let o = v as? [String: Any] {
            return (k, o.keys.sorted().map { "\($0)=\(cell(o[$0]))" }.joined(separator: " "))
        }
        return (k, cell(v))
    }
}

func durationSeconds(_ o: [String: Any]) -> Double? {
    guard let a = parseTime(o["requestedAt"]), let b = parseTime(o["finishedAt"]) else { return nil }
    return b.timeIntervalSince(a)
}

func parseTime(_ v: Any?) -> Date? {
    if let n = v as? NSNumber {
        var secs = n.doubleValue
        if secs > 1e11 { secs /= 1000 }
        return Date(timeIntervalSince1970: secs)
    }
    guard let s = v as? String else { return nil }
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let d = f.date(from: s) { return d }
    f.formatOptions = [.withInternetDateTime]
    return f.date(from: s)
}

/// The text of a drill's report (an operation's `result.report`), as `weir drill` prints it.
func drillReportText(_ report: Any?) -> String? {
    guard let object = report as? [String: Any], let data = try? JSONSerialization.data(withJSONObject: object),
          let decoded = try? JSONDecoder().decode(DrillReport.self, from: data) else { return nil }
    return decoded.text
}
