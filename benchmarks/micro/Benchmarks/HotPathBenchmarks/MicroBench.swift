import Benchmark
@_spi(Benchmarks) import WeirCore

/// What every micro-benchmark shares: the batch sizes, the configuration
/// (metrics, iterations, tolerances) and the inputs.
///
/// Each benchmark processes one batch per iteration, at two batch sizes with
/// the same keys (1,000 users). Their allocation counts per batch
/// (`mallocCountTotal`) are checked against Thresholds/: per-record work must
/// not allocate, so both sizes of one benchmark should show the same small
/// count. Wall-clock time is reported, never checked (CPU time is not
/// measured: the kernel counts it in 10 ms ticks, longer than a batch takes).
enum MicroBench {
    /// Records per batch: the engine's default poll batch, and four times it.
    static let batchSizes = [4096, 16384]

    /// Few iterations (allocation counts do not vary between them; CI time matters).
    static var configuration: Benchmark.Configuration {
        .init(metrics: [.mallocCountTotal, .wallClock],
              timeUnits: .microseconds,
              warmupIterations: 2,
              maxDuration: .milliseconds(300),
              maxIterations: 30,
              // The allocation count per batch must not grow at all; times are not checked
              // (scripts/micro-bench.sh keeps only mallocCountTotal in Thresholds/).
              thresholds: [.mallocCountTotal: .init(relative: [.p90: 0], absolute: [.p90: 0])])
    }
}

/// The shapes of input records.
enum Shape: CaseIterable, Sendable {
    /// Benchmark W1's events: `{"user_id":123,"amount":456,"ts":1700000000000}`.
    case w1
    /// A double, a string and a field the schema does not name:
    /// `{"user_id":123,"amount":45.67,"country":"DE","device":"android-14","ts":1700000000000}`.
    case mixed

    var name: String {
        switch self {
        case .w1: return "w1-ints"
        case .mixed: return "doubles-strings"
        }
    }

    /// The source's declared schema (fields declared without `?`: required).
    var schema: Schema {
        switch self {
        case .w1:
            return Schema([.init("user_id", .int, nullable: false), .init("amount", .int, nullable: false),
                           .init("ts", .int, nullable: false)])
        case .mixed:
            return Schema([.init("user_id", .int, nullable: false), .init("amount", .double, nullable: false),
                           .init("country", .string), .init("ts", .int, nullable: false)])
        }
    }
}

/// Deterministic input data: 1,000 users, amounts 1..1000, event time
/// advancing 10,000 events/s from a window boundary (as `weir produce`).
enum Inputs {
    static let users = 1000
    static let baseTime: Int64 = 1_700_000_000_000
    private static let countries = ["DE", "FR", "US", "GB", "JP", "BR", "IN", "NL"]

    /// A small deterministic generator (SplitMix64).
    struct Generator {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(bound))
        }
    }

    /// `count` JSON messages of `shape`, as one buffer with message boundaries.
    static func messages(_ shape: Shape, count: Int) -> Messages {
        var g = Generator(state: 42)
        var bytes: [UInt8] = []
        var offsets = [0]
        for i in 0..<count {
            let user = g.next(users), amount = 1 + g.next(1000)
            let ts = baseTime + Int64(i / 10)
            let text: String
            switch shape {
            case .w1:
                text = #"{"user_id":\#(user),"amount":\#(amount),"ts":\#(ts)}"#
            case .mixed:
                let cents = g.next(100)
                let country = countries[g.next(countries.count)]
                text = #"{"user_id":\#(user),"amount":\#(amount).\#(cents < 10 ? "0" : "")\#(cents),"country":"\#(country)","device":"android-14","ts":\#(ts)}"#
            }
            bytes.append(contentsOf: text.utf8)
            offsets.append(bytes.count)
        }
        return Messages(bytes: bytes, offsets: offsets)
    }

    /// `count` records of `shape` decoded by the source path (the input of the later stages).
    static func batch(_ shape: Shape, count: Int) throws -> RecordBatch {
        let reader = MessageReader(messages(shape, count: count))
        var decoding = HotPath.Decoding(schema: shape.schema, eventTimeField: "ts", splits: reader.splitNames.count,
                                        maxOutOfOrdernessMillis: 1000, batchCapacity: count)
        let (got, bad) = try decoding.poll(reader, maxMessages: count)
        precondition(got == count && bad == 0, "the inputs decode cleanly")
        return decoding.takeBatch()
    }
}

/// JSON messages in one buffer: message `i` is `bytes[offsets[i]..<offsets[i + 1]]`.
struct Messages: Sendable {
    let bytes: [UInt8]
    let offsets: [Int]
    var count: Int { offsets.count - 1 }
}

/// A source reader over prepared messages, spread over 4 splits as a topic's
/// partitions are (message `i` in split `i % 4`). `rewind` starts it again.
final class MessageReader: SourceReader {
    let messages: Messages
    let splitNames = ["events/0", "events/1", "events/2", "events/3"]
    private var next = 0

    init(_ messages: Messages) { self.messages = messages }

    func rewind() { next = 0 }

    func poll(maxMessages: Int, timeoutMillis: Int, _ deliver: (Int, UnsafeRawBufferPointer) -> Void) throws -> Int {
        let first = next, last = min(messages.count, next + maxMessages)
        let splits = splitNames.count
        messages.bytes.withUnsafeBytes { all in
            messages.offsets.withUnsafeBufferPointer { off in
                for i in first..<last {
                    deliver(i % splits, UnsafeRawBufferPointer(rebasing: all[off[i]..<off[i + 1]]))
                }
            }
        }
        next = last
        return last - first
    }

    func progress() -> [SplitProgress] { [] }
    func close() {}
}

/// A downstream subtask's inbox that takes every element and keeps only a count.
final class DropQueue: ElementQueue, @unchecked Sendable {
    private(set) var rows = 0

    init() {}

    func send(_ input: Int, _ e: StreamElement) -> Bool {
        if case .batch(let b) = e { rows &+= b.count }
        return true
    }
}
