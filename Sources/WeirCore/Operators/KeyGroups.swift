import Foundation

/// Key-group assignment, as in Flink: a key hashes to one of `maxParallelism`
/// key groups, and each subtask owns a contiguous range of key groups. Keyed
/// state is stored per key group so it can be redistributed when the
/// parallelism changes. The hash is stable across processes and machines
/// (Swift's `Hasher` is randomly seeded, so it is not used here).
public enum KeyGroups {
    @inline(__always) public static func hash(_ v: Value) -> UInt64 {
        switch v {
        case .null: return 0x9E37_79B9_7F4A_7C15
        case .bool(let b): return mix(b ? 1 : 2)
        case .int(let i): return mix(UInt64(bitPattern: i))
        case .double(let d):
            if let i = Int64(exactly: d) { return mix(UInt64(bitPattern: i)) }  // 3.0 and 3 group together
            return mix(d.bitPattern)
        case .string(let s): return hash(string: s)
        }
    }

    /// FNV-1a of the UTF-8 bytes, of the NFC form when the text may not be
    /// in NFC: strings that compare equal (canonical equivalence) hash alike,
    /// so they share a key group and a state entry. Text whose scalars are
    /// all below U+0300 (ASCII, Latin-1, most Latin letters) is always NFC
    /// and is hashed as it is, in one pass.
    public static func hash(string s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        var top: UInt8 = 0
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3; top = max(top, b) }
        if top >= 0xCC {  // a scalar from U+0300 on: maybe combining, maybe not NFC
            let nfc = s.precomposedStringWithCanonicalMapping
            h = 0xCBF2_9CE4_8422_2325
            for b in nfc.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        }
        return mix(h)
    }

    /// The stable hash of the key made of `fields` of `row`: the same as
    /// `GroupKey.of(row, fields).stableHash`, without building the key.
    @inline(__always) public static func keyHash(_ row: UnsafePointer<Value>, _ fields: [Int]) -> UInt64 {
        switch fields.count {
        case 1: return hash(row[fields[0]])
        case 2: return mix(hash(row[fields[0]]) &* 31 &+ hash(row[fields[1]]))
        default:
            var h: UInt64 = 17
            for f in fields { h = mix(h &* 31 &+ hash(row[f])) }
            return h
        }
    }

    /// SplitMix64 finaliser.
    @inline(__always) public static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always) public static func keyGroup(hash: UInt64, maxParallelism: Int) -> Int {
        Int(hash % UInt64(maxParallelism))
    }

    /// The subtask owning a key group (Flink's `computeOperatorIndexForKeyGroup`).
    @inline(__always) public static func subtask(keyGroup: Int, parallelism: Int, maxParallelism: Int) -> Int {
        keyGroup * parallelism / maxParallelism
    }

    /// The key groups owned by `subtask`.
    public static func range(subtask: Int, parallelism: Int, maxParallelism: Int) -> ClosedRange<Int> {
        let start = (subtask * maxParallelism + parallelism - 1) / parallelism
        let end = ((subtask + 1) * maxParallelism - 1) / parallelism
        return start...end
    }
}

/// The grouping key of a record: one or more field values. Small keys are
/// stored inline so looking a key up allocates nothing.
public enum GroupKey: Hashable, Sendable {
    case one(Value)
    case two(Value, Value)
    case many([Value])

    @inline(__always) public static func of(_ row: UnsafePointer<Value>, _ fields: [Int]) -> GroupKey {
        switch fields.count {
        case 0: return .many([])
        case 1: return .one(row[fields[0]])
        case 2: return .two(row[fields[0]], row[fields[1]])
        default: return .many(fields.map { row[$0] })
        }
    }

    public var values: [Value] {
        switch self {
        case .one(let a): return [a]
        case .two(let a, let b): return [a, b]
        case .many(let v): return v
        }
    }

    @inline(__always) public var stableHash: UInt64 {
        switch self {
        case .one(let a): return KeyGroups.hash(a)
        case .two(let a, let b): return KeyGroups.mix(KeyGroups.hash(a) &* 31 &+ KeyGroups.hash(b))
        case .many(let vs): return vs.reduce(UInt64(17)) { KeyGroups.mix($0 &* 31 &+ KeyGroups.hash($1)) }
        }
    }
}
