/// The ordered, named and typed fields of the records a node emits.
///
/// Computed once when a job is compiled; operators resolve field names to
/// positions through it so records never carry their field names.
public struct Schema: Sendable, Equatable, CustomStringConvertible {
    public struct Field: Sendable, Equatable {
        public var name: String
        public var type: ValueType
        /// False for a declared field without `?` (`user_id: int`): a source
        /// rejects a record in which it is missing or null.
        public var nullable: Bool
        public init(_ name: String, _ type: ValueType, nullable: Bool = true) {
            self.name = name; self.type = type; self.nullable = nullable
        }
    }

    public var fields: [Field]

    public init(_ fields: [Field]) { self.fields = fields }

    public var count: Int { fields.count }
    public var names: [String] { fields.map(\.name) }

    public func index(of name: String) -> Int? { fields.firstIndex { $0.name == name } }

    public var description: String { "(" + fields.map { "\($0.name): \($0.type)" }.joined(separator: ", ") + ")" }
}
