import Foundation
import SSEWire
import Testing

/// One golden case made by the real Flask-SSE code (`../shared/flask-sse-vectors.jsonl`).
struct FlaskSSEVector: CustomTestStringConvertible, Sendable {
    let name: String
    let publish: JSONObject?
    let redisPayload: [UInt8]
    let sse: [UInt8]

    var testDescription: String { name }

    /// The vendored copy, plus the shared file beside the repository when it is there (so new
    /// shared cases are tested without copying them in).
    static func all() throws -> [FlaskSSEVector] {
        var files: [URL] = []
        if let bundled = Bundle.module.url(forResource: "Fixtures/flask-sse-vectors", withExtension: "jsonl") {
            files.append(bundled)
        }
        let shared = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("shared/flask-sse-vectors.jsonl")
        if FileManager.default.fileExists(atPath: shared.path) { files.append(shared) }
        var byName: [String: FlaskSSEVector] = [:]
        var order: [String] = []
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            for line in text.split(separator: "\n") where !line.isEmpty {
                let vector = try FlaskSSEVector(line: String(line))
                if byName[vector.name] == nil { order.append(vector.name) }
                byName[vector.name] = vector
            }
        }
        return order.compactMap { byName[$0] }
    }

    /// Parsed with our own Python-compatible parser: Foundation's would lose `1.0` vs `1`.
    init(line: String) throws {
        guard case .object(let object) = try JSONParser.parse(line),
            case .string(let name)? = object["name"],
            case .string(let payload)? = object["redis_payload"],
            case .string(let sse)? = object["sse"]
        else { throw VectorError(line: line) }
        self.name = name
        self.redisPayload = Array(payload.utf8)
        self.sse = Array(sse.utf8)
        if case .object(let publish)? = object["publish"] {
            self.publish = publish
        } else {
            self.publish = nil
        }
    }

    struct VectorError: Error { let line: String }
}

@Suite("Flask-SSE golden vectors")
struct FlaskSSEVectorTests {
    static let vectors = (try? FlaskSSEVector.all()) ?? []

    @Test("the vector files load and are not empty")
    func vectorsLoad() throws {
        let vectors = try FlaskSSEVector.all()
        #expect(vectors.count >= 26)
        #expect(vectors.contains { $0.publish != nil })
        #expect(vectors.contains { $0.publish == nil })
    }

    @Test("Redis payload renders as Flask-SSE's event text", arguments: vectors)
    func payloadToEventText(_ vector: FlaskSSEVector) {
        let text = EventTextEncoder.encode(ServerSentEvent(redisPayload: vector.redisPayload))
        #expect(String(decoding: text, as: UTF8.self) == String(decoding: vector.sse, as: UTF8.self))
        #expect(text == vector.sse)
    }

    @Test("publish arguments make Flask-SSE's payload bytes", arguments: vectors.filter { $0.publish != nil })
    func publishToPayload(_ vector: FlaskSSEVector) throws {
        let publish = try #require(vector.publish)
        let data = try #require(publish["data"])
        let message = FlaskSSEMessage(data: data, type: publish["type"], id: publish["id"], retry: publish["retry"])
        #expect(String(decoding: message.redisPayload, as: UTF8.self) == String(decoding: vector.redisPayload, as: UTF8.self))
        #expect(message.redisPayload == vector.redisPayload)
    }
}
