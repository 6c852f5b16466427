import FlaskSSEVectors
import Foundation
import SSERedis
import SSEWire
import Testing

/// Interop with the real Flask-SSE 1.0.0 (installed from PyPI into `.venv-interop` by `make test`).
@Suite("Interop with the real Flask-SSE", .timeLimit(.minutes(2)))
struct FlaskSSEInteropTests {
    static var vectorsFile: URL {
        Executables.packageRoot.appendingPathComponent("Tests/FlaskSSEVectors/Fixtures/flask-sse-vectors.jsonl")
    }

    static func script(_ name: String) -> String {
        Executables.packageRoot.appendingPathComponent("Tests/Interop/\(name)").path
    }

    /// Runs Flask-SSE's `sse.publish` of every vector against `url` and expects `node`'s stream of
    /// `channel` to receive them all, byte for byte.
    static func expectFlaskPublishes(_ url: String, reach node: BrokerNode, of redis: RedisServerProcess, channel: String) async throws {
        let client = try await node.stream(channel)
        try await redis.waitForSubscribers(channel, count: 1, timeout: .seconds(30))
        try await expectPublishes(of: "flask_sse_publish.py", url, channel: channel, reach: client)
    }

    /// Runs a Flask-SSE publishing script (`sse.publish` of every vector on `channel` through
    /// `url`) and expects `client` to receive them all, byte for byte; closes `client`.
    static func expectPublishes(of scriptName: String, _ url: String, channel: String, reach client: StreamClient) async throws {
        let python = try Executables.interopPython()
        let publisher = try ChildProcess(python, [script(scriptName), url, channel, vectorsFile.path])
        let status = try await publisher.waitForExit()
        #expect(status == 0, "\(publisher.text)")
        let expected = try FlaskSSEVector.all().filter { $0.publish != nil }.map { String(decoding: $0.sse, as: UTF8.self) }
        #expect(publisher.text.contains("published \(expected.count)"))
        #expect(try await client.waitForEvents(expected.count) == expected)
        await client.close()
    }

    @Test("a Flask-SSE publisher (sse.publish) reaches our stream clients, byte for byte")
    func flaskPublisherToBroker() async throws {
        let redis = try await RedisServerProcess()
        defer { redis.stop() }
        try await withNode(redis: try redis.configuration) { node in
            try await Self.expectFlaskPublishes(redis.url(), reach: node, of: redis, channel: "interop")
        }
    }

    @Test("a Flask-SSE publisher over rediss:// (redis-py, ?ssl_ca_certs=) reaches our stream, over TLS on both sides")
    func flaskPublisherOverTLS() async throws {
        let redis = try await RedisServerProcess(tls: try TLSTestCertificates.shared())
        defer { redis.stop() }
        try await withNode(redis: try RedisConfiguration(url: redis.tlsURL())) { node in
            try await Self.expectFlaskPublishes(redis.tlsURL(), reach: node, of: redis, channel: "interop-tls")
        }
    }

    @Test("our POST /publish feeds a Flask-SSE stream: its bytes equal ours and the vectors' (history off)")
    func brokerPublishToFlaskConsumer() async throws {
        let python = try Executables.interopPython()
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) { $0.history = .disabled }
        let flaskPort = try FreePort.next()
        let flask = try ChildProcess(python, [Self.script("flask_sse_app.py"), redis.url(), String(flaskPort)])
        try await eventually("the Flask-SSE app to listen") { try FreePort.isListening(flaskPort) }
        // Flask-SSE sends no headers until its first event, so do not wait for a head.
        let flaskClient = try await StreamClient.open(port: flaskPort, "/stream?channel=fx", waitForHead: false)
        let ourClient = try await node.stream("fx")
        try await redis.waitForSubscribers("fx", count: 2, timeout: .seconds(30))
        let vectors = try FlaskSSEVector.all().filter { $0.publish != nil }
        for vector in vectors {
            let body = PythonJSONEncoder.encode(.object(try #require(vector.publish)))
            let response = try await node.request("POST", "/publish?channel=fx", body: body)
            #expect(response.bodyText == #"{"receivers": 2}"#, "\(vector.name)")
        }
        let expected = vectors.map { String(decoding: $0.sse, as: UTF8.self) }
        let flaskEvents = try await flaskClient.waitForEvents(expected.count)
        let ourEvents = try await ourClient.waitForEvents(expected.count)
        #expect(flaskEvents == expected, "\(flask.text)")
        #expect(ourEvents == flaskEvents)
        await flaskClient.close()
        await ourClient.close()
        try await flask.stop(signal: SIGKILL)  // Werkzeug waits forever on its streaming thread
        await node.shutdown()
    }

    @Test("with history on, a Flask-SSE stream still consumes what we publish, ids included, byte for byte as ours")
    func historyPayloadsStayFlaskSSE() async throws {
        let python = try Executables.interopPython()
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let flaskPort = try FreePort.next()
        let flask = try ChildProcess(python, [Self.script("flask_sse_app.py"), redis.url(), String(flaskPort)])
        try await eventually("the Flask-SSE app to listen") { try FreePort.isListening(flaskPort) }
        let flaskClient = try await StreamClient.open(port: flaskPort, "/stream?channel=hx", waitForHead: false)
        let ourClient = try await node.stream("hx")
        // The Flask-SSE app subscribes only once its response runs: on a loaded machine that can take a while.
        try await redis.waitForSubscribers("hx", count: 2, timeout: .seconds(30))
        let vectors = try FlaskSSEVector.all().filter { $0.publish != nil }
        for vector in vectors {
            let body = PythonJSONEncoder.encode(.object(try #require(vector.publish)))
            let response = try await node.request("POST", "/publish?channel=hx", body: body)
            #expect(response.status == 200)
            #expect(response.bodyText.contains(#""receivers": 2"#))
        }
        let flaskEvents = try await flaskClient.waitForEvents(vectors.count)
        let ourEvents = try await ourClient.waitForEvents(vectors.count)
        #expect(ourEvents == flaskEvents)
        #expect(ourEvents.allSatisfy { $0.contains("id:") })
        await flaskClient.close()
        await ourClient.close()
        try await flask.stop(signal: SIGKILL)
        await node.shutdown()
    }
}
