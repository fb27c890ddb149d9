/// What an export needs besides the job itself: where the Flink job starts
/// and stops reading, and what the script says it came from.
///
/// It exists so that the same pure exporter serves `weir export` (offsets
/// read from a local snapshot, end offsets from the command line) and the
/// control plane (offsets of a stored snapshot of a published version).
public struct FlinkExportOptions: Sendable, Equatable {
    /// A snapshot's offsets, as in its manifest: source node id → split
    /// (`topic/partition`) → next offset to read. They replace the sources'
    /// `startOffsets` as a Weir restore would: a listed partition starts at
    /// its offset, an unlisted partition of a topic the snapshot lists starts
    /// at the earliest offset (new since the snapshot), a topic the snapshot
    /// does not list starts from the spec's `startOffsets`. nil: no snapshot.
    public var startOffsets: [String: [String: Int64]]?
    /// A bounded run: `topic/partition` → the offset reading stops before
    /// (exclusive), for every source reading the topic. Partitions not listed
    /// are not read (as with `weir run --until-offsets`). nil: unbounded.
    public var endOffsets: [String: Int64]?
    /// One line saying what the script was exported from (a published
    /// version, a snapshot id), written into the script's header.
    public var note: String?

    public init(startOffsets: [String: [String: Int64]]? = nil, endOffsets: [String: Int64]? = nil, note: String? = nil) {
        self.startOffsets = startOffsets
        self.endOffsets = endOffsets
        self.note = note
    }
}
