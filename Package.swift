// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "swift-sse-broker",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sse-broker", targets: ["sse-broker"]),
        /// The counterpart of Flask-SSE's `sse.publish`, usable without running a server.
        .library(name: "SSEPublisher", targets: ["SSEPublisher"]),
        .library(name: "SSEWire", targets: ["SSEWire"]),
        /// The broker mounted in a Hummingbird 2 app; empty unless the `Hummingbird` trait is on.
        .library(name: "SSEHummingbird", targets: ["SSEHummingbird"]),
        .executable(name: "hummingbird-example", targets: ["HummingbirdExample"]),
    ],
    traits: [
        // Off by default, so users of the standalone broker never build Hummingbird.
        .trait(
            name: "Hummingbird",
            description: "Build SSEHummingbird, its tests and the example app against Hummingbird 2."
        ),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        /// Pure wire format: event model, Flask-SSE payload codec, event-text encoder. No I/O.
        .target(name: "SSEWire"),
        /// POSIX helpers for the threads that block: owned threads one can join, a wake-up pipe.
        .target(name: "SSEPOSIX"),
        /// A TLS byte tunnel for a blocking C client: one end of a socketpair for the client,
        /// the other end relayed by SwiftNIO through swift-nio-ssl to the server.
        .target(
            name: "SSERedisTransport",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        /// Redis over hiredis: connection, dedicated subscriber thread, pipelined command client.
        .target(
            name: "SSERedis",
            dependencies: [
                "CHiredis",
                "SSEPOSIX",
                "SSERedisTransport",
                "SSEWire",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        /// Event history in Redis Streams: atomic publish-with-history and replay.
        .target(
            name: "SSEHistory",
            dependencies: ["SSERedis", "SSEWire"]
        ),
        /// Who may subscribe to and publish on which channels: JWT (jwt-kit) and a static publish key.
        .target(
            name: "SSEAuth",
            dependencies: [.product(name: "JWTKit", package: "jwt-kit")]
        ),
        /// Publishing API for Swift apps: `sse.publish` in Swift.
        .target(
            name: "SSEPublisher",
            dependencies: [
                "SSEHistory",
                "SSERedis",
                "SSEWire",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        /// The stream core, whichever host serves it: the node's one Redis subscription (hub),
        /// per-loop fan-out, history replay, heartbeats, and each stream's delivery, behind a sink.
        .target(
            name: "SSEStreamCore",
            dependencies: [
                "SSEHistory",
                "SSERedis",
                "SSEWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        /// The broker's HTTP decisions for any host: router, endpoints, request and response values.
        .target(
            name: "SSEEndpoints",
            dependencies: [
                "SSEAuth",
                "SSEPublisher",
                "SSERedis",
                "SSEStreamCore",
                "SSEWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        /// The demo (`--demo`): its page, its publisher, its routes, mounted through SSEEndpoints.
        .target(
            name: "SSEDemo",
            dependencies: [
                "SSEEndpoints",
                "SSEPublisher",
                "SSERedis",
                "SSEStreamCore",
                "SSEWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Resources/demo.html")]
        ),
        /// The standalone node: HTTP/1.1 on SwiftNIO around the stream core.
        .target(
            name: "SSEServer",
            dependencies: [
                "SSEAuth",
                "SSEEndpoints",
                "SSEHistory",
                "SSEPOSIX",
                "SSEPublisher",
                "SSERedis",
                "SSEStreamCore",
                "SSEWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        /// The broker mounted in a Hummingbird 2 app (trait `Hummingbird`; its sources are gated on it).
        .target(
            name: "SSEHummingbird",
            dependencies: [
                "SSEAuth",
                "SSEEndpoints",
                "SSEHistory",
                "SSEPublisher",
                "SSERedis",
                "SSEStreamCore",
                "SSEWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird", condition: .when(traits: ["Hummingbird"])),
                .product(name: "HTTPTypes", package: "swift-http-types", condition: .when(traits: ["Hummingbird"])),
            ]
        ),
        /// An app with its own routes plus the mounted broker (trait `Hummingbird`).
        .executableTarget(
            name: "HummingbirdExample",
            dependencies: [
                "SSEAuth",
                "SSEHummingbird",
                "SSERedis",
                "SSEWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types", condition: .when(traits: ["Hummingbird"])),
                .product(name: "Hummingbird", package: "hummingbird", condition: .when(traits: ["Hummingbird"])),
            ],
            path: "Examples/HummingbirdApp"
        ),
        .executableTarget(
            name: "sse-broker",
            dependencies: [
                "SSEAuth",
                "SSEDemo",
                "SSEHistory",
                "SSEServer",
                "SSERedis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        /// `make bench`'s publisher figure: SSEPublisher's own throughput to one channel.
        .executableTarget(
            name: "sse-publish-bench",
            dependencies: ["SSEHistory", "SSEPublisher", "SSERedis", "SSEWire"],
            path: "Benchmarks/PublishBench"
        ),
        /// The golden Flask-SSE vectors, shared by the test targets.
        .target(
            name: "FlaskSSEVectors",
            dependencies: ["SSEWire"],
            path: "Tests/FlaskSSEVectors",
            resources: [.copy("Fixtures")]
        ),
        /// A seeded random generator for the tests that draw random inputs (reproducible failures).
        .target(
            name: "SeededRandom",
            path: "Tests/SeededRandom"
        ),
        .testTarget(
            name: "SSEWireTests",
            dependencies: ["SSEWire", "FlaskSSEVectors", "SeededRandom"]
        ),
        .testTarget(
            name: "SSEPOSIXTests",
            dependencies: ["SSEPOSIX"]
        ),
        .testTarget(
            name: "SSEAuthTests",
            dependencies: ["SSEAuth", .product(name: "JWTKit", package: "jwt-kit")],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "SSEHistoryTests",
            dependencies: ["SSEHistory", "SSERedis", "SSEWire"]
        ),
        .testTarget(
            name: "SSEStreamCoreTests",
            dependencies: [
                "SSERedis",
                "SSEStreamCore",
                "SSEWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SSEHummingbirdTests",
            dependencies: [
                "SSEHummingbird",
                "SSEStreamCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird", condition: .when(traits: ["Hummingbird"])),
                .product(name: "HummingbirdTesting", package: "hummingbird", condition: .when(traits: ["Hummingbird"])),
            ]
        ),
        .testTarget(
            name: "SSERedisTests",
            dependencies: ["SSERedis", "SeededRandom"]
        ),
        .testTarget(
            name: "SSERedisTransportTests",
            dependencies: [
                "SSERedisTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SSEEndpointsTests",
            dependencies: [
                "SSEAuth",
                "SSEEndpoints",
                "SSEPublisher",
                "SSERedis",
                "SSEWire",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SSEServerTests",
            dependencies: [
                "SeededRandom",
                "SSEAuth",
                "SSEEndpoints",
                "SSERedis",
                "SSEServer",
                "SSEStreamCore",
                "SSEWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird", condition: .when(traits: ["Hummingbird"])),
                .product(name: "HTTPTypes", package: "swift-http-types", condition: .when(traits: ["Hummingbird"])),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "SSEHummingbird",
                "FlaskSSEVectors",
                "SeededRandom",
                "SSEAuth",
                "SSEDemo",
                .product(name: "JWTKit", package: "jwt-kit"),
                "SSEHistory",
                "SSEServer",
                "SSEStreamCore",
                "SSEPublisher",
                "SSERedis",
                "SSEWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// Coverage-guided fuzz targets (Fuzz/), only when `SSE_FUZZ=1`: `make fuzz` builds them with
// libFuzzer and AddressSanitizer in their own scratch path, so ordinary builds never see them.
// Only the broker's own modules are instrumented; dependencies build as usual.
if Context.environment["SSE_FUZZ"] == "1" {
    let sanitizers = ["-sanitize=fuzzer,address"]
    for target in package.targets where target.type == .regular && target.name.hasPrefix("SSE") {
        target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(sanitizers)]
    }
    package.targets.append(.target(name: "CLibFuzzer", path: "Fuzz/Sources/CLibFuzzer"))
    package.targets.append(.target(
        name: "FuzzSupport",
        dependencies: ["CLibFuzzer", "SSEWire"],
        path: "Fuzz/Sources/FuzzSupport",
        swiftSettings: [.unsafeFlags(sanitizers)]
    ))
    // A node on a testing loop and one client connection on it, for the connection targets.
    package.targets.append(.target(
        name: "FuzzNode",
        dependencies: [
            "FuzzSupport", "SSEAuth", "SSERedis", "SSEServer", "SSEStreamCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ],
        path: "Fuzz/Sources/FuzzNode",
        swiftSettings: [.unsafeFlags(sanitizers)]
    ))
    // Hostile Redis replies read as a connection reads them, for the reply targets.
    package.targets.append(.target(
        name: "FuzzRedis",
        dependencies: ["SSERedis", "CHiredis"],
        path: "Fuzz/Sources/FuzzRedis",
        swiftSettings: [.unsafeFlags(sanitizers)]
    ))
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("fuzz-payload", ["SSEWire", "SSEStreamCore", .product(name: "NIOCore", package: "swift-nio")]),
        ("fuzz-json", ["SSEWire"]),
        ("fuzz-query", ["SSEEndpoints"]),
        ("fuzz-last-event-id", ["SSEWire", "SSEEndpoints"]),
        ("fuzz-redis-url", ["SSERedis"]),
        ("fuzz-sentinel-reply", ["FuzzRedis", "SSERedis", "CHiredis"]),
        ("fuzz-cluster-reply", ["FuzzRedis", "SSERedis", "CHiredis", "SSEWire"]),
        ("fuzz-http", ["FuzzNode"]),
        ("fuzz-h2", ["FuzzNode", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHPACK", package: "swift-nio-http2")]),
    ]
    for target in fuzzTargets {
        package.targets.append(.executableTarget(
            name: target.name,
            dependencies: ["FuzzSupport"] + target.dependencies,
            path: "Fuzz/Sources/\(target.name)",
            swiftSettings: [.unsafeFlags(sanitizers)],
            linkerSettings: [.unsafeFlags(sanitizers + ["-use-ld=lld"])]
        ))
    }
}
