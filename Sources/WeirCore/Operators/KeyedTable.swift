/// Compact keyed aggregate state: one open-addressing table per key group,
/// holding keys and accumulators inline in flat arrays (no heap object per
/// key), found by the key's stable hash (the one that routes the record and
/// picks its key group), so a key is hashed once per operator and never by
/// Swift's `Hasher`. Being grouped per key group, a snapshot encodes the
/// tables as they are (no re-bucketing), several key groups at a time, and a
/// restore decodes each key group's section straight into its table.
///
/// Layout of entry `e` in a table:
/// - key: `keyArity` (tag, word) pairs, tags as in the state codec
///   (0 null, 1 false, 2 true, 3 int, 4 double, 5 string); an int or double
///   is its 64-bit pattern, a string the index of its text in `strings`;
/// - accumulators: one tag per aggregate (the codec's accumulator tags:
///   1 count, 2 integer sum, 3 double sum, 4 min/max, 5 avg, 6 distinct,
///   7 overflowed) and `AccumulatorLayout.width` words: count and sums in one
///   word, avg in two (sum, count); min/max and distinct values, which are not
///   fixed-width, live in `boxed` and their word is the index there.
package struct KeyTable: Sendable {
    package private(set) var count = 0
    /// Slots: entry + 1, 0 for empty; the capacity is a power of two.
    private var index: [UInt32] = []
    private var shift = 64
    package private(set) var keyTags: [UInt8] = []
    package private(set) var keyWords: [UInt64] = []
    package private(set) var strings: [String] = []
    package private(set) var accTags: [UInt8] = []
    package private(set) var accWords: [UInt64] = []
    package private(set) var boxed: [Accumulator] = []

    package init() {}

    package var isEmpty: Bool { count == 0 }

    @inline(__always) private func slot(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash >> UInt64(shift)) }

    /// Reserves room for `n` more entries without rehashing.
    package mutating func reserve(_ n: Int, layout: AccumulatorLayout, keyArity: Int) {
        let total = count + n
        var cap = max(8, index.count)
        while total * 4 > cap * 3 { cap <<= 1 }
        if cap != index.count { rebuildIndex(capacity: cap, keyArity: keyArity) }
        keyTags.reserveCapacity(total * keyArity); keyWords.reserveCapacity(total * keyArity)
        accTags.reserveCapacity(total * layout.count); accWords.reserveCapacity(total * layout.width)
    }

    private mutating func rebuildIndex(capacity: Int, keyArity: Int) {
        index = []
        var ix = [UInt32](repeating: 0, count: capacity)
        shift = 64 - capacity.trailingZeroBitCount
        let mask = capacity - 1
        for e in 0..<count {
            var s = slot(storedHash(e, keyArity: keyArity))
            while ix[s] != 0 { s = (s + 1) & mask }
            ix[s] = UInt32(e + 1)
        }
        index = ix
    }

    /// The stable hash of entry `e`'s key (as `KeyGroups.keyHash` of the record it came from).
    package func storedHash(_ e: Int, keyArity: Int) -> UInt64 {
        switch keyArity {
        case 1: return KeyGroups.hash(keyValue(e, 0, keyArity: 1))
        case 2: return KeyGroups.mix(KeyGroups.hash(keyValue(e, 0, keyArity: 2)) &* 31 &+ KeyGroups.hash(keyValue(e, 1, keyArity: 2)))
        default:
            var h: UInt64 = 17
            for f in 0..<keyArity { h = KeyGroups.mix(h &* 31 &+ KeyGroups.hash(keyValue(e, f, keyArity: keyArity))) }
            return h
        }
    }

    @inline(__always) package func keyValue(_ e: Int, _ f: Int, keyArity: Int) -> Value {
        let i = e * keyArity + f
        let w = keyWords[i]
        switch keyTags[i] {
        case 0: return .null
        case 1: return .bool(false)
        case 2: return .bool(true)
        case 3: return .int(Int64(bitPattern: w))
        case 4: return .double(Double(bitPattern: w))
        default: return .string(strings[Int(w)])
        }
    }

    @inline(__always) private func matches(_ i: Int, _ v: Value) -> Bool {
        let t = keyTags[i], w = keyWords[i]
        switch v {
        case .null: return t == 0
        case .bool(let b): return t == (b ? 2 : 1)
        case .int(let x): return t == 3 && w == UInt64(bitPattern: x)
        case .double(let d): return t == 4 && Double(bitPattern: w) == d
        case .string(let s): return t == 5 && strings[Int(w)] == s
        }
    }

    @inline(__always) private mutating func appendKeyValue(_ v: Value) {
        switch v {
        case .null: keyTags.append(0); keyWords.append(0)
        case .bool(let b): keyTags.append(b ? 2 : 1); keyWords.append(0)
        case .int(let x): keyTags.append(3); keyWords.append(UInt64(bitPattern: x))
        case .double(let d): keyTags.append(4); keyWords.append(d.bitPattern)
        case .string(let s): keyTags.append(5); keyWords.append(UInt64(strings.count)); strings.append(s)
        }
    }

    /// The entry of the key in `row` (fields `keyFields`, stable hash `hash`),
    /// inserted with the initial accumulators when it is new.
    @inline(__always)
    package mutating func entry(_ hash: UInt64, _ row: UnsafePointer<Value>, _ keyFields: [Int], _ layout: AccumulatorLayout) -> Int {
        let arity = keyFields.count
        if (count + 1) * 4 > index.count * 3 { rebuildIndex(capacity: max(8, index.count * 2), keyArity: arity) }
        let mask = index.count - 1
        var s = slot(hash)
        while true {
            let x = Int(index[s])
            if x == 0 { break }
            let e = x - 1
            var same = true
            for f in 0..<arity where !matches(e * arity + f, row[keyFields[f]]) { same = false; break }
            if same { return e }
            s = (s + 1) & mask
        }
        let e = count
        for f in 0..<arity { appendKeyValue(row[keyFields[f]]) }
        accTags.append(contentsOf: layout.initialTags)
        accWords.append(contentsOf: layout.initialWords)
        if layout.boxedSlots { initBoxed(e, layout) }
        index[s] = UInt32(e + 1)
        count += 1
        return e
    }

    /// Adds entry `e` of `other` (a key this table does not hold yet).
    package mutating func append(entry e: Int, of other: KeyTable, keyArity: Int, _ layout: AccumulatorLayout) {
        let n = count
        for f in 0..<keyArity { appendKeyValue(other.keyValue(e, f, keyArity: keyArity)) }
        accTags.append(contentsOf: repeatElement(0, count: layout.count))  // every one is set below
        accWords.append(contentsOf: layout.initialWords)
        for i in 0..<layout.count { set(n, i, other.accumulator(e, i, layout), layout) }
        count += 1
        insertIndex(n, keyArity: keyArity)
    }

    /// Indexes entry `e` (just appended, its key new to the table).
    private mutating func insertIndex(_ e: Int, keyArity: Int) {
        if count * 4 > index.count * 3 {
            rebuildIndex(capacity: max(8, index.count * 2), keyArity: keyArity)  // indexes entry e too
            return
        }
        let mask = index.count - 1
        var s = slot(storedHash(e, keyArity: keyArity))
        while index[s] != 0 { s = (s + 1) & mask }
        index[s] = UInt32(e + 1)
    }

    /// Decodes one entry as `StateWriter.key` and `.accumulator` wrote it
    /// (restore); returns the stable hash of its key. Keys in a state file
    /// are unique, so the entry is appended without a lookup.
    package mutating func decodeEntry(_ r: inout StateReader, keyArity: Int, _ layout: AccumulatorLayout) throws -> UInt64 {
        let n = Int(try r.u8())
        guard n == keyArity else { throw StateReader.Corrupt(description: "a key of \(n) fields where the node keys by \(keyArity), at byte \(r.at - 1)") }
        for _ in 0..<n {
            let t = try r.u8()
            switch t {
            case 0, 1, 2: keyTags.append(t); keyWords.append(0)
            case 3, 4: keyTags.append(t); keyWords.append(UInt64(bitPattern: try r.i64()))
            case 5: keyTags.append(5); keyWords.append(UInt64(strings.count)); strings.append(try r.string())
            default: throw StateReader.Corrupt(description: "unknown value tag \(t) at byte \(r.at - 1)")
            }
        }
        let e = count
        accTags.append(contentsOf: repeatElement(0, count: layout.count))  // every one is set below
        accWords.append(contentsOf: layout.initialWords)
        for i in 0..<layout.count {
            let a = try r.accumulator()
            if case .avg = a, layout.initialTags[i] != 5 {
                throw StateReader.Corrupt(description: "an average where aggregate \(i) is not one, at byte \(r.at)")
            }
            set(e, i, a, layout)
        }
        count += 1
        let h = storedHash(e, keyArity: keyArity)
        indexDecoded(e, h, keyArity: keyArity)
        return h
    }

    /// Indexes entry `e` (just decoded, its key new to the table, its hash `h`).
    @inline(__always)
    private mutating func indexDecoded(_ e: Int, _ h: UInt64, keyArity: Int) {
        if count * 4 > index.count * 3 {
            rebuildIndex(capacity: max(8, index.count * 2), keyArity: keyArity)
        } else {
            let mask = index.count - 1
            var s = slot(h)
            while index[s] != 0 { s = (s + 1) & mask }
            index[s] = UInt32(e + 1)
        }
    }

    /// Decodes the entry at byte `at` of `base` (the section's bytes end at
    /// `end`) when it has `shape`, as `decodeEntry` would; returns the stable
    /// hash of its key. Returns nil, having appended nothing, when the entry
    /// has another shape or would run past `end`: `decodeEntry` then decodes
    /// it (or reports what is wrong with it).
    @inline(__always)
    package mutating func decodeFixedEntry(_ base: UnsafeRawPointer, at: Int, end: Int, _ shape: FixedEntryShape) -> UInt64? {
        guard at >= 0, end - at >= shape.size else { return nil }
        let p = base + at
        let arity = shape.keyArity
        guard p.load(as: UInt8.self) == UInt8(truncatingIfNeeded: arity) else { return nil }
        for f in 0..<arity {
            let t = p.load(fromByteOffset: 1 + 9 * f, as: UInt8.self)
            guard t == 3 || t == 4 else { return nil }
        }
        for i in 0..<shape.accTags.count where p.load(fromByteOffset: shape.accOffsets[i], as: UInt8.self) != shape.accTags[i] {
            return nil
        }
        for f in 0..<arity {
            keyTags.append(p.load(fromByteOffset: 1 + 9 * f, as: UInt8.self))
            keyWords.append(UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 2 + 9 * f, as: UInt64.self)))
        }
        for i in 0..<shape.accTags.count {
            let o = shape.accOffsets[i]
            accTags.append(shape.accTags[i])
            accWords.append(UInt64(littleEndian: p.loadUnaligned(fromByteOffset: o + 1, as: UInt64.self)))
            if shape.accTags[i] == 5 { accWords.append(UInt64(littleEndian: p.loadUnaligned(fromByteOffset: o + 9, as: UInt64.self))) }
        }
        let e = count
        count += 1
        let h: UInt64
        if arity == 1 && keyTags[e] == 3 {
            h = KeyGroups.mix(keyWords[e])  // KeyGroups.hash(.int(x)), without the enum
        } else {
            h = storedHash(e, keyArity: arity)
        }
        indexDecoded(e, h, keyArity: arity)
        return h
    }

    /// Removes the last entry (a decoded entry that belongs to another key group).
    package mutating func removeLast(keyArity: Int, _ layout: AccumulatorLayout) -> KeyTable {
        var one = KeyTable()
        one.append(entry: count - 1, of: self, keyArity: keyArity, layout)
        let e = count - 1
        let mask = index.count - 1
        var s = slot(storedHash(e, keyArity: keyArity))
        while Int(index[s]) != e + 1 { s = (s + 1) & mask }
        // Backward-shift deletion keeps every other entry reachable by linear probing.
        var hole = s
        var j = (s + 1) & mask
        while index[j] != 0 {
            let want = slot(storedHash(Int(index[j]) - 1, keyArity: keyArity))
            if (j - want) & mask >= (j - hole) & mask { index[hole] = index[j]; hole = j }
            j = (j + 1) & mask
        }
        index[hole] = 0
        keyTags.removeLast(keyArity); keyWords.removeLast(keyArity)
        accTags.removeLast(layout.count); accWords.removeLast(layout.width)
        count -= 1
        return one
    }

    private mutating func initBoxed(_ e: Int, _ layout: AccumulatorLayout) {
        for i in 0..<layout.count where layout.initialTags[i] == 4 || layout.initialTags[i] == 6 {
            accWords[e * layout.width + layout.offsets[i]] = UInt64(boxed.count)
            boxed.append(layout.initial[i])
        }
    }

    /// Accumulator `i` of entry `e`.
    @inline(__always) package func accumulator(_ e: Int, _ i: Int, _ layout: AccumulatorLayout) -> Accumulator {
        let w = e * layout.width + layout.offsets[i]
        switch accTags[e * layout.count + i] {
        case 1: return .count(Int64(bitPattern: accWords[w]))
        case 2: return .sumInt(Int64(bitPattern: accWords[w]))
        case 3: return .sumDouble(Double(bitPattern: accWords[w]))
        case 5: return .avg(sum: Double(bitPattern: accWords[w]), count: Int64(bitPattern: accWords[w + 1]))
        case 7: return .overflowed
        default: return boxed[Int(accWords[w])]
        }
    }

    package mutating func set(_ e: Int, _ i: Int, _ a: Accumulator, _ layout: AccumulatorLayout) {
        let w = e * layout.width + layout.offsets[i], t = e * layout.count + i
        switch a {
        case .count(let c): accTags[t] = 1; accWords[w] = UInt64(bitPattern: c)
        case .sumInt(let s): accTags[t] = 2; accWords[w] = UInt64(bitPattern: s)
        case .sumDouble(let s): accTags[t] = 3; accWords[w] = s.bitPattern
        case .avg(let s, let c): accTags[t] = 5; accWords[w] = s.bitPattern; accWords[w + 1] = UInt64(bitPattern: c)
        case .overflowed: accTags[t] = 7
        case .minMax, .distinct:
            let tag: UInt8 = { if case .minMax = a { return 4 } else { return 6 } }()
            let old = accTags[t]
            if old == 4 || old == 6 {
                let b = Int(accWords[w])
                boxed[b] = .count(0)  // release the old value first, so a set is not copied
                boxed[b] = a
            } else {
                accWords[w] = UInt64(boxed.count)
                boxed.append(a)
            }
            accTags[t] = tag
        }
    }

    package func isOverflowed(_ e: Int, _ layout: AccumulatorLayout) -> Bool {
        for i in 0..<layout.count where accTags[e * layout.count + i] == 7 { return true }
        return false
    }

    /// Folds one row into entry `e`. Counts and sums are updated in place;
    /// anything else goes through `Accumulator.add`, so results are the same.
    @inline(__always)
    package mutating func fold(_ e: Int, _ row: UnsafePointer<Value>, _ folder: SlotFolder) {
        let layout = folder.layout
        for i in 0..<layout.count {
            let v: Value
            switch folder.arguments[i] {
            case .none: v = .bool(true)
            case .field(let f): v = row[f]
            case .expr(let ev): v = ev(row)
            }
            if v.isNull { continue }
            let w = e * layout.width + layout.offsets[i], t = e * layout.count + i
            switch accTags[t] {
            case 1: accWords[w] = accWords[w] &+ 1
            case 2:
                if case .int(let x) = v {
                    let (r, o) = Int64(bitPattern: accWords[w]).addingReportingOverflow(x)
                    if o { accTags[t] = 7 } else { accWords[w] = UInt64(bitPattern: r) }
                } else {
                    var a = accumulator(e, i, layout); a.add(v, folder.functions[i]); set(e, i, a, layout)
                }
            case 3: if let d = v.asDouble { accWords[w] = (Double(bitPattern: accWords[w]) + d).bitPattern }
            case 7: continue
            case 4, 6:
                let b = Int(accWords[w])
                var a = boxed[b]
                boxed[b] = .count(0)  // release the reference so the insert does not copy
                a.add(v, folder.functions[i])
                boxed[b] = a
            default:
                var a = accumulator(e, i, layout); a.add(v, folder.functions[i]); set(e, i, a, layout)
            }
        }
    }

    @inline(__always)
    package mutating func upsertFold(_ hash: UInt64, _ row: UnsafePointer<Value>, _ keyFields: [Int], _ folder: SlotFolder) -> Int {
        let e = entry(hash, row, keyFields, folder.layout)
        fold(e, row, folder)
        return e
    }

    // MARK: snapshot encoding (the format of `StateWriter.key` / `.accumulator`)

    /// Bytes `encode(_:into:)` writes for entry `e`.
    package func encodedSize(_ e: Int, keyArity: Int, _ layout: AccumulatorLayout) -> Int {
        var n = 1
        for f in 0..<keyArity {
            let i = e * keyArity + f
            switch keyTags[i] {
            case 3, 4: n += 9
            case 5: n += 5 + strings[Int(keyWords[i])].utf8.count
            default: n += 1
            }
        }
        for i in 0..<layout.count {
            switch accTags[e * layout.count + i] {
            case 1, 2, 3: n += 9
            case 5: n += 17
            case 7: n += 1
            default: n += StateWriter.size(of: boxed[Int(accWords[e * layout.width + layout.offsets[i]])])
            }
        }
        return n
    }

    /// Writes entry `e`'s key and accumulators at `p`; returns the position after them.
    package func encode(_ e: Int, keyArity: Int, _ layout: AccumulatorLayout, into p: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        var p = p
        p.storeBytes(of: UInt8(keyArity), as: UInt8.self); p += 1
        for f in 0..<keyArity {
            let i = e * keyArity + f
            let t = keyTags[i]
            p.storeBytes(of: t, as: UInt8.self); p += 1
            switch t {
            case 3, 4: p.storeBytes(of: keyWords[i].littleEndian, toByteOffset: 0, as: UInt64.self); p += 8
            case 5: p = RawOut.string(strings[Int(keyWords[i])], p)
            default: break
            }
        }
        for i in 0..<layout.count {
            let t = accTags[e * layout.count + i]
            let w = e * layout.width + layout.offsets[i]
            switch t {
            case 1, 2, 3:
                p.storeBytes(of: t, as: UInt8.self)
                (p + 1).storeBytes(of: accWords[w].littleEndian, as: UInt64.self)
                p += 9
            case 5:
                p.storeBytes(of: t, as: UInt8.self)
                (p + 1).storeBytes(of: accWords[w].littleEndian, as: UInt64.self)
                (p + 9).storeBytes(of: accWords[w + 1].littleEndian, as: UInt64.self)
                p += 17
            case 7: p.storeBytes(of: t, as: UInt8.self); p += 1
            default:
                var sw = StateWriter()
                sw.accumulator(boxed[Int(accWords[w])])
                p = RawOut.bytes(sw.bytes, p)
            }
        }
        return p
    }
}

/// The byte layout of an entry whose key fields are all numbers (int or
/// double) and whose aggregates are all fixed-width (count, integer or
/// double sum, avg), as `StateWriter` writes it: key arity, a (tag, 8 bytes)
/// pair per key field, a (tag, 8 or 16 bytes) group per aggregate.
///
/// It exists so that a restore decodes such entries (the usual shape: an int
/// key with a count and a sum) with a few unaligned loads instead of the
/// generic `StateReader` calls, each bounds-checked and switching on a tag
/// (`KeyTable.decodeFixedEntry`). An entry of any other shape (a string or
/// null key field, an overflowed sum, …) goes through `KeyTable.decodeEntry`,
/// so the table is the same either way. The file format is unchanged.
package struct FixedEntryShape: Sendable {
    package let keyArity: Int
    /// The tag each aggregate's accumulator must have (the layout's initial one).
    package let accTags: [UInt8]
    /// Where each accumulator's tag is, from the start of the entry.
    package let accOffsets: [Int]
    /// Bytes of one entry.
    package let size: Int

    /// Nil when `layout` has an aggregate that is not fixed-width (min, max,
    /// count_distinct) or the key arity cannot be written in one byte.
    package init?(keyArity: Int, layout: AccumulatorLayout) {
        guard keyArity >= 1, keyArity <= 255 else { return nil }
        var offsets: [Int] = [], at = 1 + 9 * keyArity
        for t in layout.initialTags {
            offsets.append(at)
            switch t {
            case 1, 2, 3: at += 9
            case 5: at += 17
            default: return nil
            }
        }
        self.keyArity = keyArity
        accTags = layout.initialTags
        accOffsets = offsets
        size = at
    }
}

/// Unaligned little-endian writes into a preallocated buffer.
package enum RawOut {
    @inline(__always) static func bytes(_ b: [UInt8], _ p: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        b.withUnsafeBytes { if let base = $0.baseAddress { p.copyMemory(from: base, byteCount: b.count) } }
        return p + b.count
    }
    @inline(__always) static func string(_ s: String, _ p: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        var s = s
        return s.withUTF8 { u in
            p.storeBytes(of: UInt32(u.count).littleEndian, as: UInt32.self)
            if let base = u.baseAddress { (p + 4).copyMemory(from: base, byteCount: u.count) }
            return p + 4 + u.count
        }
    }
}

/// Where each aggregate's accumulator lives in an entry (fixed per operator).
package struct AccumulatorLayout: Sendable {
    package let count: Int
    /// Words per entry: one per aggregate, two for `avg`.
    package let width: Int
    package let offsets: [Int]
    package let initial: [Accumulator]
    package let initialTags: [UInt8]
    package let initialWords: [UInt64]
    /// Whether some aggregate keeps its value in `boxed` (min, max, count_distinct).
    package let boxedSlots: Bool

    package init(_ aggs: [AggregateSpec]) {
        count = aggs.count
        var offsets: [Int] = [], w = 0
        for a in aggs { offsets.append(w); w += a.function == .avg ? 2 : 1 }
        self.offsets = offsets
        width = w
        initial = aggs.map { Accumulator.initial($0.function, type: $0.argument?.type ?? .int) }
        var tags: [UInt8] = [], words = [UInt64](repeating: 0, count: w)
        for (i, a) in initial.enumerated() {
            switch a {
            case .count(let c): tags.append(1); words[offsets[i]] = UInt64(bitPattern: c)
            case .sumInt(let s): tags.append(2); words[offsets[i]] = UInt64(bitPattern: s)
            case .sumDouble(let s): tags.append(3); words[offsets[i]] = s.bitPattern
            case .avg(let s, let c): tags.append(5); words[offsets[i]] = s.bitPattern; words[offsets[i] + 1] = UInt64(bitPattern: c)
            case .minMax: tags.append(4)
            case .distinct: tags.append(6)
            case .overflowed: tags.append(7)
            }
        }
        initialTags = tags
        initialWords = words
        boxedSlots = tags.contains(4) || tags.contains(6)
    }
}

/// The aggregate arguments and functions unpacked once, for `KeyTable.fold`.
package struct SlotFolder {
    package let layout: AccumulatorLayout
    package let functions: [AggregateSpec.Function]
    package let arguments: [AggregateFolder.Argument]

    package init(_ aggs: [AggregateSpec]) {
        layout = AccumulatorLayout(aggs)
        functions = aggs.map(\.function)
        arguments = aggs.map { a in
            guard let arg = a.argument else { return .none }
            if let f = arg.fieldIndex { return .field(f) }
            return .expr(arg.eval)
        }
    }
}

/// The state of one operator (or one window pane): a `KeyTable` per key group.
package struct KeyedTables: Sendable {
    package let maxParallelism: Int
    package var tables: [KeyTable]

    package init(maxParallelism: Int) {
        self.maxParallelism = maxParallelism
        self.tables = []  // sized on first use: an empty pane costs nothing
    }

    package var count: Int { tables.reduce(0) { $0 + $1.count } }
    package var isEmpty: Bool { tables.allSatisfy(\.isEmpty) }

    /// Folds `row` into its key's entry (inserted if new); returns the key group and entry.
    @inline(__always)
    package mutating func fold(_ row: UnsafePointer<Value>, _ keyFields: [Int], _ folder: SlotFolder) -> (Int, Int) {
        if tables.isEmpty { tables = Array(repeating: KeyTable(), count: maxParallelism) }
        let h = KeyGroups.keyHash(row, keyFields)
        let kg = KeyGroups.keyGroup(hash: h, maxParallelism: maxParallelism)
        let e = tables[kg].upsertFold(h, row, keyFields, folder)
        return (kg, e)
    }

    /// The key group and entry of the key in `row`, inserted if new.
    @inline(__always)
    package mutating func entry(_ row: UnsafePointer<Value>, _ keyFields: [Int], _ layout: AccumulatorLayout) -> (Int, Int) {
        let h = KeyGroups.keyHash(row, keyFields)
        let kg = KeyGroups.keyGroup(hash: h, maxParallelism: maxParallelism)
        if tables.isEmpty { tables = Array(repeating: KeyTable(), count: maxParallelism) }
        return (kg, tables[kg].entry(h, row, keyFields, layout))
    }
}
