// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "swift-sse-broker",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sse-broker", targets: ["sse-broker"]),
        /// The counterpart of Flask-SSE's `sse.publish`, usable without running a server.
        .library(name: "SSEPublisher", targets: ["SSEPublisher"]),
        .library(name: "SSEWire", targets: ["SSEWire"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        /// Pure wire format: event model, Flask-SSE payload codec, event-text encoder. No I/O.
        .target(name: "SSEWire"),
        /// Redis over hiredis: connection, dedicated subscriber thread, pipelined command client.
        .target(
            name: "SSERedis",
            dependencies: [
                "CHiredis",
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
        /// The broker's HTTP decisions for any host: router, endpoints, request and response values.
        .target(
            name: "SSEEndpoints",
            dependencies: [
                "SSEAuth",
                "SSEPublisher",
                "SSERedis",
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
                "SSEWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Resources/demo.html")]
        ),
        /// The stream server on SwiftNIO.
        .target(
            name: "SSEServer",
            dependencies: [
                "SSEAuth",
                "SSEEndpoints",
                "SSEHistory",
                "SSEPublisher",
                "SSERedis",
                "SSEWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
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
            ]
        ),
        /// The golden Flask-SSE vectors, shared by the test targets.
        .target(
            name: "FlaskSSEVectors",
            dependencies: ["SSEWire"],
            path: "Tests/FlaskSSEVectors",
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "SSEWireTests",
            dependencies: ["SSEWire", "FlaskSSEVectors"]
        ),
        .testTarget(
            name: "SSEAuthTests",
            dependencies: ["SSEAuth", .product(name: "JWTKit", package: "jwt-kit")],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "SSEHistoryTests",
            dependencies: ["SSEHistory", "SSEWire"]
        ),
        .testTarget(
            name: "SSERedisTests",
            dependencies: ["SSERedis"]
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
                "SSEAuth",
                "SSEEndpoints",
                "SSERedis",
                "SSEServer",
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
                "FlaskSSEVectors",
                "SSEAuth",
                "SSEDemo",
                .product(name: "JWTKit", package: "jwt-kit"),
                "SSEHistory",
                "SSEServer",
                "SSEPublisher",
                "SSERedis",
                "SSEWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
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
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("fuzz-payload", ["SSEWire", "SSEServer", .product(name: "NIOCore", package: "swift-nio")]),
        ("fuzz-json", ["SSEWire"]),
        ("fuzz-query", ["SSEEndpoints"]),
        ("fuzz-last-event-id", ["SSEWire", "SSEEndpoints"]),
        ("fuzz-http", [
            "SSEAuth", "SSEEndpoints", "SSERedis", "SSEServer", "SSEWire",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
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
