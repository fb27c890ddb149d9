import Foundation
import WeirCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Unshadowed names for the POSIX calls (the types below have methods of the same names).
private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { write(fd, p, n) }
private func posixRename(_ from: String, _ to: String) -> Int32 { rename(from, to) }

/// POSIX file primitives for the snapshot store: writes that are fsync'd,
/// directory fsyncs (so renames and deletions are durable), and streaming
/// reads that checksum as they go. Errors name the path; their code is
/// `io_error`, or `state_dir_full` / `state_dir_unwritable` by errno.
enum DurableFiles {
    static func errnoText(_ e: Int32 = errno) -> String { String(cString: strerror(e)) }

    static func ioError(_ path: String, _ what: String, _ e: Int32 = errno) -> WeirError {
        WeirError(.io(errno: e), subject: path, "\(what): \(errnoText(e))")
    }

    /// The code of a failed Foundation file call (which wraps the errno).
    static func code(of error: any Error) -> WeirError.Code {
        let ns = error as NSError
        if ns.domain == NSPOSIXErrorDomain { return .io(errno: Int32(ns.code)) }
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return .io(errno: Int32(underlying.code))
        }
        switch CocoaError.Code(rawValue: ns.domain == NSCocoaErrorDomain ? ns.code : -1) {
        case .fileWriteOutOfSpace: return .stateDirFull
        case .fileWriteNoPermission, .fileWriteVolumeReadOnly: return .stateDirUnwritable
        default: return .io
        }
    }

    /// fsyncs a directory, making renames/creations/deletions in it durable.
    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError(path, "cannot open directory to sync it") }
        defer { close(fd) }
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            // Some file systems do not support fsync on directories; nothing more can be done there.
            if errno == EINVAL || errno == ENOTSUP { return }
            throw ioError(path, "cannot sync directory")
        }
    }

    /// Creates a directory (mode 0755); fails if it exists.
    static func makeDirectory(_ path: String) throws {
        guard mkdir(path, 0o755) == 0 else { throw ioError(path, "cannot create directory") }
    }

    /// Renames `from` to `to` (same file system, atomic).
    static func rename(_ from: String, _ to: String) throws {
        guard posixRename(from, to) == 0 else { throw ioError(to, "cannot rename \(from) to it") }
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Writes `data` to a new file, fsyncs it and closes it.
    static func writeNewFile(_ path: String, _ data: UnsafeRawBufferPointer) throws {
        let w = try FileWriter(path: path)
        do {
            try w.write(data)
            try w.finish()
        } catch {
            w.discard()
            throw error
        }
    }

    /// Size and CRC-32 of a file, read in chunks (never held in memory whole).
    static func measure(_ path: String) throws -> (bytes: Int64, crc32: UInt32) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError(path, errno == ENOENT ? "missing" : "cannot open") }
        defer { close(fd) }
        let chunk = 1 << 20
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buf.deallocate() }
        var crc = CRC32()
        var total: Int64 = 0
        while true {
            let n = read(fd, buf.baseAddress, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError(path, "cannot read")
            }
            if n == 0 { break }
            crc.update(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
            total += Int64(n)
        }
        return (total, crc.value)
    }

    /// The whole content of a file, with its CRC-32. Read straight into the
    /// returned array (no intermediate copy) in pieces of `piece` bytes, on
    /// every core at once, each piece checksummed as soon as it is read
    /// (while it is still in the cache); the pieces' checksums are combined
    /// in order (`CRC32.combine`), so the checksum is the file's, as before.
    static func readAll(_ path: String, piece: Int = 8 << 20) throws -> (bytes: [UInt8], crc32: UInt32) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError(path, errno == ENOENT ? "missing" : "cannot open") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ioError(path, "cannot stat") }
        let expected = max(0, Int(st.st_size))
        let piece = max(1, piece)
        let pieces = expected / piece + (expected % piece == 0 ? 0 : 1)
        var crcs = [UInt32](repeating: 0, count: pieces)
        var lengths = [Int](repeating: 0, count: pieces)
        var errors = [Int32](repeating: 0, count: pieces)
        var out = [UInt8](unsafeUninitializedCapacity: expected) { buf, initialized in
            initialized = 0
            guard let base = buf.baseAddress, pieces > 0 else { return }
            crcs.withUnsafeMutableBufferPointer { crcs in
                lengths.withUnsafeMutableBufferPointer { lengths in
                    errors.withUnsafeMutableBufferPointer { errors in
                        // Each iteration writes its own piece of `out` and its own slot of the arrays.
                        let shared = PieceBuffers(base: UnsafeMutableRawPointer(base), crcs: crcs.baseAddress!,
                                                  lengths: lengths.baseAddress!, errors: errors.baseAddress!)
                        DispatchQueue.concurrentPerform(iterations: pieces) { i in
                            let start = i * piece, len = min(piece, expected - start)
                            var done = 0
                            while done < len {
                                let n = pread(fd, shared.base + start + done, len - done, off_t(start + done))
                                if n < 0 { if errno == EINTR { continue }; shared.errors[i] = errno; break }
                                if n == 0 { break }  // shrank meanwhile: the size check reports it
                                done += n
                            }
                            shared.lengths[i] = done
                            shared.crcs[i] = CRC32.checksum(UnsafeRawBufferPointer(start: shared.base + start, count: done))
                        }
                    }
                }
            }
            // What was read without a gap (all of it, unless the file shrank).
            for i in 0..<pieces {
                initialized += lengths[i]
                if lengths[i] < min(piece, expected - i * piece) { break }
            }
        }
        if let e = errors.first(where: { $0 != 0 }) { throw ioError(path, "cannot read", e) }
        var crc: UInt32
        if out.count == expected {
            crc = crcs.first ?? CRC32().value
            for i in crcs.indices.dropFirst() { crc = CRC32.combine(crc, crcs[i], lengthOfB: lengths[i]) }
        } else {
            crc = out.withUnsafeBytes { CRC32.checksum($0) }
        }
        // Grew meanwhile: append the rest so the size check sees the real size.
        var more = [UInt8](repeating: 0, count: 64 << 10)
        while out.count >= expected {
            let offset = out.count
            let n = more.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
            if n < 0 { if errno == EINTR { continue }; throw ioError(path, "cannot read") }
            if n == 0 { break }
            out.append(contentsOf: more[0..<n])
            crc = CRC32.combine(crc, CRC32.checksum(Array(more[0..<n])), lengthOfB: n)
        }
        return (out, crc)
    }
}

/// The destination of `DurableFiles.readAll`'s pieces, shared by the threads
/// that read them: each writes only its own piece and its own slots.
private struct PieceBuffers: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let crcs: UnsafeMutablePointer<UInt32>
    let lengths: UnsafeMutablePointer<Int>
    let errors: UnsafeMutablePointer<Int32>
}

/// A new file being written: buffered, checksummed (CRC-32) as the bytes go
/// through, fsync'd on `finish`. Not thread-safe (one writer per file).
final class FileWriter {
    let path: String
    private var fd: Int32
    private var buffer: UnsafeMutableRawBufferPointer
    private var buffered = 0
    private(set) var crc = CRC32()
    private(set) var bytesWritten: Int64 = 0
    private static let bufferSize = 256 << 10

    /// Creates the file; fails if it exists.
    init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DurableFiles.ioError(path, "cannot create") }
        buffer = .allocate(byteCount: FileWriter.bufferSize, alignment: 16)
    }

    deinit {
        if fd >= 0 { close(fd) }
        buffer.deallocate()
    }

    func write(_ data: UnsafeRawBufferPointer) throws {
        guard fd >= 0 else { throw WeirError(.internalError, subject: path, "write after the file was closed") }
        guard data.count > 0 else { return }
        crc.update(data)
        bytesWritten += Int64(data.count)
        if buffered + data.count <= buffer.count {
            UnsafeMutableRawBufferPointer(rebasing: buffer[buffered..<buffered + data.count]).copyMemory(from: data)
            buffered += data.count
            return
        }
        try flushBuffer()
        if data.count >= buffer.count {
            try writeFully(data)   // large: straight from the caller's memory, no copy
        } else {
            UnsafeMutableRawBufferPointer(rebasing: buffer[0..<data.count]).copyMemory(from: data)
            buffered = data.count
        }
    }

    private func flushBuffer() throws {
        if buffered > 0 {
            try writeFully(UnsafeRawBufferPointer(rebasing: buffer[0..<buffered]))
            buffered = 0
        }
    }

    private func writeFully(_ data: UnsafeRawBufferPointer) throws {
        var p = data.baseAddress!
        var left = data.count
        while left > 0 {
            let n = posixWrite(fd, p, left)
            if n < 0 {
                if errno == EINTR { continue }
                throw DurableFiles.ioError(path, "cannot write")
            }
            p += n; left -= n
        }
    }

    /// Writes out the buffer, fsyncs and closes the file.
    func finish() throws {
        try flushBuffer()
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw DurableFiles.ioError(path, "cannot sync")
        }
        let r = close(fd)
        fd = -1
        guard r == 0 else { throw DurableFiles.ioError(path, "cannot close") }
    }

    /// Closes without syncing (the file is about to be deleted).
    func discard() {
        if fd >= 0 { close(fd); fd = -1 }
    }
}
