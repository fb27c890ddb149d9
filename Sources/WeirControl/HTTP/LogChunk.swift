import Foundation

/// A run's log read in pieces, so the console and `weir job logs --follow`
/// can poll it without ever holding a whole file.
enum LogChunk {
    /// Largest chunk returned per request.
    static let maxBytes = 1 << 20

    /// Up to `maxBytes` of the file from `offset`, cut after the last complete
    /// line when the chunk is full; returns the next offset.
    static func read(_ path: String, from offset: UInt64) -> (String, UInt64) {
        guard let h = FileHandle(forReadingAtPath: path) else { return ("", offset) }
        defer { try? h.close() }
        let size = (try? h.seekToEnd()) ?? 0
        guard offset < size else { return ("", min(offset, size)) }
        do { try h.seek(toOffset: offset) } catch { return ("", offset) }
        var data = (try? h.read(upToCount: maxBytes)) ?? Data()
        if data.count == maxBytes, let nl = data.lastIndex(of: 0x0A), nl > data.startIndex {
            data = data[data.startIndex...nl]
        }
        return (String(decoding: data, as: UTF8.self), offset + UInt64(data.count))
    }
}
