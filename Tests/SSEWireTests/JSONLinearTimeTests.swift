#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SSEWire
import Testing

/// Hostile payload shapes: every JSON path stays linear, Python's key semantics hold in objects
/// of any size, nesting is bounded on a small stack, and integer length is Python 3.11's.
@Suite("JSON in linear time, with Python's semantics")
struct JSONLinearTimeTests {
    /// The time `body` takes, in seconds.
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        try body()
        let elapsed = clock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    static func object(keys count: Int) -> [UInt8] {
        var text = "{\"data\": {"
        for key in 0..<count {
            if key > 0 { text += ", " }
            text += "\"key-\(key)\": \(key)"
        }
        return Array((text + "}}").utf8)
    }

    /// The best of three timings of parsing and rendering a payload with `keys` keys.
    static func bestTime(keys: Int) -> Double {
        let payload = Self.object(keys: keys)
        return (0..<3).map { _ in Self.seconds { _ = EventTextEncoder.encode(ServerSentEvent(redisPayload: payload)) } }.min() ?? 0
    }

    @Test("objects parse and render in linear time: 8x the keys take about 8x as long, not 64x")
    func manyKeys() throws {
        guard case .object(let data)? = FlaskSSEMessage(redisPayload: Self.object(keys: 16_000))?.data else {
            Issue.record("not a conforming payload")
            return
        }
        #expect(data.count == 16_000)
        #expect(data["key-15999"] == 15_999)
        let small = Self.bestTime(keys: 2_000)
        let large = Self.bestTime(keys: 16_000)
        // A scan per key (the old JSONObject) took over 20 s for 15,000 keys even in release.
        #expect(large < 5, "16,000 keys took \(large) s")
        #expect(large / max(small, 1e-6) < 24, "2,000 keys took \(small) s, 16,000 took \(large) s")
    }

    @Test("duplicate keys: the last value wins and the first position is kept, in small and large objects", arguments: [3, 40])
    func duplicates(_ size: Int) throws {
        var text = "{"
        for key in 0..<size { text += "\"k\(key)\": \(key), " }
        text += "\"k1\": \"again\", \"k0\": null}"
        guard case .object(let object) = try JSONParser.parse(text) else {
            Issue.record("not an object")
            return
        }
        #expect(object.count == size)
        #expect(object.keys == (0..<size).map { "k\($0)" })
        #expect(object["k1"] == "again")
        #expect(object["k0"] == .null)
        #expect(object["k2"] == 2)
    }

    @Test("keys are exact scalars: canonically equivalent keys are two keys, in small and large objects", arguments: [0, 40])
    func exactScalars(_ padding: Int) throws {
        var text = "{"
        for key in 0..<padding { text += "\"p\(key)\": 0, " }
        text += "\"\u{E9}\": 1, \"e\u{301}\": 2, \"\u{E9}\": 3}"
        guard case .object(let object) = try JSONParser.parse(text) else {
            Issue.record("not an object")
            return
        }
        #expect(object.count == padding + 2)
        #expect(object["\u{E9}"] == 3)
        #expect(object["e\u{301}"] == 2)
        #expect(object.keys.suffix(2).map { Array($0.utf8) } == [[0xC3, 0xA9], [0x65, 0xCC, 0x81]])
    }

    @Test("equality and hashing ignore order and see exact keys, in small and large objects", arguments: [2, 40])
    func equality(_ size: Int) {
        let pairs = (0..<size).map { ("k\($0)", JSONValue.integer(JSONInteger($0))) }
        let forward = JSONObject(pairs)
        let backward = JSONObject(pairs.reversed())
        #expect(forward == backward)
        #expect(forward.hashValue == backward.hashValue)
        var changed = forward
        changed["k1"] = "other"
        #expect(changed != forward)
        var renamed = JSONObject(pairs.dropLast())
        renamed["\u{E9}"] = 0
        var equivalent = JSONObject(pairs.dropLast())
        equivalent["e\u{301}"] = 0
        #expect(renamed != equivalent)
    }

    @Test("removing a member keeps the others findable")
    func removal() {
        var object = JSONObject((0..<40).map { ("k\($0)", JSONValue.integer(JSONInteger($0))) })
        object["k5"] = nil
        #expect(object.count == 39)
        #expect(object["k5"] == nil)
        #expect(object["k6"] == 6)
        #expect(object["k39"] == 39)
        object["k5"] = "back"
        #expect(object.keys.last == "k5")
        #expect(object["k5"] == "back")
    }

    @Test("integers: up to 4,300 digits kept whole, longer ones refused as Python 3.11+ refuses them")
    func integerDigits() throws {
        // Compared as booleans: a failure would otherwise print thousands of digits.
        func parses(_ text: String) -> Bool { (try? JSONParser.parse(text)) != nil }
        let longest = String(repeating: "7", count: 4300)  // Python's sys.int_info.default_max_str_digits
        #expect(parses(longest) && parses("-" + longest))
        #expect(!parses(longest + "7"))
        #expect(!parses("-" + longest + "7"))
        // A float may be as long as it likes, as in Python.
        #expect(try JSONParser.parse("1" + String(repeating: "0", count: 5_000) + ".5") == .float(.infinity))

        let accepted = Array("{\"data\": \(longest)}".utf8)
        let rendersDigits = EventTextEncoder.encode(ServerSentEvent(redisPayload: accepted)) == Array("data:\(longest)\n\n".utf8)
        #expect(rendersDigits)
        // Flask-SSE's json.loads raises on it: the broker delivers the payload as plain text.
        let refused = Array("{\"data\": \(longest)7}".utf8)
        let conforms = FlaskSSEMessage(redisPayload: refused) != nil
        #expect(!conforms)
        let rendersPlainText = EventTextEncoder.encode(ServerSentEvent(redisPayload: refused)) == Array("data:{\"data\": \(longest)7}\n\n".utf8)
        #expect(rendersPlainText)
    }

    @Test("huge numbers, many escapes, long lines and many line breaks render in linear time")
    func largeInputs() {
        let payloads: [(String, [UInt8])] = [
            ("100k-digit integer", Array(("{\"data\": " + String(repeating: "9", count: 100_000) + "}").utf8)),
            ("100k-digit float", Array(("{\"data\": 0." + String(repeating: "3", count: 100_000) + "}").utf8)),
            ("huge exponent", Array(("{\"data\": 1e" + String(repeating: "9", count: 100_000) + "}").utf8)),
            ("100k escapes", Array(("{\"data\": \"" + String(repeating: "\\u00e9\\n", count: 50_000) + "\"}").utf8)),
            ("256 KB line", Array(("{\"data\": \"" + String(repeating: "x", count: 256 * 1024) + "\"}").utf8)),
            ("100k CRs", Array(("{\"data\": \"" + String(repeating: "\\r", count: 100_000) + "\"}").utf8)),
            ("200k raw CRs", Array(String(repeating: "\r", count: 200_000).utf8)),
            ("100k U+2028", Array(String(repeating: "a\u{2028}", count: 100_000).utf8)),
            ("50k array members", Array(("{\"data\": [" + String(repeating: "1.5, ", count: 50_000) + "0]}").utf8)),
        ]
        for (name, payload) in payloads {
            var text: [UInt8] = []
            let elapsed = Self.seconds { text = EventTextEncoder.encode(ServerSentEvent(redisPayload: payload)) }
            #expect(elapsed < 5, "\(name) took \(elapsed) s")
            #expect(text.suffix(2) == [10, 10] && !text.contains(13), "\(name) is not one well-formed event")
        }
    }

    /// Parsing, rendering and releasing walk no recursion (hashing and `==` still recurse,
    /// within the depth bound).
    @Test("200,000 '[' and the deepest accepted documents parse and render on a thread with a 256 KB stack")
    func nestingOnASmallStack() throws {
        let depth = JSONParser.maximumDepth
        let work: @Sendable () -> Bool = {
            let inputs: [[UInt8]] = [
                Array(repeating: UInt8(ascii: "["), count: 200_000),
                Array(repeating: UInt8(ascii: "{"), count: 200_000),
                Array(("{\"data\": " + String(repeating: "[", count: depth - 1) + String(repeating: "]", count: depth - 1) + "}").utf8),
                Array(("{\"data\": " + String(repeating: "{\"a\": ", count: depth - 2) + "{}" + String(repeating: "}", count: depth - 2) + "}").utf8),
            ]
            var outcomes: [Bool] = []
            for input in inputs {
                let message = FlaskSSEMessage(redisPayload: input)
                outcomes.append(message != nil)
                _ = EventTextEncoder.encode(ServerSentEvent(redisPayload: input))
            }
            return outcomes == [false, false, true, true]
        }
        #expect(try Self.runOnSmallStack(bytes: 256 * 1024, work))
    }

    /// Runs `work` on a new thread with a stack of `bytes` and returns its result.
    static func runOnSmallStack(bytes: Int, _ work: @escaping @Sendable () -> Bool) throws -> Bool {
        final class Box: @unchecked Sendable {  // written by the thread before join, read after
            let work: @Sendable () -> Bool
            var result = false
            init(_ work: @escaping @Sendable () -> Bool) { self.work = work }
        }
        let box = Box(work)
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, bytes)
        #if canImport(Glibc)
        var thread = pthread_t()
        #else
        var thread: pthread_t?
        #endif
        let context = Unmanaged.passRetained(box).toOpaque()
        let created = pthread_create(&thread, &attributes, { raw in
            guard let raw else { return nil }
            let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
            box.result = box.work()
            return nil
        }, context)
        guard created == 0 else {
            Unmanaged<Box>.fromOpaque(context).release()
            Issue.record("pthread_create failed: \(created)")
            return false
        }
        #if canImport(Glibc)
        pthread_join(thread, nil)
        #else
        if let thread { pthread_join(thread, nil) }
        #endif
        return box.result
    }
}
