import SSEWire
import Testing

@Suite("Event text: Flask-SSE framing and field sanitizing")
struct EventTextEncoderTests {
    private func render(_ payload: String) -> String {
        String(decoding: EventTextEncoder.encode(ServerSentEvent(redisPayload: Array(payload.utf8))), as: UTF8.self)
    }

    @Test("field order, no space after the colon, \\n\\n terminator")
    func framing() {
        #expect(render(#"{"retry":10,"id":"i","type":"t","data":"a\nb"}"#) == "event:t\ndata:a\ndata:b\nid:i\nretry:10\n\n")
    }

    @Test("every splitlines break in data becomes a data line, never a raw break")
    func dataBreaks() {
        let text = render(#"{"data":"a\u000bb\u2028c\u0085d\re"}"#)
        #expect(text == "data:a\ndata:b\ndata:c\ndata:d\ndata:e\n\n")
        #expect(!text.contains("\r"))
    }

    @Test("type or id with CR, LF or NUL is left out; the event is still delivered", arguments: [
        (#"{"data":"x","type":"a\nid:forged"}"#, "data:x\n\n"),
        (#"{"data":"x","type":"a\rb"}"#, "data:x\n\n"),
        (#"{"data":"x","id":"1\nevent:evil"}"#, "data:x\n\n"),
        (#"{"data":"x","id":"a\u0000b"}"#, "data:x\n\n"),
        (#"{"data":"x","type":"ok\u2028"}"#, "event:ok\u{2028}\ndata:x\n\n"),
    ])
    func injection(_ payload: String, _ expected: String) {
        #expect(render(payload) == expected)
    }

    @Test("retry is kept only when its text is all ASCII digits", arguments: [
        (#"{"data":"x","retry":1500}"#, "data:x\nretry:1500\n\n"),
        (#"{"data":"x","retry":"1500"}"#, "data:x\nretry:1500\n\n"),
        (#"{"data":"x","retry":"15a"}"#, "data:x\n\n"),
        (#"{"data":"x","retry":1.5}"#, "data:x\n\n"),
        (#"{"data":"x","retry":-5}"#, "data:x\n\n"),
        (#"{"data":"x","retry":true}"#, "data:x\n\n"),
        (#"{"data":"x","retry":"1\n2"}"#, "data:x\n\n"),
    ])
    func retry(_ payload: String, _ expected: String) {
        #expect(render(payload) == expected)
    }

    @Test("scalar fields render as Python's str(): True, floats, big integers", arguments: [
        (#"{"data":"x","type":true}"#, "event:True\ndata:x\n\n"),
        (#"{"data":"x","id":1.5}"#, "data:x\nid:1.5\n\n"),
        (#"{"data":"x","id":123456789012345678901234567890}"#, "data:x\nid:123456789012345678901234567890\n\n"),
        (#"{"data":"x","id":1e16}"#, "data:x\nid:1e+16\n\n"),
    ])
    func scalarFields(_ payload: String, _ expected: String) {
        #expect(render(payload) == expected)
    }

    @Test("falsy fields are left out: \"\", 0, 0.0, null, false, [], {}", arguments: [
        #"{"data":"x","type":"","id":0,"retry":0}"#,
        #"{"data":"x","type":null,"id":false,"retry":0.0}"#,
        #"{"data":"x","type":[],"id":{}}"#,
        #"{"data":"x","id":-0}"#,
    ])
    func falsy(_ payload: String) {
        #expect(render(payload) == "data:x\n\n")
    }

    @Test("non-conforming payloads are delivered as plain text", arguments: [
        ("hello", "data:hello\n\n"),
        ("[1, 2]", "data:[1, 2]\n\n"),
        (#""just a string""#, "data:\"just a string\"\n\n"),
        (#"{"type":"t"}"#, "data:{\"type\":\"t\"}\n\n"),
        (#"{"data":1,"extra":2}"#, "data:{\"data\":1,\"extra\":2}\n\n"),
        ("{\"data\": 1", "data:{\"data\": 1\n\n"),
        ("two\nlines", "data:two\ndata:lines\n\n"),
        ("", "\n\n"),
        (#"{"data":"\u0000"}x"#, "data:{\"data\":\"\\u0000\"}x\n\n"),
    ])
    func plainText(_ payload: String, _ expected: String) {
        #expect(render(payload) == expected)
    }

    @Test("invalid UTF-8 in a payload becomes U+FFFD in plain text")
    func invalidUTF8() {
        let payload: [UInt8] = [0x61, 0xFF, 0xFE, 0x62]
        let text = String(decoding: EventTextEncoder.encode(ServerSentEvent(redisPayload: payload)), as: UTF8.self)
        #expect(text == "data:a\u{FFFD}\u{FFFD}b\n\n")
    }

    @Test("a comment frame can never become an event")
    func comment() {
        #expect(EventTextEncoder.comment() == Array(":\n\n".utf8))
        #expect(EventTextEncoder.comment("a\nb\rc") == Array(":abc\n\n".utf8))
    }

    @Test("publishing leaves out falsy fields and sorts keys", arguments: [
        (FlaskSSEMessage(data: "x", type: [], id: 0.0, retry: false), #"{"data": "x"}"#),
        (FlaskSSEMessage(data: ["b": 1, "a": [1.0, nil]], type: "t", id: 7), #"{"data": {"a": [1.0, null], "b": 1}, "id": 7, "type": "t"}"#),
        (FlaskSSEMessage(data: "😀", retry: "5"), #"{"data": "\ud83d\ude00", "retry": "5"}"#),
    ])
    func publishPayload(_ message: FlaskSSEMessage, _ expected: String) {
        #expect(String(decoding: message.redisPayload, as: UTF8.self) == expected)
    }
}
