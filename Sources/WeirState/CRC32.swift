import WeirCore
/// CRC-32 (IEEE 802.3, the checksum of zlib, gzip and PNG: reflected
/// polynomial 0xEDB88320, initial value and final xor 0xFFFFFFFF), used to
/// detect corrupt snapshot files.
///
/// Snapshot state files can be tens of megabytes and are checksummed both
/// when written and when restored, so this is table-driven and processes
/// eight bytes per step ("slicing-by-8"): several GB/s in release builds.
/// It is incremental, so a file can be checksummed while it is streamed.
///
///     var crc = CRC32()
///     crc.update(chunk1); crc.update(chunk2)
///     crc.value   // CRC32.checksum(chunk1 + chunk2)
public struct CRC32: Sendable, Equatable {
    /// Running register (pre-inverted form).
    private var state: UInt32 = 0xFFFF_FFFF

    public init() {}

    /// The checksum of everything passed to `update` so far.
    public var value: UInt32 { ~state }

    /// Adds bytes to the checksum.
    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        state = CRC32.tables.withUnsafeBufferPointer { t in
            CRC32.step(state, base, buffer.count, t.baseAddress!)
        }
    }

    /// Adds bytes to the checksum.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Adds the UTF-8 bytes of a string to the checksum.
    public mutating func update(_ string: String) {
        var s = string
        s.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    /// The checksum of `bytes`.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = CRC32(); c.update(bytes); return c.value
    }

    /// The checksum of `bytes`.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// The checksum of `a` followed by `b`, from `checksum(a)`, `checksum(b)`
    /// and `b`'s length (zlib's `crc32_combine`): lets a file be checksummed
    /// in pieces on several threads, the pieces' checksums combined in order.
    public static func combine(_ crcA: UInt32, _ crcB: UInt32, lengthOfB: Int) -> UInt32 {
        guard lengthOfB > 0 else { return crcA }
        return multiplyModP(xPowerOf8N(UInt64(lengthOfB)), crcA) ^ crcB
    }

    /// a(x)·b(x) modulo the CRC polynomial, in the reflected bit order.
    private static func multiplyModP(_ a: UInt32, _ b: UInt32) -> UInt32 {
        var m: UInt32 = 1 << 31, p: UInt32 = 0, b = b
        while m != 0 {
            if a & m != 0 {
                p ^= b
                if a & (m - 1) == 0 { break }
            }
            m >>= 1
            b = b & 1 != 0 ? (b >> 1) ^ 0xEDB8_8320 : b >> 1
        }
        return p
    }

    /// x^(8n) modulo the CRC polynomial (n zero bytes appended).
    private static func xPowerOf8N(_ n: UInt64) -> UInt32 {
        var p: UInt32 = 1 << 31  // x^0
        var n = n, k = 3
        while n != 0 {
            if n & 1 != 0 { p = multiplyModP(powers[k & 31], p) }
            n >>= 1; k += 1
        }
        return p
    }

    /// x^(2^k) modulo the CRC polynomial, k = 0…31.
    private static let powers: [UInt32] = {
        var t: [UInt32] = [1 << 30]  // x^1
        for k in 1..<32 { t.append(multiplyModP(t[k - 1], t[k - 1])) }
        return t
    }()

    /// Eight 256-entry tables, table k at offset k*256: table 0 is the
    /// classic byte-at-a-time table, table k advances a byte through k
    /// further zero bytes.
    private static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
            t[i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 {
                let prev = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (prev >> 8) ^ t[Int(prev & 0xFF)]
            }
        }
        return t
    }()

    @inline(__always)
    private static func step(_ initial: UInt32, _ base: UnsafeRawPointer, _ count: Int,
                             _ t: UnsafePointer<UInt32>) -> UInt32 {
        var crc = initial
        var p = base
        var n = count
        // Byte at a time until aligned (keeps the 8-byte loads cheap on every CPU).
        while n > 0 && (UInt(bitPattern: p) & 7) != 0 {
            crc = (crc >> 8) ^ t[Int((crc ^ UInt32(p.load(as: UInt8.self))) & 0xFF)]
            p += 1; n -= 1
        }
        while n >= 8 {
            let word = UInt64(littleEndian: p.load(as: UInt64.self))
            let lo = UInt32(truncatingIfNeeded: word) ^ crc
            let hi = UInt32(truncatingIfNeeded: word >> 32)
            crc = t[7 * 256 + Int(lo & 0xFF)]
                ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                ^ t[5 * 256 + Int((lo >> 16) & 0xFF)]
                ^ t[4 * 256 + Int(lo >> 24)]
                ^ t[3 * 256 + Int(hi & 0xFF)]
                ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                ^ t[1 * 256 + Int((hi >> 16) & 0xFF)]
                ^ t[Int(hi >> 24)]
            p += 8; n -= 8
        }
        while n > 0 {
            crc = (crc >> 8) ^ t[Int((crc ^ UInt32(p.load(as: UInt8.self))) & 0xFF)]
            p += 1; n -= 1
        }
        return crc
    }
}
