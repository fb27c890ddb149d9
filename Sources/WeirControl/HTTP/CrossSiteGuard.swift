/// Keeps web pages from driving the server: a page the user opens can send
/// requests to `127.0.0.1`, and through DNS rebinding can even read the
/// answers, token or not.
///
/// - The `Host` must name the listener: for a loopback listener, `127.0.0.1`,
///   `localhost` or `[::1]` with its port; for any other, an IP address or a
///   name given with `--allow-host`. A rebinding page's own domain fails.
/// - An `Origin`, when sent, must be the console's own (`http://` + that
///   Host); browsers send one with every POST, PUT and DELETE, so a foreign
///   page's request is refused before it is read.
/// - `Sec-Fetch-Site: cross-site` on the API is refused too.
///
/// Pure: headers in, refusal out. Content types are checked where the body
/// is read (`ContractMiddleware`).
struct CrossSiteGuard: Sendable {
    /// The listener's host (as given to `--listen`) and port.
    var host: String
    var port: Int
    /// Extra host names accepted in `Host` (`weir server --allow-host`).
    var allowedHosts: Set<String> = []

    /// Why a request with these headers is refused (nil: it may go on).
    func refusal(host requestHost: String?, origin: String?, fetchSite: String?, isAPI: Bool) -> APIError? {
        guard let requestHost, let authority = Authority(requestHost), accepts(authority) else {
            return APIError(403, "forbidden", "the Host header \(requestHost.map { "'\($0)'" } ?? "(none)") does not name this server",
                            suggestion: "use the address the server listens on (for example http://127.0.0.1:\(port)); for another name, start the server with --allow-host NAME")
        }
        if let origin, origin != "http://\(requestHost.lowercased())" {
            return APIError(403, "forbidden", "cross-site request refused: Origin '\(origin)' is not this server's",
                            suggestion: "use the console served by this server, or `weir job` (neither is cross-site)")
        }
        if isAPI, fetchSite?.lowercased() == "cross-site" {
            return APIError(403, "forbidden", "cross-site request refused (Sec-Fetch-Site: cross-site)",
                            suggestion: "use the console served by this server, or `weir job`")
        }
        return nil
    }

    private func accepts(_ a: Authority) -> Bool {
        guard a.port == port else { return false }
        let listen = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        if ControlServer.isLoopback(listen) {
            return ControlServer.isLoopback(a.host) || a.host == listen || allowedHosts.contains(a.host)
        }
        if a.host == listen || allowedHosts.contains(a.host) { return true }
        // A wildcard or other listener: addresses yes, names only when allowed (rebinding uses names).
        return a.isIPAddress
    }

    /// `host[:port]` of a Host header, lowercased, brackets removed.
    struct Authority: Equatable {
        var host: String
        var port: Int

        init?(_ text: String) {
            let t = text.lowercased()
            if t.hasPrefix("[") {
                guard let close = t.firstIndex(of: "]") else { return nil }
                host = String(t[t.index(after: t.startIndex)..<close])
                let rest = t[t.index(after: close)...]
                if rest.isEmpty { port = 80 } else {
                    guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()), (1...65535).contains(p) else { return nil }
                    port = p
                }
            } else if let colon = t.lastIndex(of: ":") {
                host = String(t[..<colon])
                guard let p = Int(t[t.index(after: colon)...]), (1...65535).contains(p) else { return nil }
                port = p
            } else {
                host = t
                port = 80
            }
            guard !host.isEmpty, host.unicodeScalars.allSatisfy({ $0.isASCII && !$0.properties.isWhitespace }) else { return nil }
        }

        var isIPAddress: Bool {
            if host.contains(":") { return host.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." } }
            let parts = host.split(separator: ".", omittingEmptySubsequences: false)
            return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
        }
    }
}

import Foundation
