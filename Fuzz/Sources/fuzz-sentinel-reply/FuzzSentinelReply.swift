import CHiredis
import FuzzRedis
import FuzzSupport
@testable import SSERedis

/// What a hostile Sentinel (or a master it names) can send: the input is read as RESP by
/// hiredis's reader with the node's reply bounds (`BoundedReplyFunctions`), as a connection
/// reads it, and every reply goes through `SentinelReplyDecoder` (`masterAddress`, `role`) and,
/// when it is a pub/sub message, through the `+switch-master` / `+promoted-slave` decoders; the
/// raw input goes through those two as a payload too. Beyond "no trap": an address decoded is a
/// plain host token found in the reply and a port 1...65535; a reason is short printable ASCII;
/// a role is a short lowercase word; an announcement is only ever about the master named.
@main
enum FuzzSentinelReply {
    static func main() { FuzzDriver.run { data, count in fuzzSentinelReply(data, count) } }
}

/// Most replies read from one input.
private let maximumReplies = 32

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSentinelReply(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let input = FuzzCheck.bytes(data, count)
    checkAnnouncements(input)
    forEachBoundedReply(in: input, limit: SentinelResolver.maximumSentinelReplyBytes, maximumReplies: maximumReplies) { node in
        checkReply(RedisReply(node))
        if case .message(let message) = SubscriberReply(node.pointee) {
            checkAnnouncements(message.payload)
        }
    }
    return 0
}

private func checkReply(_ reply: RedisReply) {
    switch SentinelReplyDecoder.masterAddress(reply) {
    case .master(let address):
        checkAddress(address)
        guard case .array(let items) = reply, items.count == 2, case .bulkString(let host) = items[0] else {
            FuzzCheck.require(false, "an address from a reply that is not [host, port]")
            return
        }
        FuzzCheck.require(Array(address.host.utf8) == host, "the host is not the reply's")
    case .invalid(let reason):
        FuzzCheck.require(reason.utf8.count <= SentinelReplyDecoder.maximumQuotedBytes + 64, "a reason of \(reason.utf8.count) bytes")
        FuzzCheck.require(reason.utf8.allSatisfy { (0x20..<0x7F).contains($0) }, "an unprintable reason: \(reason.debugDescription)")
    case .unknown:
        FuzzCheck.require(reply == .null, "unknown from a reply that is not null")
    }
    if let role = SentinelReplyDecoder.role(reply) {
        FuzzCheck.require((1...16).contains(role.utf8.count) && role.utf8.allSatisfy { (0x61...0x7A).contains($0) }, "role \(role.debugDescription)")
    }
}

private func checkAddress(_ address: SentinelAddress) {
    FuzzCheck.require(SentinelAddress.isValidHost(address.host), "host \(address.host.debugDescription)")
    FuzzCheck.require((1...65535).contains(address.port), "port \(address.port)")
    FuzzCheck.require(address.description.utf8.count <= SentinelAddress.maximumHostBytes + 8, "an address of \(address.description.utf8.count) bytes")
}

/// Both announcement decoders on `payload`, for a master name taken from it where the
/// announcement would carry one (and for a fixed name).
private func checkAnnouncements(_ payload: [UInt8]) {
    let words = payload.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
    let names = ["mymaster", words.first.map { String(decoding: $0, as: UTF8.self) }, words.count > 5 ? String(decoding: words[5], as: UTF8.self) : nil]
    for case let name? in names {
        if let address = SentinelReplyDecoder.switchMaster(payload, masterName: name) {
            checkAddress(address)
            FuzzCheck.require(words.count == 5 && words[0].elementsEqual(name.utf8), "+switch-master about another master")
            FuzzCheck.require(words[3].elementsEqual(address.host.utf8), "+switch-master host is not the new one")
        }
        if let address = SentinelReplyDecoder.promotedReplica(payload, masterName: name) {
            checkAddress(address)
            FuzzCheck.require(words.count == 8 && words[5].elementsEqual(name.utf8), "+promoted-slave about another master")
            FuzzCheck.require(words[2].elementsEqual(address.host.utf8), "+promoted-slave host is not the replica")
        }
    }
}
