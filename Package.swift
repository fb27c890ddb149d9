// swift-tools-version:6.0
import PackageDescription

// Layout:
//   Sources/WeirCore     the pure core: values, job spec, expressions, operators, and the
//                        protocols as state machines (Protocols/). No threads, clocks, files;
//                        nothing of Kafka, MySQL, the control plane or the CLI.
//   Sources/WeirEngine   runs a job: threads, bounded channels, the task loops and the
//                        checkpoint coordinator that drive the core's state machines.
//   Sources/WeirState    the snapshot store: checkpoints as files (atomic, checksummed).
//   connectors/          Kafka and MySQL connectors and their C-library shims; they
//                        implement WeirCore's SourceConnector / SinkConnector protocols.
//   Sources/WeirAPI      the REST contract (openapi.yaml) and the code generated from it.
//   Sources/WeirControl  the control plane: lifecycle (JobLifecycleStateMachine + its driver),
//                        metadata, supervised runs, and the REST API and console over HTTP.
//   Sources/WeirExport   exports a job to a Flink SQL script (pure: the compiled job in, text out).
//   Sources/WeirCLI      the `weir` command tree: the composition root.
let package = Package(
    name: "weir",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "weir", targets: ["weir"]),
        .library(name: "WeirCore", targets: ["WeirCore"]),
        // For benchmarks/micro (the statement builder's allocation benchmarks).
        .library(name: "WeirMySQL", targets: ["WeirMySQL"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-openapi-generator", from: "1.14.0"),
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.13.0"),
        .package(url: "https://github.com/apple/swift-openapi-urlsession", from: "1.4.0"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird", from: "2.1.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .target(name: "WeirCore", dependencies: ["Yams", .product(name: "Logging", package: "swift-log")], path: "Sources/WeirCore",
                // The simulator's deliberate protocol bugs (InjectedBugs) exist in debug (test) builds only.
                swiftSettings: [.define("WEIR_BUG_SWITCHES", .when(configuration: .debug))]),
        .target(name: "WeirEngine", dependencies: ["WeirCore", .product(name: "Logging", package: "swift-log")], path: "Sources/WeirEngine",
                swiftSettings: [.define("WEIR_BUG_SWITCHES", .when(configuration: .debug))]),
        .target(name: "WeirState", dependencies: ["WeirCore", .product(name: "Logging", package: "swift-log")], path: "Sources/WeirState"),

        .systemLibrary(name: "CRdKafka", path: "connectors/CRdKafka", pkgConfig: "rdkafka"),
        .systemLibrary(name: "CMariaDB", path: "connectors/CMariaDB", pkgConfig: "libmariadb",
                       providers: [.apt(["default-libmysqlclient-dev"])]),
        .target(name: "WeirKafka", dependencies: ["WeirCore", "CRdKafka", .product(name: "Logging", package: "swift-log")], path: "connectors/WeirKafka"),
        .target(name: "WeirMySQL", dependencies: ["WeirCore", "CMariaDB"], path: "connectors/WeirMySQL"),

        // The REST contract: Sources/WeirAPI/openapi.yaml, from which the server stubs and the
        // client are generated at build time (swift-openapi-generator's build plugin).
        .target(name: "WeirAPI",
                dependencies: [.product(name: "OpenAPIRuntime", package: "swift-openapi-runtime")],
                path: "Sources/WeirAPI",
                resources: [.embedInCode("openapi.yaml")],
                plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]),

        // Control plane: job metadata (SQLite), lifecycle, supervised `weir run` children, REST API.
        .target(name: "WeirControl",
                dependencies: ["WeirCore", "WeirState", "WeirAPI", "Yams", .product(name: "Logging", package: "swift-log"),
                               .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                               .product(name: "GRDB", package: "GRDB.swift"),
                               .product(name: "Hummingbird", package: "hummingbird")],
                path: "Sources/WeirControl",
                // The web console, compiled into the binary (no files to ship beside `weir`).
                resources: [.embedInCode("HTTP/Console/console.html"), .embedInCode("HTTP/Console/console-views.js"),
                            .embedInCode("HTTP/Console/console-page.js")]),

        // Export to Flink SQL: reads the Kafka and MySQL connectors' configuration, connects to nothing.
        .target(name: "WeirExport", dependencies: ["WeirCore", "WeirKafka", "WeirMySQL"], path: "Sources/WeirExport"),

        .target(name: "WeirCLI",
                dependencies: ["WeirCore", "WeirEngine", "WeirState", "WeirKafka", "WeirMySQL", "WeirControl", "WeirAPI", "WeirExport", "Yams",
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "OpenAPIURLSession", package: "swift-openapi-urlsession"),
                               .product(name: "Histogram", package: "hdrhistogram-swift"),
                               .product(name: "ArgumentParser", package: "swift-argument-parser")],
                path: "Sources/WeirCLI"),
        .executableTarget(name: "weir", dependencies: ["WeirCLI"], path: "Sources/weir"),
        // Test tooling: librdkafka's mock cluster as a process (faults Tansu cannot stage).
        .systemLibrary(name: "CRdKafkaMock", path: "Tests/Tools/CRdKafkaMock", pkgConfig: "rdkafka"),
        .executableTarget(name: "weir-kafka-mock", dependencies: ["CRdKafkaMock"], path: "Tests/Tools/KafkaMock"),

        .testTarget(name: "WeirCoreTests", dependencies: ["WeirCore", "WeirEngine", "WeirState", .product(name: "Logging", package: "swift-log")], path: "Tests/WeirCoreTests"),
        // The deterministic simulator: the real tasks and protocol state machines under seeded faults.
        .testTarget(name: "WeirSimulationTests", dependencies: ["WeirCore", "WeirEngine"], path: "Tests/WeirSimulationTests",
                    swiftSettings: [.define("WEIR_BUG_SWITCHES", .when(configuration: .debug))]),
        // The control plane's rules (JobLifecycleStateMachine): pure, no servers, files or processes.
        .testTarget(name: "WeirControlTests", dependencies: ["WeirControl"], path: "Tests/WeirControlTests"),
        // Connector tests run against the real Tansu broker and MariaDB started by scripts/servers.sh.
        .testTarget(name: "KafkaConnectorTests", dependencies: ["WeirKafka", "WeirCore"],
                    path: "Tests/KafkaConnectorTests"),
        // The Flink SQL export: the script's text for each node kind, expression and refusal (no servers).
        .testTarget(name: "WeirExportTests", dependencies: ["WeirExport", "WeirCore", "WeirKafka", "WeirMySQL"],
                    path: "Tests/WeirExportTests"),
        .testTarget(name: "MySQLConnectorTests", dependencies: ["WeirMySQL", "WeirCore"],
                    path: "Tests/MySQLConnectorTests"),
    ]
)
