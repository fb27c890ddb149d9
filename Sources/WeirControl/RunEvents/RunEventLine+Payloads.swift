import Foundation

/// The fields of each kind of run event, by the names they have on disk.
/// Fields an older `weir run` did not always write are optional.
extension RunEventLine {
    /// The process started (before the spec is compiled).
    public struct Starting: Codable, Sendable, Equatable {
        public var pid: Int
        public init(pid: Int) { self.pid = pid }
    }

    /// What a restore will do, worked out before it starts: the engine's
    /// `RestorePreview` as JSON (this module does not know the engine's type).
    public struct RestorePreview: Codable, Sendable, Equatable {
        public var preview: JSONValue
        public init(preview: JSONValue) { self.preview = preview }

        /// The predicted time to restore, when the snapshot measured a decode rate.
        public struct Predicted: Codable, Sendable, Equatable {
            public var stateBytes: Int64
            public var stateLoadedMillis: Double
            public var firstRecordMillis: Double
        }

        public var predicted: Predicted? {
            guard let p = preview["predicted"], p.object != nil else { return nil }
            return try? JSONDecoder().decode(Predicted.self, from: Data(p.text.utf8))
        }
    }

    /// Sources are assigned and consuming.
    public struct Running: Codable, Sendable, Equatable {
        public var run: String
        public var restoredFrom: String?
        public init(run: String, restoredFrom: String?) { self.run = run; self.restoredFrom = restoredFrom }
    }

    /// Times from the run's start, in milliseconds; `firstRecordMs` is written
    /// as `null` until the first record.
    public struct StartupTimes: Codable, Sendable, Equatable {
        public var stateLoadedMs: Double
        public var sourcesPositionedMs: Double
        public var firstRecordMs: Double?

        public init(stateLoadedMs: Double, sourcesPositionedMs: Double, firstRecordMs: Double?) {
            self.stateLoadedMs = stateLoadedMs
            self.sourcesPositionedMs = sourcesPositionedMs
            self.firstRecordMs = firstRecordMs
        }

        private enum CodingKeys: String, CodingKey { case stateLoadedMs, sourcesPositionedMs, firstRecordMs }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(stateLoadedMs, forKey: .stateLoadedMs)
            try c.encode(sourcesPositionedMs, forKey: .sourcesPositionedMs)
            try c.encode(firstRecordMs, forKey: .firstRecordMs)
        }
    }

    /// A source found new splits while running.
    public struct SplitsAdded: Codable, Sendable, Equatable {
        public var node: String
        public var subtask: Int
        public var splits: [String]
        public init(node: String, subtask: Int, splits: [String]) { self.node = node; self.subtask = subtask; self.splits = splits }
    }

    /// A restore found the source's splits changed since the snapshot.
    public struct RestoreAdjusted: Codable, Sendable, Equatable {
        public var node: String
        public var dropped: [String]
        public var newPartitions: [String]
        public var newTopics: [String]
        public init(node: String, dropped: [String], newPartitions: [String], newTopics: [String]) {
            self.node = node; self.dropped = dropped; self.newPartitions = newPartitions; self.newTopics = newTopics
        }
    }

    /// A snapshot completed; the manifest's figures when it could be read.
    public struct Snapshot: Codable, Sendable, Equatable {
        public var id: String
        public var kind: String
        public var checkpoint: Int64
        public var bytes: Int
        public var durationMs: Double
        public var offsets: [String: [String: Int64]]?
        public var sizeBytes: Int64?
        public var createdAt: String?

        public init(id: String, kind: String, checkpoint: Int64, bytes: Int, durationMs: Double,
                    offsets: [String: [String: Int64]]? = nil, sizeBytes: Int64? = nil, createdAt: String? = nil) {
            self.id = id; self.kind = kind; self.checkpoint = checkpoint; self.bytes = bytes; self.durationMs = durationMs
            self.offsets = offsets; self.sizeBytes = sizeBytes; self.createdAt = createdAt
        }
    }

    /// A snapshot failed or was aborted; the run goes on.
    public struct SnapshotFailed: Codable, Sendable, Equatable {
        public var checkpoint: Int64
        public var kind: String
        public var reason: String
        public init(checkpoint: Int64, kind: String, reason: String) { self.checkpoint = checkpoint; self.kind = kind; self.reason = reason }
    }

    /// Why a savepoint, or a stop with snapshot, failed; the run goes on.
    public struct Reason: Codable, Sendable, Equatable {
        public var reason: String
        public init(reason: String) { self.reason = reason }
    }

    /// The run failed and the restart strategy starts another.
    public struct Restarting: Codable, Sendable, Equatable {
        public var attempt: Int
        public var of: Int
        public var error: String
        public init(attempt: Int, of: Int, error: String) { self.attempt = attempt; self.of = of; self.error = error }
    }

    /// The run stopped with a snapshot.
    public struct Stopped: Codable, Sendable, Equatable {
        public var snapshot: String
        public init(snapshot: String) { self.snapshot = snapshot }
    }

    /// The run failed: the error's code (a `WeirError.Code` raw value, so the
    /// reader finds the suggestion by code), subject, message and the engine's suggestion.
    public struct Failed: Codable, Sendable, Equatable {
        public var code: String
        public var subject: String?
        public var message: String
        public var suggestion: String?
        public init(code: String, subject: String? = nil, message: String, suggestion: String? = nil) {
            self.code = code; self.subject = subject; self.message = message; self.suggestion = suggestion
        }
    }
}
