import CMariaDB
import WeirCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `mysql_library_init` (a macro for `mysql_server_init`) must run once per
/// process before any other client call, and is not itself thread-safe.
/// A global's initializer runs exactly once, guarded by `swift_once`, so
/// reading this from any thread is a thread-safe "call once".
private let mysqlLibraryInitialized: Bool = mysql_server_init(0, nil, nil) == 0

/// One client connection to a MySQL/MariaDB server (a wrapper over `MYSQL*`).
///
/// It exists so the rest of Weir talks to MySQL in Swift terms: statements in,
/// rows out, and every failure turned into a `WeirError` naming what is at
/// fault (the user, the server, the table) with a suggestion, never the password.
///
/// The session is set up for the sink: character set utf8mb4 and time zone
/// `+00:00` (so DATETIME/TIMESTAMP literals written by Weir are UTC). Every
/// connection has connect, read and write timeouts (5 s, 120 s, 120 s by
/// default): a stalled server is waited for well beyond the sessions' 50 s
/// lock waits, but a dead one ends in an error (2013, a lost connection), not a hang.
///
/// A connection is not thread-safe (the C handle is not) and is deliberately
/// not `Sendable`: use it from one thread at a time.
public final class MySQLConnection {
    /// The URL this connection was opened from.
    public let url: MySQLURL
    private var handle: UnsafeMutablePointer<MYSQL>?
    /// The client/server error number of the last call (0 when it succeeded;
    /// 2006 when it was made on a closed connection). Callers that
    /// must tell error kinds apart (XA's 1397 XAER_NOTA, a lost connection)
    /// read it right after catching the `WeirError`.
    public private(set) var lastErrorNumber: UInt32 = 0
    /// The server's (or client library's) message of the last failed call, as is.
    public private(set) var lastErrorMessage = ""
    /// How long a read (a statement's reply) or a write may block before the call
    /// fails as a lost connection (error 2013), in seconds.
    public let readTimeoutSeconds: UInt32
    public let writeTimeoutSeconds: UInt32

    /// Seconds to wait for the TCP connection and handshake.
    public static let defaultConnectTimeoutSeconds: UInt32 = 5
    /// Seconds a statement may wait for its reply. Longer than the sessions'
    /// `lock_wait_timeout` and InnoDB's lock wait (50 s), so that a statement
    /// waiting on a lock gets the server's own timeout error, and a server that
    /// stalls for a while (paused, overloaded) is ridden out; a dead one still
    /// ends in an error instead of a hang.
    public static let defaultReadTimeoutSeconds: UInt32 = 120
    /// Seconds a write to the socket may block.
    public static let defaultWriteTimeoutSeconds: UInt32 = 120

    /// Connects, retrying a refused connection (server still starting) with a
    /// short backoff for at most about 3 seconds. Statements wait at most
    /// `lockWaitSeconds` for a table's metadata lock or a row lock; the read
    /// timeout (by default) stays 30 s above it.
    public init(url: MySQLURL, connectTimeoutSeconds: UInt32 = MySQLConnection.defaultConnectTimeoutSeconds,
                readTimeoutSeconds: UInt32? = nil,
                writeTimeoutSeconds: UInt32 = MySQLConnection.defaultWriteTimeoutSeconds,
                lockWaitSeconds: Int = MySQLConnection.defaultLockWaitSeconds) throws {
        let lockWait = min(max(1, lockWaitSeconds), MySQLConnection.maxLockWaitSeconds)
        let readTimeoutSeconds = readTimeoutSeconds
            ?? max(MySQLConnection.defaultReadTimeoutSeconds, UInt32(lockWait) + 30)
        self.url = url
        self.readTimeoutSeconds = readTimeoutSeconds
        self.writeTimeoutSeconds = writeTimeoutSeconds
        guard mysqlLibraryInitialized else {
            throw WeirError(.unsupportedLibrary, subject: "libmariadb", "mysql_library_init failed")
        }
        let start = MySQLConnection.monotonicSeconds()
        var delay = 0.1
        while true {
            let attemptStart = MySQLConnection.monotonicSeconds()
            let (h, err) = MySQLConnection.connectOnce(url, timeouts: (connectTimeoutSeconds, readTimeoutSeconds, writeTimeoutSeconds))
            if let h { handle = h; break }
            let (errno, message) = err!
            let now = MySQLConnection.monotonicSeconds()
            // A fast 2002/2003 failure is a refused connection (a slow one is a
            // timeout, which retrying would only prolong).
            let refused = (errno == 2002 || errno == 2003) && now - attemptStart < 1.0
            if refused && now - start + delay <= 3.0 {
                MySQLConnection.sleep(seconds: delay)
                delay = min(delay * 2, 1.0)
                continue
            }
            throw MySQLConnection.mapError(errno: errno, message: message, url: url)
        }
        do {
            try execute("SET time_zone = '+00:00'")
            // READ COMMITTED: no gap locks, so sink subtasks upserting interleaved keys
            // (each owns its own keys) do not deadlock on each other's index gaps.
            try execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            // A bounded wait for metadata locks (the server default is a day). A prepared
            // XA epoch holds the table's metadata lock until the sink thread commits it;
            // if DDL on the table queues behind that lock while the same thread sends the
            // next epoch's INSERT, the INSERT queues behind the DDL and nothing moves.
            // After this timeout the INSERT fails, the run restarts from its checkpoint
            // (committing the prepared epoch on recovery) and the DDL goes through.
            try execute("SET SESSION lock_wait_timeout = \(lockWait)")
            try execute("SET SESSION innodb_lock_wait_timeout = \(lockWait)")
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// `lock_wait_timeout` and `innodb_lock_wait_timeout` of the sessions Weir
    /// opens unless a sink's `lockWait` says otherwise (seconds; InnoDB's default).
    public static let defaultLockWaitSeconds = 50
    /// The longest `lockWait` (an hour): beyond it a stuck lock is better reported.
    public static let maxLockWaitSeconds = 3600

    private static func connectOnce(_ url: MySQLURL, timeouts: (connect: UInt32, read: UInt32, write: UInt32))
        -> (UnsafeMutablePointer<MYSQL>?, (UInt32, String)?) {
        guard let h = mysql_init(nil) else { return (nil, (2008, "out of memory (mysql_init)")) }
        var connect = timeouts.connect, read = timeouts.read, write = timeouts.write
        _ = mysql_options(h, MYSQL_OPT_CONNECT_TIMEOUT, &connect)
        _ = mysql_options(h, MYSQL_OPT_READ_TIMEOUT, &read)
        _ = mysql_options(h, MYSQL_OPT_WRITE_TIMEOUT, &write)
        _ = mysql_options(h, MYSQL_SET_CHARSET_NAME, "utf8mb4")
        var protocolType: UInt32 = url.socket != nil ? MYSQL_PROTOCOL_SOCKET.rawValue : MYSQL_PROTOCOL_TCP.rawValue
        _ = mysql_options(h, MYSQL_OPT_PROTOCOL, &protocolType)
        let ok = mysql_real_connect(h, url.socket == nil ? url.host : "localhost", url.user, url.password ?? "",
                                    url.database, UInt32(url.port), url.socket, 0)
        if ok == nil {
            let e = (mysql_errno(h), String(cString: mysql_error(h)))
            mysql_close(h)
            return (nil, e)
        }
        return (h, nil)
    }

    /// Closes the connection (idempotent). Uncommitted work is rolled back by the server.
    public func close() {
        if let h = handle {
            mysql_close(h)
            handle = nil
        }
    }

    /// True while the connection is open.
    public var isOpen: Bool { handle != nil }

    private func liveHandle() throws -> UnsafeMutablePointer<MYSQL> {
        guard let h = handle else {
            lastErrorNumber = 2006
            lastErrorMessage = "the connection is closed"
            throw WeirError(.mysqlUnreachable, subject: "MySQL server \(url.endpoint)", "the connection is closed")
        }
        lastErrorNumber = 0
        return h
    }

    /// Runs one statement that returns no rows (any result set is discarded).
    public func execute(_ sql: String) throws {
        var sql = sql
        try sql.withUTF8 { try execute(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Runs one prebuilt statement given as bytes (no copy, no NUL terminator needed).
    public func execute(bytes: UnsafeRawBufferPointer) throws {
        let h = try liveHandle()
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count > 0 else {
            throw WeirError(.internalError, subject: "MySQL server \(url.endpoint)", "empty statement")
        }
        if mysql_real_query(h, base, UInt(bytes.count)) != 0 {
            throw lastError(h)
        }
        // Drain a result set if the statement produced one.
        if let res = mysql_store_result(h) { mysql_free_result(res) }
        else if mysql_errno(h) != 0 { throw lastError(h) }
    }

    /// Runs one prebuilt statement given as a byte array.
    public func execute(bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try execute(bytes: $0) }
    }

    /// Runs a query and returns its column names and rows as text (nil for SQL NULL).
    /// A statement without a result set returns no columns and no rows.
    public func query(_ sql: String) throws -> (columns: [String], rows: [[String?]]) {
        let h = try liveHandle()
        var sql = sql
        let rc = sql.withUTF8 { p in
            mysql_real_query(h, UnsafeRawPointer(p.baseAddress!).assumingMemoryBound(to: CChar.self), UInt(p.count))
        }
        if rc != 0 { throw lastError(h) }
        guard let res = mysql_store_result(h) else {
            if mysql_field_count(h) == 0 { return ([], []) }
            throw lastError(h)
        }
        defer { mysql_free_result(res) }
        let n = Int(mysql_num_fields(res))
        var columns: [String] = []
        columns.reserveCapacity(n)
        if let fields = mysql_fetch_fields(res) {
            for i in 0..<n { columns.append(fields[i].name.map { String(cString: $0) } ?? "") }
        }
        var rows: [[String?]] = []
        while let row = mysql_fetch_row(res) {
            let lengths = mysql_fetch_lengths(res)
            var out: [String?] = []
            out.reserveCapacity(n)
            for i in 0..<n {
                if let cell = row[i] {
                    let len = lengths.map { Int($0[i]) } ?? Int(strlen(cell))
                    let buf = UnsafeRawBufferPointer(start: cell, count: len)
                    out.append(String(decoding: buf, as: UTF8.self))
                } else {
                    out.append(nil)
                }
            }
            rows.append(out)
        }
        if mysql_errno(h) != 0 { throw lastError(h) }
        return (columns, rows)
    }

    /// Escapes `text` for use inside a single-quoted SQL string literal on this
    /// connection (honours its character set and NO_BACKSLASH_ESCAPES).
    public func escape(_ text: String) -> String {
        guard let h = handle, !text.isEmpty else { return MySQLConnection.escapeLiteral(text) }
        var src = text
        return src.withUTF8 { p -> String in
            String(unsafeUninitializedCapacity: p.count * 2 + 1) { out -> Int in
                out.withMemoryRebound(to: CChar.self) { o in
                    p.withMemoryRebound(to: CChar.self) { i in
                        Int(mysql_real_escape_string(h, o.baseAddress!, i.baseAddress!, UInt(i.count)))
                    }
                }
            }
        }
    }

    /// Escapes `text` for a single-quoted literal without a connection
    /// (backslash style; valid unless the server runs with NO_BACKSLASH_ESCAPES).
    public static func escapeLiteral(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for ch in text.unicodeScalars {
            switch ch {
            case "\0": out += "\\0"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\u{1A}": out += "\\Z"
            case "'": out += "\\'"
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// Quotes an identifier with backticks (doubling any backtick inside).
    public static func quoteIdentifier(_ name: String) -> String {
        "`" + name.replacing("`", with: "``") + "`"
    }

    /// Turns autocommit on or off for this session.
    public func setAutocommit(_ on: Bool) throws {
        let h = try liveHandle()
        if mysql_autocommit(h, on ? 1 : 0) != 0 { throw lastError(h) }
    }

    /// Commits the current transaction.
    public func commit() throws {
        let h = try liveHandle()
        if mysql_commit(h) != 0 { throw lastError(h) }
    }

    /// Rolls back the current transaction.
    public func rollback() throws {
        let h = try liveHandle()
        if mysql_rollback(h) != 0 { throw lastError(h) }
    }

    /// The server's version string, e.g. `10.11.6-MariaDB`.
    public var serverVersion: String {
        guard let h = handle, let v = mysql_get_server_info(h) else { return "" }
        return String(cString: v)
    }

    /// The server's id of this session (`CONNECTION_ID()`, what `KILL` takes); 0 when closed.
    public var serverConnectionId: UInt64 {
        guard let h = handle else { return 0 }
        return UInt64(mysql_thread_id(h))
    }

    /// True when the last failure means the session is gone (or never came):
    /// server gone away, connection lost or killed, cannot connect.
    /// Work the session had not prepared is rolled back by the server.
    public var lastErrorIsConnectionLoss: Bool {
        MySQLConnection.isConnectionLoss(lastErrorNumber)
    }

    static func isConnectionLoss(_ errno: UInt32) -> Bool {
        switch errno {
        case 2002, 2003, 2005, 2006, 2013, 2055, 1927, 4031: return true
        default: return false
        }
    }

    private func lastError(_ h: UnsafeMutablePointer<MYSQL>) -> WeirError {
        lastErrorNumber = mysql_errno(h)
        lastErrorMessage = String(cString: mysql_error(h))
        return MySQLConnection.mapError(errno: lastErrorNumber, message: lastErrorMessage, url: url)
    }

    /// Maps a client/server error number to a `WeirError`. The message is the
    /// server's or client library's own text, which never contains the password.
    static func mapError(errno: UInt32, message: String, url: MySQLURL) -> WeirError {
        let server = "MySQL server \(url.endpoint)"
        switch errno {
        case 1045, 1698, 1044, 1142, 1143:
            let what = errno == 1045 || errno == 1698 ? "access denied" : "permission denied"
            return WeirError(.accessDenied, subject: "MySQL user '\(url.user)'@\(url.host)",
                             "\(what): \(message) (error \(errno))",
                             suggestion: errno == 1045 || errno == 1698
                                ? "check the user name and password in the url, and that the user may connect from this host"
                                : "grant the user the privileges it needs, e.g. GRANT SELECT, INSERT, UPDATE ON `\(url.database)`.* TO '\(url.user)'@'%'")
        case 2002, 2003, 2005, 2006, 2013, 2055:
            return WeirError(.mysqlUnreachable, subject: server, "\(message) (error \(errno))",
                             suggestion: url.socket == nil
                                ? "check the server is running and listening on \(url.endpoint) (for the test servers: scripts/servers.sh start)"
                                : "check the server is running and the socket path is right")
        case 1049:
            return WeirError(.mysql, subject: "database `\(url.database)` on \(server)",
                             "does not exist (\(message), error \(errno))",
                             suggestion: "create it with CREATE DATABASE `\(url.database)`, or fix the database in the url")
        case 1146:
            return WeirError(.tableMissing, subject: server, "\(message) (error \(errno))")
        case 1054:
            return WeirError(.columnMismatch, subject: server, "\(message) (error \(errno))")
        case 1205:
            return WeirError(.lockWaitTimeout, subject: server, "\(message) (error \(errno))",
                             suggestion: "another transaction holds locks on the rows, or DDL (ALTER/LOCK TABLES) waits for the table; let it finish, or raise innodb_lock_wait_timeout")
        case 1153:
            return WeirError(.mysql, subject: server, "\(message) (error \(errno))",
                             suggestion: "raise the server's max_allowed_packet or lower batchSize")
        default:
            return WeirError(.mysql, subject: server, "\(message) (error \(errno))")
        }
    }

    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func sleep(seconds: Double) {
        var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var rem = timespec()
        while nanosleep(&ts, &rem) != 0 && errno == EINTR { ts = rem }
    }
}
