import CHiredis
import FuzzRedis
import FuzzSupport
import SSEWire
@testable import SSERedis

/// What a hostile Redis Cluster node can send: the input is read as RESP by hiredis's reader with
/// the node's reply bounds (`BoundedReplyFunctions`), as a connection reads it. Every reply goes
/// through `ClusterTopology.decode` (as a `CLUSTER SLOTS` answer) and, as a sharded link reads
/// it, through `SubscriberReply` into a sharded `SubscriptionStateMachine` (confirmations,
/// server drops, redirections, errors). Beyond "no trap": a decoded topology names only valid
/// addresses, at most 1,024 shards, each slot's master among them, and its slot ranges cover
/// exactly the served slots; a reason is short printable text; an error hands back only wanted
/// channels and a sharded link never refuses one.
@main
enum FuzzClusterReply {
    static func main() { FuzzDriver.run { data, count in fuzzClusterReply(data, count) } }
}

/// Most replies read from one input.
private let maximumReplies = 64

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzClusterReply(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let input = FuzzCheck.bytes(data, count)
    var machine = shardedMachine()
    forEachBoundedReply(in: input, limit: 1 << 20, maximumReplies: maximumReplies) { node in
        checkTopology(RedisReply(node))
        feed(SubscriberReply(node.pointee), to: &machine)
    }
    return 0
}

private let wanted: Set<ChannelName> = ["news", "x", "{a}b", "{a}c"]

private func shardedMachine() -> SubscriptionStateMachine<Int> {
    var configuration = SubscriptionStateMachine<Int>.Configuration()
    configuration.batchKey = { ClusterSlot.slot(of: $0.bytes) }
    var machine = SubscriptionStateMachine<Int>(configuration: configuration)
    _ = machine.setWanted(wanted)
    for case .send(.subscribe(let batch)) in machine.connected() {
        FuzzCheck.require(Set(batch.map { ClusterSlot.slot(of: $0.bytes) }).count == 1, "one SSUBSCRIBE over several slots: \(batch)")
    }
    _ = machine.addWaiter(1, channels: wanted)
    return machine
}

private func feed(_ reply: SubscriberReply, to machine: inout SubscriptionStateMachine<Int>) {
    switch reply {
    case .subscribed(let channel):
        _ = machine.subscribeConfirmed(channel)
    case .unsubscribed(let channel):
        if machine.shardedUnsubscribe(channel) == .answer { _ = machine.unsubscribeConfirmed(channel) }
    case .error(let text):
        if case .moved(let moved) = machine.shardedError(slot: SubscriberLink.redirectionSlot(text)) {
            FuzzCheck.require(moved.allSatisfy { wanted.contains($0) }, "an error handed back unwanted channels: \(moved)")
        }
        FuzzCheck.require(machine.refusedChannels.isEmpty, "a sharded link refused a channel")
    case .pong:
        _ = machine.pong()
    case .message, .unexpected:
        break
    }
}

private func checkTopology(_ reply: RedisReply) {
    switch ClusterTopology.decode(slots: reply, askedHost: "seed") {
    case .success(let topology):
        FuzzCheck.require(topology.shards.count <= 1024, "\(topology.shards.count) shards")
        var covered = 0
        for shard in topology.shards {
            for address in [shard.master] + shard.replicas {
                FuzzCheck.require(SentinelAddress.isValidHost(address.host) && (1...65535).contains(address.port), "address \(address)")
            }
            for range in shard.slots {
                FuzzCheck.require(range.lowerBound >= 0 && range.upperBound < ClusterSlot.count, "slots \(range)")
                covered += range.count
                FuzzCheck.require(topology.master(forSlot: range.lowerBound) == shard.master, "slot \(range.lowerBound) has another master")
            }
        }
        FuzzCheck.require(covered == ClusterSlot.count - topology.unservedSlotCount, "ranges cover \(covered) slots, served \(ClusterSlot.count - topology.unservedSlotCount)")
    case .failure(let error):
        FuzzCheck.require(error.reason.utf8.count <= 400, "a reason of \(error.reason.utf8.count) bytes")
    }
}
