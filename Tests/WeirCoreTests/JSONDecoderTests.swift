import XCTest
@testable import WeirCore
@testable import WeirEngine

final class JSONDecoderTests: XCTestCase {
    func decode(_ json: String, schema: Schema, eventTime: String? = nil) -> (RecordBatch, JSONRowDecoder.Failure?) {
        var d = JSONRowDecoder(schema: schema, eventTimeField: eventTime)
        var b = RecordBatch(arity: schema.count)
        let bytes = Array(json.utf8)
        let f = bytes.withUnsafeBytes { d.decode($0, into: &b) }
        return (b, f)
    }

    let schema = Schema([.init("user_id", .int), .init("amount", .double), .init("name", .string), .init("ts", .int)])

    func testDecodesWantedFieldsAndSkipsOthers() {
        let (b, f) = decode(#"{"extra": {"a": [1, 2, {"b": "}"}]}, "user_id": 12, "amount": 3, "name": "a\"b\\c\u00e9\ud83d\ude00", "ts": 1700000000123, "z": null}"#,
                            schema: schema, eventTime: "ts")
        XCTAssertNil(f)
        XCTAssertEqual(b.row(0), [.int(12), .double(3), .string("a\"b\\cé😀"), .int(1700000000123)])
        XCTAssertEqual(b.timestamps, [1700000000123])
    }

    func testMissingFieldsAreNull() {
        let (b, f) = decode(#"{"user_id": -5}"#, schema: schema)
        XCTAssertNil(f)
        XCTAssertEqual(b.row(0), [.int(-5), .null, .null, .null])
    }

    func testNumbersInAllShapes() {
        let s = Schema([.init("a", .any), .init("b", .any), .init("c", .any), .init("d", .int)])
        let (b, f) = decode(#"{"a": 1.5e3, "b": -0.25, "c": 99999999999999999999, "d": 42.0}"#, schema: s)
        XCTAssertNil(f)
        XCTAssertEqual(b.row(0), [.double(1500), .double(-0.25), .double(1e20), .int(42)])
    }

    func testRejectsMalformedAndMistyped() {
        XCTAssertEqual(decode("not json", schema: schema).1, .malformed)
        XCTAssertEqual(decode(#"{"user_id": 1"#, schema: schema).1, .malformed)
        XCTAssertEqual(decode(#"{"user_id": 1} trailing"#, schema: schema).1, .malformed)
        XCTAssertEqual(decode(#"[1, 2]"#, schema: schema).1, .malformed)
        XCTAssertEqual(decode(#"{"user_id": "seven"}"#, schema: schema).1, .typeMismatch(field: 0))
        XCTAssertEqual(decode(#"{"user_id": 1.5}"#, schema: schema).1, .typeMismatch(field: 0))
        XCTAssertEqual(decode(#"{"user_id": 1}"#, schema: schema, eventTime: "ts").1, .badEventTime)
        // A rejected message leaves the batch untouched.
        XCTAssertEqual(decode(#"{"user_id": "x"}"#, schema: schema).0.count, 0)
    }

    func testRequiredFieldsMustBePresentAndNonNull() {
        let s = Schema([.init("user_id", .int, nullable: false), .init("note", .string, nullable: true)])
        XCTAssertEqual(decode(#"{"note": "x"}"#, schema: s).1, .missingField(field: 0))
        XCTAssertEqual(decode(#"{"user_id": null, "note": "x"}"#, schema: s).1, .missingField(field: 0))
        XCTAssertEqual(decode(#"{"user_id": 1, "user_id": null}"#, schema: s).1, .missingField(field: 0))
        XCTAssertNil(decode(#"{"user_id": null, "user_id": 2}"#, schema: s).1)
        // Beyond the first 64 fields too.
        var many = (0..<70).map { Schema.Field("f\($0)", .int, nullable: true) }
        many[68].nullable = false
        XCTAssertEqual(decode(#"{"f1": 1}"#, schema: Schema(many)).1, .missingField(field: 68))
        XCTAssertNil(decode(#"{"f68": 1}"#, schema: Schema(many)).1)
        let (b, f) = decode(#"{"user_id": 3}"#, schema: s)
        XCTAssertNil(f)
        XCTAssertEqual(b.row(0), [.int(3), .null])
    }

    func testNumbersOutsideInt64AreOutOfRangeNotATrap() {
        XCTAssertEqual(decode(#"{"user_id": 1e30}"#, schema: schema).1, .outOfRange(field: 0))
        XCTAssertEqual(decode(#"{"user_id": 99999999999999999999}"#, schema: schema).1, .outOfRange(field: 0))
        XCTAssertEqual(decode(#"{"user_id": -9.3e18}"#, schema: schema).1, .outOfRange(field: 0))
    }

    func testEventTimeOutsideTheSupportedRangeIsRejected() {
        let any = Schema([.init("ts", .any)])
        for bad in ["1e19", "-1e19", "1e300", "253402300800000", "\"soon\"", "null", "true"] {
            XCTAssertEqual(decode(#"{"ts": \#(bad)}"#, schema: any, eventTime: "ts").1, .badEventTime, bad)
        }
        let (b, f) = decode(#"{"ts": 1700000000123.7}"#, schema: any, eventTime: "ts")
        XCTAssertNil(f)
        XCTAssertEqual(b.timestamps, [1700000000123])
        XCTAssertEqual(decode(#"{"ts": -1000.5}"#, schema: any, eventTime: "ts").0.timestamps, [-1001])
    }

    /// The decoder tries the field after the last one matched first: keys in
    /// any order, repeated, unknown, or sharing a prefix must still land in
    /// their own column, and one message's order must not leak into the next.
    func testKeysInAnyOrderAcrossMessages() {
        var d = JSONRowDecoder(schema: schema, eventTimeField: nil)
        var b = RecordBatch(arity: schema.count)
        let messages = [
            #"{"user_id": 1, "amount": 2, "name": "a", "ts": 3}"#,
            #"{"ts": 6, "name": "b", "amount": 5, "user_id": 4}"#,
            #"{"amount": 8, "user": 0, "user_idx": 0, "ts": 9, "user_id": 7, "nam": "x"}"#,
            #"{"user_id": 10, "user_id": 11, "name": "c"}"#,
            #"{"user_id": 99, "name": "half written", "amount": "x"}"#,  // refused after two fields: leaves no trace
            #"{"user_id": 98, "name": "cut off""#,
            #"{"name": "d", "user_id": 12}"#,
        ]
        let refused: Set<String> = [messages[4], messages[5]]
        for m in messages {
            let bytes = Array(m.utf8)
            let before = b.values.count
            let failure = bytes.withUnsafeBytes { d.decode($0, into: &b) }
            if refused.contains(m) {
                XCTAssertNotNil(failure, m)
                XCTAssertEqual(b.values.count, before, m)
            } else {
                XCTAssertNil(failure, m)
            }
        }
        XCTAssertEqual(b.count, 5)
        XCTAssertEqual(b.values.count, 5 * schema.count)
        XCTAssertEqual(b.row(0), [.int(1), .double(2), .string("a"), .int(3)])
        XCTAssertEqual(b.row(1), [.int(4), .double(5), .string("b"), .int(6)])
        XCTAssertEqual(b.row(2), [.int(7), .double(8), .null, .int(9)])
        XCTAssertEqual(b.row(3), [.int(11), .null, .string("c"), .null])  // a repeated key: the last value wins
        XCTAssertEqual(b.row(4), [.int(12), .null, .string("d"), .null])
    }
}
