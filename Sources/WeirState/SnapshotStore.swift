import Foundation
import WeirCore
import Logging
import Synchronization

/// The durable home of one job's snapshots (checkpoints, savepoints and stop
/// snapshots), one directory per snapshot directly under `directory`:
///
///     <directory>/chk-17/manifest.json
///     <directory>/chk-17/per-user-0.state
///     <directory>/sav-18/…
///
/// It exists so that the runtime can take and restore consistent snapshots
/// without ever seeing a half-written one, and so tools (`weir snapshot`, the
/// control plane) can list, inspect and delete them:
///
/// - **Atomic writes.** A snapshot is assembled in `.tmp-<id>-<random>`
///   (same directory, same file system): every state file is written and
///   fsync'd, `manifest.json` is written last and fsync'd, then the directory
///   is renamed to `<id>` and the parent directory fsync'd. A crash at any
///   point leaves either the complete snapshot or a `.tmp-*` leftover, which
///   is ignored and removed the next time a store is opened with `init`.
/// - **Checksums.** Each state file's size and CRC-32 are computed while it
///   is written and recorded in the manifest; `load` verifies them, so a
///   corrupt file is reported (naming it) before its bytes reach an operator.
/// - **Retention.** After each successful write, all but the `retain` latest
///   `checkpoint` snapshots are deleted; savepoints and stop snapshots are
///   kept until deleted explicitly.
///
/// Thread-safe: writes of different snapshots, and state files of the same
/// snapshot, may proceed concurrently from several threads. One process
/// should write a given directory at a time (one running job); readers in
/// other processes (`weir snapshot list`) use `openExisting`, which does not
/// remove anything.
public final class SnapshotStore: Sendable {
    /// The job's snapshot directory.
    public let directory: URL
    /// How many `checkpoint` snapshots are kept (at least 1).
    public let retain: Int
    /// Receives warnings that do not fail an operation (e.g. an old
    /// checkpoint that could not be removed by retention).
    private let logger: Logger
    /// Serialises renames into the directory, deletions and retention.
    private let lock = Mutex(())

    /// Name of the manifest inside a snapshot directory.
    public static let manifestName = "manifest.json"
    static let temporaryPrefix = ".tmp-"

    /// Opens (creating it if needed) the snapshot directory of a job that
    /// is about to run, and removes `.tmp-*` leftovers of interrupted writes.
    /// - Parameters:
    ///   - retain: the number of `checkpoint` snapshots kept (the spec's
    ///     `checkpoint.retain`); values below 1 count as 1.
    ///   - logger: receives warnings that do not fail an operation.
    public convenience init(directory: URL, retain: Int = 3, logger: Logger = Logger(label: "weir.snapshots")) throws {
        try self.init(directory: directory, retain: retain, logger: logger, create: true, removeLeftovers: true)
    }

    /// Opens an existing snapshot directory for reading, inspecting and
    /// deleting, without creating it or removing leftovers (a running job
    /// may be writing into it). Fails if the directory does not exist.
    public static func openExisting(_ directory: URL, retain: Int = 3) throws -> SnapshotStore {
        try SnapshotStore(directory: directory, retain: retain, logger: Logger(label: "weir.snapshots"), create: false, removeLeftovers: false)
    }

    private init(directory: URL, retain: Int, logger: Logger, create: Bool, removeLeftovers: Bool) throws {
        self.directory = directory.standardizedFileURL
        self.retain = max(1, retain)
        self.logger = logger
        let path = self.directory.path
        if !DurableFiles.isDirectory(path) {
            if DurableFiles.exists(path) {
                throw WeirError(.io, subject: "snapshot directory \(path)", "exists but is not a directory")
            }
            guard create else {
                throw WeirError(.io, subject: "snapshot directory \(path)", "does not exist",
                                suggestion: "check --state-dir; a job creates it when it first runs")
            }
            do {
                try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
                try? DurableFiles.syncDirectory(self.directory.deletingLastPathComponent().path)
            } catch {
                throw WeirError(DurableFiles.code(of: error), subject: "snapshot directory \(path)",
                                "cannot be created: \(error.localizedDescription)")
            }
        }
        if removeLeftovers {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            where name.hasPrefix(SnapshotStore.temporaryPrefix) {
                try? FileManager.default.removeItem(atPath: path + "/" + name)
            }
        }
    }

    // MARK: Writing

    /// Starts writing snapshot `<kind prefix>-<checkpointID>` into a fresh
    /// temporary directory. Add state files (from any threads), then
    /// `commit` the manifest; a pending write that is dropped or `abort`ed
    /// leaves nothing behind.
    public func begin(kind: SnapshotKind, checkpointID: Int64) throws -> PendingSnapshotWrite {
        let id = SnapshotManifest.id(kind: kind, checkpointID: checkpointID)
        guard checkpointID >= 0 else {
            throw WeirError(.internalError, subject: "snapshot \(id)", "checkpoint ids are not negative")
        }
        // Checkpoint numbers are one sequence across kinds: chk-5 and sav-5 never both exist.
        for k in SnapshotKind.allCases {
            let taken = path(of: SnapshotManifest.id(kind: k, checkpointID: checkpointID))
            if DurableFiles.exists(taken) {
                throw WeirError(.io, subject: "snapshot \(taken)", "already exists",
                                suggestion: "take the next checkpoint id (SnapshotStore.nextCheckpointID)")
            }
        }
        let random = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let tmp = directory.appendingPathComponent("\(SnapshotStore.temporaryPrefix)\(id)-\(random)", isDirectory: true)
        try DurableFiles.makeDirectory(tmp.path)
        return PendingSnapshotWrite(store: self, id: id, kind: kind, checkpointID: checkpointID, temporaryDirectory: tmp)
    }

    /// Writes a whole snapshot in one call: `manifest.state` says which
    /// node/subtask/key groups each file of `files` (file name → bytes)
    /// belongs to; sizes and checksums are computed here. Prefer `begin`
    /// when state is produced piecemeal or concurrently.
    @discardableResult
    public func write(_ manifest: SnapshotManifest, files: [String: [UInt8]], retain: Int? = nil) throws -> SnapshotManifest {
        let listed = Set(manifest.state.map(\.file))
        if let extra = files.keys.sorted().first(where: { !listed.contains($0) }) {
            throw WeirError(.internalError, subject: "snapshot \(manifest.id)", "file '\(extra)' is not listed in manifest.state")
        }
        let pending = try begin(kind: manifest.kind, checkpointID: manifest.checkpointID)
        for f in manifest.state {
            guard let bytes = files[f.file] else {
                pending.abort()
                throw WeirError(.internalError, subject: "snapshot \(manifest.id)", "no bytes given for state file '\(f.file)'")
            }
            do {
                try pending.addState(node: f.node, subtask: f.subtask, keyGroups: f.keyGroups, file: f.file, bytes: bytes)
            } catch {
                pending.abort()
                throw error
            }
        }
        var m = manifest
        m.state = []
        return try pending.commit(m, retain: retain)
    }

    /// Second half of `PendingSnapshotWrite.commit`: publishes the finished
    /// temporary directory under its id, then applies retention.
    func publish(_ tmp: URL, id: String, retain: Int?) throws {
        let target = path(of: id)
        try lock.withLock { _ in
            if DurableFiles.exists(target) {
                throw WeirError(.io, subject: "snapshot \(target)", "already exists")
            }
            try DurableFiles.rename(tmp.path, target)
            do {
                try DurableFiles.syncDirectory(directory.path)
            } catch {
                // Not durable: withdraw it rather than report a snapshot that may vanish.
                let away = directory.appendingPathComponent("\(SnapshotStore.temporaryPrefix)failed-\(id)-\(UInt32.random(in: 0...UInt32.max))").path
                if (try? DurableFiles.rename(target, away)) != nil { try? FileManager.default.removeItem(atPath: away) }
                throw error
            }
        }
        do {
            try prune(retain: retain ?? self.retain)
        } catch {
            logger.warning("snapshot retention: \(error)")
        }
    }

    // MARK: Reading

    /// The valid snapshots (sorted by checkpoint id, then kind) and the
    /// directories that look like snapshots but cannot be used, with why.
    /// Reads only manifests; `load` verifies state files.
    public func list() -> SnapshotListing {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        var snapshots: [SnapshotManifest] = []
        var problems: [SnapshotProblem] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            let dir = path(of: name)
            guard DurableFiles.isDirectory(dir) else { continue }
            do {
                let m = try SnapshotStore.readManifest(directory: dir)
                if m.id != name {
                    problems.append(SnapshotProblem(directory: dir,
                        problem: "its manifest is for snapshot '\(m.id)' (the directory was renamed or copied)"))
                } else {
                    snapshots.append(m)
                }
            } catch let e as WeirError {
                problems.append(SnapshotProblem(directory: dir, problem: e.message))
            } catch {
                problems.append(SnapshotProblem(directory: dir, problem: "\(error)"))
            }
        }
        snapshots.sort(by: SnapshotStore.order)
        return SnapshotListing(snapshots: snapshots, problems: problems)
    }

    /// The valid snapshot with the highest checkpoint id among `kinds`.
    public func latest(kinds: Set<SnapshotKind> = Set(SnapshotKind.allCases)) -> SnapshotManifest? {
        list().snapshots.last { kinds.contains($0.kind) }
    }

    /// One more than the highest checkpoint id in the directory (1 when
    /// empty), counting unreadable and in-progress snapshot directories too,
    /// so checkpoint ids keep increasing across runs and restores and a new
    /// snapshot never collides with an existing directory.
    public func nextCheckpointID() -> Int64 {
        var highest: Int64 = 0
        for m in list().snapshots { highest = max(highest, m.checkpointID) }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] {
            var n = Substring(name)
            if n.hasPrefix(SnapshotStore.temporaryPrefix) {
                n = n.dropFirst(SnapshotStore.temporaryPrefix.count)
                guard let dash = n.lastIndex(of: "-") else { continue }
                n = n[..<dash]
            }
            if let p = SnapshotManifest.parseID(String(n)) { highest = max(highest, p.checkpointID) }
        }
        return highest + 1
    }

    /// The highest checkpoint id of the snapshots taken by run `run`, if any.
    public func highestCheckpointID(run: String) -> Int64? {
        list().snapshots.filter { $0.run == run }.map(\.checkpointID).max()
    }

    /// Whether the sink transaction of epoch `checkpointID` of run `run` is
    /// covered by a completed snapshot, i.e. must be committed (not rolled
    /// back) when resolving leftovers after a crash. A completed checkpoint
    /// covers its own epoch and every earlier epoch of its run (epochs of
    /// aborted checkpoints stay prepared until the next one completes), so
    /// this asks for a snapshot of `run` with an id of at least `checkpointID`.
    public func isCompleted(run: String, checkpointID: Int64) -> Bool {
        (highestCheckpointID(run: run) ?? Int64.min) >= checkpointID
    }

    /// Opens a snapshot for restoring, verifying (unless `verify` is false)
    /// the size and checksum of every state file.
    ///
    /// `idOrPath` is a snapshot id in this store (`chk-17`), a bare
    /// checkpoint number (`17`), `latest` (the valid snapshot with the
    /// highest checkpoint id, of any kind), or a path
    /// (absolute, or relative to the working directory) to a snapshot
    /// directory or its `manifest.json` — e.g. a savepoint of another job.
    public func load(_ idOrPath: String, verify: Bool = true) throws -> LoadedSnapshot {
        try LoadedSnapshot(directory: resolve(idOrPath), verify: verify)
    }

    /// Reads a snapshot for restoring (`idOrPath` as for `load`): its manifest,
    /// then each state file once, checked against its size and checksum as it
    /// is read. (`load` followed by `restorePoint()` reads every file twice:
    /// once to verify it, once for its bytes.)
    public func restorePoint(_ idOrPath: String) throws -> RestorePoint {
        try load(idOrPath, verify: false).restorePoint()
    }

    /// The directory of a snapshot named by id, number or path (see `load`).
    public func resolve(_ idOrPath: String) throws -> URL {
        if isPlainFileName(idOrPath) && DurableFiles.isDirectory(path(of: idOrPath)) {
            return directory.appendingPathComponent(idOrPath, isDirectory: true)
        }
        if idOrPath == "latest" {
            guard let m = latest() else {
                throw WeirError(.io, subject: "snapshot latest", "there is no snapshot in \(directory.path)")
            }
            return directory.appendingPathComponent(m.id, isDirectory: true)
        }
        if !idOrPath.isEmpty, idOrPath.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int64(idOrPath) {
            let matches = list().snapshots.filter { $0.checkpointID == n }
            if matches.count == 1 { return directory.appendingPathComponent(matches[0].id, isDirectory: true) }
            if matches.count > 1 {
                throw WeirError(.io, subject: "snapshot \(idOrPath)", "is ambiguous: " + matches.map(\.id).joined(separator: ", "),
                                suggestion: "name the snapshot by its id")
            }
        }
        var url = URL(fileURLWithPath: idOrPath).standardizedFileURL
        if url.lastPathComponent == SnapshotStore.manifestName && !DurableFiles.isDirectory(url.path) {
            url = url.deletingLastPathComponent()
        }
        if DurableFiles.isDirectory(url.path) && (idOrPath.contains("/") || idOrPath == "." || idOrPath == "..") {
            return url
        }
        throw WeirError(.io, subject: "snapshot \(idOrPath)", "not found in \(directory.path)",
                        suggestion: "see weir snapshot list --state-dir \(directory.path), or give the path of a snapshot directory")
    }

    // MARK: Deleting

    /// Deletes a snapshot of this store. The directory is first renamed to a
    /// `.tmp-*` name (atomic), so a half-deleted snapshot is never seen.
    public func delete(_ id: String) throws {
        try lock.withLock { _ in try removeLocked(id) }
    }

    /// Deletes all but the `retain` latest `checkpoint` snapshots (by
    /// checkpoint id); savepoints and stop snapshots are never touched.
    /// Returns the ids deleted. Called after every successful write.
    @discardableResult
    public func prune(retain: Int) throws -> [String] {
        try lock.withLock { _ in
            let checkpoints = list().snapshots.filter { $0.kind == .checkpoint }
            let doomed = checkpoints.dropLast(max(1, retain))
            var removed: [String] = []
            var firstError: (any Error)?
            for m in doomed {
                do { try removeLocked(m.id); removed.append(m.id) } catch { firstError = firstError ?? error }
            }
            if let firstError { throw firstError }
            return removed
        }
    }

    private func removeLocked(_ id: String) throws {
        let target = path(of: id)
        guard isPlainFileName(id), !id.hasPrefix("."), DurableFiles.isDirectory(target) else {
            throw WeirError(.io, subject: "snapshot \(id)", "not found in \(directory.path)",
                            suggestion: "see weir snapshot list --state-dir \(directory.path)")
        }
        let away = directory.appendingPathComponent(
            "\(SnapshotStore.temporaryPrefix)deleting-\(id)-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))").path
        try DurableFiles.rename(target, away)
        try DurableFiles.syncDirectory(directory.path)
        do { try FileManager.default.removeItem(atPath: away) } catch {
            throw WeirError(.io, subject: away, "cannot remove: \(error.localizedDescription)")
        }
    }

    // MARK: Helpers

    func path(of name: String) -> String { directory.appendingPathComponent(name).path }

    /// The suggestion attached to errors about a damaged snapshot in `dir`.
    static func restoreHint(forSnapshotAt dir: String) -> String {
        let parent = URL(fileURLWithPath: dir).deletingLastPathComponent().path
        return "restore from an earlier snapshot (weir snapshot list --state-dir \(parent))"
    }

    static func order(_ a: SnapshotManifest, _ b: SnapshotManifest) -> Bool {
        if a.checkpointID != b.checkpointID { return a.checkpointID < b.checkpointID }
        let rank: [SnapshotKind: Int] = [.checkpoint: 0, .savepoint: 1, .stop: 2]
        return rank[a.kind]! < rank[b.kind]!
    }

    /// Reads and checks `manifest.json` of a snapshot directory.
    static func readManifest(directory dir: String) throws -> SnapshotManifest {
        let file = dir + "/" + manifestName
        let hint = restoreHint(forSnapshotAt: dir)
        let data: Data
        if !DurableFiles.exists(file) {
            throw WeirError(.snapshotCorrupt, subject: "snapshot file \(file)",
                            "missing: the snapshot is incomplete (its manifest is written last)", suggestion: hint)
        }
        do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
            throw WeirError(.io, subject: "snapshot file \(file)", "cannot be read: \(error.localizedDescription)", suggestion: hint)
        }
        let m: SnapshotManifest
        do { m = try JSONDecoder().decode(SnapshotManifest.self, from: data) } catch {
            throw WeirError(.snapshotCorrupt, subject: "snapshot file \(file)",
                            "is not a valid manifest (\(describe(error))): the file is corrupt", suggestion: hint)
        }
        let problems = m.consistencyProblems()
        if !problems.isEmpty {
            throw WeirError(.snapshotCorrupt, subject: "snapshot file \(file)",
                            "is inconsistent: " + problems.joined(separator: "; "), suggestion: hint)
        }
        return m
    }

    /// A one-line account of a decoding error.
    static func describe(_ error: any Error) -> String {
        func at(_ path: [any CodingKey]) -> String {
            path.isEmpty ? "" : " at " + path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        guard let e = error as? DecodingError else { return "\(error)" }
        switch e {
        case .dataCorrupted(let c):
            if c.codingPath.isEmpty { return "not valid JSON" }
            return c.debugDescription + at(c.codingPath)
        case .keyNotFound(let k, let c): return "missing '\(k.stringValue)'" + at(c.codingPath)
        case .typeMismatch(_, let c): return "wrong type" + at(c.codingPath)
        case .valueNotFound(_, let c): return "missing value" + at(c.codingPath)
        @unknown default: return "\(e)"
        }
    }
}

/// What `SnapshotStore.list` returns: the usable snapshots and the
/// directories that could not be read (reported, never silently dropped).
public struct SnapshotListing: Sendable {
    /// Valid snapshots, sorted by checkpoint id.
    public var snapshots: [SnapshotManifest]
    /// Directories that are not usable snapshots, with the reason.
    public var problems: [SnapshotProblem]
}

/// A directory in the snapshot store that is not a usable snapshot.
public struct SnapshotProblem: Sendable, Equatable, Codable {
    /// Full path of the directory.
    public var directory: String
    /// Why it is not usable (e.g. "missing: the snapshot is incomplete …").
    public var problem: String
}

/// A snapshot being written (from `SnapshotStore.begin`). State files may be
/// added from several threads at once; `commit` publishes the snapshot
/// atomically. If the write is abandoned (`abort`, or the object is
/// released without a commit), its temporary directory is removed.
public final class PendingSnapshotWrite: Sendable {
    public let id: String
    public let kind: SnapshotKind
    public let checkpointID: Int64
    /// The `.tmp-<id>-<random>` directory the files go to.
    public let temporaryDirectory: URL
    private let store: SnapshotStore

    private struct Status {
        var files: [StateFile] = []
        var names: Set<String> = []
        var owners: Set<String> = []
        var inFlight = 0
        var finished = false
    }
    private let status = Mutex(Status())

    init(store: SnapshotStore, id: String, kind: SnapshotKind, checkpointID: Int64, temporaryDirectory: URL) {
        self.store = store; self.id = id; self.kind = kind
        self.checkpointID = checkpointID; self.temporaryDirectory = temporaryDirectory
    }

    deinit {
        if !status.withLock({ $0.finished }) { try? FileManager.default.removeItem(at: temporaryDirectory) }
    }

    /// The default file name of a node's subtask's state: `<node>-<subtask>.state`.
    public static func fileName(node: String, subtask: Int) -> String {
        let safe = String(node.unicodeScalars.map { c -> Character in
            (c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "-" || c == "_" || c == "."))
                ? Character(c) : "_"
        })
        return "\(safe)-\(subtask).state"
    }

    /// Writes the state of one operator subtask from memory (no copy is
    /// made) and returns its manifest entry (size and CRC-32 filled in).
    @discardableResult
    public func addState(node: String, subtask: Int, keyGroups: ClosedRange<Int>?, file: String? = nil,
                         bytes: UnsafeRawBufferPointer) throws -> StateFile {
        try addState(node: node, subtask: subtask, keyGroups: keyGroups, file: file) { try $0.write(bytes) }
    }

    /// Writes the state of one operator subtask from memory and returns its manifest entry.
    @discardableResult
    public func addState(node: String, subtask: Int, keyGroups: ClosedRange<Int>?, file: String? = nil,
                         bytes: [UInt8]) throws -> StateFile {
        try bytes.withUnsafeBytes { try addState(node: node, subtask: subtask, keyGroups: keyGroups, file: file, bytes: $0) }
    }

    /// Streams the state of one operator subtask: `body` writes it in as
    /// many pieces as it likes (so large state need not be assembled in one
    /// buffer); the file is checksummed as it goes and fsync'd at the end.
    @discardableResult
    public func addState(node: String, subtask: Int, keyGroups: ClosedRange<Int>?, file: String? = nil,
                         _ body: (StateFileOutput) throws -> Void) throws -> StateFile {
        let name = file ?? PendingSnapshotWrite.fileName(node: node, subtask: subtask)
        guard isPlainFileName(name), !name.hasPrefix("."), name != SnapshotStore.manifestName else {
            throw WeirError(.internalError, subject: "snapshot \(id)", "'\(name)' cannot be used as a state file name")
        }
        guard subtask >= 0 else { throw WeirError(.internalError, subject: "snapshot \(id)", "negative subtask \(subtask) for node '\(node)'") }
        let owner = "\(node)\u{0}\(subtask)"
        try status.withLock { s in
            guard !s.finished else { throw WeirError(.internalError, subject: "snapshot \(id)", "state added after commit or abort") }
            guard !s.names.contains(name) else {
                throw WeirError(.internalError, subject: "snapshot \(id)", "state file '\(name)' added twice")
            }
            guard !s.owners.contains(owner) else {
                throw WeirError(.internalError, subject: "snapshot \(id)", "node '\(node)' subtask \(subtask) added state twice")
            }
            s.names.insert(name); s.owners.insert(owner); s.inFlight += 1
        }
        let path = temporaryDirectory.appendingPathComponent(name).path
        var entry: StateFile?
        defer {
            status.withLock { s in
                s.inFlight -= 1
                if let entry { s.files.append(entry) } else { s.names.remove(name); s.owners.remove(owner) }
            }
        }
        let writer = try FileWriter(path: path)
        do {
            try body(StateFileOutput(writer))
            try writer.finish()
        } catch {
            writer.discard()
            try? FileManager.default.removeItem(atPath: path)
            throw error
        }
        entry = StateFile(node: node, subtask: subtask, file: name, bytes: writer.bytesWritten,
                          crc32: writer.crc.value, keyGroups: keyGroups)
        return entry!
    }

    /// The state files added so far.
    public var stateFiles: [StateFile] { status.withLock { $0.files } }

    /// Completes the snapshot: fills in `formatVersion`, `id`, `kind`,
    /// `checkpointID`, `state` (the files added, sorted by node and subtask)
    /// and `totalBytes`, writes `manifest.json` last, and renames the
    /// directory into place; then applies retention. Returns the manifest
    /// as written. On failure nothing is published and the temporary
    /// directory is removed. Once this returns, the snapshot is durable:
    /// the checkpoint counts as complete.
    ///
    /// `manifest.state` may be left empty; if not, it must list exactly the
    /// files added. `retain` overrides the store's retention for this write
    /// (a failure of retention is logged, never thrown: the snapshot is complete).
    @discardableResult
    public func commit(_ manifest: SnapshotManifest, retain: Int? = nil) throws -> SnapshotManifest {
        let files: [StateFile] = try status.withLock { s in
            guard !s.finished else { throw WeirError(.internalError, subject: "snapshot \(id)", "committed twice or after abort") }
            guard s.inFlight == 0 else {
                throw WeirError(.internalError, subject: "snapshot \(id)", "committed while \(s.inFlight) state file(s) are still being written")
            }
            s.finished = true
            return s.files
        }
        do {
            var m = manifest
            m.formatVersion = SnapshotManifest.currentFormatVersion
            m.id = id; m.kind = kind; m.checkpointID = checkpointID
            let sorted = files.sorted { ($0.node, $0.subtask) < ($1.node, $1.subtask) }
            if !m.state.isEmpty && Set(m.state.map(\.file)) != Set(sorted.map(\.file)) {
                throw WeirError(.internalError, subject: "snapshot \(id)", "manifest.state does not list the state files added")
            }
            m.state = sorted
            m.totalBytes = sorted.reduce(0) { $0 + $1.bytes }
            let problems = m.consistencyProblems()
            if !problems.isEmpty {
                throw WeirError(.internalError, subject: "snapshot \(id)", "inconsistent manifest: " + problems.joined(separator: "; "))
            }
            let data = try m.jsonData()
            try data.withUnsafeBytes {
                try DurableFiles.writeNewFile(temporaryDirectory.appendingPathComponent(SnapshotStore.manifestName).path, $0)
            }
            try DurableFiles.syncDirectory(temporaryDirectory.path)
            try store.publish(temporaryDirectory, id: id, retain: retain)
            return m
        } catch {
            try? FileManager.default.removeItem(at: temporaryDirectory)
            throw error
        }
    }

    /// Abandons the snapshot and removes its temporary directory.
    public func abort() {
        status.withLock { $0.finished = true }
        try? FileManager.default.removeItem(at: temporaryDirectory)
    }
}

/// Where an operator streams its state during `PendingSnapshotWrite.addState`.
/// Writes are buffered; large pieces go straight to the file without a copy.
public final class StateFileOutput {
    private let writer: FileWriter
    init(_ writer: FileWriter) { self.writer = writer }

    public func write(_ bytes: UnsafeRawBufferPointer) throws { try writer.write(bytes) }
    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try writer.write($0) } }
    public func write(_ data: Data) throws { try data.withUnsafeBytes { try writer.write($0) } }
    /// Bytes written so far.
    public var count: Int64 { writer.bytesWritten }
}

/// A snapshot opened for restoring (from `SnapshotStore.load`): its
/// manifest, and its state files' bytes, each verified against the size and
/// checksum recorded in the manifest before it is returned.
public struct LoadedSnapshot: Sendable {
    public let manifest: SnapshotManifest
    /// The snapshot's directory.
    public let directory: URL

    /// Opens the snapshot in `directory` (which need not be in a store),
    /// verifying every state file unless `verify` is false.
    public init(directory: URL, verify: Bool = true) throws {
        self.directory = directory.standardizedFileURL
        manifest = try SnapshotStore.readManifest(directory: self.directory.path)
        if verify { try verifyAll() }
    }

    /// Full path of a state file.
    public func path(of file: StateFile) -> String { directory.appendingPathComponent(file.file).path }

    /// Re-reads every state file and checks its size and checksum.
    public func verifyAll() throws {
        for f in manifest.state {
            let found: (bytes: Int64, crc32: UInt32)
            do { found = try DurableFiles.measure(path(of: f)) } catch let e as WeirError {
                throw e.message.hasPrefix("missing") ? corrupt(f, "missing: the snapshot is incomplete") : corrupt(f, e.message, code: e.code)
            }
            try check(f, bytes: found.bytes, crc: found.crc32)
        }
    }

    /// The bytes of a state file, verified.
    public func read(_ file: StateFile) throws -> [UInt8] {
        let got: (bytes: [UInt8], crc32: UInt32)
        do { got = try DurableFiles.readAll(path(of: file)) } catch let e as WeirError {
            throw e.message.hasPrefix("missing") ? corrupt(file, "missing: the snapshot is incomplete") : corrupt(file, e.message, code: e.code)
        }
        try check(file, bytes: Int64(got.bytes.count), crc: got.crc32)
        return got.bytes
    }

    /// The verified state of one node's subtask, or nil when it has none.
    public func read(node: String, subtask: Int) throws -> [UInt8]? {
        guard let f = manifest.state.first(where: { $0.node == node && $0.subtask == subtask }) else { return nil }
        return try read(f)
    }

    private func check(_ f: StateFile, bytes: Int64, crc: UInt32) throws {
        if bytes != f.bytes {
            throw corrupt(f, "size mismatch (expected \(f.bytes) bytes, found \(bytes)): the file is truncated or corrupt")
        }
        if crc != f.crc32 {
            throw corrupt(f, "checksum mismatch (expected crc32 \(hex32(f.crc32)), found \(hex32(crc))): the file is corrupt")
        }
    }

    /// A state file that is missing or fails its checks; one that is there but
    /// cannot be read keeps the code of the failed read (a disk error is not corruption).
    private func corrupt(_ f: StateFile, _ message: String, code: WeirError.Code = .snapshotCorrupt) -> WeirError {
        WeirError(code, subject: "snapshot file \(path(of: f))", message,
                  suggestion: SnapshotStore.restoreHint(forSnapshotAt: directory.path))
    }
}
