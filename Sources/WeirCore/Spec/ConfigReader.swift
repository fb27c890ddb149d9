/// A path-aware reader over one mapping of a parsed job spec.
///
/// Core node kinds and connectors both read their configuration through it,
/// so every error carries its location (`nodes[2].kafka.topic: ...`) and
/// unknown keys are reported with a "did you mean" hint.
public struct ConfigReader: @unchecked Sendable {
    // @unchecked: `mapping` holds only immutable scalars, arrays and SpecMappings.
    public let path: String
    public let mapping: SpecMapping
    public var raw: [String: Any] { mapping.dictionary }
    private var seen: Set<String> = []
    public private(set) var errors: [WeirError] = []

    public init(path: String, mapping: SpecMapping) {
        self.path = path
        self.mapping = mapping
    }

    public func sub(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    public mutating func fail(_ key: String?, _ message: String) {
        errors.append(.spec(key.map(sub) ?? path, message))
    }

    public mutating func has(_ key: String) -> Bool { seen.insert(key); return raw[key] != nil }

    public mutating func string(_ key: String, required: Bool = false) -> String? {
        seen.insert(key)
        guard let v = raw[key] else {
            if required { fail(key, "missing required field '\(key)'") }
            return nil
        }
        if let s = v as? String { return s }
        if let i = v as? Int { return String(i) }
        if let d = v as? Double { return String(d) }
        if let b = v as? Bool { return String(b) }
        fail(key, "expected a string")
        return nil
    }

    public mutating func int(_ key: String, required: Bool = false) -> Int? {
        seen.insert(key)
        guard let v = raw[key] else {
            if required { fail(key, "missing required field '\(key)'") }
            return nil
        }
        if let i = v as? Int { return i }
        if let s = v as? String, let i = Int(s) { return i }
        fail(key, "expected an integer")
        return nil
    }

    public mutating func bool(_ key: String) -> Bool? {
        seen.insert(key)
        guard let v = raw[key] else { return nil }
        if let b = v as? Bool { return b }
        fail(key, "expected true or false")
        return nil
    }

    /// A duration such as `500ms`, `2s`, `5m`, `1h`, or a bare number of milliseconds.
    public mutating func durationMillis(_ key: String, required: Bool = false) -> Int64? {
        guard let s = string(key, required: required) else { return nil }
        if let ms = parseDurationMillis(s) { return ms }
        if durationIsOutOfRange(s) {
            fail(key, "\(s) is out of range (at most \(maxDurationMillis / 86_400_000)d)")
            return nil
        }
        fail(key, "'\(s)' is not a duration (use e.g. 500ms, 2s, 5m, 1h)")
        return nil
    }

    public mutating func stringList(_ key: String, required: Bool = false) -> [String]? {
        seen.insert(key)
        guard let v = raw[key] else {
            if required { fail(key, "missing required field '\(key)'") }
            return nil
        }
        if let s = v as? String { return [s] }
        if let a = v as? [Any] {
            var out: [String] = []
            for (i, e) in a.enumerated() {
                if let s = e as? String { out.append(s) } else { fail("\(key)[\(i)]", "expected a string"); return nil }
            }
            return out
        }
        fail(key, "expected a list of strings")
        return nil
    }

    /// A nested mapping, as its own reader (its errors must be merged back with `absorb`).
    public mutating func mapping(_ key: String, required: Bool = false) -> ConfigReader? {
        seen.insert(key)
        guard let v = raw[key] else {
            if required { fail(key, "missing required field '\(key)'") }
            return nil
        }
        if let m = v as? SpecMapping { return ConfigReader(path: sub(key), mapping: m) }
        fail(key, "expected a mapping")
        return nil
    }

    /// An ordered mapping of string values (`aggregate: {cnt: "count()"}`), preserving spec order.
    public mutating func orderedStrings(_ key: String, required: Bool = false) -> [(String, String)]? {
        seen.insert(key)
        guard let v = raw[key] else {
            if required { fail(key, "missing required field '\(key)'") }
            return nil
        }
        if let m = v as? SpecMapping {
            var out: [(String, String)] = []
            for (k, e) in m.pairs {
                if let s = e as? String { out.append((k, s)) }
                else if let i = e as? Int { out.append((k, String(i))) }
                else { fail("\(key).\(k)", "expected an expression string"); return nil }
            }
            return out
        }
        fail(key, "expected a mapping of name: expression")
        return nil
    }

    /// Merges a nested reader's errors (including its unknown keys) into this one.
    public mutating func absorb(_ other: ConfigReader, allowed: [String]? = nil) {
        var o = other
        if let allowed { o.rejectUnknown(allowed) }
        errors.append(contentsOf: o.errors)
    }

    /// Reports every key that was never read as unknown, with a suggestion.
    public mutating func rejectUnknown(_ allowed: [String]? = nil) {
        let known = allowed.map(Set.init) ?? seen
        for (key, _) in mapping.pairs where !known.contains(key) {
            var msg = "unknown field '\(key)'"
            if let best = closestMatch(key, in: Array(known)) { msg += " (did you mean '\(best)'?)" }
            errors.append(.spec(sub(key), msg))
        }
    }
}

/// The longest duration a spec may give (ten years): window sizes, gaps and
/// timeouts stay far from Int64's range, so no arithmetic on them can overflow.
public let maxDurationMillis: Int64 = 3650 * 86_400_000

/// Parses `500ms`, `2s`, `1.5s`, `5m`, `1h`, `1d` or a bare millisecond count;
/// nil for anything else, including durations above `maxDurationMillis`.
public func parseDurationMillis(_ text: String) -> Int64? {
    guard let d = durationValue(text), d <= Double(maxDurationMillis) else { return nil }
    return Int64(d)
}

/// A well-formed duration that is too long (`1e300s`).
package func durationIsOutOfRange(_ text: String) -> Bool {
    guard let d = durationValue(text) else { return false }
    return d > Double(maxDurationMillis)
}

private func durationValue(_ text: String) -> Double? {
    let s = text.trimmingCharacters(in: .whitespaces).lowercased()
    let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
    for (suffix, factor) in units where s.hasSuffix(suffix) {
        let num = s.dropLast(suffix.count)
        if let d = Double(num), d >= 0, d.isFinite { return (d * factor).rounded(.down) }
    }
    if let d = Double(s), d >= 0, d.isFinite, d.rounded() == d { return d }
    return nil
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a likely typo.
public func closestMatch(_ word: String, in candidates: [String]) -> String? {
    var best: (String, Int)?
    for c in candidates {
        let d = editDistance(word.lowercased(), c.lowercased())
        if d <= max(1, min(3, c.count / 2)), best == nil || d < best!.1 { best = (c, d) }
    }
    return best?.0
}

package func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev = Array(0...b.count), cur = Array(repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}

import Foundation
