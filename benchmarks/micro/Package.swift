// swift-tools-version:6.1
import PackageDescription

// Allocation micro-benchmarks of Weir's per-record hot path (ordo-one/benchmark):
// the source decoder, the key exchange, aggregation and the MySQL statement
// builder, each over a batch. Allocations per batch are checked against
// Thresholds/ by scripts/micro-bench.sh (run by scripts/test.sh); times are
// only reported. A package of its own, so that the root package depends
// neither on the benchmark package nor on its malloc interposer.

// A path dependency is named after its folder: the checkout's, whatever the clone is called.
let weir = String(Context.packageDirectory.split(separator: "/").dropLast(2).last ?? "weir")

let package = Package(
    name: "weir-micro-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: "../.."),
        // The trait list replaces the default traits: the malloc interposer (mallocCountTotal)
        // without the ARC runtime interposer, which is not among the machine's packages.
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // All four stages in one executable: the benchmark plugin builds each target
        // separately, and every build step costs seconds in this package graph.
        .executableTarget(
            name: "HotPathBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "WeirCore", package: weir),
                .product(name: "WeirMySQL", package: weir),
            ],
            path: "Benchmarks/HotPathBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
    ]
)
