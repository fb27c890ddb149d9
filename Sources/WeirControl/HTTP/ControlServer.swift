import Foundation
import Logging
import Hummingbird
import OpenAPIHummingbird
#if canImport(Glibc)
import Glibc
#endif

/// The control-plane server behind `weir server`: opens the metadata
/// database under the home directory, reconciles recorded runs with the
/// processes really running, and serves the REST API until SIGTERM/SIGINT.
///
/// Stopping the server (gracefully, or by a crash) never stops the runs it
/// supervises: they live in their own sessions and are re-attached by the
/// next server started on the same home.
public enum ControlServer {
    /// Runs the server; returns after a graceful shutdown.
    /// - Parameters:
    ///   - host, port: where to listen.
    ///   - token: when set, every `/api` request needs `Authorization: Bearer <token>`.
    ///   - allowedHosts: host names accepted in `Host` besides the listener's own address.
    public static func run(host: String, port: Int, token: String?, allowedHosts: [String] = [], settings: ControlSettings) async throws {
        let fm = FileManager.default
        // The home holds real passwords (weir.db, version files) and everything runs write:
        // only its owner may read it. Runs inherit the mask, so their files are private too.
        umask(0o077)
        try fm.createDirectory(at: settings.home.appendingPathComponent("jobs"), withIntermediateDirectories: true)
        makePrivate(settings.home)
        try lockHome(settings.home)
        let store = try MetadataStore(path: settings.home.appendingPathComponent("weir.db").path)
        let plane = JobLifecycle(store: store, settings: settings)
        await plane.reconcile()
        let logger = settings.logger
        logger.info("home \(settings.home.path), runs with \(settings.weirBinary)")
        let address = host.contains(":") ? "[\(host)]" : host
        logger.info("listening on http://\(address):\(port)\(token == nil ? "" : " (bearer token required for /api)")")
        let router = Router()
        let log: @Sendable (String) -> Void = { logger.info("\(Masking.mask($0))") }
        router.add(middleware: SiteGuard(crossSite: CrossSiteGuard(host: host, port: port, allowedHosts: Set(allowedHosts.map { $0.lowercased() })),
                                         token: token, log: log))
        // Every route is generated from Sources/WeirAPI/openapi.yaml.
        try APIHandler(plane: plane).registerHandlers(on: router, middlewares: [ContractMiddleware(log: log)])
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "weir"))
        try await app.runService()
        logger.info("stopped; runs keep running and are re-attached by the next server on this home")
    }

    /// Mode 0700 for the home and every directory under it, 0600 for every
    /// file (a home made by an older server, or copied with looser modes).
    static func makePrivate(_ home: URL) {
        chmod(home.path, 0o700)
        guard let walk = FileManager.default.enumerator(atPath: home.path) else { return }
        for case let relative as String in walk {
            let path = home.appendingPathComponent(relative).path
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: chmod(path, 0o700)
            case S_IFREG: chmod(path, 0o600)
            default: continue
            }
        }
    }

    /// One server per home: a second one would supervise the same runs twice.
    private static func lockHome(_ home: URL) throws {
        let path = home.appendingPathComponent("server.lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw APIError.internalError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            throw APIError.conflict("another weir server is already using the home \(home.path)",
                                    suggestion: "stop it, or start this one with another --home")
        }
        let pid = "\(getpid())\n"
        ftruncate(fd, 0)
        _ = pid.withCString { write(fd, $0, strlen($0)) }
        // The descriptor stays open (and locked) for the life of the process.
    }

    /// Whether `host` is a loopback address (the only kind served without a token).
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let parts = h.split(separator: ".")
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}
