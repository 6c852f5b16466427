import Foundation
import SSEWire

/// One golden case made by the real Flask-SSE code (`../shared/flask-sse-vectors.jsonl`).
public struct FlaskSSEVector: CustomStringConvertible, Sendable {
    public let name: String
    /// The `sse.publish(...)` arguments that made the payload, when Flask-SSE's publisher made it.
    public let publish: JSONObject?
    /// What Flask-SSE put on Redis.
    public let redisPayload: [UInt8]
    /// The exact event text Flask-SSE's stream emits for the payload.
    public let sse: [UInt8]

    public var description: String { name }

    /// The vendored copy, plus the shared file beside the repository when it is there (so new
    /// shared cases are tested without copying them in).
    public static func all() throws -> [FlaskSSEVector] {
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
    public init(line: String) throws {
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

    public struct VectorError: Error { let line: String }
}
