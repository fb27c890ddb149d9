import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How a supervised process ended, as far as the server can tell.
struct ProcessExit: Sendable, Equatable {
    /// The exit code, when the process exited normally and was our child.
    var code: Int32?
    /// The signal that terminated it, when it was our child.
    var signal: Int32?

    /// A re-attached process (not our child): only its disappearance is known.
    static let unknown = ProcessExit(code: nil, signal: nil)

    var description: String {
        if let signal { return "terminated by signal \(signal)\(signal == SIGKILL ? " (SIGKILL)" : "")" }
        if let code { return "exited with code \(code)" }
        return "ended"
    }
}

/// The POSIX side of supervising `weir run` children: spawning them in their
/// own session, signalling them, and telling whether they still live.
///
/// Runs are spawned with `posix_spawn` + `POSIX_SPAWN_SETSID` so that they
/// belong to no terminal or process group of the server: a server restart or
/// crash (or a Ctrl-C in its terminal) never reaches them, and a crashing run
/// never takes the server down. A run spawned by this server process is
/// reaped with `waitpid`; a run re-attached after a server restart is watched
/// with `kill(pid, 0)` plus a `/proc/<pid>/cmdline` check (so a recycled pid
/// is never mistaken for the run).
enum ProcessControl {
    /// glibc's POSIX_SPAWN_SETSID (not always visible through the Glibc module).
    static let spawnSetSID: Int32 = 0x80

    /// Spawns `executable arguments…` with stdin from /dev/null and
    /// stdout+stderr appended to `logPath`, in a new session, with default
    /// signal dispositions and an empty signal mask. Returns the pid.
    static func spawn(executable: String, arguments: [String], logPath: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of the server's (listening socket, database, lock file) leaks into the run.
        closeInheritedDescriptors(&actions)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        let flags = spawnSetSID | Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)
        posix_spawnattr_setflags(&attr, Int16(flags))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = argv.withUnsafeBufferPointer { buf in
            posix_spawn(&pid, executable, &actions, &attr, buf.baseAddress!, environ)
        }
        guard rc == 0 else {
            throw APIError(500, "internal", "cannot start \(executable): \(String(cString: strerror(rc)))",
                           suggestion: "check the server's --weir-binary")
        }
        return pid
    }

    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// glibc ≥ 2.34's posix_spawn_file_actions_addclosefrom_np, looked up at run time
    /// (the Glibc module does not export it).
    private static let closeFrom: CloseFrom? = {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(sym, to: CloseFrom.self)
    }()

    /// Adds file actions closing every descriptor above 2 in the child.
    private static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
        if let closeFrom, closeFrom(&actions, 3) == 0 { return }
        // Older glibc: close what is open now (glibc ignores descriptors closed meanwhile).
        let fds = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
        for fd in fds where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
    }

    /// Sends a signal; false if the process does not exist.
    @discardableResult
    static func send(_ sig: Int32, to pid: pid_t) -> Bool {
        guard pid > 0 else { return false }
        return kill(pid, sig) == 0
    }

    /// Whether a process exists and is not a zombie.
    static func isAlive(_ pid: pid_t) -> Bool {
        guard pid > 0 else { return false }
        if kill(pid, 0) != 0 && errno != EPERM { return false }
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")") {
            let rest = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces)
            if rest.hasPrefix("Z") || rest.hasPrefix("X") { return false }
        }
        return true
    }

    /// The argument vector of a process (from /proc), nil if unreadable.
    static func commandLine(_ pid: pid_t) -> [String]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return nil }
        return data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            .filter { !$0.isEmpty }
    }

    /// Whether `pid` is alive and is a `weir run … --events <eventsPath>` process.
    static func isRun(_ pid: pid_t, eventsPath: String) -> Bool {
        guard isAlive(pid), let args = commandLine(pid) else { return false }
        guard args.count >= 2, args.contains("run") else { return false }
        if let i = args.firstIndex(of: "--events"), i + 1 < args.count { return args[i + 1] == eventsPath }
        return args.contains("--events=\(eventsPath)")
    }

    /// The absolute path of this executable.
    static func currentExecutable() -> String {
        if let p = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return p }
        return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
    }
}

/// Reads a run's JSON-lines events file incrementally (the file grows while
/// the run lives; the last line may be incomplete while it is written).
struct EventTail {
    let path: String
    private(set) var offset: UInt64 = 0
    private var partial = Data()

    init(path: String) { self.path = path }

    /// The complete lines appended since the last call, decoded; malformed
    /// lines are skipped (unknown kinds come back as `.unknown`).
    mutating func readNew() -> [RunEventLine] {
        guard let h = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? h.close() }
        do { try h.seek(toOffset: offset) } catch { return [] }
        guard let data = try? h.readToEnd(), !data.isEmpty else { return [] }
        offset += UInt64(data.count)
        partial.append(data)
        var out: [RunEventLine] = []
        while let nl = partial.firstIndex(of: 0x0A) {
            let line = partial[partial.startIndex..<nl]
            partial = Data(partial[partial.index(after: nl)...])
            if let e = RunEventLine.decode(Data(line)) { out.append(e) }
        }
        return out
    }
}
