import XCTest
@testable import WeirCore
@testable import WeirEngine

final class ExpressionTests: XCTestCase {
    let schema = Schema([.init("user_id", .int), .init("amount", .int), .init("price", .double),
                         .init("name", .string), .init("ok", .bool), .init("free", .any)])

    func eval(_ text: String, _ row: [Value]) throws -> Value {
        let c = try ExprCompiler.compile(text, schema: schema)
        return row.withUnsafeBufferPointer { c.eval($0.baseAddress!) }
    }

    let row: [Value] = [.int(7), .int(950), .double(2.5), .string("Alice"), .bool(true), .null]

    func testArithmeticAndPrecedence() throws {
        XCTAssertEqual(try eval("amount + 2 * 3", row), .int(956))
        XCTAssertEqual(try eval("(amount + 2) * 3", row), .int(2856))
        XCTAssertEqual(try eval("amount / 4", row), .double(237.5))
        XCTAssertEqual(try eval("amount % 100", row), .int(50))
        XCTAssertEqual(try eval("price * 2", row), .double(5))
        XCTAssertEqual(try eval("-amount", row), .int(-950))
        XCTAssertEqual(try eval("amount / 0", row), .null)
    }

    func testComparisonsAndLogic() throws {
        XCTAssertEqual(try eval("amount > 900", row), .bool(true))
        XCTAssertEqual(try eval("amount > 950", row), .bool(false))
        XCTAssertEqual(try eval("amount >= 950 and user_id = 7", row), .bool(true))
        XCTAssertEqual(try eval("amount < 10 or not ok", row), .bool(false))
        XCTAssertEqual(try eval("name == 'Alice'", row), .bool(true))
        XCTAssertEqual(try eval("price < amount", row), .bool(true))
        XCTAssertEqual(try eval("free > 3", row), .null, "comparisons with null are null")
        XCTAssertEqual(try eval("free > 3 or ok", row), .bool(true))
    }

    func testFunctions() throws {
        XCTAssertEqual(try eval("lower(name)", row), .string("alice"))
        XCTAssertEqual(try eval("upper(name)", row), .string("ALICE"))
        XCTAssertEqual(try eval("concat(name, '-', user_id)", row), .string("Alice-7"))
        XCTAssertEqual(try eval("coalesce(free, amount)", row), .int(950))
        XCTAssertEqual(try eval("abs(0 - amount)", row), .int(950))
        XCTAssertEqual(try eval("round(price)", row), .double(3))
        XCTAssertEqual(try eval("round(amount / 7, 2)", row), .double(135.71))
        XCTAssertEqual(try eval("if(amount > 900, 'big', 'small')", row), .string("big"))
    }

    func testTypeErrorsNameTheProblem() {
        XCTAssertThrowsError(try ExprCompiler.compile("amout > 3", schema: schema)) { e in
            XCTAssertTrue("\(e)".contains("unknown field 'amout' (did you mean 'amount'?)"), "\(e)")
        }
        XCTAssertThrowsError(try ExprCompiler.compile("name + 1", schema: schema)) { e in
            XCTAssertTrue("\(e)".contains("needs numbers"), "\(e)")
        }
        XCTAssertThrowsError(try ExprCompiler.compile("name > 3", schema: schema)) { e in
            XCTAssertTrue("\(e)".contains("cannot compare string with int"), "\(e)")
        }
        XCTAssertThrowsError(try ExprCompiler.compile("lowr(name)", schema: schema)) { e in
            XCTAssertTrue("\(e)".contains("did you mean 'lower'"), "\(e)")
        }
        XCTAssertThrowsError(try ExprCompiler.compile("sum(amount)", schema: schema)) { e in
            XCTAssertTrue("\(e)".contains("only be used inside 'aggregate'"), "\(e)")
        }
        XCTAssertThrowsError(try ExprCompiler.compile("amount > ", schema: schema))
        XCTAssertThrowsError(try ExprCompiler.compile("'open", schema: schema)) { e in
            XCTAssertTrue("\(e)".contains("unterminated"), "\(e)")
        }
    }

    func testAggregateSpecs() throws {
        XCTAssertEqual(try AggregateSpec.compile(name: "c", "count()", schema: schema).outputType, .int)
        XCTAssertEqual(try AggregateSpec.compile(name: "s", "sum(amount)", schema: schema).outputType, .int)
        XCTAssertEqual(try AggregateSpec.compile(name: "s", "sum(price)", schema: schema).outputType, .double)
        XCTAssertEqual(try AggregateSpec.compile(name: "a", "avg(amount)", schema: schema).outputType, .double)
        XCTAssertThrowsError(try AggregateSpec.compile(name: "x", "summ(amount)", schema: schema)) { e in
            XCTAssertTrue("\(e)".contains("did you mean 'sum'"), "\(e)")
        }
        XCTAssertThrowsError(try AggregateSpec.compile(name: "x", "sum(name)", schema: schema))
    }

    func testAccumulators() {
        var sum = Accumulator.initial(.sum, type: .int)
        var mn = Accumulator.initial(.min, type: .int)
        var mx = Accumulator.initial(.max, type: .int)
        var avg = Accumulator.initial(.avg, type: .int)
        var cd = Accumulator.initial(.countDistinct, type: .int)
        for v in [5, 3, 9, 3, 1] as [Int64] {
            sum.add(.int(v), .sum); mn.add(.int(v), .min); mx.add(.int(v), .max); avg.add(.int(v), .avg); cd.add(.int(v), .countDistinct)
        }
        sum.add(.null, .sum)
        XCTAssertEqual(sum.result, .int(21))
        XCTAssertEqual(mn.result, .int(1))
        XCTAssertEqual(mx.result, .int(9))
        XCTAssertEqual(avg.result, .double(4.2))
        XCTAssertEqual(cd.result, .int(4))
    }
}
