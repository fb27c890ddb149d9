import Foundation
import WeirAPI
import Yams

/// The contract document at run time: served at `/openapi.json` (converted
/// from the YAML the code is generated from), and read to put back the
/// explicit `null`s that the generated encoders leave out.
///
/// The document promises every required field, `null` when it has no value
/// (`"run": null` for a job that is not running); clients rely on it.
/// swift-openapi-generator encodes a nil optional by omitting the key
/// (its issue 934), so each JSON answer is completed from its schema here.
enum OpenAPIDocument {
    static let json: JSONValue = {
        do { return try YAMLDecoder().decode(JSONValue.self, from: WeirAPIDocument.yaml) } catch {
            fatalError("Sources/WeirAPI/openapi.yaml does not load: \(error)")   // it compiled into this binary
        }
    }()

    /// Response schemas by operation id and status ("default" for the rest).
    private static let responses: [String: [String: JSONValue]] = {
        var out: [String: [String: JSONValue]] = [:]
        for (_, item) in json["paths"]?.object ?? [:] {
            for (_, op) in item.object ?? [:] {
                guard let id = op["operationId"]?.string else { continue }
                var bySatus: [String: JSONValue] = [:]
                for (status, response) in op["responses"]?.object ?? [:] {
                    if let schema = resolve(response)["content"]?["application/json"]?["schema"] { bySatus[status] = schema }
                }
                out[id] = bySatus
            }
        }
        return out
    }()

    /// `value` with `null` in every required nullable field it leaves out.
    static func withExplicitNulls(_ value: JSONValue, operationID: String, status: Int) -> JSONValue {
        guard let schemas = responses[operationID], let schema = schemas[String(status)] ?? schemas["default"] else { return value }
        return fill(value, schema, depth: 0)
    }

    private static func fill(_ value: JSONValue, _ schema: JSONValue, depth: Int) -> JSONValue {
        guard depth < 32 else { return value }
        let s = flatten(schema)
        switch value {
        case .array(let items):
            guard let itemSchema = s["items"] else { return value }
            return .array(items.map { fill($0, itemSchema, depth: depth + 1) })
        case .object(var o):
            let properties = s["properties"]?.object ?? [:]
            for key in s["required"]?.array?.compactMap(\.string) ?? [] where o[key] == nil {
                if let p = properties[key], flatten(p)["nullable"]?.bool == true { o[key] = .null }
            }
            for (key, v) in o {
                if let p = properties[key] { o[key] = fill(v, p, depth: depth + 1) }
                else if let extra = s["additionalProperties"], extra.object != nil { o[key] = fill(v, extra, depth: depth + 1) }
            }
            return .object(o)
        default:
            return value
        }
    }

    /// A schema with its `$ref` followed and its `allOf` parts merged (the
    /// outer `nullable` kept).
    private static func flatten(_ schema: JSONValue) -> [String: JSONValue] {
        var s = resolve(schema).object ?? [:]
        if let parts = s.removeValue(forKey: "allOf")?.array {
            for part in parts {
                for (k, v) in flatten(part) {
                    if k == "required", let mine = s[k]?.array, let theirs = v.array { s[k] = .array(mine + theirs) }
                    else if k == "properties", let mine = s[k]?.object, let theirs = v.object { s[k] = .object(mine.merging(theirs) { a, _ in a }) }
                    else if s[k] == nil { s[k] = v }
                }
            }
        }
        return s
    }

    /// Follows a local `$ref` (`#/components/...`).
    private static func resolve(_ node: JSONValue) -> JSONValue {
        var node = node, hops = 0
        while let ref = node["$ref"]?.string, ref.hasPrefix("#/"), hops < 16 {
            var target: JSONValue? = json
            for part in ref.dropFirst(2).split(separator: "/") { target = target?[String(part)] }
            guard let t = target else { break }
            node = t
            hops += 1
        }
        return node
    }
}
