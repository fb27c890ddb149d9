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
}
