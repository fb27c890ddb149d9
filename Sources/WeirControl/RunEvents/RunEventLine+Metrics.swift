import Foundation

extension RunEventLine {
    /// The `metrics` event, every 2 s and once at the end: the run's figures
    /// since its last in-process restart. The control plane keeps the latest
    /// for its Prometheus endpoint; `--stats` writes the same per-node figures.
    public struct Metrics: Codable, Sendable, Equatable {
        public var recordsIn: Int
        public var recordsOut: Int
        public var decodeErrors: Int
        public var lateRecords: Int
        /// Records behind the high watermark, by `topic/partition`.
        public var lag: [String: Int64]
        public var checkpoints: Int
        public var lastCheckpointMs: Double
        public var lastCheckpointBytes: Int
        public var restarts: Int
        public var backpressureMs: Double
        public var rejectedRecords: Int
        /// By node id.
        public var nodes: [String: Node]

        public init(recordsIn: Int, recordsOut: Int, decodeErrors: Int, lateRecords: Int, lag: [String: Int64],
                    checkpoints: Int, lastCheckpointMs: Double, lastCheckpointBytes: Int, restarts: Int,
                    backpressureMs: Double, rejectedRecords: Int, nodes: [String: Node]) {
            self.recordsIn = recordsIn; self.recordsOut = recordsOut; self.decodeErrors = decodeErrors
            self.lateRecords = lateRecords; self.lag = lag; self.checkpoints = checkpoints
            self.lastCheckpointMs = lastCheckpointMs; self.lastCheckpointBytes = lastCheckpointBytes
            self.restarts = restarts; self.backpressureMs = backpressureMs; self.rejectedRecords = rejectedRecords
            self.nodes = nodes
        }

        /// One node's figures.
        public struct Node: Codable, Sendable, Equatable {
            public var recordsIn: Int
            public var recordsOut: Int
            /// Time upstream subtasks spent blocked on this node's full inbox.
            public var backpressureMs: Double
            /// Records the node rejected, by reason.
            public var rejected: [String: Int]
            /// Event time (epoch ms) the node's slowest subtask has reached; absent
            /// without event time or before the first watermark (and from older `weir`s).
            public var watermarkMs: Int64?

            public init(recordsIn: Int, recordsOut: Int, backpressureMs: Double, rejected: [String: Int], watermarkMs: Int64? = nil) {
                self.recordsIn = recordsIn; self.recordsOut = recordsOut
                self.backpressureMs = backpressureMs; self.rejected = rejected; self.watermarkMs = watermarkMs
            }
        }
    }
}
