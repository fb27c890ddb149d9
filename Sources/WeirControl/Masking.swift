import Foundation

/// Keeps database passwords out of everything the control plane shows.
///
/// Specs carry credentials inside connection URLs
/// (`mysql://user:PASSWORD@host/db`). The stored copy a run uses keeps the
/// real password; every API response, log excerpt and server log line goes
/// through `mask`, which replaces it with `***`. `unmask` lets a client send
/// back a spec it read (with `***`) without losing the stored password.
public enum Masking {
    /// The text shown instead of a password.
    public static let placeholder = "***"

    // scheme://user:password@ — the password is everything up to the last '@'
    // before the host part (passwords may not contain whitespace, '/' or quotes here).
    private static let urlPassword =
        try! NSRegularExpression(pattern: #"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'"]*):([^\s/'"]*)@"#)
    // password: value / "password": "value" / password=value in YAML, JSON or query strings.
    private static let passwordField =
        try! NSRegularExpression(pattern: #"((?:"|')?\b(?:password|passwd|pwd)(?:"|')?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;)}&#]+)"#,
                                 options: [.caseInsensitive])

    /// `text` with every password replaced by `***`.
    public static func mask(_ text: String) -> String {
        guard text.contains("@") || text.range(of: "pass", options: .caseInsensitive) != nil
                || text.range(of: "pwd", options: .caseInsensitive) != nil else { return text }
        let ns = text as NSString
        var out = urlPassword.stringByReplacingMatches(in: text, range: NSRange(location: 0, length: ns.length),
                                                       withTemplate: "$1:\(placeholder)@")
        let ns2 = out as NSString
        var result = ""
        var last = 0
        for m in passwordField.matches(in: out, range: NSRange(location: 0, length: ns2.length)) {
            let valueRange = m.range(at: 2)
            let value = ns2.substring(with: valueRange)
            // MySQL's "(using password: YES)" says whether one was sent, not what it is.
            if value == "YES" || value == "NO" { continue }
            result += ns2.substring(with: NSRange(location: last, length: valueRange.location - last))
            if value.hasPrefix("\"") { result += "\"\(placeholder)\"" }
            else if value.hasPrefix("'") { result += "'\(placeholder)'" }
            else { result += placeholder }
            last = valueRange.location + valueRange.length
        }
        if last > 0 {
            result += ns2.substring(from: last)
            out = result
        }
        return out
    }

    /// Restores real passwords in `edited` where it shows `***` for a URL
    /// whose scheme, user and host appear with a real password in `original`
    /// (a draft read through the API and sent back unchanged keeps working).
    public static func unmask(_ edited: String, original: String) -> String {
        guard edited.contains(":\(placeholder)@") else { return edited }
        // key: "scheme://user@rest-up-to-whitespace" → password
        var known: [String: String] = [:]
        let ons = original as NSString
        let full = try! NSRegularExpression(pattern: #"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'"]*):([^\s/'"]*)@([^\s'"]*)"#)
        for m in full.matches(in: original, range: NSRange(location: 0, length: ons.length)) {
            let key = ons.substring(with: m.range(at: 1)) + "@" + ons.substring(with: m.range(at: 3))
            let pw = ons.substring(with: m.range(at: 2))
            if pw != placeholder { known[key] = pw }
        }
        guard !known.isEmpty else { return edited }
        let ens = edited as NSString
        var result = ""
        var last = 0
        for m in full.matches(in: edited, range: NSRange(location: 0, length: ens.length)) {
            let pwRange = m.range(at: 2)
            guard ens.substring(with: pwRange) == placeholder else { continue }
            let key = ens.substring(with: m.range(at: 1)) + "@" + ens.substring(with: m.range(at: 3))
            guard let pw = known[key] else { continue }
            result += ens.substring(with: NSRange(location: last, length: pwRange.location - last)) + pw
            last = pwRange.location + pwRange.length
        }
        if last == 0 { return edited }
        return result + ens.substring(from: last)
    }
}
