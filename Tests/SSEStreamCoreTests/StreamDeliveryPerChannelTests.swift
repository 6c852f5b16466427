import NIOCore
import SSEWire
import Testing

@testable import SSEStreamCore

/// A multi-channel stream with positions per channel: duplicates are judged per channel and
/// each event with a position carries the stream's whole vector as its id.
@Suite("Stream delivery with positions per channel")
struct StreamDeliveryPerChannelTests {
    typealias Machine = StreamDeliveryStateMachine
    static let allocator = ByteBufferAllocator()
    static let channels: [ChannelName] = ["a", "b"]

    static func event(_ text: String, _ channel: ChannelName, at sequence: UInt64?) -> EncodedEvent {
        EncodedEvent(
            ServerSentEvent(data: text, id: sequence.map { "1-\($0)" }),
            position: sequence.map { HistoryPosition(epoch: 1, sequence: $0) },
            channel: channel,
            allocator: allocator
        )
    }

    static func machine() -> Machine {
        Machine(isChunked: false, clientBufferBytes: 10_000, channelPositions: ChannelPositions(channels: channels))
    }

    /// The ids an action writes, in order.
    static func ids(_ action: Machine.Action) -> [String] { fields("id:", of: action) }

    /// The values of the `field` lines (`id:`, `data:`) an action writes, in order.
    static func fields(_ field: String, of action: Machine.Action) -> [String] {
        let text: String
        switch action {
        case .write(let bytes, _), .writeAndFlush(let bytes): text = String(buffer: bytes)
        case .writeAll(let writes, _), .writeAllAndFlush(let writes): text = writes.map { String(buffer: $0) }.joined()
        default: return []
        }
        return text.split(separator: "\n").filter { $0.hasPrefix(field) }.map { String($0.dropFirst(field.count)) }
    }

    @Test("the same sequence on two channels is two events; a repeat on one channel is dropped")
    func perChannelDuplicates() {
        var machine = Self.machine()
        let fingerprint = ChannelPositions(channels: Self.channels).description.split(separator: ".")[0]
        #expect(Self.ids(machine.liveEvent(Self.event("a5", "a", at: 5), backlog: 0)) == ["\(fingerprint).1-5.-"])
        #expect(Self.ids(machine.liveEvent(Self.event("b5", "b", at: 5), backlog: 0)) == ["\(fingerprint).1-5.1-5"])
        #expect(Self.ids(machine.liveEvent(Self.event("a5 again", "a", at: 5), backlog: 0)).isEmpty)
        #expect(Self.ids(machine.liveEvent(Self.event("b3", "b", at: 3), backlog: 0)).isEmpty, "b is past 3")
        #expect(Self.ids(machine.liveEvent(Self.event("a6", "a", at: 6), backlog: 0)) == ["\(fingerprint).1-6.1-5"])
        #expect(machine.channelPositions?.position(of: "a") == HistoryPosition(epoch: 1, sequence: 6))
        #expect(machine.lastDelivered == nil, "no position for all channels")
    }

    @Test("an event without a position keeps its own id (or none) and is never dropped")
    func noPosition() {
        var machine = Self.machine()
        let raw = EncodedEvent(ServerSentEvent(data: "r", id: "user-id"), position: nil, channel: "a", allocator: Self.allocator)
        #expect(Self.ids(machine.liveEvent(raw, backlog: 0)) == ["user-id"])
        #expect(Self.ids(machine.liveEvent(raw, backlog: 0)) == ["user-id"])
    }

    @Test("a replay held live events: replayed and held meet per channel with no duplicate")
    func replayMeetsLive() {
        var machine = Self.machine()
        machine.beginReplay(after: nil)
        machine.raisePosition(to: HistoryPosition(epoch: 1, sequence: 2), on: "a")
        _ = machine.liveEvent(Self.event("a4", "a", at: 4), backlog: 0)
        _ = machine.liveEvent(Self.event("b1", "b", at: 1), backlog: 0)
        let page = machine.replayPage([Self.event("a2", "a", at: 2), Self.event("a3", "a", at: 3), Self.event("a4", "a", at: 4), Self.event("b1", "b", at: 1)], gap: nil, backlog: 0)
        #expect(Self.ids(page).map { $0.split(separator: ".").dropFirst().joined(separator: ".") } == ["1-3.-", "1-4.-", "1-4.1-1"])
        #expect(Self.ids(machine.completeReplay(backlog: 0)).isEmpty, "the held a4 and b1 were replayed already")
        #expect(machine.phase == .live)
    }

    @Test("resetting one channel's position leaves the other's")
    func reset() {
        var machine = Self.machine()
        _ = machine.liveEvent(Self.event("a9", "a", at: 9), backlog: 0)
        _ = machine.liveEvent(Self.event("b9", "b", at: 9), backlog: 0)
        machine.resetPosition(to: HistoryPosition(epoch: 1, sequence: 1), on: "a")
        #expect(machine.channelPositions?.position(of: "a") == HistoryPosition(epoch: 1, sequence: 1))
        #expect(machine.channelPositions?.position(of: "b") == HistoryPosition(epoch: 1, sequence: 9))
        #expect(!Self.ids(machine.liveEvent(Self.event("a2", "a", at: 2), backlog: 0)).isEmpty)
    }
}
