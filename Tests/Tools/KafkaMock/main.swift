// weir-kafka-mock: librdkafka's mock cluster as a process, for tests of what
// the real broker (Tansu) cannot stage. It adds faults around the real
// broker's tests, never replaces them.
//
//   weir-kafka-mock [BROKERS]       prints `bootstrap HOST:PORT[,…]`, then reads commands:
//     topic NAME PARTITIONS         creates the topic, or grows it to PARTITIONS
//                                   (scripts/patches/librdkafka-2.8.0-mock-add-partitions.patch)
//   End of input stops the cluster.
import CRdKafkaMock
import Foundation

/// Unbuffered, so the test reads each reply as it is written.
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
func fail(_ line: String) -> Never { FileHandle.standardError.write(Data((line + "\n").utf8)); exit(1) }
let brokers = CommandLine.arguments.count > 1 ? Int32(CommandLine.arguments[1]) ?? 1 : 1
var errstr = [CChar](repeating: 0, count: 512)
let conf = rd_kafka_conf_new()
rd_kafka_conf_set(conf, "log_level", "3", &errstr, errstr.count)
guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else { fail("cannot create a client") }
guard let cluster = rd_kafka_mock_cluster_new(rk, brokers) else { fail("cannot start the mock cluster") }
say("bootstrap \(String(cString: rd_kafka_mock_cluster_bootstraps(cluster)))")

while let line = readLine() {
    let words = line.split(separator: " ").map(String.init)
    guard words.count == 3, words[0] == "topic", let n = Int32(words[2]), n > 0 else {
        say("error: expected `topic NAME PARTITIONS`")
        continue
    }
    let err = rd_kafka_mock_topic_create(cluster, words[1], n, 1)
    say(err == RD_KAFKA_RESP_ERR_NO_ERROR ? "ok" : "error: \(String(cString: rd_kafka_err2str(err)))")
}
rd_kafka_mock_cluster_destroy(cluster)
rd_kafka_destroy(rk)
