// swift-tools-version: 6.1
//
// StatelessKit: stateless network functions whose per-flow state lives in a
// shared data store. See README.md and Documentation/.
import PackageDescription

let package = Package(
    name: "StatelessKit",
    platforms: [.macOS(.v14)],
    products: [
        // Depends on nothing outside Swift packages: no DPDK, no hiredis.
        .library(name: "StatelessKit", targets: ["StatelessKit"]),
        // Data stores; the Redis store links hiredis (libhiredis-dev).
        .library(name: "StatelessKitStore", targets: ["StatelessKitStore"]),
        // DPDK packet I/O; needs libdpdk-dev and the pkg-config fix in
        // Documentation/DPDK.md.
        .library(name: "StatelessKitDPDK", targets: ["StatelessKitDPDK"]),
        .executable(name: "statelessnf", targets: ["statelessnf"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
    ],
    targets: [
        .target(
            name: "StatelessKit",
            dependencies: [
                "CPrefetchShim",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),

        // hiredis, as a system library; the header is the shim.
        .systemLibrary(
            name: "CHiredisShim",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // A prefetch hint, which Swift cannot express.
        .target(name: "CPrefetchShim"),
        .target(
            name: "StatelessKitStore",
            dependencies: [
                "StatelessKit", "CHiredisShim", "CPrefetchShim",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // DPDK: the system library gives include and link flags; the shim
        // wraps the inline functions and structures Swift cannot import.
        .systemLibrary(
            name: "CDPDK",
            pkgConfig: "libdpdk",
            providers: [.apt(["libdpdk-dev"])]
        ),
        .target(
            name: "CDPDKShim",
            dependencies: ["CDPDK"]
        ),
        .target(
            name: "StatelessKitDPDK",
            dependencies: ["StatelessKit", "CDPDKShim", .product(name: "Atomics", package: "swift-atomics")]
        ),

        // The example network functions, written with the DSL.
        .target(
            name: "NetworkFunctions",
            dependencies: ["StatelessKit", "StatelessKitStore", .product(name: "Atomics", package: "swift-atomics")],
            path: "Sources/Examples/NetworkFunctions"
        ),
        // Running a fleet of NF instances: failure detection, scaling and
        // traffic steering, for `statelessnf controller`.
        .target(
            name: "Orchestration",
            dependencies: ["StatelessKitStore", .product(name: "Logging", package: "swift-log")],
            path: "Sources/Examples/Orchestration"
        ),
        // Counts allocations in the statelessnf process, for benchmarks.
        .target(name: "CAllocationCounterShim"),
        .executableTarget(
            name: "statelessnf",
            dependencies: [
                "StatelessKit", "StatelessKitStore", "StatelessKitDPDK", "NetworkFunctions", "Orchestration", "CAllocationCounterShim",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Sources/Examples/statelessnf"
        ),

        // The parser's fuzz target: `make fuzz` builds it with libFuzzer;
        // a plain build replays saved inputs.
        .target(name: "FuzzDriver", path: "Tests/Fuzz/FuzzDriver"),
        .executableTarget(
            name: "ParserFuzzer",
            dependencies: ["StatelessKit", "FuzzDriver"],
            path: "Tests/Fuzz/ParserFuzzer"
        ),
        // The capture reader's fuzz target, likewise.
        .executableTarget(
            name: "CaptureFuzzer",
            dependencies: ["StatelessKit", "FuzzDriver"],
            path: "Tests/Fuzz/CaptureFuzzer"
        ),

        .testTarget(
            name: "StatelessKitTests",
            dependencies: ["StatelessKit", .product(name: "MetricsTestKit", package: "swift-metrics")],
            exclude: ["Fixtures"]
        ),
        // What the store, NF and DPDK tests share: a redis-server they start,
        // the shared captures.
        .target(
            name: "StoreTestSupport",
            dependencies: ["StatelessKit", "StatelessKitStore"],
            path: "Tests/StoreTestSupport"
        ),
        .testTarget(
            name: "OrchestrationTests",
            dependencies: ["Orchestration", "StatelessKitStore", "StoreTestSupport"]
        ),
        .testTarget(
            name: "NetworkFunctionsTests",
            dependencies: ["NetworkFunctions", "StatelessKit", "StatelessKitStore", "StoreTestSupport"]
        ),
        .testTarget(
            name: "StatelessKitStoreTests",
            dependencies: ["StatelessKit", "StatelessKitStore", "StoreTestSupport"]
        ),
        .testTarget(
            name: "StatelessKitDPDKTests",
            dependencies: ["StatelessKitDPDK", "CDPDKShim", "NetworkFunctions", "StatelessKit", "StatelessKitStore",
                           "StoreTestSupport"]
        ),
    ]
)
