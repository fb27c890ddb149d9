import WeirCore

/// The parsed form of a sink's `url:` setting,
/// `mysql://user[:password]@host[:port]/database[?socket=/path]`.
///
/// It exists so that the connection settings are validated once, when the job
/// spec is read, and so that every place that needs to show the URL (errors,
/// logs, `weir describe`) uses `redacted`, which never contains the password.
/// `description`, `debugDescription` and the reflection mirror are all
/// redacted too, so interpolating or dumping a `MySQLURL` cannot leak it.
public struct MySQLURL: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The MySQL user name (percent-decoded).
    public var user: String
    /// The password (percent-decoded); nil when the URL has none.
    public var password: String?
    /// Host name or IP address (IPv6 without its brackets).
    public var host: String
    /// TCP port (3306 when the URL does not give one).
    public var port: Int
    /// The default database; sink tables are looked up in it.
    public var database: String
    /// Unix socket path from `?socket=`; when set the connection uses it instead of TCP.
    public var socket: String?
    /// The URL as written, with the password (if any) replaced by `***`.
    public let redacted: String

    /// The port used when the URL gives none.
    public static let defaultPort = 3306

    /// Parses a `mysql://` (or `mariadb://`) URL. Errors are `.invalidSpec`
    /// with subject `url` and never contain the password.
    public init(_ text: String) throws {
        func bad(_ msg: String) -> WeirError {
            WeirError(.invalidSpec, subject: "url", msg,
                      suggestion: "use mysql://user[:password]@host[:port]/database[?socket=/path]")
        }
        let scalars = Array(text.utf8)
        var start = 0
        var schemeFound = false
        for scheme in ["mysql://", "mariadb://"] {
            let s = Array(scheme.utf8)
            if scalars.count >= s.count,
               zip(scalars[0..<s.count], s).allSatisfy({ asciiLower($0) == $1 }) {
                start = s.count
                schemeFound = true
                break
            }
        }
        guard schemeFound else { throw bad("the URL must start with mysql://") }

        // The user info ends at the last '@' (an unencoded '@' in a password is tolerated).
        guard let at = scalars[start...].lastIndex(of: UInt8(ascii: "@")) else {
            throw bad("the URL has no user (expected user[:password]@ before the host)")
        }
        let userInfo = scalars[start..<at]
        var passwordRange: Range<Int>?
        let userBytes: ArraySlice<UInt8>
        if let colon = userInfo.firstIndex(of: UInt8(ascii: ":")) {
            userBytes = scalars[start..<colon]
            passwordRange = (colon + 1)..<at
        } else {
            userBytes = userInfo
        }
        guard let user = percentDecode(userBytes), !user.isEmpty else {
            throw bad(userBytes.isEmpty ? "the URL has an empty user name" : "the user name is not validly percent-encoded")
        }
        var password: String?
        if let r = passwordRange {
            guard let p = percentDecode(scalars[r]) else {
                throw bad("the password is not validly percent-encoded")
            }
            password = p
        }

        // Redacted form: the original text with the password bytes replaced.
        if let r = passwordRange {
            redacted = String(decoding: scalars[0..<r.lowerBound], as: UTF8.self) + "***"
                + String(decoding: scalars[r.upperBound...], as: UTF8.self)
        } else {
            redacted = text
        }

        // host[:port]/database[?query]
        var rest = scalars[(at + 1)...]
        var query: ArraySlice<UInt8> = []
        if let q = rest.firstIndex(of: UInt8(ascii: "?")) {
            query = scalars[(q + 1)..<rest.endIndex]
            rest = scalars[rest.startIndex..<q]
        }
        guard let slash = rest.firstIndex(of: UInt8(ascii: "/")) else {
            throw bad("the URL has no database (expected /database after the host)")
        }
        let hostPort = scalars[rest.startIndex..<slash]
        let dbBytes = scalars[(slash + 1)..<rest.endIndex]

        var hostBytes = hostPort
        var portBytes: ArraySlice<UInt8>?
        if hostPort.first == UInt8(ascii: "[") {
            guard let close = hostPort.firstIndex(of: UInt8(ascii: "]")) else {
                throw bad("unterminated IPv6 address (missing ']')")
            }
            hostBytes = scalars[(hostPort.startIndex + 1)..<close]
            let after = scalars[(close + 1)..<hostPort.endIndex]
            if let c = after.first {
                guard c == UInt8(ascii: ":") else { throw bad("unexpected text after the IPv6 address") }
                portBytes = after.dropFirst()
            }
        } else if let colon = hostPort.lastIndex(of: UInt8(ascii: ":")) {
            hostBytes = scalars[hostPort.startIndex..<colon]
            portBytes = scalars[(colon + 1)..<hostPort.endIndex]
        }
        guard let host = percentDecode(hostBytes), !host.isEmpty else { throw bad("the URL has no host") }
        var port = MySQLURL.defaultPort
        if let pb = portBytes {
            guard !pb.isEmpty, pb.count <= 5, pb.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                  let p = Int(String(decoding: pb, as: UTF8.self)), (1...65535).contains(p) else {
                throw bad("the port '\(String(decoding: pb, as: UTF8.self))' is not a number between 1 and 65535")
            }
            port = p
        }
        guard !dbBytes.isEmpty else { throw bad("the URL has no database (expected /database after the host)") }
        guard let database = percentDecode(dbBytes), !database.contains("/") else {
            throw bad("the database name is not valid")
        }

        var socket: String?
        if !query.isEmpty {
            for pair in query.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
                let eq = pair.firstIndex(of: UInt8(ascii: "=")) ?? pair.endIndex
                let key = String(decoding: pair[pair.startIndex..<eq], as: UTF8.self)
                let value = eq < pair.endIndex ? pair[(eq + 1)...] : []
                switch key {
                case "socket":
                    guard let s = percentDecode(value), !s.isEmpty else { throw bad("the socket path is empty or not validly percent-encoded") }
                    socket = s
                default:
                    throw bad("unknown URL parameter '\(key)' (supported: socket)")
                }
            }
        }

        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.database = database
        self.socket = socket
    }

    /// `host:port` (or the socket path), as shown in error subjects.
    public var endpoint: String {
        if let socket { return "\(host) (socket \(socket))" }
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    public var description: String { redacted }
    public var debugDescription: String { "MySQLURL(\(redacted))" }
    public var customMirror: Mirror {
        Mirror(self, children: ["user": user, "host": host, "port": port, "database": database,
                                "socket": socket as Any, "redacted": redacted])
    }
}

@inline(__always) private func asciiLower(_ b: UInt8) -> UInt8 {
    (b >= 65 && b <= 90) ? b + 32 : b
}

/// Decodes `%XX` escapes; nil when an escape is malformed or the result is not UTF-8.
func percentDecode(_ bytes: ArraySlice<UInt8>) -> String? {
    guard bytes.contains(UInt8(ascii: "%")) else { return String(validating: bytes, as: UTF8.self) }
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    var i = bytes.startIndex
    func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case 48...57: return b - 48
        case 65...70: return b - 55
        case 97...102: return b - 87
        default: return nil
        }
    }
    while i < bytes.endIndex {
        let b = bytes[i]
        if b == UInt8(ascii: "%") {
            guard i + 2 < bytes.endIndex,
                  let hi = hex(bytes[i + 1]), let lo = hex(bytes[i + 2]) else { return nil }
            out.append(hi << 4 | lo)
            i += 3
        } else {
            out.append(b)
            i += 1
        }
    }
    return String(validating: out, as: UTF8.self)
}
