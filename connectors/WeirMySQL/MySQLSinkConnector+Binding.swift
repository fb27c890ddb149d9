import WeirCore

/// Binding a schema-less source to the sink's table: the simplest job,
/// `source → filter → mysql sink`, needs no declared schema because the
/// table already says which fields the records carry and of which types.
extension MySQLSinkConnector {
    /// The table's writable columns as fields: integers as int (TINYINT as
    /// any, since JSON booleans go there too), decimals and floats as double,
    /// character types as string, the rest (dates, times, JSON...) untyped.
    /// A NOT NULL column without a default is a required field. Generated
    /// and AUTO_INCREMENT columns are left to the server.
    public func tableSchema() throws -> Schema? {
        let conn = try MySQLConnection(url: url)
        defer { conn.close() }
        let columns = try loadColumns(conn)
        if columns.isEmpty {
            throw WeirError(.tableMissing, subject: tableSubject, "does not exist",
                            suggestion: "create it: the sink's fields are taken from its columns")
        }
        return Schema(columns.filter { !$0.generated && !$0.autoIncrement }.map { c in
            Schema.Field(c.name, MySQLSinkConnector.fieldType(c.dataType), nullable: c.nullable || c.hasDefault)
        })
    }

    static func fieldType(_ dataType: String) -> ValueType {
        switch dataType {
        case "smallint", "mediumint", "int", "integer", "bigint", "year": return .int
        case "decimal", "numeric", "float", "double", "real", "double precision", "fixed", "dec": return .double
        case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set": return .string
        default: return .any
        }
    }
}
