import FuzzSupport
@testable import SSEEndpoints
import SSEWire

/// `Last-Event-ID` (and `?lastEventId=`) parsing: `HistoryPosition`, as the stream hub reads the
/// header, from the header's value and from a decoded query. Beyond "no trap": only
/// `DIGITS-DIGITS` within 64 bits parses, a position prints as text that parses back to it, and
/// an event carrying the id reports the same position.
@main
enum FuzzLastEventID {
    static func main() { FuzzDriver.run { data, count in fuzzLastEventID(data, count) } }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLastEventID(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let input = FuzzCheck.bytes(data, count)
    let text = String(decoding: input, as: UTF8.self)
    for candidate in [text, QueryParameters(uri: "/stream?lastEventId=" + text).first("lastEventId") ?? ""] {
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
