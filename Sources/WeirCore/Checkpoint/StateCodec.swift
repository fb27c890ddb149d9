/// Binary encoding of operator state for snapshots: compact, versioned by
/// the snapshot format, and fast enough for a million keys in well under a
/// second. Little-endian fixed-width integers; strings length-prefixed.
public struct StateWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    @inline(__always) public mutating func u8(_ v: UInt8) { bytes.append(v) }
    @inline(__always) public mutating func i64(_ v: Int64) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
    @inline(__always) public mutating func u32(_ v: UInt32) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
    @inline(__always) public mutating func f64(_ v: Double) { i64(Int64(bitPattern: v.bitPattern)) }
    public mutating func string(_ s: String) {
        let u = Array(s.utf8)
        u32(UInt32(u.count))
        bytes.append(contentsOf: u)
    }

    @inline(__always) public mutating func value(_ v: Value) {
        switch v {
        case .null: u8(0)
        case .bool(let b): u8(b ? 2 : 1)
        case .int(let i): u8(3); i64(i)
        case .double(let d): u8(4); f64(d)
        case .string(let s): u8(5); string(s)
        }
    }

    public mutating func key(_ k: GroupKey) {
        let vs = k.values
        u8(UInt8(vs.count))
        for v in vs { value(v) }
    }

    public mutating func accumulator(_ a: Accumulator) {
        switch a {
        case .count(let c): u8(1); i64(c)
        case .sumInt(let s): u8(2); i64(s)
        case .sumDouble(let s): u8(3); f64(s)
        case .minMax(let v): u8(4); value(v)
        case .avg(let s, let c): u8(5); f64(s); i64(c)
        case .distinct(let set):
            u8(6); u32(UInt32(set.count))
            for v in set { value(v) }
        case .overflowed: u8(7)
        }
    }

    /// Bytes `value(_:)` writes for `v`.
    public static func size(of v: Value) -> Int {
        switch v {
        case .null, .bool: return 1
        case .int, .double: return 9
        case .string(let s): return 5 + s.utf8.count
        }
    }

    /// Bytes `accumulator(_:)` writes for `a`.
    public static func size(of a: Accumulator) -> Int {
        switch a {
        case .count, .sumInt, .sumDouble: return 9
        case .minMax(let v): return 1 + size(of: v)
        case .avg: return 17
        case .distinct(let set): return set.reduce(5) { $0 + size(of: $1) }
        case .overflowed: return 1
        }
    }

    /// Reserves a 4-byte length slot; `patchLength` fills it in later.
    public mutating func lengthSlot() -> Int { let at = bytes.count; u32(0); return at }
    public mutating func patchLength(_ at: Int) {
        let len = UInt32(bytes.count - at - 4).littleEndian
        withUnsafeBytes(of: len) { for i in 0..<4 { bytes[at + i] = $0[i] } }
    }
}

/// Reads what `StateWriter` wrote; every read is bounds-checked so a
/// damaged file fails with an error instead of crashing.
public struct StateReader {
    package let bytes: [UInt8]
    public private(set) var at: Int
    package let end: Int

    public struct Corrupt: Error, CustomStringConvertible {
        public let description: String
    }

    public init(_ bytes: [UInt8], from: Int = 0, to: Int? = nil) {
        self.bytes = bytes; self.at = from; self.end = to ?? bytes.count
    }

    public var isAtEnd: Bool { at >= end }

    @inline(__always) package mutating func need(_ n: Int) throws {
        if at + n > end { throw Corrupt(description: "state data ends early at byte \(at)") }
    }
    @inline(__always) public mutating func u8() throws -> UInt8 { try need(1); at += 1; return bytes[at - 1] }
    @inline(__always) public mutating func i64() throws -> Int64 {
        try need(8)
        let at = self.at
        let v = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt64.self) }
        self.at += 8
        return Int64(bitPattern: UInt64(littleEndian: v))
    }
    @inline(__always) public mutating func u32() throws -> UInt32 {
        try need(4)
        let at = self.at
        let v = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) }
        self.at += 4
        return UInt32(littleEndian: v)
    }
    public mutating func f64() throws -> Double { Double(bitPattern: UInt64(bitPattern: try i64())) }
    public mutating func string() throws -> String {
        let n = Int(try u32())
        try need(n)
        defer { at += n }
        return String(decoding: bytes[at..<(at + n)], as: UTF8.self)
    }
    public mutating func skip(_ n: Int) throws { try need(n); at += n }

    public mutating func value() throws -> Value {
        switch try u8() {
        case 0: return .null
        case 1: return .bool(false)
        case 2: return .bool(true)
        case 3: return .int(try i64())
        case 4: return .double(try f64())
        case 5: return .string(try string())
        case let t: throw Corrupt(description: "unknown value tag \(t) at byte \(at - 1)")
        }
    }

    public mutating func key() throws -> GroupKey {
        let n = Int(try u8())
        switch n {
        case 1: return .one(try value())
        case 2: return .two(try value(), try value())
        default:
            var vs: [Value] = []
            for _ in 0..<n { vs.append(try value()) }
            return .many(vs)
        }
    }

    public mutating func accumulator() throws -> Accumulator {
        switch try u8() {
        case 1: return .count(try i64())
        case 2: return .sumInt(try i64())
        case 3: return .sumDouble(try f64())
        case 4: return .minMax(try value())
        case 5: return .avg(sum: try f64(), count: try i64())
        case 6:
            let n = Int(try u32())
            var s = Set<Value>(minimumCapacity: n)
            for _ in 0..<n { s.insert(try value()) }
            return .distinct(s)
        case 7: return .overflowed
        case let t: throw Corrupt(description: "unknown accumulator tag \(t) at byte \(at - 1)")
        }
    }
}

/// Keyed state grouped by key group, the unit of redistribution: a blob is
/// a header followed by sections `(keyGroup, byteLength, entries…)`, so a
/// subtask restoring at another parallelism reads only its key groups.
public enum KeyedStateFile {
    package static let magic: UInt32 = 0x5745_4952  // "WEIR"

    /// Encodes entries bucketed by key group. `header` carries non-keyed
    /// operator data (watermark, …); `encode` writes one entry.
    public static func write<Entry>(header: (inout StateWriter) -> Void, buckets: [Int: [Entry]],
                                    encode: (inout StateWriter, Entry) -> Void) -> [UInt8] {
        var w = StateWriter(capacity: 1 << 16)
        w.u32(magic)
        let h = w.lengthSlot()
        header(&w)
        w.patchLength(h)
        w.u32(UInt32(buckets.count))
        for kg in buckets.keys.sorted() {
            let entries = buckets[kg]!
            w.u32(UInt32(kg))
            let slot = w.lengthSlot()
            w.u32(UInt32(entries.count))
            for e in entries { encode(&w, e) }
            w.patchLength(slot)
        }
        return w.bytes
    }

    /// Decodes the header and the entries of the key groups in `keyGroups`.
    /// Bytes of the sections of `keyGroups` in a state file (0 when it is not one).
    public static func sectionBytes(_ bytes: [UInt8], keyGroups: ClosedRange<Int>) -> Int {
        var r = StateReader(bytes)
        guard (try? r.u32()) == magic, let hlen = try? r.u32(), (try? r.skip(Int(hlen))) != nil,
              let sections = try? r.u32() else { return 0 }
        var total = 0
        for _ in 0..<sections {
            guard let kg = try? r.u32(), let len = try? r.u32() else { break }
            if keyGroups.contains(Int(kg)) { total += Int(len) }
            guard (try? r.skip(Int(len))) != nil else { break }
        }
        return total
    }

    public static func read(_ bytes: [UInt8], keyGroups: ClosedRange<Int>,
                            header: (inout StateReader) throws -> Void,
                            entry: (inout StateReader) throws -> Void) throws {
        var r = StateReader(bytes)
        guard try r.u32() == magic else { throw StateReader.Corrupt(description: "not a Weir state file") }
        let hlen = Int(try r.u32())
        var hr = StateReader(bytes, from: r.at, to: r.at + hlen)
        try header(&hr)
        try r.skip(hlen)
        let sections = Int(try r.u32())
        for _ in 0..<sections {
            let kg = Int(try r.u32())
            let len = Int(try r.u32())
            if keyGroups.contains(kg) {
                var er = StateReader(bytes, from: r.at, to: r.at + len)
                let n = Int(try er.u32())
                for _ in 0..<n { try entry(&er) }
            }
            try r.skip(len)
        }
    }
}

/// Runs `body(0..<count)`, possibly on several threads at once (the engine
/// passes `DispatchQueue.concurrentPerform`; the core itself starts no thread).
package typealias ParallelFor = (_ count: Int, _ body: (Int) -> Void) -> Void

package func sequentialFor(_ count: Int, _ body: (Int) -> Void) { for i in 0..<count { body(i) } }

extension KeyedStateFile {
    /// One key group's section of a state file: `body` spans its entry count and entries.
    package struct Section: Sendable { package var keyGroup: Int; package var body: Range<Int> }

    /// Checks a state file's magic, hands its header to `header`, and lists its sections.
    package static func sections(_ bytes: [UInt8], header: (inout StateReader) throws -> Void) throws -> [Section] {
        var r = StateReader(bytes)
        guard try r.u32() == magic else { throw StateReader.Corrupt(description: "not a Weir state file") }
        let hlen = Int(try r.u32())
        try r.need(hlen)
        var hr = StateReader(bytes, from: r.at, to: r.at + hlen)
        try header(&hr)
        try r.skip(hlen)
        let n = Int(try r.u32())
        var out: [Section] = []
        out.reserveCapacity(min(n, 1 << 16))
        for _ in 0..<n {
            let kg = Int(try r.u32())
            let len = Int(try r.u32())
            try r.need(len)
            out.append(Section(keyGroup: kg, body: r.at..<(r.at + len)))
            try r.skip(len)
        }
        return out
    }

    /// Writes a state file whose sections are sized first and then filled in
    /// place, several at a time: `sizes[i]` is the byte length of section
    /// `i`'s entries (`keyGroups[i]`, `entries[i]` of them), and `fill(i, p)`
    /// writes exactly those bytes at `p`. The same bytes as `write(header:buckets:encode:)`.
    package static func write(header: [UInt8], keyGroups: [Int], entries: [Int], sizes: [Int],
                              parallel: ParallelFor, fill: (Int, UnsafeMutableRawPointer) -> Void) -> [UInt8] {
        var offsets: [Int] = []
        offsets.reserveCapacity(keyGroups.count)
        var total = 12 + header.count
        for s in sizes { offsets.append(total); total += 12 + s }
        return [UInt8](unsafeUninitializedCapacity: total) { buf, initialized in
            let base = UnsafeMutableRawPointer(buf.baseAddress!)
            base.storeBytes(of: magic.littleEndian, as: UInt32.self)
            (base + 4).storeBytes(of: UInt32(header.count).littleEndian, as: UInt32.self)
            _ = RawOut.bytes(header, base + 8)
            (base + 8 + header.count).storeBytes(of: UInt32(keyGroups.count).littleEndian, as: UInt32.self)
            withoutActuallyEscaping(fill) { fill in
                parallel(keyGroups.count) { i in
                    let p = base + offsets[i]
                    p.storeBytes(of: UInt32(keyGroups[i]).littleEndian, as: UInt32.self)
                    (p + 4).storeBytes(of: UInt32(4 + sizes[i]).littleEndian, as: UInt32.self)
                    (p + 8).storeBytes(of: UInt32(entries[i]).littleEndian, as: UInt32.self)
                    fill(i, p + 12)
                }
            }
            initialized = total
        }
    }
}
