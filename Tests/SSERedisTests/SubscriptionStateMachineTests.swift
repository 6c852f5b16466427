@testable import SSERedis
import SSEWire
import SeededRandom
import Testing

/// The subscription state machine without I/O: commands out, confirmations and errors in.
@Suite("Subscription state machine: what Redis confirms, refuses, and who waits")
struct SubscriptionStateMachineTests {
    typealias Machine = SubscriptionStateMachine<Int>
    let now = ContinuousClock.now

    /// The commands among `actions`.
    func sends(_ actions: [Machine.Action]) -> [Machine.Command] {
        actions.compactMap { if case .send(let command) = $0 { return command } else { return nil } }
    }

    func waitersRun(_ actions: [Machine.Action]) -> [Int: Set<ChannelName>] {
        var run: [Int: Set<ChannelName>] = [:]
        for case .runWaiter(let waiter, let refused) in actions { run[waiter] = refused }
        return run
    }

    func refusals(_ actions: [Machine.Action]) -> [[ChannelName]] {
        actions.compactMap { if case .reportRefused(let channels, _) = $0 { return channels } else { return nil } }
    }

    func closes(_ actions: [Machine.Action]) -> Bool {
        actions.contains { if case .closeConnection = $0 { return true } else { return false } }
    }

    /// A connected machine that sent one SUBSCRIBE for `channels` (in its order).
    func connected(_ channels: Set<ChannelName>, batchSize: Int = 500) -> (Machine, [ChannelName]) {
        var machine = Machine(configuration: .init(batchSize: batchSize))
        _ = machine.setWanted(channels)
        let commands = sends(machine.connected())
        var order: [ChannelName] = []
        for case .subscribe(let batch) in commands { order += batch }
        return (machine, order)
    }

    @Test("confirmations of every channel run the waiter with nothing refused")
    func confirmed() {
        var (machine, order) = connected(["a", "b"])
        #expect(order.sorted() == ["a", "b"])
        #expect(waitersRun(machine.addWaiter(1, channels: ["a", "b"])).isEmpty)
        #expect(waitersRun(machine.subscribeConfirmed(order[0])).isEmpty)
        #expect(waitersRun(machine.subscribeConfirmed(order[1])) == [1: []])
        #expect(machine.isConfirmed("a") && machine.isConfirmed("b"))
        #expect(machine.commandsInFlight == 0)
    }

    @Test("a refused batch is retried one channel each; only the refused channel is refused, and reported once")
    func isolation() {
        var (machine, order) = connected(["allowed:1", "denied", "allowed:2"])
        #expect(machine.addWaiter(7, channels: ["allowed:1", "denied", "allowed:2"]).isEmpty)
        let retry = sends(machine.errorReply("NOPERM no permissions", now: now))
        #expect(retry == order.map { .subscribe([$0]) })
        var actions: [Machine.Action] = []
        for channel in order {
            if channel == "denied" {
                actions += machine.errorReply("NOPERM no permissions", now: now)
            } else {
                actions += machine.subscribeConfirmed(channel)
            }
        }
        #expect(refusals(actions) == [["denied"]])
        #expect(waitersRun(actions) == [7: ["denied"]])
        #expect(machine.refusedChannels == ["denied"])
        #expect(machine.isConfirmed("allowed:1") && machine.isConfirmed("allowed:2"))
        #expect(!machine.isConfirmed("denied"))
        // A later waiter on the refused channel is answered at once.
        #expect(waitersRun(machine.addWaiter(8, channels: ["denied"])) == [8: ["denied"]])
    }

    @Test("a refused channel is retried after its backoff, doubling up to the cap, and not reported again")
    func retryBackoff() {
        var machine = Machine(configuration: .init(refusalRetryBase: .seconds(5), refusalRetryCap: .seconds(12)))
        _ = machine.setWanted(["x"])
        _ = machine.connected()
        _ = machine.errorReply("NOPERM", now: now)
        #expect(machine.nextRetry == now + .seconds(5))
        #expect(sends(machine.tick(now: now + .seconds(4))).isEmpty)
        #expect(sends(machine.tick(now: now + .seconds(5))) == [.subscribe(["x"])])
        let again = machine.errorReply("NOPERM", now: now + .seconds(5))
        #expect(refusals(again).isEmpty)
        #expect(machine.nextRetry == now + .seconds(15))
        _ = machine.tick(now: now + .seconds(15))
        _ = machine.errorReply("NOPERM", now: now + .seconds(15))
        #expect(machine.nextRetry == now + .seconds(27), "capped at 12 s")
        // The ACL changed: the retry is confirmed and the channel is no longer refused.
        _ = machine.tick(now: now + .seconds(27))
        _ = machine.subscribeConfirmed("x")
        #expect(machine.refusedChannels.isEmpty)
        #expect(machine.nextRetry == nil)
    }

    @Test("a reconnect subscribes refused channels again at once")
    func reconnectRetries() {
        var (machine, _) = connected(["x"])
        _ = machine.errorReply("NOPERM", now: now)
        machine.disconnected()
        #expect(machine.refusedChannels == ["x"], "still reported while down")
        #expect(sends(machine.connected()) == [.subscribe(["x"])])
    }

    @Test("an unsubscribe and resubscribe in flight keep a waiter waiting until the last SUBSCRIBE is confirmed")
    func resubscribeRace() {
        var (machine, _) = connected(["c"])
        #expect(sends(machine.setWanted([])) == [.unsubscribe(["c"])])
        #expect(sends(machine.setWanted(["c"])) == [.subscribe(["c"])])
        #expect(machine.addWaiter(1, channels: ["c"]).isEmpty)
        // The first SUBSCRIBE's confirmation arrives: Redis will drop "c" next, so not yet.
        #expect(waitersRun(machine.subscribeConfirmed("c")).isEmpty)
        #expect(waitersRun(machine.unsubscribeConfirmed("c")).isEmpty)
        #expect(waitersRun(machine.subscribeConfirmed("c")) == [1: []])
    }

    @Test("a waiter for channels no longer wanted runs at once; a disconnect keeps waiters waiting")
    func unwantedAndDisconnect() {
        var (machine, _) = connected(["a"])
        #expect(waitersRun(machine.addWaiter(1, channels: ["gone"])) == [1: []])
        #expect(machine.addWaiter(2, channels: ["a"]).isEmpty)
        machine.disconnected()
        #expect(machine.waiterCount == 1)
        let resubscribe = machine.connected()
        #expect(sends(resubscribe) == [.subscribe(["a"])])
        #expect(waitersRun(machine.subscribeConfirmed("a")) == [2: []])
    }

    @Test("channels are sent in batches; an error maps to its own batch through the FIFO")
    func batchesAndFIFO() {
        var machine = Machine(configuration: .init(batchSize: 2))
        _ = machine.setWanted(["a", "b", "c"])
        let commands = sends(machine.connected())
        #expect(commands.count == 2)
        guard case .subscribe(let first) = commands[0], case .subscribe(let second) = commands[1] else {
            Issue.record("expected two SUBSCRIBEs")
            return
        }
        for channel in first { _ = machine.subscribeConfirmed(channel) }
        // The error answers the second batch, not the first.
        let retry = sends(machine.errorReply("NOPERM", now: now))
        if second.count > 1 {
            #expect(retry == second.map { .subscribe([$0]) })
        } else {
            #expect(retry.isEmpty)
            #expect(machine.refusedChannels == Set(second))
        }
        for channel in first { #expect(machine.isConfirmed(channel)) }
    }

    @Test("replies that match no command close the connection")
    func mismatches() {
        var (machine, order) = connected(["a", "b"])
        #expect(closes(machine.subscribeConfirmed("zzz")))
        #expect(closes(machine.unsubscribeConfirmed(order[0])))
        #expect(closes(machine.pong()))
        var idle = Machine()
        _ = idle.connected()
        #expect(closes(idle.errorReply("ERR", now: now)))
        #expect(sends(idle.ping()) == [.ping])
        #expect(!closes(idle.pong()))
    }

    @Test("an error reply to PING or UNSUBSCRIBE refuses nothing")
    func otherErrors() {
        var (machine, order) = connected(["a"])
        _ = machine.subscribeConfirmed(order[0])
        _ = machine.ping()
        #expect(machine.errorReply("NOPERM ping", now: now).isEmpty)
        _ = machine.setWanted([])
        _ = machine.errorReply("ERR", now: now)
        #expect(machine.refusedChannels.isEmpty)
        #expect(machine.commandsInFlight == 0)
    }

    @Test("a refused channel that is no longer wanted leaves the refused set and sends no UNSUBSCRIBE")
    func refusedThenUnwanted() {
        var (machine, _) = connected(["x"])
        _ = machine.errorReply("NOPERM", now: now)
        #expect(sends(machine.setWanted([])).isEmpty)
        #expect(machine.refusedChannels.isEmpty)
        #expect(machine.nextRetry == nil)
    }

    @Test("incremental changes act like the whole set: only what changed is sent")
    func incremental() {
        var (machine, order) = connected(["a", "b"])
        for channel in order { _ = machine.subscribeConfirmed(channel) }
        #expect(sends(machine.changeWanted(added: ["c", "a"], removed: ["b", "zzz"])) == [.subscribe(["c"]), .unsubscribe(["b"])])
        #expect(machine.wanted == ["a", "c"])
        #expect(machine.addWaiter(1, channels: ["a", "c"]).isEmpty)
        #expect(waitersRun(machine.subscribeConfirmed("c")) == [1: []])
        #expect(machine.unsubscribeConfirmed("b").isEmpty)
        #expect(machine.commandsInFlight == 0)
    }

    @Test("seeded random traffic: every waiter runs exactly once, with the channels Redis refused")
    func seededRandom() {
        var generator = SeededGenerator.forTest(fixed: 15)
        let universe = (0..<12).map { ChannelName($0 < 8 ? "ok:\($0)" : "no:\($0)") }
        for _ in 0..<200 {
            var machine = Machine(configuration: .init(batchSize: 3))
            var expected: [Int: Set<ChannelName>] = [:]
            var ran: [Int: Set<ChannelName>] = [:]
            var inFlight: [Machine.Command] = []
            _ = machine.connected()
            func run(_ actions: [Machine.Action]) {
                for action in actions {
                    switch action {
                    case .send(let command): inFlight.append(command)
                    case .runWaiter(let waiter, let refused):
                        #expect(ran[waiter] == nil, "a waiter runs once (\(generator))")
                        ran[waiter] = refused
                    case .reportRefused: break
                    case .closeConnection(let reason): Issue.record("closed: \(reason)")
                    }
                }
            }
            let wanted = Set(universe.filter { _ in Bool.random(using: &generator) })
            run(machine.setWanted(wanted))
            for waiter in 0..<4 {
                let channels = Set(wanted.filter { _ in Bool.random(using: &generator) })
                expected[waiter] = channels.filter { $0.text.hasPrefix("no:") }
                run(machine.addWaiter(waiter, channels: channels))
            }
            // Redis: answers each command in order; a SUBSCRIBE naming a "no:" channel is refused whole.
            var steps = 0
            while !inFlight.isEmpty, steps < 10_000 {
                steps += 1
                let command = inFlight.removeFirst()
                switch command {
                case .subscribe(let channels):
                    if channels.contains(where: { $0.text.hasPrefix("no:") }) {
                        run(machine.errorReply("NOPERM", now: now))
                    } else {
                        for channel in channels { run(machine.subscribeConfirmed(channel)) }
                    }
                case .unsubscribe(let channels):
                    for channel in channels { run(machine.unsubscribeConfirmed(channel)) }
                case .ping:
                    run(machine.pong())
                }
            }
            #expect(ran == expected, "\(generator)")
            #expect(machine.refusedChannels == wanted.filter { $0.text.hasPrefix("no:") })
            for channel in wanted where channel.text.hasPrefix("ok:") { #expect(machine.isConfirmed(channel)) }
        }
    }
}
