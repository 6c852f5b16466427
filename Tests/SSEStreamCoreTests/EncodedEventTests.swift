import NIOCore
import SSEWire
import Testing

@testable import SSEStreamCore

@Suite("EncodedEvent: one buffer, chunk-framed, with a raw slice")
struct EncodedEventTests {
    @Test("chunk framing and raw slice share the bytes", arguments: [0, 1, 15, 16, 255, 4096])
    func framing(_ size: Int) {
        let text = [UInt8](repeating: UInt8(ascii: "x"), count: size)
        let event = EncodedEvent(text: text, allocator: ByteBufferAllocator())
        let expected = Array((String(size, radix: 16) + "\r\n").utf8) + text + Array("\r\n".utf8)
        #expect(Array(event.chunked.readableBytesView) == expected)
        #expect(Array(event.raw.readableBytesView) == text)
        #expect(event.bytes(chunked: true) == event.chunked)
        #expect(event.bytes(chunked: false) == event.raw)
    }
}

@Suite("EncodedEvent: a stream's own id in place of the event's")
struct EncodedEventIDTests {
    static let allocator = ByteBufferAllocator()

    @Test("the bytes are exactly the event encoded with that id, chunked and raw", arguments: [
        ServerSentEvent(data: "x", id: "1-2"),
        ServerSentEvent(data: "a\nb\r\nc", type: "t", id: "5-6", retry: "300"),
        ServerSentEvent(data: "", id: "7-8"),
        ServerSentEvent(data: "{\"id\": \"x\"}", type: "id", id: "id:", retry: "1"),
    ])
    func replacesID(_ event: ServerSentEvent) {
        let encoded = EncodedEvent(event, position: nil, allocator: Self.allocator)
        let stream = "0badf00d.1-2.-"
        let expected = EventTextEncoder.encode(ServerSentEvent(data: event.data, type: event.type, id: stream, retry: event.retry))
        #expect(Array(encoded.bytes(chunked: false, id: stream).readableBytesView) == expected)
        let framed = Array((String(expected.count, radix: 16) + "\r\n").utf8) + expected + Array("\r\n".utf8)
        #expect(Array(encoded.bytes(chunked: true, id: stream).readableBytesView) == framed)
        // The shared bytes are untouched.
        #expect(Array(encoded.raw.readableBytesView) == EventTextEncoder.encode(event))
    }

    @Test("an event without an id is written as it is")
    func noID() {
        let encoded = EncodedEvent(ServerSentEvent(data: "x"), position: nil, allocator: Self.allocator)
        #expect(encoded.bytes(chunked: true, id: "a.b") == encoded.chunked)
    }
}
