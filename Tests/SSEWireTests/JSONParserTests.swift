import SSEWire
import Testing

/// What Python's `json.loads` accepts and rejects, since conformance decides how a payload renders.
@Suite("Python json.loads compatibility")
struct JSONParserTests {
    @Test("rejects what json.loads rejects", arguments: [
        "", " ", "[1,]", "{\"a\":1,}", "{'a':1}", "01", "1.", ".5", "+1", "-", "1e", "1e+",
        "\"a\u{1}b\"", "\"tab\there\"", "\"\\x41\"", "\"\\u12\"", "\"unterminated", "[1 2]", "{\"a\" 1}",
        "nul", "tru", "NaNa", "infinity", "[1]]", "{\"a\":1}x", "\"\\ud83d\\u12G4\"",
    ])
    func rejects(_ input: String) {
        #expect(throws: JSONParsingError.self) { try JSONParser.parse(input) }
    }

    @Test("invalid UTF-8 inside a string is rejected")
    func invalidUTF8() {
        #expect(throws: JSONParsingError.self) { try JSONParser.parse([0x22, 0xFF, 0x22]) }
    }

    @Test("accepts what json.loads accepts")
    func accepts() throws {
        #expect(try JSONParser.parse(" \t\r\n 42 \n") == 42)
        #expect(try JSONParser.parse("-0") == .integer(JSONInteger(0)))
        #expect(try JSONParser.parse("123456789012345678901234567890") == .integer(JSONInteger("123456789012345678901234567890")!))
        #expect(try JSONParser.parse("1E400") == .float(.infinity))
        #expect(try JSONParser.parse("-Infinity") == .float(-.infinity))
        #expect(try JSONParser.parse("\"\\ud83d\\ude00\"") == "😀")
        #expect(try JSONParser.parse("\"\\/\"") == "/")
        #expect(try JSONParser.parse([0xEF, 0xBB, 0xBF] + Array("[]".utf8)) == [])
        #expect(try JSONParser.parse("{\"a\": 1, \"a\": 2}") == ["a": 2])
    }

    @Test("a lone surrogate escape becomes U+FFFD")
    func loneSurrogate() throws {
        #expect(try JSONParser.parse("\"a\\ud800b\"") == "a\u{FFFD}b")
        #expect(try JSONParser.parse("\"\\udc00\"") == "\u{FFFD}")
    }

    @Test("nesting is bounded")
    func depth() throws {
        let deep = String(repeating: "[", count: JSONParser.maximumDepth) + String(repeating: "]", count: JSONParser.maximumDepth)
        #expect(throws: Never.self) { try JSONParser.parse(deep) }
        let tooDeep = "[" + deep + "]"
        #expect(throws: JSONParsingError.self) { try JSONParser.parse(tooDeep) }
    }
}
