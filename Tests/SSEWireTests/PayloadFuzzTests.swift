import FlaskSSEVectors
import SSEWire
import SeededRandom
import Testing

/// Random and mutated Redis payloads through the decoder and encoder: never a crash, never a
/// hang, and always one well-formed event whose lines are only the four known fields.
@Suite("Payload decoder fuzzing")
struct PayloadFuzzTests {
    /// Checks the framing invariants of one rendered event; `replay` says how to draw it again.
    static func checkWellFormed(_ text: [UInt8], payload: [UInt8], replay: String = "") {
        #expect(text.count >= 2 && text.suffix(2) == [10, 10], "event does not end with a blank line for \(payload) \(replay)")
        #expect(!text.contains(13), "CR in event text for \(payload) \(replay)")
        let body = text.dropLast(2)
        guard !body.isEmpty else { return }
        for line in body.split(separator: 10, omittingEmptySubsequences: false) {
            let known = ["event:", "data:", "id:", "retry:"].contains { line.starts(with: $0.utf8) }
            #expect(known, "unexpected line \(String(decoding: line, as: UTF8.self).debugDescription) for \(payload) \(replay)")
        }
    }

    @Test("random bytes", arguments: 0..<4)
    func randomBytes(_ shard: Int) {
        var generator = SeededGenerator.forTest(shard: shard)
        let replay = generator.description
        for _ in 0..<5_000 {
            let length = Int.random(in: 0...64, using: &generator)
            let alphabet: [UInt8] = Array(#"{}[]":,\ datypeidretry0123456789.eE-+nulltruefalse"#.utf8) + [0, 10, 13, 0x0B, 0x85, 0xE2, 0x80, 0xA8, 0xFF]
            let payload = (0..<length).map { _ in
                Bool.random(using: &generator)
                    ? alphabet.randomElement(using: &generator) ?? 0
                    : UInt8.random(in: 0...255, using: &generator)
            }
            Self.checkWellFormed(EventTextEncoder.encode(ServerSentEvent(redisPayload: payload)), payload: payload, replay: replay)
        }
    }

    @Test("mutated golden payloads")
    func mutatedVectors() throws {
        var generator = SeededGenerator.forTest()
        let replay = generator.description
        let vectors = try FlaskSSEVector.all()
        for round in 0..<20_000 {
            var payload = vectors[round % vectors.count].redisPayload
            for _ in 0..<Int.random(in: 1...4, using: &generator) where !payload.isEmpty {
                let position = Int.random(in: 0..<payload.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: payload[position] = UInt8.random(in: 0...255, using: &generator)
                case 1: payload.remove(at: position)
                default: payload.insert(UInt8.random(in: 0...255, using: &generator), at: position)
                }
            }
            Self.checkWellFormed(EventTextEncoder.encode(ServerSentEvent(redisPayload: payload)), payload: payload, replay: replay)
        }
    }

    @Test("pathological nesting and sizes stay bounded")
    func pathological() {
        let payloads: [[UInt8]] = [
            Array(String(repeating: "[", count: 100_000).utf8),
            Array(("{\"data\": " + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "}").utf8),
            Array(("{\"data\": \"" + String(repeating: "\\u0000", count: 20_000) + "\"}").utf8),
            Array(("{\"data\": " + String(repeating: "9", count: 50_000) + "}").utf8),
            Array(("{\"data\": 1" + String(repeating: "0", count: 5_000) + "e-5000}").utf8),
        ]
        for payload in payloads {
            Self.checkWellFormed(EventTextEncoder.encode(ServerSentEvent(redisPayload: payload)), payload: Array(payload.prefix(20)))
        }
    }
}
