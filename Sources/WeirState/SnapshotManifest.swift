import Foundation
import WeirCore

/// Why a snapshot was taken, which decides how long it is kept.
///
/// - `checkpoint`: taken periodically by the runtime; only the `retain`
///   latest are kept, older ones are deleted automatically.
/// - `savepoint`: taken on request (to upgrade, rescale or move a job);
///   kept until deleted explicitly.
/// - `stop`: taken when a job is stopped with a snapshot; kept until deleted.
public enum SnapshotKind: String, Codable, Sendable, CaseIterable {
    case checkpoint, savepoint, stop

    /// Prefix of the snapshot ids of this kind (`chk-17`, `sav-18`, `stop-19`).
    public var idPrefix: String {
        switch self {
        case .checkpoint: return "chk"
        case .savepoint: return "sav"
        case .stop: return "stop"
        }
    }
}

/// One state file of a snapshot: the keyed (or non-keyed) state of one
/// subtask of one stateful operator, as an opaque blob written by that operator.
///
/// The store names the file, measures it and checksums it while writing it;
/// restoring verifies size and checksum before the bytes reach an operator.
/// `keyGroups` records which key groups the blob covers, so keyed state can
/// be redistributed when a job is restored with a different parallelism.
public struct StateFile: Codable, Sendable, Equatable {
    /// The operator's node id.
    public var node: String
    /// The subtask that wrote the file (0-based, < the manifest's parallelism).
    public var subtask: Int
    /// File name inside the snapshot directory (a single path component).
    public var file: String
    /// Size of the file in bytes.
    public var bytes: Int64
    /// CRC-32 (IEEE, as zlib/gzip) of the file's bytes.
    public var crc32: UInt32
    /// Key groups covered (inclusive), or nil for non-keyed state.
    /// Encoded as `{"first": a, "last": b}` or `null`.
    public var keyGroups: ClosedRange<Int>?

    public init(node: String, subtask: Int, file: String, bytes: Int64, crc32: UInt32, keyGroups: ClosedRange<Int>?) {
        self.node = node; self.subtask = subtask; self.file = file
        self.bytes = bytes; self.crc32 = crc32; self.keyGroups = keyGroups
    }

    /// The checksum as 8 lowercase hex digits, as printed in messages.
    public var crc32Hex: String { hex32(crc32) }

    private enum CodingKeys: String, CodingKey { case node, subtask, file, bytes, crc32, keyGroups }
    private struct Range: Codable { var first: Int; var last: Int }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        node = try c.decode(String.self, forKey: .node)
        subtask = try c.decode(Int.self, forKey: .subtask)
        file = try c.decode(String.self, forKey: .file)
        bytes = try c.decode(Int64.self, forKey: .bytes)
        crc32 = try c.decode(UInt32.self, forKey: .crc32)
        if let r = try c.decodeIfPresent(Range.self, forKey: .keyGroups) {
            guard r.first <= r.last else {
                throw DecodingError.dataCorruptedError(forKey: .keyGroups, in: c,
                    debugDescription: "key group range \(r.first)...\(r.last) is empty")
            }
            keyGroups = r.first...r.last
        } else {
            keyGroups = nil
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(node, forKey: .node)
        try c.encode(subtask, forKey: .subtask)
        try c.encode(file, forKey: .file)
        try c.encode(bytes, forKey: .bytes)
        try c.encode(crc32, forKey: .crc32)
        if let k = keyGroups { try c.encode(Range(first: k.lowerBound, last: k.upperBound), forKey: .keyGroups) }
        else { try c.encodeNil(forKey: .keyGroups) }
    }
}

/// The description of one snapshot (`manifest.json` in its directory): what
/// it belongs to and everything needed to restore a job consistently from it
/// — source offsets, the state files of stateful operators (with their
/// checksums) and the prepared transactions of the sinks.
///
/// The manifest is written last, so a snapshot directory with a readable
/// manifest is complete. It is pretty-printed JSON with sorted keys so people
/// and tools (the control plane) can read it directly.
public struct SnapshotManifest: Codable, Sendable, Equatable {
    /// The manifest format this build writes and reads.
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    /// `chk-17`, `sav-18`, `stop-19`: the kind's prefix and the checkpoint
    /// number. Also the name of the snapshot's directory.
    public var id: String
    /// The job's name.
    public var job: String
    /// The published job version (set by the control plane); nil for local runs.
    public var version: Int?
    /// Id of the run that took the snapshot (a restore starts a new run).
    public var run: String
    /// The checkpoint number (epoch). Increases across runs of a job.
    public var checkpointID: Int64
    public var kind: SnapshotKind
    /// When the snapshot was taken, ISO-8601 in UTC (`2024-05-01T12:00:00.123Z`).
    public var createdAt: String
    public var parallelism: Int
    /// Number of key groups: fixed for the life of the keyed state.
    public var maxParallelism: Int
    /// The ids of every node of the job.
    public var nodes: [String]
    /// Source node id → split name (`events/0`) → next offset to read.
    public var offsets: [String: [String: Int64]]
    /// The state files, sorted by node and subtask.
    public var state: [StateFile]
    /// Sink node id → subtask → id of the transaction prepared for this epoch.
    /// A subtask without an entry prepared nothing (wrote nothing in the epoch).
    public var sinkTransactions: [String: [Int: String]]
    /// Node id → fingerprint of its state layout (e.g.
    /// `window:tumbling:10000|keys:user_id|aggs:count,sum`), to refuse a
    /// restore into an operator whose state means something else.
    public var layouts: [String: String]
    /// Sum of the state files' sizes.
    public var totalBytes: Int64
    /// Keyed state decoded per second, measured on a sample when the snapshot
    /// was taken (nil: not measured): predicts how long a restore takes.
    public var decodeBytesPerSecond: Double?

    /// A manifest to hand to `PendingSnapshotWrite.commit`. The store fills
    /// in `formatVersion`, `id`, `kind`, `checkpointID`, `state` and `totalBytes`.
    public init(job: String, version: Int? = nil, run: String,
                checkpointID: Int64 = 0, kind: SnapshotKind = .checkpoint,
                createdAt: String = SnapshotManifest.timestamp(Date()),
                parallelism: Int, maxParallelism: Int, nodes: [String],
                offsets: [String: [String: Int64]] = [:], state: [StateFile] = [],
                sinkTransactions: [String: [Int: String]] = [:], layouts: [String: String] = [:]) {
        self.formatVersion = SnapshotManifest.currentFormatVersion
        self.id = SnapshotManifest.id(kind: kind, checkpointID: checkpointID)
        self.job = job; self.version = version; self.run = run
        self.checkpointID = checkpointID; self.kind = kind; self.createdAt = createdAt
        self.parallelism = parallelism; self.maxParallelism = maxParallelism; self.nodes = nodes
        self.offsets = offsets; self.state = state; self.sinkTransactions = sinkTransactions
        self.layouts = layouts
        self.totalBytes = state.reduce(0) { $0 + $1.bytes }
    }

    /// The id of a snapshot: `chk-17`, `sav-17`, `stop-17`.
    public static func id(kind: SnapshotKind, checkpointID: Int64) -> String {
        "\(kind.idPrefix)-\(checkpointID)"
    }

    /// Splits an id such as `chk-17` into kind and checkpoint number; nil
    /// when the name is not a snapshot id.
    public static func parseID(_ id: String) -> (kind: SnapshotKind, checkpointID: Int64)? {
        guard let dash = id.lastIndex(of: "-") else { return nil }
        let prefix = id[..<dash], number = id[id.index(after: dash)...]
        guard let kind = SnapshotKind.allCases.first(where: { $0.idPrefix == prefix }),
              !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }),
              let n = Int64(number) else { return nil }
        return (kind, n)
    }

    /// ISO-8601 UTC with milliseconds, as used for `createdAt`.
    public static func timestamp(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: date)
    }

    /// `createdAt` as a date (nil if it is not ISO-8601).
    public var createdDate: Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: createdAt) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: createdAt)
    }

    /// Number of source splits (topic-partitions) whose offsets are recorded.
    public var splitCount: Int { offsets.values.reduce(0) { $0 + $1.count } }

    /// The state files of one node, by subtask.
    public func stateFiles(node: String) -> [StateFile] {
        state.filter { $0.node == node }.sorted { $0.subtask < $1.subtask }
    }

    /// The state files of `node` holding key groups in `range`: what a
    /// subtask owning `range` restores from (after a change of parallelism,
    /// several files may overlap it and each holds key groups outside it too).
    public func stateFiles(node: String, overlapping range: ClosedRange<Int>) -> [StateFile] {
        stateFiles(node: node).filter { $0.keyGroups?.overlaps(range) ?? false }
    }

    // Explicit coding so that every key is always present (`"version": null`),
    // which keeps the file self-describing for readers in other languages.
    private enum CodingKeys: String, CodingKey {
        case formatVersion, id, job, version, run, checkpointID, kind, createdAt, parallelism
        case maxParallelism, nodes, offsets, state, sinkTransactions, layouts, totalBytes, decodeBytesPerSecond
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        formatVersion = try c.decode(Int.self, forKey: .formatVersion)
        guard formatVersion <= SnapshotManifest.currentFormatVersion, formatVersion >= 1 else {
            throw DecodingError.dataCorruptedError(forKey: .formatVersion, in: c, debugDescription:
                "format version \(formatVersion) is not supported by this build of weir (it reads version \(SnapshotManifest.currentFormatVersion))")
        }
        id = try c.decode(String.self, forKey: .id)
        job = try c.decode(String.self, forKey: .job)
        version = try c.decodeIfPresent(Int.self, forKey: .version)
        run = try c.decode(String.self, forKey: .run)
        checkpointID = try c.decode(Int64.self, forKey: .checkpointID)
        kind = try c.decode(SnapshotKind.self, forKey: .kind)
        createdAt = try c.decode(String.self, forKey: .createdAt)
        parallelism = try c.decode(Int.self, forKey: .parallelism)
        maxParallelism = try c.decode(Int.self, forKey: .maxParallelism)
        nodes = try c.decode([String].self, forKey: .nodes)
        offsets = try c.decodeIfPresent([String: [String: Int64]].self, forKey: .offsets) ?? [:]
        state = try c.decodeIfPresent([StateFile].self, forKey: .state) ?? []
        sinkTransactions = try c.decodeIfPresent([String: [Int: String]].self, forKey: .sinkTransactions) ?? [:]
        layouts = try c.decodeIfPresent([String: String].self, forKey: .layouts) ?? [:]
        totalBytes = try c.decode(Int64.self, forKey: .totalBytes)
        decodeBytesPerSecond = try c.decodeIfPresent(Double.self, forKey: .decodeBytesPerSecond)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(formatVersion, forKey: .formatVersion)
        try c.encode(id, forKey: .id)
        try c.encode(job, forKey: .job)
        if let version { try c.encode(version, forKey: .version) } else { try c.encodeNil(forKey: .version) }
        try c.encode(run, forKey: .run)
        try c.encode(checkpointID, forKey: .checkpointID)
        try c.encode(kind, forKey: .kind)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(parallelism, forKey: .parallelism)
        try c.encode(maxParallelism, forKey: .maxParallelism)
        try c.encode(nodes, forKey: .nodes)
        try c.encode(offsets, forKey: .offsets)
        try c.encode(state, forKey: .state)
        try c.encode(sinkTransactions, forKey: .sinkTransactions)
        try c.encode(layouts, forKey: .layouts)
        try c.encode(totalBytes, forKey: .totalBytes)
        if let decodeBytesPerSecond { try c.encode(decodeBytesPerSecond.rounded(), forKey: .decodeBytesPerSecond) }
        else { try c.encodeNil(forKey: .decodeBytesPerSecond) }
    }

    /// The manifest as written to `manifest.json`: pretty-printed, sorted keys.
    public func jsonData() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var d = try e.encode(self)
        d.append(0x0A)
        return d
    }

    /// Checks the manifest's internal consistency (what a reader relies on).
    /// Returns the problems found, empty when none.
    public func consistencyProblems() -> [String] {
        var p: [String] = []
        if SnapshotManifest.parseID(id).map({ $0.kind != kind || $0.checkpointID != checkpointID }) ?? true {
            p.append("id '\(id)' does not match kind \(kind.rawValue) and checkpoint \(checkpointID)")
        }
        if parallelism < 1 { p.append("parallelism \(parallelism) is not positive") }
        if maxParallelism < parallelism { p.append("maxParallelism \(maxParallelism) is below parallelism \(parallelism)") }
        let known = Set(nodes)
        func check(_ what: String, _ ids: some Sequence<String>) {
            for n in Set(ids).sorted() where !known.contains(n) { p.append("\(what) names node '\(n)', which is not in nodes") }
        }
        check("offsets", offsets.keys)
        check("state", state.map(\.node))
        check("sinkTransactions", sinkTransactions.keys)
        check("layouts", layouts.keys)
        var files = Set<String>(), owners = Set<String>()
        for f in state {
            if !isPlainFileName(f.file) { p.append("state file name '\(f.file)' is not a plain file name") }
            if !files.insert(f.file).inserted { p.append("state file '\(f.file)' is listed twice") }
            if !owners.insert("\(f.node)\u{0}\(f.subtask)").inserted { p.append("node '\(f.node)' subtask \(f.subtask) has two state files") }
            if f.subtask < 0 || f.subtask >= parallelism { p.append("state file '\(f.file)' belongs to subtask \(f.subtask), outside 0-\(parallelism - 1)") }
            if f.bytes < 0 { p.append("state file '\(f.file)' has a negative size") }
            if let k = f.keyGroups, k.lowerBound < 0 || k.upperBound >= maxParallelism {
                p.append("state file '\(f.file)' covers key groups \(k.lowerBound)-\(k.upperBound), outside 0-\(maxParallelism - 1)")
            }
        }
        let sum = state.reduce(Int64(0)) { $0 + $1.bytes }
        if sum != totalBytes { p.append("totalBytes \(totalBytes) differs from the sum of the state files (\(sum))") }
        return p
    }
}

/// True for a name usable as one path component (no separators, not `.`/`..`).
func isPlainFileName(_ name: String) -> Bool {
    !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.contains("\u{0}")
}

func hex32(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 8 - s.count) + s
}
