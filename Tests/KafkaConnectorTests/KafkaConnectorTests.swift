import Foundation
import WeirCore
@testable import WeirKafka
import XCTest

/// Runs against the real Tansu broker started by `scripts/servers.sh start`
/// (127.0.0.1, port from WEIR_KAFKA_PORT, default 19092). A missing broker is a
/// test failure, not a skip.
final class KafkaConnectorTests: XCTestCase {
    static let port = ProcessInfo.processInfo.environment["WEIR_KAFKA_PORT"] ?? "19092"
    static let bootstrap = "127.0.0.1:\(port)"
    var bootstrap: String { Self.bootstrap }
    private var created: [String] = []

    override func tearDown() {
        for t in created { try? KafkaProducer.deleteTopic(bootstrap: bootstrap, name: t) }
        created = []
        super.tearDown()
    }

    // MARK: Helpers

    private func makeTopic(_ tag: String, partitions: Int = 3) throws -> String {
        let name = "weir-test-\(tag)-\(UUID().uuidString.prefix(8).lowercased())"
        do {
            try KafkaProducer.createTopic(bootstrap: bootstrap, name: name, partitions: partitions)
        } catch let e as WeirError where e.code == .brokerUnreachable {
            XCTFail("Kafka broker at \(bootstrap) is not reachable (\(e)): run `bash scripts/servers.sh start` first")
            throw e
        }
        created.append(name)
        return name
    }

    private func message(_ topic: String, _ p: Int32, _ i: Int) -> String {
        #"{"topic":"\#(topic)","partition":\#(p),"seq":\#(i),"name":"event-\#(i)"}"#
    }

    /// Produces `count` messages to each listed partition, seq numbers starting at `from`.
    @discardableResult
    private func produce(_ topic: String, partitions: [Int32], count: Int, from: Int = 0) throws -> [Int32: [String]] {
        let producer = try KafkaProducer(bootstrap: bootstrap)
        var sent: [Int32: [String]] = [:]
        for p in partitions {
            for i in from..<(from + count) {
                let m = message(topic, p, i)
                try producer.produce(topic: topic, partition: p, value: Array(m.utf8))
                sent[p, default: []].append(m)
            }
        }
        try producer.flush(timeoutMillis: 10_000)
        return sent
    }

    /// Polls until `count` messages arrived and every split is at its end (or the timeout),
    /// then keeps polling briefly to catch any unexpected extra message.
    private func drain(_ reader: any SourceReader, count: Int, timeout: TimeInterval = 20) throws -> [[String]] {
        var got = Array(repeating: [String](), count: reader.splitNames.count)
        let deadline = Date().addingTimeInterval(timeout)
        var done = false
        while !done && Date() < deadline {
            _ = try reader.poll(maxMessages: 256, timeoutMillis: 100) { s, bytes in
                got[s].append(String(decoding: bytes, as: UTF8.self))
            }
            done = got.map(\.count).reduce(0, +) >= count && reader.progress().allSatisfy(\.atEnd)
        }
        XCTAssertTrue(done, "not at end after \(timeout) s: \(reader.progress())")
        for _ in 0..<3 {
            _ = try reader.poll(maxMessages: 256, timeoutMillis: 100) { s, bytes in
                got[s].append(String(decoding: bytes, as: UTF8.self))
            }
        }
        return got
    }

    private func assertThrows(_ code: WeirError.Code, mentioning text: String,
                              _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
        do {
            try body()
            XCTFail("expected a \(code) error", file: file, line: line)
        } catch let e as WeirError {
            XCTAssertEqual(e.code, code, "\(e)", file: file, line: line)
            XCTAssertTrue(e.description.contains(text), "'\(e)' does not mention '\(text)'", file: file, line: line)
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    // MARK: Tests

    func testLibraryVersion() throws {
        XCTAssertNoThrow(try KafkaLibrary.checkVersion())
        XCTAssertGreaterThanOrEqual(KafkaLibrary.versionNumber, 0x0208_0000, KafkaLibrary.versionString)
        XCTAssertTrue(KafkaLibrary.versionString.hasPrefix("2."), KafkaLibrary.versionString)
    }

    func testDiscoverAndReadSubsetOfSplits() throws {
        let topic = try makeTopic("subset")
        let sent = try produce(topic, partitions: [0, 1, 2], count: 50)

        let source = KafkaSourceConnector(bootstrap: bootstrap, topics: [topic])
        XCTAssertEqual(try source.discoverSplits(), ["\(topic)/0", "\(topic)/1", "\(topic)/2"])

        let reader = try source.openReader(splits: [0, 2])
        defer { reader.close() }
        XCTAssertEqual(reader.splitNames, ["\(topic)/0", "\(topic)/2"])
        let got = try drain(reader, count: 100)
        XCTAssertEqual(got[0], sent[0])
        XCTAssertEqual(got[1], sent[2])
        XCTAssertEqual(reader.progress(), [
            SplitProgress(name: "\(topic)/0", nextOffset: 50, highWatermark: 50),
            SplitProgress(name: "\(topic)/2", nextOffset: 50, highWatermark: 50),
        ])
    }

    func testSeveralTopicsInSpecOrder() throws {
        let b = try makeTopic("zz", partitions: 2)
        let a = try makeTopic("aa", partitions: 1)
        try produce(a, partitions: [0], count: 3)
        try produce(b, partitions: [1], count: 4)
        let source = KafkaSourceConnector(bootstrap: bootstrap, topics: [b, a])
        XCTAssertEqual(try source.discoverSplits(), ["\(b)/0", "\(b)/1", "\(a)/0"])
        let reader = try source.openReader(splits: [0, 1, 2])
        defer { reader.close() }
        let got = try drain(reader, count: 7)
        XCTAssertEqual(got.map(\.count), [0, 4, 3])
        XCTAssertEqual(got[2].first, message(a, 0, 0))
    }

    func testLatestReadsOnlyNewMessages() throws {
        let topic = try makeTopic("latest")
        try produce(topic, partitions: [0, 1, 2], count: 20)

        let source = KafkaSourceConnector(bootstrap: bootstrap, topics: [topic], startOffsets: .latest)
        _ = try source.discoverSplits()
        let reader = try source.openReader(splits: [0, 1, 2])
        defer { reader.close() }
        // Nothing old is delivered, and the reader knows it is at the end.
        XCTAssertEqual(try drain(reader, count: 0).flatMap { $0 }, [])
        XCTAssertEqual(reader.progress().map(\.nextOffset), [20, 20, 20])

        let fresh = try produce(topic, partitions: [1], count: 5, from: 100)
        let got = try drain(reader, count: 5)
        XCTAssertEqual(got, [[], fresh[1]!, []])
        XCTAssertEqual(reader.progress().map(\.nextOffset), [20, 25, 20])
    }

    /// A restore's offsets win; a partition new to a known topic starts from earliest, a topic
    /// new to the job from the spec's startOffsets; offsets of topics no longer read are ignored.
    func testRestoredOffsetsAgainstTheSpecsStartOffsets() {
        let spec = KafkaSourceConnector(bootstrap: "unused:1", topics: ["a", "c"], startOffsets: .latest)
        let r = spec.resuming(at: ["a/0": 7, "b/0": 9]) as! KafkaSourceConnector
        XCTAssertEqual(r.startOffsets, .latest, "the spec's own start offsets are kept")
        XCTAssertEqual(r.startOffset(topic: "a", partition: 0), 7)
        XCTAssertEqual(r.startOffset(topic: "a", partition: 1), -2, "new since the snapshot: earliest")
        XCTAssertEqual(r.startOffset(topic: "c", partition: 0), -1, "new to the job: its startOffsets (latest)")
    }

    func testSpecificStartOffsets() throws {
        let topic = try makeTopic("offsets")
        let sent = try produce(topic, partitions: [0, 1], count: 10)
        let source = KafkaSourceConnector(bootstrap: bootstrap, topics: [topic],
                                          startOffsets: .specific(["\(topic)/0": 7, "1": 3]))
        _ = try source.discoverSplits()
        let reader = try source.openReader(splits: [0, 1, 2])
        defer { reader.close() }
        XCTAssertEqual(reader.progress().map(\.nextOffset).prefix(2), [7, 3])
        let got = try drain(reader, count: 10)
        XCTAssertEqual(got[0], Array(sent[0]![7...]))
        XCTAssertEqual(got[1], Array(sent[1]![3...]))
        XCTAssertEqual(got[2], [])
        XCTAssertEqual(reader.progress().map(\.nextOffset), [10, 10, 0])
    }

    func testStartOffsetBeyondEndFails() throws {
        let topic = try makeTopic("beyond", partitions: 1)
        try produce(topic, partitions: [0], count: 3)
        let source = KafkaSourceConnector(bootstrap: bootstrap, topics: [topic], startOffsets: .specific(["0": 100]))
        let reader = try source.openReader(splits: [0])
        defer { reader.close() }
        let start = Date()
        assertThrows(.kafka, mentioning: "\(topic)/0: start offset 100 is out of range") {
            while Date().timeIntervalSince(start) < 10 {
                _ = try reader.poll(maxMessages: 10, timeoutMillis: 100) { _, _ in }
                XCTAssertFalse(reader.progress()[0].atEnd)
            }
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
    }

    /// A message without a value reaches the source as an empty value, so that it is
    /// counted (and dead-lettered) as a record that is not a JSON object, never dropped unseen.
    func testTombstonesAreDeliveredEmpty() throws {
        let topic = try makeTopic("tombstone", partitions: 1)
        let producer = try KafkaProducer(bootstrap: bootstrap)
        try producer.produce(topic: topic, partition: 0, key: Array("k".utf8), value: UnsafeRawBufferPointer(start: nil, count: 0))
        try producer.produce(topic: topic, partition: 0, key: Array("k".utf8), value: Array("{}".utf8))
        try producer.produce(topic: topic, partition: 0, key: Array("k".utf8), value: UnsafeRawBufferPointer(start: nil, count: 0))
        try producer.flush()
        let reader = try KafkaSourceConnector(bootstrap: bootstrap, topics: [topic]).openReader(splits: [0])
        defer { reader.close() }
        XCTAssertEqual(try drain(reader, count: 3), [["", "{}", ""]])
        XCTAssertEqual(reader.progress().first?.nextOffset, 3)
        XCTAssertEqual(reader.offsetOfLastDelivered(split: 0), 2)
    }

    func testStartOffsetForMissingPartitionIsRejected() throws {
        let topic = try makeTopic("badoffset", partitions: 2)
        let source = KafkaSourceConnector(bootstrap: bootstrap, topics: [topic], startOffsets: .specific(["5": 1]))
        assertThrows(.invalidSpec, mentioning: "no partition 5") { _ = try source.discoverSplits() }
    }

    func testEmptyPartitionsReachEnd() throws {
        let topic = try makeTopic("empty")
        try produce(topic, partitions: [1], count: 2)
        let source = KafkaSourceConnector(bootstrap: bootstrap, topics: [topic])
        let reader = try source.openReader(splits: [0, 1, 2])
        defer { reader.close() }
        let got = try drain(reader, count: 2, timeout: 10)
        XCTAssertEqual(got.map(\.count), [0, 2, 0])
        XCTAssertEqual(reader.progress().map(\.nextOffset), [0, 2, 0])
        XCTAssertEqual(reader.progress().map(\.highWatermark), [0, 2, 0])
    }

    func testMissingTopic() throws {
        _ = try makeTopic("exists", partitions: 1)   // proves the broker is up
        let missing = "weir-test-missing-\(UUID().uuidString.prefix(8).lowercased())"
        let source = KafkaSourceConnector(bootstrap: bootstrap, topics: [missing])
        assertThrows(.topicMissing, mentioning: missing) { _ = try source.discoverSplits() }
    }

    func testUnreachableBrokerFailsFast() throws {
        let source = KafkaSourceConnector(bootstrap: "127.0.0.1:1", topics: ["anything"])
        let start = Date()
        assertThrows(.brokerUnreachable, mentioning: "127.0.0.1:1") { _ = try source.discoverSplits() }
        XCTAssertLessThan(Date().timeIntervalSince(start), 12)
    }

    func testProduceToMissingPartitionNamesTopic() throws {
        let topic = try makeTopic("nopart", partitions: 1)
        let producer = try KafkaProducer(bootstrap: bootstrap)
        assertThrows(.topicMissing, mentioning: topic) {
            // The first message may be queued before metadata is known; the error then shows up at flush.
            try producer.produce(topic: topic, partition: 0, value: Array("ok".utf8))
            try producer.flush(timeoutMillis: 10_000)
            try producer.produce(topic: topic, partition: 7, value: Array("x".utf8))
            try producer.flush(timeoutMillis: 10_000)
        }
    }

    func testCreateTopicTwice() throws {
        let topic = try makeTopic("twice", partitions: 1)
        XCTAssertNoThrow(try KafkaProducer.createTopic(bootstrap: bootstrap, name: topic, partitions: 1))
        assertThrows(.kafka, mentioning: topic) {
            try KafkaProducer.createTopic(bootstrap: bootstrap, name: topic, partitions: 1, ifNotExists: false)
        }
    }

    // MARK: Spec configuration

    private func configure(_ yaml: String) throws -> (KafkaSourceConnector?, [String]) {
        guard case .source(let name, let make) = KafkaSourceConnector.kind else {
            XCTFail("kafka must be a source kind"); return (nil, [])
        }
        XCTAssertEqual(name, "kafka")
        var reader = ConfigReader(path: "nodes[0].kafka", mapping: try SpecDocument.parse(yaml))
        let c = make(&reader) as? KafkaSourceConnector
        return (c, reader.errors.map(\.description))
    }

    func testConfiguration() throws {
        var (c, errors) = try configure("""
            bootstrap: 127.0.0.1:9092
            topics: [a, b]
            startOffsets: {a/0: 5, b/1: 7}
            properties: {fetch.wait.max.ms: 10, client.id: x}
            """)
        XCTAssertEqual(errors, [])
        XCTAssertEqual(c?.topics, ["a", "b"])
        XCTAssertEqual(c?.startOffsets, .specific(["a/0": 5, "b/1": 7]))
        XCTAssertEqual(c?.properties, ["fetch.wait.max.ms": "10", "client.id": "x"])

        (c, errors) = try configure("bootstrap: h:1\ntopic: t\nstartOffsets: latest")
        XCTAssertEqual(c?.topics, ["t"])
        XCTAssertEqual(c?.startOffsets, .latest)

        (c, errors) = try configure("topic: t\ntopics: [u]\nstartOffsets: newest")
        XCTAssertNil(c)
        XCTAssertEqual(errors.count, 3, "\(errors)")
        XCTAssertTrue(errors.contains { $0.hasPrefix("nodes[0].kafka.bootstrap: missing required") }, "\(errors)")
        XCTAssertTrue(errors.contains { $0.hasPrefix("nodes[0].kafka.topics: give either") }, "\(errors)")
        XCTAssertTrue(errors.contains { $0.hasPrefix("nodes[0].kafka.startOffsets: expected earliest") }, "\(errors)")

        (c, errors) = try configure("bootstrap: h:1\ntopic: t\nstartOffsets: {u/0: 1, t/1: -4}\nproperties: {no.such.thing: 1}")
        XCTAssertNil(c)
        XCTAssertEqual(errors.count, 3, "\(errors)")
        XCTAssertTrue(errors.contains { $0.hasPrefix("nodes[0].kafka.startOffsets.u/0:") }, "\(errors)")
        XCTAssertTrue(errors.contains { $0.hasPrefix("nodes[0].kafka.startOffsets.t/1:") }, "\(errors)")
        XCTAssertTrue(errors.contains { $0.hasPrefix("nodes[0].kafka.properties.no.such.thing:") }, "\(errors)")

        (c, errors) = try configure("bootstrap: h:1\ntopic: t\nstartOffsets: 5")
        XCTAssertEqual(errors, [#"nodes[0].kafka.startOffsets: expected earliest, latest or a mapping of "topic/partition": offset"#])

        (c, errors) = try configure("bootstrap: h:1\ntopic: t\nstartOffsets: {1: 4}")
        XCTAssertEqual(c?.startOffsets, .specific(["1": 4]))

        (c, errors) = try configure("bootstrap: h:1")
        XCTAssertEqual(errors, ["nodes[0].kafka: missing required field 'topic' (or 'topics' for several)"])
    }

    func testPartitionDiscoveryInterval() throws {
        var (c, errors) = try configure("bootstrap: h:1\ntopic: t")
        XCTAssertEqual(c?.partitionDiscoveryMillis, 10_000)
        (c, errors) = try configure("bootstrap: h:1\ntopic: t\npartitionDiscovery: 500ms")
        XCTAssertEqual(c?.partitionDiscoveryMillis, 500)
        for off in ["off", "false", "0"] {
            (c, errors) = try configure("bootstrap: h:1\ntopic: t\npartitionDiscovery: \(off)")
            XCTAssertEqual(c?.partitionDiscoveryMillis, 0, off)
        }
        (c, errors) = try configure("bootstrap: h:1\ntopic: t\npartitionDiscovery: 20ms")
        XCTAssertEqual(errors, ["nodes[0].kafka.partitionDiscovery: must be at least 100ms (or off)"])
        (c, errors) = try configure("bootstrap: h:1\ntopic: t\npartitionDiscovery: often")
        XCTAssertNil(c)
        XCTAssertEqual(errors.count, 1, "\(errors)")
    }
}
