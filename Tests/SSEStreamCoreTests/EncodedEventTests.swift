import NIOCore
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
