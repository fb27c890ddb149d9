import ArgumentParser
import Foundation
import WeirCore
import WeirKafka

/// Loads data into Kafka: the benchmark event stream from a fixed seed, or
/// lines of a file. Used by the demo, the tests and the benchmarks.
struct ProduceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Load events into a Kafka topic (generated from a seed, or one message per line of a file).")

    @Option(help: "Kafka bootstrap servers.") var bootstrap = "127.0.0.1:9092"
    @Option(help: "Topic to write.") var topic: String
    @Option(help: "Create the topic with this many partitions if it does not exist.") var partitions: Int?
    @Flag(help: "Delete the topic first (with --partitions: start from an empty topic).") var recreate = false
    @Option(help: "Send each line of this file as one message (round-robin over partitions).") var file: String?
    @Option(help: "Generate this many events {\"user_id\",\"amount\",\"ts\"}.") var count: Int?
    @Option(help: "Seed of the generator.") var seed: UInt64 = 42
    @Option(help: "Distinct user_id values in generated events (0..<users).") var users: UInt64 = 1000
    @Option(help: "Index of the first generated event (to append more events of the same stream).") var start: Int = 0
    @Option(help: "Generated events per second of event time.") var eventsPerSecond: Int = 10_000
    @Option(help: "Event time of event 0, epoch milliseconds.") var baseTs: Int64 = 1_700_000_000_000

    func run() throws {
        try KafkaLibrary.checkVersion()
        guard (file == nil) != (count == nil) else { throw ValidationError("give exactly one of --file or --count") }
        if recreate {
            guard partitions != nil else { throw ValidationError("--recreate needs --partitions") }
            try KafkaProducer.deleteTopic(bootstrap: bootstrap, name: topic)
        }
        if let partitions { try KafkaProducer.createTopic(bootstrap: bootstrap, name: topic, partitions: partitions) }
        let producer = try KafkaProducer(bootstrap: bootstrap)
        let nparts = Int32(try KafkaSourceConnector(bootstrap: bootstrap, topics: [topic]).discoverSplits().count)
        let t0 = Date()
        var sent = 0
        if let file {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
                try producer.produce(topic: topic, partition: Int32(sent) % nparts, key: nil, value: Array(line.utf8))
                sent += 1
            }
        } else if let count {
            var gen = EventGenerator(seed: seed, eventsPerSecond: eventsPerSecond, baseTs: baseTs, users: users)
            gen.skip(start)
            var buf: [UInt8] = []
            buf.reserveCapacity(64)
            for i in start..<(start + count) {
                gen.next(into: &buf)
                try producer.produce(topic: topic, partition: Int32(i % Int(nparts)), key: nil, value: buf)
                sent += 1
            }
        }
        try producer.flush(timeoutMillis: 60_000)
        let secs = Date().timeIntervalSince(t0)
        printErr(String(format: "[weir] produced %d messages to %@ (%d partitions) in %.1f s", sent, topic, nparts, secs))
    }
}

/// The benchmark event stream: `{"user_id": 0..999, "amount": 1..1000, "ts": ms}`
/// from a SplitMix64 generator, event time advancing `eventsPerSecond` per second.
/// Event i goes to partition i mod partitions.
struct EventGenerator {
    var state: UInt64
    var index = 0
    let eventsPerSecond: Int
    let baseTs: Int64
    let users: UInt64

    init(seed: UInt64, eventsPerSecond: Int, baseTs: Int64, users: UInt64 = 1000) {
        state = seed; self.eventsPerSecond = eventsPerSecond; self.baseTs = baseTs; self.users = max(1, users)
    }

    mutating func random() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func skip(_ n: Int) { for _ in 0..<n { _ = random(); _ = random(); index += 1 } }

    mutating func next(into buf: inout [UInt8]) {
        let user = random() % users
        let amount = random() % 1000 + 1
        let ts = baseTs + Int64(index) * 1000 / Int64(eventsPerSecond)
        index += 1
        buf.removeAll(keepingCapacity: true)
        buf.append(contentsOf: "{\"user_id\":\(user),\"amount\":\(amount),\"ts\":\(ts)}".utf8)
    }
}
