import Testing

@testable import SSEEndpoints

@Suite("Channel names")
struct ChannelNameValidatorTests {
    let validator = ChannelNameValidator(maximumBytes: 256)

    @Test("the default is 'sse' when missing or empty", arguments: ["/stream", "/stream?channel=", "/stream?channel"])
    func defaultChannel(_ uri: String) throws {
        #expect(try validator.streamChannels(QueryParameters(uri: uri)) == ["sse"])
        #expect(try validator.publishChannel(QueryParameters(uri: uri)) == "sse")
    }

    @Test("refused: too long, control characters", arguments: [
        "/stream?channel=" + String(repeating: "x", count: 257),
        "/stream?channel=a%0Ab",
        "/stream?channel=a%00",
        "/stream?channel=%7F",
        "/stream?channel=%C2%85",
        "/stream?channel=a&channel=",
    ])
    func refused(_ uri: String) {
        #expect(throws: HTTPError.self) { try validator.streamChannels(QueryParameters(uri: uri)) }
    }

    @Test("accepted: 256 bytes, unicode, dots and globs are plain names")
    func accepted() throws {
        let longest = String(repeating: "é", count: 128)
        #expect(try validator.validate(longest) == longest)
        #expect(try validator.validate("user.42.*") == "user.42.*")
    }

    @Test("several channel values make a multi-channel stream; duplicates collapse")
    func multi() throws {
        #expect(try validator.streamChannels(QueryParameters(uri: "/stream?channel=a&channel=b&channel=a")) == ["a", "b"])
    }
}
