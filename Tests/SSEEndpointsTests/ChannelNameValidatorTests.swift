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

    @Test("refused: the delivery probes' prefix, to stream (alone or among others) and to publish", arguments: [
        "/stream?channel=sse-broker:probe:",
        "/stream?channel=sse-broker:probe:node:0123456789abcdef",
        "/stream?channel=a&channel=sse-broker%3Aprobe%3Ax",
    ])
    func probePrefix(_ uri: String) {
        #expect(throws: HTTPError.self) { try validator.streamChannels(QueryParameters(uri: uri)) }
        #expect(throws: HTTPError.self) { try validator.publishChannel(QueryParameters(uri: uri.replacing("channel=a&", with: ""))) }
    }

    @Test("accepted: near the probe prefix is a plain name")
    func nearProbePrefix() throws {
        #expect(try validator.validate("sse-broker:probe") == "sse-broker:probe")
        #expect(try validator.validate("x:sse-broker:probe:y") == "x:sse-broker:probe:y")
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
