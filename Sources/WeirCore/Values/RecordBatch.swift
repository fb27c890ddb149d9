/// A batch of records: the unit that moves between operators.
///
/// Rows are stored row-major in one flat `values` array (`count * arity`
/// entries) with a parallel array of event timestamps (epoch milliseconds,
/// `RecordBatch.noTimestamp` when the record has none). One allocation per
/// batch instead of one per record keeps the hot path cheap.
public struct RecordBatch: Sendable {
    public static let noTimestamp = Int64.min

    public let arity: Int
    public var values: [Value]
    public var timestamps: [Int64]
    /// When the records arrived at their source (monotonic ns; 0: unknown),
    /// stamped as the batch leaves a subtask's thread (see `ArrivalStamp`).
    public var arrivalNanos: UInt64 = 0

    public init(arity: Int, capacity: Int = 0) {
        self.arity = arity
        self.values = []
        self.timestamps = []
        if capacity > 0 {
            values.reserveCapacity(capacity * arity)
            timestamps.reserveCapacity(capacity)
        }
    }

    @inlinable public var count: Int { timestamps.count }
    @inlinable public var isEmpty: Bool { timestamps.isEmpty }

    @inlinable public func value(row: Int, field: Int) -> Value { values[row * arity + field] }

    /// The values of one row (copies; meant for tests and slow paths).
    public func row(_ r: Int) -> [Value] { Array(values[(r * arity)..<((r + 1) * arity)]) }

    @inlinable public mutating func append<C: Collection>(row: C, timestamp: Int64 = RecordBatch.noTimestamp) where C.Element == Value {
        precondition(row.count == arity, "row has \(row.count) values, batch arity is \(arity)")
        values.append(contentsOf: row)
        timestamps.append(timestamp)
    }

    /// Appends row `r` of `other` (same arity).
    @inlinable public mutating func append(rowOf other: RecordBatch, _ r: Int) {
        let base = r * arity
        values.append(contentsOf: other.values[base..<(base + arity)])
        timestamps.append(other.timestamps[r])
    }

    public mutating func removeAll(keepingCapacity: Bool = true) {
        values.removeAll(keepingCapacity: keepingCapacity)
        timestamps.removeAll(keepingCapacity: keepingCapacity)
    }
}
