import Foundation
import Synchronization
import Yams

/// Keeps passwords and other secrets out of everything the control plane shows.
///
/// Specs carry credentials inside connection URLs (`mysql://user:PASSWORD@host/db`)
/// and in client properties (`sasl.password`). The stored copy a run uses keeps
/// them; every API response, log excerpt and server log line goes through
/// `mask`, which replaces them with `***`, two ways:
///
/// - **by parsing**: a URL's password is everything between the first `:` of
///   its user info and the *last* `@` of the URL, exactly as `MySQLURL` reads
///   it, so `/`, `@` and `:` inside a password are covered; `password:`-like
///   fields are masked up to their end;
/// - **by value**: the secrets of every spec the server stores are parsed
///   out of it (`register(spec:)`) and every occurrence of them, raw,
///   percent-decoded or JSON-escaped, is masked wherever it appears (a
///   password with spaces or quotes, or one quoted in an error message).
///
/// `unmask` lets a client send back a spec it read (with `***`) without losing
/// the stored password.
public enum Masking {
    /// The text shown instead of a password.
    public static let placeholder = "***"

    /// Secrets known from stored specs, longest first (a longer one may contain a shorter).
    private static let known = Mutex<[String]>([])
    /// Shorter secrets are left to the structural rules: masking every "ab" in every text would destroy it.
    static let minimumKnownLength = 3

    // password: value / "sasl.password": "value" / client.secret=value in YAML, JSON or query strings.
    private static let secretField =
        try! NSRegularExpression(pattern: #"((?:"|')?\b[\w.-]*(?:password|passwd|pwd|secret)(?:"|')?\s*[:=]\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[^\s,;)}&#]+)"#,
                                 options: [.caseInsensitive])

    /// `text` with every password replaced by `***`.
    public static func mask(_ text: String) -> String {
        var out = text
        let secrets = known.withLock { $0 }
        for s in secrets where out.contains(s) {
            out = out.replacingOccurrences(of: s, with: placeholder)
        }
        if out.contains("//") || out.contains(#":\/\/"#) { out = maskURLPasswords(out) }
        if out.range(of: "pass", options: .caseInsensitive) != nil || out.range(of: "pwd", options: .caseInsensitive) != nil
            || out.range(of: "secret", options: .caseInsensitive) != nil {
            out = maskSecretFields(out)
        }
        return out
    }

    /// Every string in `value` masked (a response body, whatever its shape).
    public static func mask(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let s): return .string(mask(s))
        case .array(let a): return .array(a.map(mask))
        case .object(let o): return .object(o.mapValues(mask))
        default: return value
        }
    }

    // MARK: Known secrets

    /// Learns the secrets of a spec (YAML or JSON): every URL's password and
    /// every `password`/`secret` field or client property, so that `mask`
    /// finds them anywhere, in any of the forms they are written in.
    public static func register(spec: String) {
        var found: [String] = []
        for credential in urlCredentials(in: spec) { found.append(String(spec[credential.password])) }
        if let tree = try? Yams.load(yaml: spec) { collectSecrets(tree, key: nil, into: &found) }
        var forms = Set<String>()
        for s in found where s != placeholder {
            let decoded = s.removingPercentEncoding ?? s
            for f in [s, decoded, jsonEscaped(s), jsonEscaped(decoded)] where f.count >= minimumKnownLength && f != placeholder {
                forms.insert(f)
            }
        }
        guard !forms.isEmpty else { return }
        known.withLock { list in
            var all = Set(list)
            all.formUnion(forms)
            list = all.sorted { $0.count != $1.count ? $0.count > $1.count : $0 < $1 }
        }
    }

    private static func collectSecrets(_ node: Any, key: String?, into found: inout [String]) {
        switch node {
        case let d as [String: Any]:
            for (k, v) in d { collectSecrets(v, key: k, into: &found) }
        case let a as [Any]:
            for v in a { collectSecrets(v, key: key, into: &found) }
        case let s as String:
            if let key, isSecretKey(key) { found.append(s) }
            // A value is one URL, spaces and quotes in its password included.
            for c in urlCredentials(in: s, wholeValue: true) { found.append(String(s[c.password])) }
        default:
            if let key, isSecretKey(key) { found.append("\(node)") }
        }
    }

    private static func isSecretKey(_ key: String) -> Bool {
        let k = key.lowercased()
        return k.contains("password") || k.contains("passwd") || k.hasSuffix("pwd") || k.contains("secret")
    }

    private static func jsonEscaped(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "/", with: "\\/")
    }

    // MARK: By parsing

    /// Where a URL's parts are: `scheme://user:password@rest`.
    struct Credential {
        var prefix: Range<String.Index>    // scheme://user
        var password: Range<String.Index>
        var rest: Range<String.Index>      // after the last '@', to the end of the URL
    }

    /// Every `scheme://user:password@…` in `text` (also JSON's `scheme:\/\/…`).
    /// A URL ends at whitespace or a quote; its password runs from the first
    /// `:` of the user info to the URL's last `@`.
    /// With `wholeValue`, `text` is one URL (a parsed spec value): it ends where the text does.
    static func urlCredentials(in text: String, wholeValue: Bool = false) -> [Credential] {
        var found: [Credential] = []
        var searchFrom = text.startIndex
        while let sep = nextSeparator(in: text, from: searchFrom) {
            searchFrom = sep.upperBound
            // The scheme: letters, digits, + . - back from the separator, starting with a letter.
            var schemeStart = sep.lowerBound
            while schemeStart > text.startIndex {
                let c = text[text.index(before: schemeStart)]
                guard c.isASCII && (c.isLetter || c.isNumber || c == "+" || c == "." || c == "-") else { break }
                schemeStart = text.index(before: schemeStart)
            }
            guard schemeStart < sep.lowerBound, text[schemeStart].isLetter else { continue }
            let end = wholeValue ? text.endIndex : text[sep.upperBound...].firstIndex { $0.isWhitespace || $0 == "\"" || $0 == "'" } ?? text.endIndex
            let url = sep.upperBound..<end
            guard let at = text[url].lastIndex(of: "@"), let colon = text[sep.upperBound..<at].firstIndex(of: ":") else { continue }
            let afterColon = text.index(after: colon)
            found.append(Credential(prefix: schemeStart..<colon, password: afterColon..<at, rest: text.index(after: at)..<end))
            searchFrom = end
        }
        return found
    }

    private static func nextSeparator(in text: String, from: String.Index) -> Range<String.Index>? {
        let a = text.range(of: "://", range: from..<text.endIndex)
        let b = text.range(of: #":\/\/"#, range: from..<text.endIndex)
        switch (a, b) {
        case let (a?, b?): return a.lowerBound <= b.lowerBound ? a : b
        case let (a?, nil): return a
        case let (nil, b?): return b
        default: return nil
        }
    }

    private static func maskURLPasswords(_ text: String) -> String {
        var out = ""
        var last = text.startIndex
        for c in urlCredentials(in: text) where !c.password.isEmpty && text[c.password] != placeholder {
            out += text[last..<c.password.lowerBound] + placeholder
            last = c.password.upperBound
        }
        return last == text.startIndex ? text : out + text[last...]
    }

    private static func maskSecretFields(_ text: String) -> String {
        let ns = text as NSString
        var result = ""
        var last = 0
        for m in secretField.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
            let valueRange = m.range(at: 2)
            let value = ns.substring(with: valueRange)
            // MySQL's "(using password: YES)" says whether one was sent, not what it is.
            if value == "YES" || value == "NO" || value == placeholder || value == "\"\(placeholder)\"" { continue }
            result += ns.substring(with: NSRange(location: last, length: valueRange.location - last))
            if value.hasPrefix("\"") { result += "\"\(placeholder)\"" }
            else if value.hasPrefix("'") { result += "'\(placeholder)'" }
            else { result += placeholder }
            last = valueRange.location + valueRange.length
        }
        return last == 0 ? text : result + ns.substring(from: last)
    }

    // MARK: Unmasking

    /// Restores real passwords in `edited` where it shows `***` for a URL
    /// whose scheme, user and rest appear with a real password in `original`
    /// (a draft read through the API and sent back unchanged keeps working).
    public static func unmask(_ edited: String, original: String) -> String {
        guard edited.contains(placeholder) else { return edited }
        var known: [String: String] = [:]
        for c in urlCredentials(in: original) where original[c.password] != placeholder {
            known[String(original[c.prefix]) + "@" + String(original[c.rest])] = String(original[c.password])
        }
        guard !known.isEmpty else { return edited }
        var out = ""
        var last = edited.startIndex
        for c in urlCredentials(in: edited) where edited[c.password] == placeholder {
            guard let pw = known[String(edited[c.prefix]) + "@" + String(edited[c.rest])] else { continue }
            out += edited[last..<c.password.lowerBound] + pw
            last = c.password.upperBound
        }
        return last == edited.startIndex ? edited : out + edited[last...]
    }
}
