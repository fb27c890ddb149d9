import WeirCore
import XCTest
@testable import WeirMySQL

/// URL parsing, redaction and spec configuration: no server needed.
final class MySQLURLTests: XCTestCase {
    func testFullURL() throws {
        let u = try MySQLURL("mysql://app:s3cr%40t%3Ax@db.example.com:3307/shop")
        XCTAssertEqual(u.user, "app")
        XCTAssertEqual(u.password, "s3cr@t:x")
        XCTAssertEqual(u.host, "db.example.com")
        XCTAssertEqual(u.port, 3307)
        XCTAssertEqual(u.database, "shop")
        XCTAssertNil(u.socket)
        XCTAssertEqual(u.redacted, "mysql://app:***@db.example.com:3307/shop")
        XCTAssertEqual(u.endpoint, "db.example.com:3307")
    }

    func testDefaultsAndDecoding() throws {
        let u = try MySQLURL("mysql://r%C3%A9my@localhost/my%20db")
        XCTAssertEqual(u.user, "rémy")
        XCTAssertNil(u.password)
        XCTAssertEqual(u.port, 3306)
        XCTAssertEqual(u.database, "my db")
        XCTAssertEqual(u.redacted, "mysql://r%C3%A9my@localhost/my%20db")

        let empty = try MySQLURL("mysql://root:@127.0.0.1:13306/test")
        XCTAssertEqual(empty.password, "")
        XCTAssertEqual(empty.redacted, "mysql://root:***@127.0.0.1:13306/test")
    }

    func testSocketAndIPv6() throws {
        let s = try MySQLURL("mysql://root:pw@localhost/test?socket=/work/main/.run/mariadb.sock")
        XCTAssertEqual(s.socket, "/work/main/.run/mariadb.sock")
        XCTAssertEqual(s.redacted, "mysql://root:***@localhost/test?socket=/work/main/.run/mariadb.sock")
        let v6 = try MySQLURL("MySQL://u@[::1]:3310/d")
        XCTAssertEqual(v6.host, "::1")
        XCTAssertEqual(v6.port, 3310)
        XCTAssertEqual(v6.endpoint, "[::1]:3310")
    }

    func testUnencodedAtInPasswordAndRedaction() throws {
        let u = try MySQLURL("mysql://u:p@ss/w0rd@h/d")
        XCTAssertEqual(u.password, "p@ss/w0rd")
        XCTAssertEqual(u.host, "h")
        XCTAssertEqual(u.redacted, "mysql://u:***@h/d")
        XCTAssertFalse("\(u)".contains("p@ss"))
        XCTAssertFalse(String(reflecting: u).contains("p@ss"))
        var dumped = ""
        dump(u, to: &dumped)
        XCTAssertFalse(dumped.contains("p@ss"), dumped)
    }

    func testInvalidURLsNeverEchoThePassword() {
        let cases = [
            "postgres://u:TopSecret1@h/d",
            "mysql://u:TopSecret1@h",
            "mysql://u:TopSecret1@h:99999/d",
            "mysql://u:TopSecret1@h:abc/d",
            "mysql://u:TopSecret1@/d",
            "mysql://:TopSecret1@h/d",
            "mysql://u:TopSecret1%zz@h/d",
            "mysql://u:TopSecret1@h/d?sslmode=on",
            "mysql://h/d",
        ]
        for c in cases {
            do {
                _ = try MySQLURL(c)
                XCTFail("\(c) should not parse")
            } catch let e as WeirError {
                XCTAssertEqual(e.code, .invalidSpec)
                XCTAssertFalse(e.description.contains("TopSecret1"), e.description)
            } catch {
                XCTFail("unexpected \(error)")
            }
        }
    }

    // MARK: spec configuration through ConfigReader

    func make(_ pairs: [(String, Any)]) -> (MySQLSinkConnector?, [WeirError]) {
        var reader = ConfigReader(path: "nodes[3].mysql", mapping: SpecMapping(pairs))
        guard case .sink(let name, let makeSink) = MySQLSinkConnector.kind else {
            XCTFail("mysql must be a sink kind"); return (nil, [])
        }
        XCTAssertEqual(name, "mysql")
        let sink = makeSink(&reader) as? MySQLSinkConnector
        reader.rejectUnknown()
        return (sink, reader.errors)
    }

    func testConfigDefaults() {
        let (sink, errors) = make([("url", "mysql://root:pw@127.0.0.1:13306/test"), ("table", "events")])
        XCTAssertEqual(errors, [])
        XCTAssertEqual(sink?.table, "events")
        XCTAssertEqual(sink?.mode, .append)
        XCTAssertEqual(sink?.key, [])
        XCTAssertEqual(sink?.batchSize, 4000)
        XCTAssertEqual(sink?.lockWaitSeconds, 50)
        XCTAssertEqual(sink?.url.password, "pw")
    }

    func testConfigLockWait() {
        var (sink, errors) = make([("url", "mysql://root@h/d"), ("table", "t"), ("lockWait", "2500ms")])
        XCTAssertEqual(errors, [])
        XCTAssertEqual(sink?.lockWaitSeconds, 3, "rounded up to whole seconds")
        for bad in ["500ms", "2h", "soon"] {
            (sink, errors) = make([("url", "mysql://root@h/d"), ("table", "t"), ("lockWait", bad)])
            XCTAssertNil(sink, bad)
            XCTAssertEqual(errors.map(\.subject), ["nodes[3].mysql.lockWait"], bad)
        }
    }

    func testConfigUpsert() {
        let (sink, errors) = make([("url", "mysql://root@h/d"), ("table", "t"), ("mode", "upsert"),
                                   ("key", ["id", "day"] as [Any]), ("batchSize", 500)])
        XCTAssertEqual(errors, [])
        XCTAssertEqual(sink?.mode, .upsert)
        XCTAssertEqual(sink?.key, ["id", "day"])
        XCTAssertEqual(sink?.batchSize, 500)
    }

    func testConfigErrors() {
        let (sink, errors) = make([("url", "mysql://root:Hunter2Secret@h"), ("mode", "upsret"), ("batchSize", 0)])
        XCTAssertNil(sink)
        let text = errors.map(\.description).joined(separator: "\n")
        XCTAssertTrue(text.contains("nodes[3].mysql.table: missing required field 'table'"), text)
        XCTAssertTrue(text.contains("nodes[3].mysql.url:"), text)
        XCTAssertTrue(text.contains("did you mean 'upsert'"), text)
        XCTAssertTrue(text.contains("nodes[3].mysql.batchSize"), text)
        XCTAssertFalse(text.contains("Hunter2Secret"), text)
        XCTAssertFalse(text.contains("unknown field"), text)

        let (s2, e2) = make([("url", "mysql://root@h/d"), ("table", "t"), ("mode", "upsert")])
        XCTAssertNil(s2)
        XCTAssertTrue(e2.contains { $0.subject == "nodes[3].mysql.key" }, "\(e2)")
    }

    // MARK: value rendering (pure)

    func render(_ v: Value, _ enc: ColumnEncoding, backslash: Bool = true) -> String {
        var b = SQLBuffer(capacity: 16)
        defer { b.deallocate() }
        b.appendValue(v, enc, backslashEscapes: backslash)
        return String(decoding: UnsafeBufferPointer(start: b.base, count: b.count), as: UTF8.self)
    }

    func testRendering() {
        XCTAssertEqual(render(.int(0), .integer), "0")
        XCTAssertEqual(render(.int(-42), .integer), "-42")
        XCTAssertEqual(render(.int(Int64.min), .integer), "-9223372036854775808")
        XCTAssertEqual(render(.int(Int64.max), .numeric), "9223372036854775807")
        XCTAssertEqual(render(.int(7), .text), "'7'")
        XCTAssertEqual(render(.double(3.0), .integer), "3")
        XCTAssertEqual(render(.double(0.1), .numeric), "0.1")
        XCTAssertEqual(render(.double(1e-5), .numeric), "1e-05")
        XCTAssertEqual(render(.double(.nan), .numeric), "NULL")
        XCTAssertEqual(render(.bool(true), .integer), "1")
        XCTAssertEqual(render(.bool(false), .text), "'0'")
        XCTAssertEqual(render(.null, .text), "NULL")
        XCTAssertEqual(render(.string("it's \\ \"x\"\n\r\0\u{1A}"), .text), #"'it\'s \\ \"x\"\n\r\0\Z'"#)
        XCTAssertEqual(render(.string("it's \\"), .text, backslash: false), #"'it''s \'"#)
        XCTAssertEqual(render(.string("42"), .integer), "'42'")
        XCTAssertEqual(render(.int(1_700_000_000_123), .datetime(fractional: true)), "'2023-11-14 22:13:20.123'")
        XCTAssertEqual(render(.int(1_700_000_000_123), .datetime(fractional: false)), "'2023-11-14 22:13:20'")
        XCTAssertEqual(render(.int(-1), .datetime(fractional: true)), "'1969-12-31 23:59:59.999'")
        XCTAssertEqual(render(.int(1_709_210_096_789), .date), "'2024-02-29'")
        XCTAssertEqual(render(.int(-62_135_596_800_000), .datetime(fractional: true)), "'0001-01-01 00:00:00.000'")
        XCTAssertEqual(render(.int(253_402_300_799_999), .datetime(fractional: true)), "'9999-12-31 23:59:59.999'")
        XCTAssertEqual(render(.double(1_700_000_000_123.9), .datetime(fractional: true)), "'2023-11-14 22:13:20.123'")
    }

    /// civil-from-days against Foundation's Gregorian calendar over random instants.
    func testEpochConversionMatchesFoundation() {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.calendar = Calendar(identifier: .gregorian)
        f.dateFormat = "yyyy-MM-dd HH:mm:ss.SSS"
        var rng = SystemRandomNumberGenerator()
        // 1700-01-01 .. 9999-12-31 (Foundation switches to Julian before 1582).
        let lo: Int64 = -8_520_336_000_000, hi: Int64 = 253_402_300_799_999
        for i in 0..<20_000 {
            let ms = i < 3 ? [0, -1, 86_399_999][i] : Int64.random(in: lo...hi, using: &rng)
            let expected = f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
            let got = render(.int(ms), .datetime(fractional: true))
            // Foundation may round the last millisecond through the Double; compare to the second.
            XCTAssertEqual(String(got.dropFirst().prefix(19)), String(expected.prefix(19)), "ms=\(ms)")
            if got.dropFirst().prefix(19) != expected.prefix(19) { break }
        }
    }
}

/// Rendering speed of the writer's hot path alone (no server).
final class MySQLEncodeBenchmark: XCTestCase {
    func testEncodeThroughput() {
        let encs: [ColumnEncoding] = [.integer, .text, .numeric, .datetime(fractional: true), .integer]
        let rows = 200_000
        var values: [Value] = []
        values.reserveCapacity(rows * 5)
        for i in 0..<rows {
            let id = Int64(i)
            values += [.int(id), .string("user-\(id % 977)"), .double(Double(id) * 0.25),
                       .int(1_700_000_000_000 + id), .bool(id % 2 == 0)]
        }
        var b = SQLBuffer(capacity: 1 << 20)
        defer { b.deallocate() }
        let start = Date()
        var total = 0
        values.withUnsafeBufferPointer { vals in
            for r in 0..<rows {
                b.append(UInt8(ascii: "("))
                for f in 0..<5 {
                    if f > 0 { b.append(UInt8(ascii: ",")) }
                    b.appendValue(vals[r * 5 + f], encs[f], backslashEscapes: true)
                }
                b.append(UInt8(ascii: ")"))
                if b.count > 4 << 20 { total += b.count; b.count = 0 }
            }
        }
        total += b.count
        let secs = Date().timeIntervalSince(start)
        print("mysql sink encoding: \(rows) rows (\(total) bytes) in \(String(format: "%.3f", secs)) s = \(Int(Double(rows) / secs)) rows/s")
        XCTAssertGreaterThan(total, rows * 40)
    }
}
