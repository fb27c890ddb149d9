import ArgumentParser
import Foundation
import Synchronization
import Logging
import WeirControl
import WeirCore
import WeirState
import WeirEngine
import WeirExport
import WeirKafka
import Yams

/// `weir server`: the control plane — job metadata in SQLite, supervised
/// `weir run` children, and the REST API the `weir job` commands talk to.
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Run the control-plane server (jobs, versions, runs, snapshots, REST API).",
        discussion: """
        Jobs live under --home: weir.db (metadata), jobs/<job>/state (snapshots), jobs/<job>/versions/<n>.yaml, \
        jobs/<job>/runs/<run>/{events.jsonl,log.txt}. Each run is a `weir run` child in its own session: stopping or \
        restarting the server leaves runs running, and the next server re-attaches them. The API is at /api/v1 \
        (see /openapi.json); /metrics serves Prometheus text, /healthz says ok.
        Listening on a non-loopback address requires --token-file; every /api request then needs \
        `Authorization: Bearer <token>`.
        """)

    @Option(help: "Address to listen on, HOST:PORT (a non-loopback HOST requires --token-file).")
    var listen = "127.0.0.1:8080"

    @Option(help: "The server's home directory (default: $WEIR_HOME, else ~/.weir).")
    var home: String?

    @Option(help: "File holding the bearer token required on every /api request.")
    var tokenFile: String?

    @Option(help: ArgumentHelp("A host name the server also answers to in the Host header (repeatable); by default only its listen address (and, on loopback, localhost).", valueName: "name"))
    var allowHost: [String] = []

    @Option(help: "The weir executable that runs jobs (default: this executable).")
    var weirBinary: String?

    @Option(help: "Log level on stderr: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func run() async throws {
        CLILogging.configure(prefix: { "[weir server] \(SnapshotManifest.timestamp(Date())) " }, level: try CLILogging.level(logLevel))
        let (host, port) = try parseListen(listen)
        let homeURL: URL
        if let home { homeURL = URL(fileURLWithPath: home).standardizedFileURL }
        else if let env = ProcessInfo.processInfo.environment["WEIR_HOME"], !env.isEmpty { homeURL = URL(fileURLWithPath: env).standardizedFileURL }
        else { homeURL = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".weir") }

        var token: String?
        if let tokenFile {
            guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                throw CLIError("cannot read the token file \(tokenFile)")
            }
            let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !t.isEmpty, !t.contains(where: { $0.isWhitespace }) else {
                throw CLIError("the token file \(tokenFile) must hold one token (no spaces)")
            }
            token = t
        }
        if !ControlServer.isLoopback(host) && token == nil {
            throw CLIError("refusing to listen on \(host) without a token: anyone who can reach it could run jobs (start with --token-file FILE, or listen on 127.0.0.1)")
        }
        let bearer = token
        let binary = weirBinary.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? currentExecutable()
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw CLIError("--weir-binary \(binary) is not an executable file")
        }
        var settings = ControlSettings(
            home: homeURL, weirBinary: binary,
            validate: { text in try JobPlan.compile(text, connectors: connectorKinds).name },
            logger: Logger(label: "weir.server"))
        settings.screenDraft = { text in unsafeSpecProperty(text) }
        settings.checkRestore = { previous, next, allow in
            try JobRunner.checkCanRestore(try JobPlan.compile(next, connectors: connectorKinds),
                                          snapshotOf: try JobPlan.compile(previous, connectors: connectorKinds),
                                          allowNonRestoredState: allow)
        }
        settings.compile = { text in try JobPlan.compile(text, connectors: connectorKinds) }
        settings.export = { spec, offsets, note in
            do {
                return try FlinkSQLExporter.script(forSpec: spec, options: FlinkExportOptions(startOffsets: offsets, note: note))
            } catch let r as ExportRefusal {
                throw APIError(422, "export_refused", "\(r.subject): \(r.reason)", suggestion: r.hint)
            }
        }
        settings.drills = ServerCommand.drillHooks
        do {
            let settings = settings
            try await ControlServer.run(host: host, port: port, token: bearer, allowedHosts: allowHost, settings: settings)
        } catch let e as CLIError {
            throw e
        } catch let e as APIError {
            throw CLIError("weir server: \(e.message)" + (e.suggestion.map { " (\($0))" } ?? ""))
        } catch {
            throw CLIError("weir server: \(error)")
        }
    }

    private func parseListen(_ s: String) throws -> (String, Int) {
        var host = "127.0.0.1", portText = s
        if s.hasPrefix("["), let close = s.firstIndex(of: "]") {
            host = String(s[s.index(after: s.startIndex)..<close])
            portText = String(s[s.index(after: close)...]).trimmingCharacters(in: CharacterSet(charactersIn: ":"))
        } else if let colon = s.lastIndex(of: ":") {
            host = String(s[..<colon])
            portText = String(s[s.index(after: colon)...])
            if host.isEmpty { host = "0.0.0.0" }
        }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw CLIError("--listen \(s): expected HOST:PORT, e.g. 127.0.0.1:8080")
        }
        return (host, port)
    }

    private func currentExecutable() -> String {
        if let p = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return p }
        return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
    }
}


extension ServerCommand {
    /// The restore drills the control plane offers, with this binary's connectors.
    static let drillHooks = DrillHooks(
        mapping: { previous, next in
            try jsonValue(StateMapping(from: try JobPlan.compile(previous, connectors: connectorKinds),
                                       to: try JobPlan.compile(next, connectors: connectorKinds)))
        },
        preview: { spec, snapshot, allow in
            let plan = try JobPlan.compile(spec, connectors: connectorKinds)
            let restore = try LoadedSnapshot(directory: snapshot).restorePoint()
            return try jsonValue(try RestorePreview(plan: plan, restore: restore, allowNonRestoredState: allow, acceptRetentionLoss: false))
        },
        verify: { spec, snapshot, stateDir in
            let plan = try JobPlan.compile(spec, connectors: connectorKinds)
            let store = try SnapshotStore.openExisting(stateDir)
            let restore: RestorePoint
            do { restore = try LoadedSnapshot(directory: snapshot).restorePoint() } catch let e as WeirError {
                return .object(["passed": .bool(false), "problems": .array([.string("checksums failed: \(e)")])])
            }
            let v = RestoreVerification(plan: plan, restore: restore, allowNonRestoredState: false, acceptRetentionLoss: false,
                                        knownRuns: store.knownRuns, covering: { store.covering(run: $0, epoch: $1) })
            guard case .object(var o) = try jsonValue(v) else { return try jsonValue(v) }
            o["passed"] = .bool(v.passed)
            return .object(o)
        },
        transactions: { spec, stateDir in
            let plan = try JobPlan.compile(spec, connectors: connectorKinds)
            let store = try? SnapshotStore.openExisting(stateDir)
            return try jsonValue(try TransactionLedger(plan: plan, lineage: nil, knownRuns: store?.knownRuns ?? [],
                                                       covering: { store?.covering(run: $0, epoch: $1) }))
        })
}

/// An Encodable value as the control plane's JSON.
func jsonValue<T: Encodable>(_ value: T) throws -> JSONValue {
    guard let v = JSONValue.parse(try JSONEncoder().encode(value)) else {
        throw WeirError(.internalError, subject: "\(T.self)", "did not encode as JSON")
    }
    return v
}

/// The first Kafka client property of a spec (YAML or JSON) that would load
/// code or run a command, as "node 'ID': …", nil when there is none. Drafts
/// are screened with it before they are stored (they are not compiled).
func unsafeSpecProperty(_ text: String) -> String? {
    guard let root = (try? Yams.load(yaml: text)) as? [String: Any], let nodes = root["nodes"] as? [Any] else { return nil }
    for case let node as [String: Any] in nodes {
        guard let kafka = node["kafka"] as? [String: Any], let props = kafka["properties"] as? [String: Any] else { continue }
        for (key, value) in props.sorted(by: { $0.key < $1.key }) {
            if let why = KafkaPropertySafety.refusal(key: key, value: "\(value)") {
                return "node '\(node["id"].map { "\($0)" } ?? "?")': properties.\(key): \(why)"
            }
        }
    }
    return nil
}
