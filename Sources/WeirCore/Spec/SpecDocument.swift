import Yams

/// A mapping from a parsed spec, keeping the order keys were written in
/// (aggregate outputs and select fields keep the user's column order).
public struct SpecMapping: @unchecked Sendable {
    // @unchecked: values are immutable scalars (String/Int/Double/Bool/NSNull), [Any] and SpecMapping.
    public var pairs: [(String, Any)]
    public let dictionary: [String: Any]

    public init(_ pairs: [(String, Any)]) {
        self.pairs = pairs
        var d: [String: Any] = [:]
        for (k, v) in pairs where d[k] == nil { d[k] = v }
        self.dictionary = d
    }

    public subscript(key: String) -> Any? { dictionary[key] }
}

/// Marker for an explicit `null` in a spec.
public struct SpecNull: Sendable {}

/// Parses YAML (or JSON, which YAML accepts) into plain values: `String`,
/// `Int`, `Double`, `Bool`, `SpecNull`, `[Any]` and `SpecMapping`.
public enum SpecDocument {
    public static func parse(_ text: String) throws -> SpecMapping {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            throw WeirError.spec("spec", "not valid YAML/JSON: \(e)")
        }
        guard let node else { throw WeirError.spec("spec", "the document is empty") }
        guard let m = convert(node) as? SpecMapping else {
            throw WeirError.spec("spec", "the document must be a mapping with 'name' and 'nodes'")
        }
        return m
    }

    package static func convert(_ node: Node) -> Any {
        switch node {
        case .scalar(let s):
            if s.style == .plain || s.style == .any {
                if s.string == "null" || s.string == "~" || s.string.isEmpty { return SpecNull() }
                if let b = node.bool { return b }
                if let i = node.int { return i }
                if let d = node.float { return d }
            }
            return s.string
        case .mapping(let m):
            return SpecMapping(m.map { (k, v) in (k.string ?? "\(k)", convert(v)) })
        case .sequence(let seq):
            return seq.map(convert)
        case .alias:
            return SpecNull()
        }
    }
}
