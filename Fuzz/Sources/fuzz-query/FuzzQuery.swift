import FuzzSupport
@testable import SSEEndpoints

/// Query-string and channel-name decoding: `QueryParameters` as Werkzeug decodes a request
/// target, and `ChannelNameValidator`'s stream and publish rules. The input is a request target
/// (`/stream?…`, or anything). Beyond "no trap": every accepted channel is non-empty, within the
/// byte limit and free of control characters; a stream's channels are distinct; publish takes
/// the first value; and percent-encoding any bytes decodes back to them.
@main
enum FuzzQuery {
    static func main() { FuzzDriver.run { data, count in fuzzQuery(data, count) } }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzQuery(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let input = FuzzCheck.bytes(data, count)
    let uri = String(decoding: input, as: UTF8.self)
    let query = QueryParameters(uri: uri)
    let values = query.all("channel")
    FuzzCheck.require(query.first("channel") == values.first, "first() is not all().first")
    FuzzCheck.require(values.count <= input.count / 8 + 1, "more values than the input can hold")

    let validator = ChannelNameValidator(maximumBytes: 64)
    func checkName(_ name: String) {
        FuzzCheck.require(!name.isEmpty && name.utf8.count <= 64, "accepted channel of \(name.utf8.count) bytes")
        FuzzCheck.require(!name.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }, "accepted a control character")
    }
    if let channels = try? validator.streamChannels(query) {
        FuzzCheck.require(!channels.isEmpty, "a stream with no channel")
        channels.forEach(checkName)
        FuzzCheck.require(Set(channels.map { Array($0.utf8) }).count == channels.count, "a channel twice in one stream")
    }
    if let channel = try? validator.publishChannel(query) {
        checkName(channel)
        let first = values.first ?? ""
        FuzzCheck.require(Array(channel.utf8) == Array((first.isEmpty ? "sse" : first).utf8), "publish channel is not the first value")
    }

    // Percent-encoding every byte of the input, then decoding, gives the input back.
    // Both hex cases are valid escapes: odd bytes use upper case, even bytes lower.
    let lower = Array("0123456789abcdef".utf8)
    let upper = Array("0123456789ABCDEF".utf8)
    var escaped: [UInt8] = []
    for byte in input {
        let digits = byte & 1 == 1 ? upper : lower
        escaped.append(contentsOf: [UInt8(ascii: "%"), digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }
    let decoded = QueryParameters.decode(escaped)
    FuzzCheck.require(Array(decoded.utf8) == Array(String(decoding: input, as: UTF8.self).utf8), "percent-decoding does not invert percent-encoding")
    let reparsed = QueryParameters(uri: "/stream?channel=" + String(decoding: escaped, as: UTF8.self))
    FuzzCheck.require(reparsed.all("channel").map { Array($0.utf8) } == [Array(decoded.utf8)], "an escaped value is split or changed")
    return 0
}
