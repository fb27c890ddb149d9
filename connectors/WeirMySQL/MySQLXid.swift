import WeirCore

/// The XA transaction id (xid) of one epoch of one sink subtask, and its text form
/// `weir|<job>|<run>|<node>|<subtask>|<epoch>`.
///
/// It exists so that, after a crash, `MySQLSinkConnector.recover` can find the
/// prepared transactions of one job's sink node among everything `XA RECOVER`
/// lists (other jobs, other applications) and tell the engine which run, subtask
/// and epoch each belongs to, with nothing but the server's own list to go on.
///
/// Only the gtrid is used (bqual empty, formatID 1, MySQL's defaults), and the
/// gtrid is at most 64 bytes, so every field must be short:
/// - `job` and `node` appear verbatim when both are "simple" (ASCII letters,
///   digits, `_`, `-`, `.`) and together at most 18 bytes; otherwise each is
///   replaced by its own hash: the job field is `~` and 9 base-32 digits (45
///   bits), the node field `~` and 7 (35 bits), of the FNV-1a 64 hash of the
///   name's UTF-8 (finished with MurmurHash3's fmix64; digits `0-9a-v`, high
///   bits first). Hashing them separately lets recovery find every transaction
///   of a job without knowing its node names (`belongs(job:node: nil)`), e.g.
///   after a sink node was renamed. Recovery is given the names and computes
///   the same keys (`keys(job:node:)`), so it matches either form.
/// - Ids written before that change hashed job and node together: the job
///   field `~` and the 16 hex digits of FNV-1a 64 over job, 0xFF, node, and
///   the node field just `~`. They are still parsed and matched (given the
///   node name, which that form needs), so leftovers of older versions are
///   resolved.
/// - `run` appears verbatim when simple and at most 20 bytes, else as `~` and
///   the 16 hex digits of its FNV-1a 64 hash (`runKey(_:)`). A recovered
///   transaction's `scope.run` is this field, so compare runs through `runKey`.
/// - `subtask` and `epoch` in decimal.
///
/// `|` separates the fields and never occurs inside one (a name containing
/// it is not simple, so it is hashed). With these limits every id fits for
/// subtask < 10,000 and 0 ≤ epoch < 10^13; anything longer than 64 bytes is
/// refused (`init(scope:epoch:)` throws) rather than truncated.
public struct MySQLXid: Sendable, Equatable, CustomStringConvertible {
    /// The job name, or `~` + its hash (or, in ids of older versions, `~` + the hash of job and node).
    public var jobKey: String
    /// The run id, or `~` + its hash (see `runKey`).
    public var run: String
    /// The node id, or `~` + its hash (`~` alone when `jobKey` is the older hash of both).
    public var nodeKey: String
    /// The sink subtask.
    public var subtask: Int
    /// The epoch (checkpoint number) whose rows the transaction holds.
    public var epoch: Int64

    /// MySQL's limit on a gtrid, in bytes.
    public static let maxLength = 64
    /// Job and node appear verbatim up to this many bytes together (the length of their hashed form).
    static let verbatimNamesLimit = 18
    /// The run appears verbatim up to this many bytes.
    static let verbatimRunLimit = 20
    static let prefix = "weir"

    /// The xid of `epoch` of the subtask described by `scope`; throws
    /// (internal error) if it would be longer than 64 bytes.
    public init(scope: SinkTransactionScope, epoch: Int64) throws {
        (jobKey, nodeKey) = MySQLXid.keys(job: scope.job, node: scope.node)
        run = MySQLXid.runKey(scope.run)
        subtask = scope.subtask
        self.epoch = epoch
        let text = description
        if text.utf8.count > MySQLXid.maxLength {
            throw WeirError(.internalError, subject: "mysql sink \(scope.node) subtask \(scope.subtask) of job \(scope.job)",
                            "the XA transaction id '\(text)' of epoch \(epoch) is \(text.utf8.count) bytes, more than MySQL's 64",
                            suggestion: "use a shorter run id")
        }
    }

    /// Parses the text form; nil for anything that is not a Weir xid
    /// (another application's transaction, say).
    public init?(parsing text: String) {
        let parts = text.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard text.utf8.count <= MySQLXid.maxLength, parts.count == 6, parts[0] == MySQLXid.prefix,
              let subtask = Int(parts[4]), String(subtask) == parts[4],
              let epoch = Int64(parts[5]), String(epoch) == parts[5] else { return nil }
        let (job, run, node) = (parts[1], parts[2], parts[3])
        if MySQLXid.isHash(job) {
            guard node == "~" else { return nil } // the older joint hash
        } else if job.hasPrefix("~") {
            guard MySQLXid.isShortHash(job, digits: MySQLXid.jobHashDigits),
                  MySQLXid.isShortHash(node, digits: MySQLXid.nodeHashDigits) else { return nil }
        } else {
            guard MySQLXid.isSimple(job), MySQLXid.isSimple(node),
                  job.utf8.count + node.utf8.count <= MySQLXid.verbatimNamesLimit else { return nil }
        }
        guard MySQLXid.isHash(run) || (MySQLXid.isSimple(run) && run.utf8.count <= MySQLXid.verbatimRunLimit) else { return nil }
        (jobKey, self.run, nodeKey, self.subtask, self.epoch) = (job, run, node, subtask, epoch)
    }

    /// `weir|<job>|<run>|<node>|<subtask>|<epoch>`.
    public var description: String {
        "\(MySQLXid.prefix)|\(jobKey)|\(run)|\(nodeKey)|\(subtask)|\(epoch)"
    }

    /// True when this xid belongs to sink node `node` of job `job`; with `node`
    /// nil, to any sink node of the job. (An id of the older joint-hash form
    /// carries no key of the job alone, so it matches only when `node` is given.)
    public func belongs(job: String, node: String?) -> Bool {
        if nodeKey == "~" {
            guard let node else { return false }
            return jobKey == MySQLXid.jointHashKey(job: job, node: node)
        }
        if jobKey.hasPrefix("~") {
            return jobKey == MySQLXid.hashKey(job, digits: MySQLXid.jobHashDigits)
                && (node.map { nodeKey == MySQLXid.hashKey($0, digits: MySQLXid.nodeHashDigits) } ?? true)
        }
        return jobKey == job && (node.map { nodeKey == $0 } ?? true)
    }

    /// True when the node field is the node's name itself (not a hash).
    public var nodeIsVerbatim: Bool { !nodeKey.hasPrefix("~") }

    /// Base-32 digits of the job and node hashes.
    static let jobHashDigits = 9
    static let nodeHashDigits = 7

    /// The job and node fields for these names (verbatim, or each one's hash).
    public static func keys(job: String, node: String) -> (jobKey: String, nodeKey: String) {
        if isSimple(job), isSimple(node), job.utf8.count + node.utf8.count <= verbatimNamesLimit {
            return (job, node)
        }
        return (hashKey(job, digits: jobHashDigits), hashKey(node, digits: nodeHashDigits))
    }

    /// `~` and the first `digits` base-32 digits (`0-9a-v`) of the finished FNV-1a 64 hash of `name`.
    static func hashKey(_ name: String, digits: Int) -> String {
        var h = fmix64(fnv1a64(name.utf8))
        var out = "~"
        let alphabet = Array("0123456789abcdefghijklmnopqrstuv".utf8)
        for _ in 0..<digits {
            out.unicodeScalars.append(Unicode.Scalar(alphabet[Int(h >> 59)]))
            h <<= 5
        }
        return out
    }

    /// The job field of the older form: FNV-1a 64 over job, 0xFF, node.
    static func jointHashKey(job: String, node: String) -> String {
        var h = fnv1a64(job.utf8)
        h = fnv1a64(CollectionOfOne(0xFF), seed: h)
        h = fnv1a64(node.utf8, seed: h)
        return "~" + hex16(h)
    }

    /// `~` followed by exactly `digits` base-32 digits (`0-9a-v`).
    static func isShortHash(_ s: String, digits: Int) -> Bool {
        let u = Array(s.utf8)
        return u.count == digits + 1 && u[0] == UInt8(ascii: "~")
            && u.dropFirst().allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x76) }
    }

    /// MurmurHash3's 64-bit finaliser: spreads every input bit over the high bits used by `hashKey`.
    static func fmix64(_ x: UInt64) -> UInt64 {
        var k = x
        k ^= k >> 33
        k = k &* 0xff51_afd7_ed55_8ccd
        k ^= k >> 33
        k = k &* 0xc4ce_b9fe_1a85_ec53
        k ^= k >> 33
        return k
    }

    /// The run field for a run id (verbatim when short and simple, else `~` + hash).
    public static func runKey(_ run: String) -> String {
        if isSimple(run), run.utf8.count <= verbatimRunLimit { return run }
        return "~" + hex16(fnv1a64(run.utf8))
    }

    /// Non-empty ASCII letters, digits, `_`, `-` and `.` only.
    static func isSimple(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == UInt8(ascii: "_") || c == UInt8(ascii: "-") || c == UInt8(ascii: ".")
        }
    }

    /// `~` followed by 16 lowercase hex digits.
    static func isHash(_ s: String) -> Bool {
        let u = Array(s.utf8)
        return u.count == 17 && u[0] == UInt8(ascii: "~")
            && u.dropFirst().allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// FNV-1a, 64-bit: stable across processes and platforms (unlike `Hasher`).
    static func fnv1a64<C: Collection>(_ bytes: C, seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 where C.Element == UInt8 {
        var h = seed
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return h
    }

    static func hex16(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
