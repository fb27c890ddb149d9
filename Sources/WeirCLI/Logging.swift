import Foundation
import Logging
import Synchronization

/// The CLI's swift-log backend: one line per message on stderr, behind a
/// prefix (`[weir] `, or `[weir server] <time> `), at the level `--log-level`
/// chose. Libraries (engine, state store, connectors, control plane) only
/// hold `Logger`s; this is the one place that decides where their lines go.
struct LineLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    /// The level is the process's, set by the command once its options are parsed.
    var logLevel: Logger.Level {
        get { CLILogging.settings.withLock { $0.level } }
        set {}
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let tail = all.isEmpty ? "" : " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let prefix = CLILogging.settings.withLock { $0.prefix }()
        printErr("\(prefix)\(event.level > .warning ? "\(event.level): " : "")\(event.message)\(tail)")
    }
}

/// The process's logging setup: bootstrapped once by `weir`'s entry point,
/// then configured (prefix, level) by the command that runs.
public enum CLILogging {
    struct Settings {
        var prefix: @Sendable () -> String = { "[weir] " }
        var level: Logger.Level = .info
    }
    static let settings = Mutex(Settings())

    /// Installs the stderr backend; call once, before anything logs.
    public static func bootstrap() {
        LoggingSystem.bootstrap { _ in LineLogHandler() }
    }

    static func configure(prefix: @escaping @Sendable () -> String, level: Logger.Level) {
        settings.withLock { $0 = Settings(prefix: prefix, level: level) }
    }

    /// Parses `--log-level`.
    static func level(_ text: String) throws -> Logger.Level {
        guard let l = Logger.Level(rawValue: text.lowercased()) else {
            throw CLIError("--log-level \(text): use one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return l
    }
}
