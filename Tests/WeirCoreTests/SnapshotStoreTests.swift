import Foundation
import Synchronization
import XCTest
@testable import WeirCore
@testable import WeirEngine
@testable import WeirState

final class SnapshotStoreTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory
            .appendingPathComponent("weir-snapshots-\(UUID().uuidString)", isDirectory: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    var storeDir: URL { root.appendingPathComponent("user-spend", isDirectory: true) }

    func manifest(_ kind: SnapshotKind = .checkpoint, _ id: Int64, run: String = "run-a") -> SnapshotManifest {
        SnapshotManifest(job: "user-spend", version: nil, run: run, checkpointID: id, kind: kind,
                         parallelism: 2, maxParallelism: 128, nodes: ["events", "per-user", "out"],
                         offsets: ["events": ["events/0": 1234 + id, "events/1": 1200, "events/10": 7]],
                         sinkTransactions: ["out": [0: "weir:user-spend:\(run):out:0:\(id)", 1: "weir:user-spend:\(run):out:1:\(id)"]],
                         layouts: ["per-user": "window:tumbling:10000|keys:user_id|aggs:count,sum"])
    }

    func blob(_ seed: UInt8, _ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) ^ seed }
    }

    /// Writes a checkpoint with one keyed state file per subtask.
    @discardableResult
    func writeSnapshot(_ store: SnapshotStore, _ kind: SnapshotKind = .checkpoint, _ id: Int64,
                       run: String = "run-a", size: Int = 1000) throws -> SnapshotManifest {
        let w = try store.begin(kind: kind, checkpointID: id)
        for sub in 0..<2 {
            try w.addState(node: "per-user", subtask: sub,
                           keyGroups: KeyGroups.range(subtask: sub, parallelism: 2, maxParallelism: 128),
                           bytes: blob(UInt8(truncatingIfNeeded: id) &+ UInt8(sub), size + sub))
        }
        return try w.commit(manifest(kind, id, run: run))
    }

    // MARK: CRC32

    func testCRC32KnownAnswers() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum([]), 0)
        XCTAssertEqual(CRC32.checksum(Array("The quick brown fox jumps over the lazy dog".utf8)), 0x414F_A339)
        XCTAssertEqual(CRC32.checksum([UInt8](repeating: 0, count: 32)), 0x190A_55AD)
        XCTAssertEqual(CRC32.checksum([UInt8](repeating: 0xFF, count: 32)), 0xFF6C_AB0B)
    }

    func testCRC32IncrementalAndUnalignedMatchesBytewise() {
        // Reference: the plain bitwise definition.
        func reference(_ bytes: ArraySlice<UInt8>) -> UInt32 {
            var c: UInt32 = 0xFFFF_FFFF
            for b in bytes {
                c ^= UInt32(b)
                for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
            }
            return ~c
        }
        let data = blob(0x5A, 1037)
        for start in 0..<9 {
            for end in [start, start + 1, start + 7, start + 8, start + 17, 1037] {
                let slice = data[start..<end]
                let one = slice.withUnsafeBytes { CRC32.checksum($0) }
                XCTAssertEqual(one, reference(slice), "\(start)..<\(end)")
                var inc = CRC32()
                var i = start
                while i < end {  // uneven chunks
                    let j = min(end, i + 1 + (i % 13))
                    data[i..<j].withUnsafeBytes { inc.update($0) }
                    i = j
                }
                XCTAssertEqual(inc.value, one, "incremental \(start)..<\(end)")
            }
        }
    }

    // MARK: Round trip

    func testWriteListLoadRoundTrip() throws {
        let store = try SnapshotStore(directory: storeDir, retain: 3)
        XCTAssertTrue(store.list().snapshots.isEmpty)
        XCTAssertNil(store.latest())
        XCTAssertEqual(store.nextCheckpointID(), 1)

        let written = try writeSnapshot(store, .checkpoint, 1)
        XCTAssertEqual(written.id, "chk-1")
        XCTAssertEqual(written.formatVersion, 1)
        XCTAssertEqual(written.state.map(\.file), ["per-user-0.state", "per-user-1.state"])
        XCTAssertEqual(written.state.map(\.bytes), [1000, 1001])
        XCTAssertEqual(written.state[0].crc32, CRC32.checksum(blob(1, 1000)))
        XCTAssertEqual(written.state[1].keyGroups, 64...127)
        XCTAssertEqual(written.totalBytes, 2001)

        // On disk: exactly the snapshot directory, with the files and a readable manifest.
        let names = try FileManager.default.contentsOfDirectory(atPath: storeDir.path)
        XCTAssertEqual(names, ["chk-1"])
        let files = try FileManager.default.contentsOfDirectory(atPath: storeDir.appendingPathComponent("chk-1").path).sorted()
        XCTAssertEqual(files, ["manifest.json", "per-user-0.state", "per-user-1.state"])
        let text = try String(contentsOf: storeDir.appendingPathComponent("chk-1/manifest.json"), encoding: .utf8)
        XCTAssertTrue(text.contains("\"checkpointID\" : 1"), text)
        XCTAssertTrue(text.contains("\"keyGroups\" : {\n"), text)
        XCTAssertTrue(text.contains("\"version\" : null"), text)
        XCTAssertTrue(text.contains("\"events/0\" : 1235"), text)
        XCTAssertTrue(text.contains("\"0\" : \"weir:user-spend:run-a:out:0:1\""), text)

        let listing = store.list()
        XCTAssertEqual(listing.snapshots, [written])
        XCTAssertTrue(listing.problems.isEmpty)
        XCTAssertEqual(store.latest(), written)
        XCTAssertEqual(store.nextCheckpointID(), 2)

        // Load by id, by number, by absolute path, by relative path and via manifest.json.
        for ref in ["chk-1", "1", "latest", storeDir.appendingPathComponent("chk-1").path,
                    storeDir.appendingPathComponent("chk-1/manifest.json").path] {
            let loaded = try store.load(ref)
            XCTAssertEqual(loaded.manifest, written, ref)
            XCTAssertEqual(try loaded.read(node: "per-user", subtask: 0), blob(1, 1000))
            XCTAssertEqual(try loaded.read(loaded.manifest.state[1]), blob(2, 1001))
            XCTAssertNil(try loaded.read(node: "per-user", subtask: 5))
        }
        // A relative path (from the working directory, which the test leaves alone).
        let depth = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).standardizedFileURL.pathComponents.count - 1
        let relative = String(repeating: "../", count: depth) + storeDir.appendingPathComponent("chk-1").path.dropFirst()
        XCTAssertEqual(try store.load(relative).manifest, written)

        // A fresh store over the same directory sees the same thing.
        let reopened = try SnapshotStore.openExisting(storeDir)
        XCTAssertEqual(reopened.list().snapshots, [written])

        // Manifest helpers for restore.
        XCTAssertEqual(written.stateFiles(node: "per-user", overlapping: 60...70).map(\.subtask), [0, 1])
        XCTAssertEqual(written.stateFiles(node: "per-user", overlapping: 0...10).map(\.subtask), [0])
        XCTAssertEqual(written.splitCount, 3)
    }

    func testTheDecodeRateMeasuredAtTheSnapshotReachesTheRestoreAndItsPrediction() throws {
        let store = try SnapshotStore(directory: storeDir, retain: 3)
        var c = CompletedCheckpoint(id: 7, kind: .stop, job: "user-spend", run: "run-a", nodes: ["s", "agg"], parallelism: 1,
                                    maxParallelism: 8, offsets: ["s": ["t/0": 5]],
                                    state: [StateBlob(node: "agg", subtask: 0, bytes: blob(3, 4_000_000), keyGroups: 0...7),
                                            StateBlob(node: "s", subtask: 0, bytes: blob(4, 1_000), keyGroups: nil)],
                                    sinkTransactions: [:], layouts: ["agg": "keys=k;window=continuous;aggs=n:count"])
        c.decodeBytesPerSecond = 2_000_000
        let id = try store.persist(c, retain: 3)
        let loaded = try store.load(id)
        XCTAssertEqual(loaded.manifest.decodeBytesPerSecond, 2_000_000)
        let r = try loaded.restorePoint()
        XCTAssertEqual(r.decodeBytesPerSecond, 2_000_000)
        XCTAssertEqual(r.keyedStateBytes, 4_000_000, "only the aggregate's state is keyed")
        // A manifest of an older Weir has no rate: nothing is predicted.
        var old = c
        old.id = 8
        old.decodeBytesPerSecond = nil
        XCTAssertNil(try store.load(try store.persist(old, retain: 3)).manifest.decodeBytesPerSecond)
    }

    func testOneShotWriteAndStreamingWriter() throws {
        let store = try SnapshotStore(directory: storeDir)
        var m = manifest(.savepoint, 4)
        m.version = 7
        m.state = [StateFile(node: "per-user", subtask: 0, file: "a.bin", bytes: 0, crc32: 0, keyGroups: 0...63),
                   StateFile(node: "events", subtask: 1, file: "src.bin", bytes: 0, crc32: 0, keyGroups: nil)]
        let written = try store.write(m, files: ["a.bin": blob(9, 300_000), "src.bin": []])
        XCTAssertEqual(written.id, "sav-4")
        XCTAssertEqual(written.version, 7)
        XCTAssertEqual(written.state.map(\.node), ["events", "per-user"])
        XCTAssertEqual(written.state.map(\.bytes), [0, 300_000])
        XCTAssertEqual(written.state[0].crc32, 0)
        XCTAssertEqual(written.state[1].crc32, CRC32.checksum(blob(9, 300_000)))
        let loaded = try store.load("sav-4")
        XCTAssertNil(loaded.manifest.state[0].keyGroups)
        XCTAssertEqual(try loaded.read(node: "events", subtask: 1), [])

        // Streamed in uneven pieces (small ones buffered, big ones written through).
        let w = try store.begin(kind: .checkpoint, checkpointID: 5)
        let big = blob(3, 1_000_000)
        let entry = try w.addState(node: "per-user", subtask: 1, keyGroups: 64...127) { out in
            var i = 0, step = 1
            while i < big.count {
                let j = min(big.count, i + step)
                try big[i..<j].withUnsafeBytes { try out.write($0) }
                i = j; step = step * 3 % 400_000 + 1
            }
            XCTAssertEqual(out.count, Int64(big.count))
        }
        XCTAssertEqual(entry.crc32, CRC32.checksum(big))
        XCTAssertThrowsError(try w.addState(node: "per-user", subtask: 1, keyGroups: nil, bytes: [1]))  // twice
        try w.commit(manifest(.checkpoint, 5))
        XCTAssertEqual(try store.load("chk-5").read(node: "per-user", subtask: 1), big)
    }

    func testConcurrentStateWritesIntoOneSnapshot() throws {
        let store = try SnapshotStore(directory: storeDir)
        let w = try store.begin(kind: .checkpoint, checkpointID: 1)
        let expected = (0..<8).map { blob(UInt8($0), 50_000 + $0) }
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { sub in
            do {
                try w.addState(node: "per-user", subtask: sub, keyGroups: (sub * 16)...(sub * 16 + 15), bytes: expected[sub])
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        XCTAssertEqual(failures.withLock { $0 }, [])
        var m = manifest(.checkpoint, 1)
        m.parallelism = 8
        let written = try w.commit(m)
        XCTAssertEqual(written.state.map(\.subtask), Array(0..<8))
        let loaded = try store.load("chk-1")
        for sub in 0..<8 { XCTAssertEqual(try loaded.read(node: "per-user", subtask: sub), expected[sub]) }
    }

    // MARK: Atomicity

    func testLeftoversAreIgnoredAndCleanedAndIncompleteSnapshotsAreReported() throws {
        let store = try SnapshotStore(directory: storeDir)
        let good = try writeSnapshot(store, .checkpoint, 1)

        // An interrupted write (temp dir, files but no manifest) and a snapshot dir without manifest.
        let fm = FileManager.default
        let tmp = storeDir.appendingPathComponent(".tmp-chk-2-abc123")
        try fm.createDirectory(at: tmp, withIntermediateDirectories: false)
        try Data([1, 2, 3]).write(to: tmp.appendingPathComponent("per-user-0.state"))
        let broken = storeDir.appendingPathComponent("chk-3")
        try fm.createDirectory(at: broken, withIntermediateDirectories: false)
        try Data([1, 2, 3]).write(to: broken.appendingPathComponent("per-user-0.state"))
        try Data("not a snapshot".utf8).write(to: storeDir.appendingPathComponent("README"))

        // Readers ignore the temp dir and report the incomplete one.
        let listing = store.list()
        XCTAssertEqual(listing.snapshots, [good])
        XCTAssertEqual(listing.problems.count, 1)
        XCTAssertEqual(listing.problems.first?.directory, broken.path)
        XCTAssertTrue(listing.problems.first?.problem.contains("missing") ?? false, "\(listing.problems)")
        XCTAssertEqual(store.latest(), good)
        XCTAssertThrowsError(try store.load("chk-3")) { e in
            XCTAssertTrue("\(e)".contains(broken.appendingPathComponent("manifest.json").path), "\(e)")
        }
        // Ids never go backwards, even past unusable or in-progress directories.
        XCTAssertEqual(store.nextCheckpointID(), 4)

        // A tool opening the directory leaves the temp dir alone (a job may be writing it) ...
        _ = try SnapshotStore.openExisting(storeDir)
        XCTAssertTrue(fm.fileExists(atPath: tmp.path))
        // ... and a job opening it removes it.
        let reopened = try SnapshotStore(directory: storeDir)
        XCTAssertFalse(fm.fileExists(atPath: tmp.path))
        XCTAssertEqual(reopened.list().snapshots, [good])

        // A write that is abandoned or fails leaves nothing behind.
        let w = try reopened.begin(kind: .checkpoint, checkpointID: 4)
        try w.addState(node: "per-user", subtask: 0, keyGroups: 0...63, bytes: [1, 2, 3])
        XCTAssertTrue(fm.fileExists(atPath: w.temporaryDirectory.path))
        w.abort()
        XCTAssertFalse(fm.fileExists(atPath: w.temporaryDirectory.path))
        XCTAssertThrowsError(try w.commit(manifest(.checkpoint, 4)))

        let w2 = try reopened.begin(kind: .checkpoint, checkpointID: 5)
        try w2.addState(node: "nope", subtask: 0, keyGroups: nil, bytes: [1])
        XCTAssertThrowsError(try w2.commit(manifest(.checkpoint, 5))) { e in  // node not in the job
            XCTAssertTrue("\(e)".contains("'nope'"), "\(e)")
        }
        XCTAssertFalse(fm.fileExists(atPath: w2.temporaryDirectory.path))
        XCTAssertFalse(fm.fileExists(atPath: storeDir.appendingPathComponent("chk-5").path))

        do {  // dropped without commit
            let w3 = try reopened.begin(kind: .checkpoint, checkpointID: 6)
            try w3.addState(node: "per-user", subtask: 0, keyGroups: 0...63, bytes: [1])
        }
        let left = try fm.contentsOfDirectory(atPath: storeDir.path).filter { $0.hasPrefix(".tmp-") }
        XCTAssertEqual(left, [])

        // An existing id is refused.
        XCTAssertThrowsError(try reopened.begin(kind: .checkpoint, checkpointID: 1))
        XCTAssertThrowsError(try reopened.begin(kind: .savepoint, checkpointID: 1))  // one numbering across kinds
    }

    // MARK: Retention

    func testRetentionKeepsLatestCheckpointsAndAllSavepointsAndStops() throws {
        let store = try SnapshotStore(directory: storeDir, retain: 2)
        try writeSnapshot(store, .checkpoint, 1)
        try writeSnapshot(store, .savepoint, 2)
        try writeSnapshot(store, .checkpoint, 3)
        try writeSnapshot(store, .checkpoint, 4)
        try writeSnapshot(store, .stop, 5)
        try writeSnapshot(store, .checkpoint, 6)
        XCTAssertEqual(store.list().snapshots.map(\.id), ["sav-2", "chk-4", "stop-5", "chk-6"])
        try writeSnapshot(store, .checkpoint, 7)
        XCTAssertEqual(store.list().snapshots.map(\.id), ["sav-2", "stop-5", "chk-6", "chk-7"])
        XCTAssertEqual(store.latest(kinds: [.checkpoint])?.id, "chk-7")
        XCTAssertEqual(store.latest(kinds: [.savepoint, .stop])?.id, "stop-5")
        XCTAssertEqual(store.latest()?.id, "chk-7")
        // Per-write override (as the runtime passes the spec's retain).
        let w = try store.begin(kind: .checkpoint, checkpointID: 8)
        try w.commit(manifest(.checkpoint, 8), retain: 1)
        XCTAssertEqual(store.list().snapshots.map(\.id), ["sav-2", "stop-5", "chk-8"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: storeDir.path).sorted(),
                       ["chk-8", "sav-2", "stop-5"])

        // Explicit deletion.
        try store.delete("sav-2")
        XCTAssertEqual(store.list().snapshots.map(\.id), ["stop-5", "chk-8"])
        XCTAssertThrowsError(try store.delete("sav-2")) { e in XCTAssertTrue("\(e)".contains("not found"), "\(e)") }
        XCTAssertThrowsError(try store.delete("../user-spend"))
    }

    func testNextCheckpointIDKeepsIncreasingAcrossRunsAndDeletions() throws {
        let store = try SnapshotStore(directory: storeDir, retain: 1)
        try writeSnapshot(store, .checkpoint, 1, run: "run-a")
        try writeSnapshot(store, .savepoint, 2, run: "run-a")
        try writeSnapshot(store, .checkpoint, 3, run: "run-a")
        XCTAssertEqual(store.nextCheckpointID(), 4)
        // A new run restored from the savepoint continues the numbering.
        let store2 = try SnapshotStore(directory: storeDir, retain: 1)
        let next = store2.nextCheckpointID()
        XCTAssertEqual(next, 4)
        try writeSnapshot(store2, .checkpoint, next, run: "run-b")
        XCTAssertEqual(store2.list().snapshots.map(\.id), ["sav-2", "chk-4"])
        XCTAssertEqual(store2.nextCheckpointID(), 5)

        // Which leftover sink transactions are covered by a completed checkpoint.
        XCTAssertTrue(store2.isCompleted(run: "run-a", checkpointID: 2))
        XCTAssertTrue(store2.isCompleted(run: "run-a", checkpointID: 1))  // earlier epoch of the run
        XCTAssertFalse(store2.isCompleted(run: "run-a", checkpointID: 3))  // pruned: run-b superseded it
        XCTAssertTrue(store2.isCompleted(run: "run-b", checkpointID: 4))
        XCTAssertFalse(store2.isCompleted(run: "run-b", checkpointID: 5))
        XCTAssertFalse(store2.isCompleted(run: "run-c", checkpointID: 1))
    }

    // MARK: Corruption

    func testFlippedByteFailsNamingTheFileAndEarlierSnapshotStillLoads() throws {
        let store = try SnapshotStore(directory: storeDir, retain: 3)
        try writeSnapshot(store, .checkpoint, 1)
        let second = try writeSnapshot(store, .checkpoint, 2)
        let victim = storeDir.appendingPathComponent("chk-2/per-user-1.state")
        var bytes = try [UInt8](Data(contentsOf: victim))
        bytes[500] ^= 0x01
        try Data(bytes).write(to: victim)

        XCTAssertThrowsError(try store.load("chk-2")) { e in
            guard let w = e as? WeirError else { return XCTFail("\(e)") }
            XCTAssertEqual(w.code, .snapshotCorrupt)
            XCTAssertEqual(w.subject, "snapshot file \(victim.path)")
            XCTAssertTrue(w.message.hasPrefix("checksum mismatch (expected crc32 \(second.state[1].crc32Hex), found "), w.message)
            XCTAssertTrue(w.message.hasSuffix("): the file is corrupt"), w.message)
            XCTAssertEqual(w.suggestion, "restore from an earlier snapshot (weir snapshot list --state-dir \(storeDir.path))")
        }
        // Reading the bad file through an unverified load fails too; the good one reads.
        let unverified = try store.load("chk-2", verify: false)
        XCTAssertNoThrow(try unverified.read(node: "per-user", subtask: 0))
        XCTAssertThrowsError(try unverified.read(node: "per-user", subtask: 1)) { e in
            XCTAssertTrue("\(e)".contains(victim.path), "\(e)")
        }
        // The listing still shows it (only manifests are read); the earlier snapshot loads.
        XCTAssertEqual(store.list().snapshots.map(\.id), ["chk-1", "chk-2"])
        XCTAssertEqual(try store.load("chk-1").read(node: "per-user", subtask: 1), blob(2, 1001))

        // Truncation and removal are reported as such.
        try Data(bytes.prefix(100)).write(to: victim)
        XCTAssertThrowsError(try store.load("chk-2")) { e in
            XCTAssertTrue("\(e)".contains("size mismatch (expected 1001 bytes, found 100)"), "\(e)")
            XCTAssertTrue("\(e)".contains(victim.path), "\(e)")
        }
        try Data(bytes + [1, 2, 3, 4]).write(to: victim)
        XCTAssertThrowsError(try unverified.read(node: "per-user", subtask: 1)) { e in
            XCTAssertTrue("\(e)".contains("size mismatch (expected 1001 bytes, found 1005)"), "\(e)")
        }
        try FileManager.default.removeItem(at: victim)
        XCTAssertThrowsError(try store.load("chk-2")) { e in
            XCTAssertTrue("\(e)".contains("snapshot file \(victim.path): missing"), "\(e)")
        }
    }

    func testTruncatedManifestFailsNamingManifest() throws {
        let store = try SnapshotStore(directory: storeDir, retain: 3)
        try writeSnapshot(store, .checkpoint, 1)
        try writeSnapshot(store, .checkpoint, 2)
        let file = storeDir.appendingPathComponent("chk-2/manifest.json")
        let data = try Data(contentsOf: file)
        try data.prefix(data.count / 2).write(to: file)

        XCTAssertThrowsError(try store.load("chk-2")) { e in
            guard let w = e as? WeirError else { return XCTFail("\(e)") }
            XCTAssertEqual(w.code, .snapshotCorrupt)
            XCTAssertEqual(w.subject, "snapshot file \(file.path)")
            XCTAssertTrue(w.message.contains("not valid JSON"), w.message)
            XCTAssertTrue(w.message.hasSuffix("the file is corrupt"), w.message)
        }
        let listing = store.list()
        XCTAssertEqual(listing.snapshots.map(\.id), ["chk-1"])
        XCTAssertEqual(listing.problems.map(\.directory), [file.deletingLastPathComponent().path])
        XCTAssertEqual(store.latest()?.id, "chk-1")
        XCTAssertEqual(store.nextCheckpointID(), 3)

        // Valid JSON that is not a manifest, and a manifest from a newer format.
        try Data(#"{"id": "chk-2"}"#.utf8).write(to: file)
        XCTAssertThrowsError(try store.load("chk-2")) { e in
            XCTAssertTrue("\(e)".contains("snapshot file \(file.path): is not a valid manifest (missing '"), "\(e)")
        }
        var m = manifest(.checkpoint, 2)
        m.formatVersion = 99
        try m.jsonData().write(to: file)
        XCTAssertThrowsError(try store.load("chk-2")) { e in
            XCTAssertTrue("\(e)".contains("format version 99 is not supported"), "\(e)")
        }
        // A manifest whose state file escapes the directory is refused.
        m = manifest(.checkpoint, 2)
        m.state = [StateFile(node: "per-user", subtask: 0, file: "../chk-1/per-user-0.state", bytes: 1000, crc32: 0, keyGroups: 0...63)]
        m.totalBytes = 1000
        try m.jsonData().write(to: file)
        XCTAssertThrowsError(try store.load("chk-2")) { e in XCTAssertTrue("\(e)".contains("not a plain file name"), "\(e)") }
    }

    func testUnknownSnapshotAndMissingDirectory() throws {
        let store = try SnapshotStore(directory: storeDir)
        XCTAssertThrowsError(try store.load("latest")) { e in XCTAssertTrue("\(e)".contains("there is no snapshot"), "\(e)") }
        XCTAssertThrowsError(try store.load("chk-9")) { e in XCTAssertTrue("\(e)".contains("not found in \(storeDir.path)"), "\(e)") }
        XCTAssertThrowsError(try SnapshotStore.openExisting(root.appendingPathComponent("nope"))) { e in
            XCTAssertTrue("\(e)".contains("does not exist"), "\(e)")
        }
        XCTAssertNil(SnapshotManifest.parseID("chk-"))
        XCTAssertNil(SnapshotManifest.parseID("foo-1"))
        XCTAssertEqual(SnapshotManifest.parseID("stop-19")?.kind, .stop)
        XCTAssertEqual(SnapshotManifest.parseID("sav-18")?.checkpointID, 18)
    }

    func testCRC32CombineEqualsTheChecksumOfTheWhole() {
        let data = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ ($0 >> 3)) }
        for split in [0, 1, 7, 8, 9, 100, 2500, 4999, 5000] {
            let a = CRC32.checksum(Array(data[..<split])), b = CRC32.checksum(Array(data[split...]))
            XCTAssertEqual(CRC32.combine(a, b, lengthOfB: data.count - split), CRC32.checksum(data), "split at \(split)")
        }
        XCTAssertEqual(CRC32.combine(0x1234_5678, CRC32.checksum([]), lengthOfB: 0), 0x1234_5678)
    }

    /// State files are read in pieces on several threads, each checksummed
    /// on its own and the checksums combined: the same bytes and checksum as
    /// one sequential read, whatever the piece size.
    func testPiecewiseReadEqualsSequentialChecksum() throws {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        for size in [0, 1, 4095, 4096, 100_003] {
            let path = root.appendingPathComponent("f-\(size)").path
            let data = blob(UInt8(size & 0xFF), size)
            try Data(data).write(to: URL(fileURLWithPath: path))
            for piece in [1, 7, 4096, 1 << 20] where piece <= max(size, 1) * 2 {
                let got = try DurableFiles.readAll(path, piece: piece)
                XCTAssertEqual(got.bytes, data, "size \(size), pieces of \(piece)")
                XCTAssertEqual(got.crc32, CRC32.checksum(data), "size \(size), pieces of \(piece)")
            }
        }
    }

    /// The restore path reads each state file once (no separate verification
    /// pass) and still refuses a corrupt or truncated file, naming it.
    func testRestorePointReadsOnceAndStillDetectsCorruption() throws {
        let store = try SnapshotStore(directory: storeDir, retain: 3)
        let written = try writeSnapshot(store, .checkpoint, 1, size: 300_000)
        let r = try store.restorePoint("chk-1")
        XCTAssertEqual(r.state["per-user"], [blob(1, 300_000), blob(2, 300_001)])
        XCTAssertEqual(r.snapshotID, "chk-1")
        let victim = storeDir.appendingPathComponent("chk-1/per-user-1.state")
        var bytes = try [UInt8](Data(contentsOf: victim))
        bytes[250_000] ^= 0x40
        try Data(bytes).write(to: victim)
        XCTAssertThrowsError(try store.restorePoint("chk-1")) { e in
            guard let w = e as? WeirError else { return XCTFail("\(e)") }
            XCTAssertEqual(w.code, .snapshotCorrupt)
            XCTAssertEqual(w.subject, "snapshot file \(victim.path)")
            XCTAssertTrue(w.message.hasPrefix("checksum mismatch (expected crc32 \(written.state[1].crc32Hex), found "), w.message)
        }
        try Data(bytes.prefix(200_000)).write(to: victim)
        XCTAssertThrowsError(try store.restorePoint("chk-1")) { e in
            XCTAssertTrue("\(e)".contains("size mismatch (expected 300001 bytes, found 200000)"), "\(e)")
        }
        try FileManager.default.removeItem(at: victim)
        XCTAssertThrowsError(try store.restorePoint("chk-1")) { e in
            XCTAssertTrue("\(e)".contains("snapshot file \(victim.path): missing"), "\(e)")
        }
    }

    // MARK: Speed

    func testCRC32Throughput() throws {
        // ~50 MB must take well under a second in release builds; debug builds
        // are several times slower, so only report there.
        let data = [UInt8](repeating: 0xA5, count: 50 << 20)
        let t0 = Date()
        let c = CRC32.checksum(data)
        let secs = Date().timeIntervalSince(t0)
        print("CRC32 of 50 MiB: \(String(format: "%.3f", secs)) s (\(String(format: "%.0f", 50 / secs)) MiB/s), crc \(String(c, radix: 16))")
        #if !DEBUG
        XCTAssertLessThan(secs, 0.5)
        #endif
    }
}
