@testable import SSERedis
import SSEWire
import Testing

/// The subscription machine as a sharded link uses it: one slot per command, channels the
/// server drops by itself, redirections that are never refusals.
@Suite("Subscription state machine on a sharded link")
struct ShardedSubscriptionMachineTests {
    typealias Machine = SubscriptionStateMachine<Int>

    static func sharded() -> Machine {
        var configuration = Machine.Configuration()
        configuration.batchKey = { ClusterSlot.slot(of: $0.bytes) }
        return Machine(configuration: configuration)
    }

    func sends(_ actions: [Machine.Action]) -> [Machine.Command] {
        actions.compactMap { if case .send(let command) = $0 { return command } else { return nil } }
    }

    @Test("one command names channels of one slot only, every wanted channel once")
    func oneSlotPerCommand() {
        var machine = Self.sharded()
        let channels: [ChannelName] = ["{a}1", "{a}2", "{b}1", "c", "{a}3", "d"].map { ChannelName($0) }
        _ = machine.setWanted(Set(channels))
        var named: [ChannelName] = []
        for case .subscribe(let batch) in sends(machine.connected()) {
            #expect(Set(batch.map { ClusterSlot.slot(of: $0.bytes) }).count == 1, "\(batch)")
            named += batch
        }
        #expect(named.count == channels.count && Set(named) == Set(channels))
        // Without a key, one command takes them all.
        var plain = Machine()
        _ = plain.setWanted(Set(channels))
        #expect(sends(plain.connected()).count == 1)
    }

    @Test("a sunsubscribe the server pushes drops the channel; one that answers an unsubscribe is a confirmation; one for a channel not here is stray")
    func serverDropped() {
        var machine = Self.sharded()
        _ = machine.setWanted(["x", "y"])
        var order: [ChannelName] = []
        for case .subscribe(let batch) in sends(machine.connected()) { order += batch }
        for channel in order { _ = machine.subscribeConfirmed(channel) }
        #expect(machine.isConfirmed("x"))
        let dropped = machine.shardedUnsubscribe("x")
        #expect(dropped == .dropped)
        #expect(!machine.isConfirmed("x"))
        // Not subscribed any more: a second push is stray.
        let again = machine.shardedUnsubscribe("x")
        #expect(again == .stray)
        // An UNSUBSCRIBE in flight: its confirmation is an answer.
        _ = machine.changeWanted(added: [], removed: ["y"])
        let answering = machine.shardedUnsubscribe("y")
        #expect(answering == .answer)
        let confirmation = machine.unsubscribeConfirmed("y")
        #expect(sends(confirmation).isEmpty)
        #expect(machine.commandsInFlight == 0)
    }

    @Test("an error answering a SSUBSCRIBE hands its channels back unrefused, and the waiter waits on; a redirection for another slot is stray")
    func redirected() {
        var machine = Self.sharded()
        _ = machine.setWanted(["m"])
        _ = machine.connected()
        let added = machine.addWaiter(7, channels: ["m"])
        #expect(added.isEmpty)
        let otherSlot = (ClusterSlot.slot(of: "m") + 1) % ClusterSlot.count
        let stray = machine.shardedError(slot: otherSlot)
        #expect(stray == .stray)
        #expect(machine.commandsInFlight == 1)
        let moved = machine.shardedError(slot: ClusterSlot.slot(of: "m"))
        #expect(moved == .moved(["m"]))
        #expect(machine.refusedChannels.isEmpty)
        #expect(machine.commandsInFlight == 0)
        // Still wanted here until the caller moves it; once removed the waiter is answered.
        let actions = machine.changeWanted(added: [], removed: ["m"])
        #expect(actions.contains { if case .runWaiter(7, let refused) = $0 { return refused.isEmpty } else { return false } })
        // Any other error (CLUSTERDOWN, an ACL without ssubscribe) moves the channel too.
        _ = machine.changeWanted(added: ["n"], removed: [])
        let down = machine.shardedError(slot: nil)
        #expect(down == .moved(["n"]))
        #expect(machine.refusedChannels.isEmpty)
    }
}
