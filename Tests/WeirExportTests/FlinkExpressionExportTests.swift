import XCTest
import WeirCore
@testable import WeirExport

/// Every operator, function and aggregate of Weir's expression language as
/// Flink SQL, and the expressions refused because Flink computes them differently.
final class FlinkExpressionExportTests: XCTestCase {
    typealias F = ExportFixture

    // MARK: Literals and fields

    func testLiteralsKeepTheirTypeOnFlink() throws {
        // Integers are BIGINT (INT literals would overflow 32 bits in `2000000000 * 2`).
        XCTAssertEqual(try F.sql("2000000000 * 2"), "(CAST(2000000000 AS BIGINT) * CAST(2 AS BIGINT))")
        // Doubles are approximate literals (1.5 alone is a DECIMAL on Flink).
        XCTAssertEqual(try F.sql("1.5"), "1.5E0")
        XCTAssertEqual(try F.sql("1e20"), "1E20")
        XCTAssertEqual(try F.sql("0.00001"), "1E-05")
        // Strings are cast to STRING: Flink types 'ab' as CHAR(2) and pads CHARs of different lengths.
        XCTAssertEqual(try F.sql("'ab'"), "CAST('ab' AS STRING)")
        XCTAssertEqual(try F.sql("true"), "TRUE")
        XCTAssertEqual(try F.sql("false"), "FALSE")
    }

    func testAStringLiteralWithAQuoteAndANewlineStaysOnOneLine() throws {
        XCTAssertEqual(try F.sql("'it''s'"), "CAST('it''s' AS STRING)")
        let s = try F.sql("'a\\nb'")
        XCTAssertEqual(s, "CONCAT('a', CHR(10), 'b')")
        XCTAssertFalse(s.contains("\n"))
    }

    func testANegativeLiteralNeverMakesACommentMarker() throws {
        let s = try F.sql("amount - -5")
        XCTAssertEqual(s, "(`amount` - CAST(-5 AS BIGINT))")
        XCTAssertEqual(try F.sql("price - -1.5"), "(`price` - (-1.5E0))")
        XCTAssertFalse(try F.sql("price - -1.5").contains("--"))
    }

    func testFieldsAreBackQuotedAndAQuotedNameKeepsItsCharacters() throws {
        let r = try FlinkExpressions(node: "n", schema: [.init("we`ird name", .int)], mixed: []).render("`we``ird name` + 1")
        XCTAssertEqual(r.sql, "(`we``ird name` + CAST(1 AS BIGINT))")
    }

    // MARK: Operators

    func testArithmeticKeepsIntegersAndWidensToDouble() throws {
        XCTAssertEqual(try F.sql("amount + 1"), "(`amount` + CAST(1 AS BIGINT))")
        XCTAssertEqual(try F.sql("amount - user_id"), "(`amount` - `user_id`)")
        XCTAssertEqual(try F.sql("amount * price"), "(`amount` * `price`)")
        XCTAssertEqual(try FlinkExpressions(node: "n", schema: F.fields, mixed: []).render("amount * price").type, .double)
        XCTAssertEqual(try F.sql("-amount"), "(- `amount`)")
    }

    func testDivisionIsAlwaysADoubleAndNullByZero() throws {
        XCTAssertEqual(try F.sql("amount / user_id"), "(CAST(`amount` AS DOUBLE) / NULLIF(CAST(`user_id` AS DOUBLE), 0E0))")
        XCTAssertEqual(try F.sql("amount / 4"), "(CAST(`amount` AS DOUBLE) / NULLIF(4.0E0, 0E0))")
        XCTAssertEqual(try F.sql("price / 2"), "(`price` / NULLIF(2.0E0, 0E0))")
        XCTAssertEqual(try FlinkExpressions(node: "n", schema: F.fields, mixed: []).render("amount / user_id").type, .double)
    }

    func testModuloIsNullByZero() throws {
        XCTAssertEqual(try F.sql("amount % 3"), "MOD(`amount`, NULLIF(CAST(3 AS BIGINT), 0))")
    }

    func testModuloOfADoubleIsRefused() {
        let r = F.exprRefusal("price % 2")
        XCTAssertEqual(r?.subject, "n")
        XCTAssertTrue(r?.reason.contains("MOD takes integers only") ?? false, r?.reason ?? "")
    }

    func testComparisonsInBothSpellings() throws {
        XCTAssertEqual(try F.sql("amount == 1"), "(`amount` = 1)")
        XCTAssertEqual(try F.sql("amount = 1"), "(`amount` = 1)")
        XCTAssertEqual(try F.sql("amount != 1"), "(`amount` <> 1)")
        XCTAssertEqual(try F.sql("amount <> -1"), "(`amount` <> (-1))")
        XCTAssertEqual(try F.sql("amount < 1"), "(`amount` < 1)")
        XCTAssertEqual(try F.sql("amount <= 1"), "(`amount` <= 1)")
        XCTAssertEqual(try F.sql("amount > 1"), "(`amount` > 1)")
        XCTAssertEqual(try F.sql("amount >= 1"), "(`amount` >= 1)")
        XCTAssertEqual(try F.sql("name == 'x'"), "(`name` = CAST('x' AS STRING))")
    }

    func testBooleanLogicIsSQLsThreeValuedLogic() throws {
        XCTAssertEqual(try F.sql("ok and amount > 1"), "(`ok` AND (`amount` > 1))")
        XCTAssertEqual(try F.sql("ok || false"), "(`ok` OR FALSE)")
        XCTAssertEqual(try F.sql("not ok"), "(NOT `ok`)")
        XCTAssertEqual(try F.sql("!ok && ok"), "((NOT `ok`) AND `ok`)")
    }

    func testANullLiteralTakesTheTypeOfWhatItMeets() throws {
        XCTAssertEqual(try F.sql("amount == null"), "(`amount` = CAST(NULL AS BIGINT))")
        XCTAssertEqual(try F.sql("ok and null"), "(`ok` AND CAST(NULL AS BOOLEAN))")
        XCTAssertEqual(try F.sql("if(ok, amount, null)"), "(CASE WHEN `ok` THEN `amount` ELSE CAST(NULL AS BIGINT) END)")
        XCTAssertEqual(try FlinkExpressions(node: "n", schema: F.fields, mixed: []).render("if(ok, amount, null)").type, .int)
    }

    func testAValueThatIsAlwaysNullHasNoTypeAndIsRefused() {
        let r = F.exprRefusal("null")
        XCTAssertTrue(r?.reason.contains("always null") ?? false, r?.reason ?? "")
    }

    func testAStringUsedAsANumberThroughAnUntypedNullIsRefused() {
        // Weir accepts it (if(...) with a null branch is untyped) and gives null; Flink refuses the types.
        let r = F.exprRefusal("if(ok, name, null) + 1")
        XCTAssertTrue(r?.reason.contains("as a number") ?? false, r?.reason ?? "")
        XCTAssertNotNil(F.exprRefusal("if(ok, name, null) == 1"))
    }

    // MARK: Functions

    func testLowerAndUpper() throws {
        XCTAssertEqual(try F.sql("lower(name)"), "LOWER(`name`)")
        XCTAssertEqual(try F.sql("upper('straße')"), "UPPER(CAST('straße' AS STRING))")
    }

    func testConcatSkipsNullsAndWritesIntsAndBoolsAsWeirDoes() throws {
        // Flink's CONCAT is NULL when any argument is; Weir skips nulls. Booleans are TRUE/FALSE as text on Flink.
        XCTAssertEqual(try F.sql("concat(name, '-', amount, ok, null)"),
                       "CONCAT(COALESCE(`name`, ''), '-', COALESCE(CAST(`amount` AS STRING), ''), COALESCE(LOWER(CAST(`ok` AS STRING)), ''))")
        XCTAssertEqual(try F.sql("concat(name)"), "COALESCE(`name`, '')")
        XCTAssertEqual(try F.sql("concat('a')"), "CAST('a' AS STRING)")
        XCTAssertEqual(try F.sql("concat(null)"), "CAST('' AS STRING)")
    }

    func testConcatOfADoubleIsRefused() {
        let r = F.exprRefusal("concat(name, price)")
        XCTAssertTrue(r?.reason.contains("1e+20") ?? false, r?.reason ?? "")
        XCTAssertNotNil(r?.hint)
    }

    func testCoalesceWidensIntsWhenADoubleIsAmongTheBranches() throws {
        XCTAssertEqual(try F.sql("coalesce(name, 'none')"), "COALESCE(`name`, CAST('none' AS STRING))")
        let r = try FlinkExpressions(node: "n", schema: F.fields, mixed: []).render("coalesce(price, amount)")
        XCTAssertEqual(r.sql, "COALESCE(`price`, CAST(`amount` AS DOUBLE))")
        XCTAssertEqual(r.type, .double)
        XCTAssertTrue(r.mixed, "Weir keeps the int values of amount in a double-typed field")
        XCTAssertFalse(try FlinkExpressions(node: "n", schema: F.fields, mixed: []).render("coalesce(price, 0.0)").mixed)
    }

    func testAbs() throws {
        XCTAssertEqual(try F.sql("abs(amount - 10)"), "ABS((`amount` - CAST(10 AS BIGINT)))")
        XCTAssertEqual(try F.sql("abs(price)"), "ABS(`price`)")
    }

    func testRoundOfAnIntIsTheIntAndOfADoubleIsHalfAwayFromZero() throws {
        XCTAssertEqual(try F.sql("round(amount)"), "`amount`")
        XCTAssertEqual(try F.sql("round(amount, 2)"), "`amount`")
        XCTAssertEqual(try F.sql("round(price)"), "ROUND(`price`, 0)")
        XCTAssertEqual(try F.sql("round(price, 0)"), "ROUND(`price`, 0)")
    }

    func testRoundingADoubleToDigitsIsRefused() {
        let r = F.exprRefusal("round(price, 2)")
        XCTAssertTrue(r?.reason.contains("round(1.005, 2)") ?? false, r?.reason ?? "")
    }

    func testIf() throws {
        XCTAssertEqual(try F.sql("if(amount > 2, 'big', 'small')"),
                       "(CASE WHEN (`amount` > 2) THEN CAST('big' AS STRING) ELSE CAST('small' AS STRING) END)")
        XCTAssertEqual(try F.sql("if(ok, price, 1)"), "(CASE WHEN `ok` THEN `price` ELSE CAST(CAST(1 AS BIGINT) AS DOUBLE) END)")
    }

    func testAFilterThatIsNotAConditionOnFlinkIsRefused() throws {
        let e = FlinkExpressions(node: "f", schema: F.fields, mixed: [])
        XCTAssertEqual(try e.condition("amount > 0"), "(`amount` > 0)")
        XCTAssertThrowsError(try e.condition("if(ok, amount, null)")) { error in
            XCTAssertEqual((error as? ExportRefusal)?.subject, "f")
        }
    }

    // MARK: Aggregates

    func testCountCountsRowsOrNonNullValues() throws {
        XCTAssertEqual(try F.agg("count()").sql, "COUNT(*)")
        XCTAssertEqual(try F.agg("count(name)").sql, "COUNT(`name`)")
        XCTAssertEqual(try F.agg("count(name)").type, .int)
    }

    func testSumIsZeroWhenEveryValueIsNull() throws {
        // Weir's sum starts at 0; SQL's SUM of only NULLs is NULL.
        XCTAssertEqual(try F.agg("sum(amount)").sql, "COALESCE(SUM(`amount`), CAST(0 AS BIGINT))")
        XCTAssertEqual(try F.agg("sum(amount)").type, .int)
        XCTAssertEqual(try F.agg("sum(price * 2)").sql, "COALESCE(SUM((`price` * CAST(2 AS BIGINT))), 0E0)")
        XCTAssertEqual(try F.agg("sum(price)").type, .double)
    }

    func testMinAndMax() throws {
        XCTAssertEqual(try F.agg("min(name)").sql, "MIN(`name`)")
        XCTAssertEqual(try F.agg("max(price)").sql, "MAX(`price`)")
        XCTAssertEqual(try F.agg("max(price)").type, .double)
    }

    func testAvgIsADoubleAverage() throws {
        // Flink's AVG of a BIGINT divides as integers.
        XCTAssertEqual(try F.agg("avg(amount)").sql, "AVG(CAST(`amount` AS DOUBLE))")
        XCTAssertEqual(try F.agg("avg(price)").sql, "AVG(`price`)")
        XCTAssertEqual(try F.agg("avg(amount)").type, .double)
    }

    func testCountDistinct() throws {
        XCTAssertEqual(try F.agg("count_distinct(user_id)").sql, "COUNT(DISTINCT `user_id`)")
    }

    func testCountDistinctOfIntsAndDoublesMixedIsRefused() {
        XCTAssertThrowsError(try F.agg("count_distinct(coalesce(price, amount))")) { error in
            XCTAssertTrue((error as? ExportRefusal)?.reason.contains("1 and 1.0") ?? false, "\(error)")
        }
    }

    func testAnAggregateOfAnAlwaysNullValueIsRefused() {
        XCTAssertThrowsError(try F.agg("sum(null)")) { error in
            XCTAssertTrue((error as? ExportRefusal)?.reason.contains("column 'a'") ?? false, "\(error)")
        }
    }
}
