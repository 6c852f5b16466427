import NIOCore
import NIOEmbedded
import Synchronization
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

    @Test("whenEmpty runs once, when the last open connection closes, and at once when none is open")
    func whenEmpty() throws {
        let registry = ConnectionRegistry(limit: 10)
        let runs = Mutex(0)
        registry.whenEmpty { runs.withLock { $0 += 1 } }
        #expect(runs.withLock { $0 } == 1)
        let channels = [EmbeddedChannel(), EmbeddedChannel()]
        for channel in channels { #expect(registry.admit(channel)) }
        registry.whenEmpty { runs.withLock { $0 += 10 } }
        _ = try channels[0].finish()
        #expect(runs.withLock { $0 } == 1)
        let late = EmbeddedChannel()
        #expect(registry.admit(late))
        _ = try channels[1].finish()
        #expect(runs.withLock { $0 } == 1, "a connection admitted while waiting is still open")
        _ = try late.finish()
        #expect(runs.withLock { $0 } == 11)
        #expect(registry.admit(EmbeddedChannel()))
        #expect(runs.withLock { $0 } == 11, "an action runs once")
    }
}
