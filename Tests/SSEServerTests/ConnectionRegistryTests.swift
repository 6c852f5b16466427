import NIOCore
import NIOEmbedded
import Testing

@testable import SSEServer

@Suite("Connection registry")
struct ConnectionRegistryTests {
    /// Counts the quiesce requests that reach the end of a pipeline.
    final class QuiesceRecorder: ChannelInboundHandler {
        typealias InboundIn = Never
        var requests = 0

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is ChannelShouldQuiesceEvent { requests += 1 }
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func channel(with recorder: QuiesceRecorder) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(recorder)
        return channel
    }

    @Test("a shutdown asks every open connection to finish, once")
    func quiescesOpenConnections() throws {
        let registry = ConnectionRegistry(limit: 10)
        let recorders = [QuiesceRecorder(), QuiesceRecorder()]
        let channels = try recorders.map { try channel(with: $0) }
        for channel in channels { #expect(registry.admit(channel)) }
        #expect(registry.count == 2)
        registry.quiesceAll()
        for channel in channels { channel.embeddedEventLoop.run() }
        #expect(recorders.map(\.requests) == [1, 1])
    }

    @Test("a connection admitted after the shutdown began is asked to finish too, after its set-up")
    func quiescesLateConnections() throws {
        let registry = ConnectionRegistry(limit: 10)
        registry.quiesceAll()
        let recorder = QuiesceRecorder()
        let late = EmbeddedChannel()
        #expect(registry.admit(late))
        // The pipeline is built after admission, as the node's initializer does.
        try late.pipeline.syncOperations.addHandler(recorder)
        #expect(recorder.requests == 0)
        late.embeddedEventLoop.run()
        #expect(recorder.requests == 1)
    }

    @Test("beyond the limit a connection is refused; a closed one makes room")
    func limit() throws {
        let registry = ConnectionRegistry(limit: 1)
        let first = EmbeddedChannel()
        #expect(registry.admit(first))
        #expect(!registry.admit(EmbeddedChannel()))
        _ = try first.finish()
        #expect(registry.count == 0)
        #expect(registry.admit(EmbeddedChannel()))
    }
}
