import NIOCore
import NIOEmbedded
import Testing

@testable import SSERedisTransport

/// Counts the `read()` calls that pass it toward the channel, to see the glue hold them back.
private final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    var reads = 0

    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}

private struct Broken: Error {}

@Suite("TunnelGlueHandler relays bytes between two channels")
struct TunnelGlueHandlerTests {
    /// Two connected embedded channels on one loop, glued; `[ReadCounter, glue]` on each.
    private static func gluedPair() throws -> (EmbeddedChannel, EmbeddedChannel, ReadCounter, ReadCounter, TunnelFailure) {
        let loop = EmbeddedEventLoop()
        let failure = TunnelFailure()
        let (left, right) = TunnelGlueHandler.matchedPair(failure: failure)
        let leftCounter = ReadCounter()
        let rightCounter = ReadCounter()
        let leftChannel = EmbeddedChannel(loop: loop)
        let rightChannel = EmbeddedChannel(loop: loop)
        try leftChannel.pipeline.syncOperations.addHandlers(leftCounter, left)
        try rightChannel.pipeline.syncOperations.addHandlers(rightCounter, right)
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        try leftChannel.connect(to: address).wait()
        try rightChannel.connect(to: address).wait()
        return (leftChannel, rightChannel, leftCounter, rightCounter, failure)
    }

    private static func drainOutbound(_ channel: EmbeddedChannel) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            bytes += buffer.readBytes(length: buffer.readableBytes) ?? []
        }
        return bytes
    }

    @Test("every byte arrives on the other side, unchanged and in order, for every chunk size", arguments: [1, 2, 7, 64, 4096])
    func forwardsByteExact(chunkSize: Int) throws {
        let (left, right, _, _, failure) = try Self.gluedPair()
        let payload = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        var offset = 0
        while offset < payload.count {
            let end = min(payload.count, offset + chunkSize)
            try left.writeInbound(ByteBuffer(bytes: payload[offset..<end]))
            offset = end
        }
        #expect(try Self.drainOutbound(right) == payload)
        #expect(try Self.drainOutbound(left).isEmpty)
        let reply: [UInt8] = Array("+PONG\r\n".utf8)
        try right.writeInbound(ByteBuffer(bytes: reply))
        #expect(try Self.drainOutbound(left) == reply)
        #expect(failure.text == nil)
        _ = try? left.finish()
        _ = try? right.finish()
    }

    @Test("a side stops reading while its partner cannot take writes, and resumes when it can")
    func backpressure() throws {
        let (left, right, leftCounter, _, _) = try Self.gluedPair()
        left.read()
        #expect(leftCounter.reads == 1)
        right.isWritable = false
        right.pipeline.fireChannelWritabilityChanged()
        left.read()
        left.read()
        #expect(leftCounter.reads == 1, "read() passed although the partner is not writable")
        right.isWritable = true
        right.pipeline.fireChannelWritabilityChanged()
        #expect(leftCounter.reads == 2, "the held-back read() was not resumed once")
        _ = try? left.finish()
        _ = try? right.finish()
    }

    @Test("when one side closes, the other closes too")
    func closeBoth() throws {
        let (left, right, _, _, failure) = try Self.gluedPair()
        try left.close().wait()
        #expect(!right.isActive)
        #expect(failure.text == nil)
    }

    @Test("an error closes both sides and is kept as the tunnel's failure (the first one only)")
    func errorClosesBothAndIsRecorded() throws {
        let (left, right, _, _, failure) = try Self.gluedPair()
        left.pipeline.fireErrorCaught(TLSTunnelError(.handshakeFailed, "first"))
        right.pipeline.fireErrorCaught(Broken())
        #expect(!left.isActive)
        #expect(!right.isActive)
        #expect(failure.text == "first")
    }
}
