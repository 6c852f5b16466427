import FuzzSupport
@testable import SSEEndpoints
import SSEWire

/// `Last-Event-ID` (and `?lastEventId=`) parsing: `HistoryPosition`, as the stream hub reads the
/// header, from the header's value and from a decoded query. Beyond "no trap": only
/// `DIGITS-DIGITS` within 64 bits parses, a position prints as text that parses back to it, and
/// an event carrying the id reports the same position. With positions per channel, the same
/// text as a multi-channel stream's id (`ChannelPositions`) for a few channel sets: parsed only
/// within its bound, to a vector that prints as text that parses back to it.
@main
enum FuzzLastEventID {
    static func main() { FuzzDriver.run { data, count in fuzzLastEventID(data, count) } }
}

/// Channel sets a multi-channel id is read for (an id for a set names its fingerprint, so seeds
/// of `Fuzz/Seeds` carry ids for these).
let channelSets: [[ChannelName]] = [["a", "b"], ["news", "alerts", "b{x}"], (0..<64).map { ChannelName("c\($0)") }]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLastEventID(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let input = FuzzCheck.bytes(data, count)
    let text = String(decoding: input, as: UTF8.self)
    for candidate in [text, QueryParameters(uri: "/stream?lastEventId=" + text).first("lastEventId") ?? ""] {
        for channels in channelSets {
            guard let vector = ChannelPositions(candidate, channels: channels) else { continue }
            FuzzCheck.require(candidate.utf8.count <= ChannelPositions.maximumLength(channelCount: vector.channels.count), "a vector past its bound")
            FuzzCheck.require(vector.positions.count == Set(channels).count, "a vector of another size")
            FuzzCheck.require(ChannelPositions(vector.description, channels: channels.reversed()) == vector, "a vector that does not print back")
        }
        guard let position = HistoryPosition(candidate) else {
            continue
        }
        let utf8 = Array(candidate.utf8)
        FuzzCheck.require(utf8.filter { $0 == UInt8(ascii: "-") }.count == 1, "a position without exactly one dash: \(FuzzCheck.describe(utf8))")
        FuzzCheck.require(utf8.allSatisfy { $0 == UInt8(ascii: "-") || ($0 >= 0x30 && $0 <= 0x39) }, "a position with other characters: \(FuzzCheck.describe(utf8))")
        FuzzCheck.require(HistoryPosition(position.description) == position, "description does not parse back")
        FuzzCheck.require(ServerSentEvent(data: "", id: candidate).historyPosition == position, "an event's position differs")
        let next = HistoryPosition(epoch: position.epoch, sequence: position.sequence &+ 1)
        FuzzCheck.require(position.sequence == .max || position < next, "ordering is not by sequence")
    }
    return 0
}
