import Foundation
import Logging
import Hummingbird
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
    public static func run(host: String, port: Int, token: String?, settings: ControlSettings) async throws {
        let fm = FileManager.default
        try fm.createDirectory(at: settings.home.appendingPathComponent("jobs"), withIntermediateDirectories: true)
        try lockHome(settings.home)
        let store = try MetadataStore(path: settings.home.appendingPathComponent("weir.db").path)
        let plane = JobLifecycle(store: store, settings: settings)
        await plane.reconcile()
        let logger = settings.logger
        logger.info("home \(settings.home.path), runs with \(settings.weirBinary)")
        let address = host.contains(":") ? "[\(host)]" : host
        logger.info("listening on http://\(address):\(port)\(token == nil ? "" : " (bearer token required for /api)")")
        let app = Application(responder: APIResponder(plane: plane, token: token, log: { logger.info("\(Masking.mask($0))") }),
                              configuration: .init(address: .hostname(host, port: port), serverName: "weir"))
        try await app.runService()
        logger.info("stopped; runs keep running and are re-attached by the next server on this home")
    }

    /// One server per home: a second one would supervise the same runs twice.
    private static func lockHome(_ home: URL) throws {
        let path = home.appendingPathComponent("server.lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
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
