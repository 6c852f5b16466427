import Foundation

/// Certificates for the TLS tests, made with `openssl` into a temporary folder once per test
/// process: a CA; a server certificate for `DNS:localhost, IP:127.0.0.1`; a client certificate;
/// one for the wrong name (`DNS:other.example`); an expired one (2020-01-01 to 2020-01-02,
/// right names); and a second, unrelated CA. EC P-256 keys (fast to make).
struct TLSTestCertificates: Sendable {
    let directory: URL

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    var caCertificate: String { path("ca.crt") }
    var otherCACertificate: String { path("other-ca.crt") }
    var serverCertificate: String { path("server.crt") }
    var serverKey: String { path("server.key") }
    var clientCertificate: String { path("client.crt") }
    var clientKey: String { path("client.key") }
    var wrongNameCertificate: String { path("wrong-name.crt") }
    var wrongNameKey: String { path("wrong-name.key") }
    var expiredCertificate: String { path("expired.crt") }
    var expiredKey: String { path("expired.key") }

    /// The process's certificates (made on first use; a failure fails every test that asks).
    static func shared() throws -> TLSTestCertificates {
        try made.get()
    }

    private static let made: Result<TLSTestCertificates, any Error> = Result { try make() }

    private static func make() throws -> TLSTestCertificates {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sse-tls-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let certificates = TLSTestCertificates(directory: directory)
        let openssl = try Executables.find("openssl")
        func run(_ arguments: [String]) throws {
            try runToCompletion(openssl, arguments, in: directory)
        }
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for ca in ["ca", "other-ca"] {
            try run(["req", "-x509"] + key + ["-keyout", "\(ca).key", "-out", "\(ca).crt", "-days", "3650", "-subj", "/CN=SSE test \(ca)"])
        }
        let extensions: [(String, String)] = [
            ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
            ("client", "extendedKeyUsage=clientAuth"),
            ("wrong-name", "subjectAltName=DNS:other.example"),
        ]
        for (name, ext) in extensions {
            try ext.write(to: directory.appendingPathComponent("\(name).ext"), atomically: true, encoding: .utf8)
            try run(["req"] + key + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", "/CN=\(name)"])
            try run([
                "x509", "-req", "-in", "\(name).csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "\(name).crt", "-days", "365", "-extfile", "\(name).ext",
            ])
        }
        // OpenSSL 3.0's x509 cannot set past dates; `openssl ca` can.
        let caConfig = """
            [ca]
            default_ca = test_ca
            [test_ca]
            database = \(directory.path)/index.txt
            new_certs_dir = \(directory.path)
            serial = \(directory.path)/ca.serial
            certificate = \(directory.path)/ca.crt
            private_key = \(directory.path)/ca.key
            default_md = sha256
            policy = any
            x509_extensions = server
            unique_subject = no
            [any]
            commonName = supplied
            [server]
            subjectAltName = DNS:localhost,IP:127.0.0.1
            basicConstraints = CA:FALSE
            """
        try caConfig.write(to: directory.appendingPathComponent("ca.cnf"), atomically: true, encoding: .utf8)
        try "".write(to: directory.appendingPathComponent("index.txt"), atomically: true, encoding: .utf8)
        try "1000\n".write(to: directory.appendingPathComponent("ca.serial"), atomically: true, encoding: .utf8)
        try run(["req"] + key + ["-keyout", "expired.key", "-out", "expired.csr", "-subj", "/CN=expired"])
        try run([
            "ca", "-batch", "-config", "ca.cnf", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
            "-in", "expired.csr", "-out", "expired.crt", "-notext",
        ])
        return certificates
    }
}

/// Runs a program to its end (bounded: 30 s) and fails with its output when it exits non-zero.
func runToCompletion(_ executable: URL, _ arguments: [String], in directory: URL? = nil) throws {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let collected = CollectedOutput()
    output.fileHandleForReading.readabilityHandler = { collected.append($0.availableData) }
    defer { output.fileHandleForReading.readabilityHandler = nil }
    for _ in 0..<3000 where process.isRunning { usleep(10_000) }
    guard !process.isRunning else {
        RedisServerProcess.end(process, signal: SIGKILL)
        throw TestFailure("\(executable.lastPathComponent) \(arguments.joined(separator: " ")) did not finish")
    }
    guard process.terminationStatus == 0 else {
        throw TestFailure("\(executable.lastPathComponent) \(arguments.joined(separator: " ")) failed: \(collected.text)")
    }
}
