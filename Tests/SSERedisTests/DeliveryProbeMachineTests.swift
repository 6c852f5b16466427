@testable import SSERedis
import SeededRandom
import Testing

/// The delivery probe without I/O: every transition, fed by hand with a made-up clock.
@Suite("Delivery probe machine: publish every interval, silent on 0 receivers or a missing token")
struct DeliveryProbeMachineTests {
    typealias Machine = DeliveryProbeMachine<SeededGenerator>
    let start = ContinuousClock.now
    let interval = Duration.seconds(5)
    let deadline = Duration.seconds(3)

    let maximumWait = Duration.seconds(20)

    func makeMachine() -> Machine {
        Machine(interval: interval, deadline: deadline, maximumWait: maximumWait, generator: SeededGenerator.forTest())
    }

    func at(_ offset: Duration) -> ContinuousClock.Instant { start + offset }

    /// The token of the one `publish` among `actions`.
    func token(_ actions: [Machine.Action]) throws -> [UInt8] {
        let tokens = actions.compactMap { if case .publish(let token) = $0 { return token } else { return nil } }
        try #require(tokens.count == 1, "expected one publish in \(actions)")
        return tokens[0]
    }

    func isSilent(_ actions: [Machine.Action]) -> Bool {
        actions.contains { if case .declareSilent = $0 { return true } else { return false } }
    }

    /// A machine connected at `start` whose first probe was just sent.
    func probing() throws -> (Machine, [UInt8]) {
        var machine = makeMachine()
        machine.connected(now: start)
        let sent = try token(machine.tick(now: start))
        return (machine, sent)
    }

    /// A machine connected at `start` whose first probe was published and answered with one receiver.
    func awaiting() throws -> (Machine, [UInt8]) {
        var (machine, sent) = try probing()
        #expect(machine.published(token: sent, receivers: 1, now: at(.milliseconds(2))) == [])
        return (machine, sent)
    }

    @Test("idle until connected: no probe, no deadline")
    func idleUntilConnected() {
        var machine = makeMachine()
        #expect(machine.nextDeadline == nil)
        #expect(machine.tick(now: at(.seconds(60))) == [])
        #expect(machine.received(payload: Array("anything".utf8)) == [])
    }

    @Test("connected: probes at once, then waits for the answer")
    func probesOnConnect() throws {
        var machine = makeMachine()
        machine.connected(now: start)
        #expect(machine.nextDeadline == start)
        let sent = try token(machine.tick(now: start))
        #expect(machine.tick(now: at(.seconds(1))) == [], "one probe outstanding at a time")
        #expect(machine.nextDeadline == start + interval + deadline)
        #expect(machine.published(token: sent, receivers: 2, now: at(.milliseconds(1))) == [])
        #expect(machine.nextDeadline == at(.milliseconds(1)) + deadline)
    }

    @Test("the token back: healthy, next probe one interval after the last was sent, whatever the traffic")
    func healthyThenNextInterval() throws {
        var (machine, sent) = try awaiting()
        #expect(machine.received(payload: sent) == [.healthy])
        #expect(machine.nextDeadline == start + interval)
        #expect(machine.tick(now: at(.seconds(4))) == [])
        let next = try token(machine.tick(now: at(.seconds(5))))
        #expect(next != sent)
    }

    @Test("the token back before the PUBLISH's answer: healthy; the late answer is ignored")
    func tokenBeforeAnswer() throws {
        var (machine, sent) = try probing()
        #expect(machine.received(payload: sent) == [.healthy])
        #expect(machine.published(token: sent, receivers: 0, now: at(.milliseconds(3))) == [], "stale answer: no verdict")
        #expect(machine.nextDeadline == start + interval)
    }

    @Test("0 receivers: silent at once (the subscription is on another server)")
    func zeroReceivers() throws {
        var (machine, sent) = try probing()
        let actions = machine.published(token: sent, receivers: 0, now: at(.milliseconds(1)))
        #expect(isSilent(actions))
        #expect(actions.description.contains("no subscriber"))
        #expect(machine.nextDeadline == nil)
        #expect(machine.tick(now: at(.seconds(30))) == [], "nothing more until the connection is rebuilt")
        #expect(machine.received(payload: sent) == [], "a late token does not undo the verdict")
    }

    @Test("token not back within the deadline of the answer: silent, once")
    func missingToken() throws {
        var (machine, _) = try awaiting()
        #expect(machine.tick(now: at(.milliseconds(2)) + deadline - .milliseconds(1)) == [])
        let actions = machine.tick(now: at(.milliseconds(2)) + deadline)
        #expect(isSilent(actions))
        #expect(actions.description.contains("3000 ms"))
        #expect(machine.tick(now: at(.seconds(20))) == [])
    }

    @Test("traffic while the token is awaited: the deadline counts from the last message, up to maximumWait after the answer")
    func trafficExtendsDeadline() throws {
        var (machine, _) = try awaiting()
        let answered = at(.milliseconds(2))
        machine.traffic(now: at(.seconds(1)))
        #expect(machine.nextDeadline == at(.seconds(1)) + deadline)
        #expect(machine.tick(now: answered + deadline) == [], "messages still flowing: not silent yet")
        machine.traffic(now: at(.seconds(2)))
        machine.traffic(now: at(.seconds(1)))
        #expect(machine.nextDeadline == at(.seconds(2)) + deadline, "an older instant never shortens it")
        for second in 3...40 { machine.traffic(now: at(.seconds(Int64(second)))) }
        #expect(machine.nextDeadline == answered + maximumWait, "capped")
        #expect(machine.tick(now: answered + maximumWait - .milliseconds(1)) == [])
        #expect(isSilent(machine.tick(now: answered + maximumWait)), "everything but the probe delivered: still found")
    }

    @Test("traffic before the PUBLISH is answered, or while idle, changes nothing")
    func trafficElsewhere() throws {
        var machine = makeMachine()
        machine.traffic(now: start)
        #expect(machine.nextDeadline == nil)
        machine.connected(now: start)
        let sent = try token(machine.tick(now: start))
        machine.traffic(now: at(.seconds(1)))
        #expect(machine.nextDeadline == start + interval + deadline)
        #expect(machine.published(token: sent, receivers: 1, now: at(.seconds(2))) == [])
        #expect(machine.nextDeadline == at(.seconds(2)) + deadline)
    }

    @Test("PUBLISH failed: no verdict; the next probe one interval later")
    func publishFailed() throws {
        var (machine, sent) = try probing()
        machine.publishFailed(token: sent)
        #expect(machine.nextDeadline == start + interval)
        #expect(machine.tick(now: at(.seconds(4))) == [])
        let next = try token(machine.tick(now: at(.seconds(5))))
        #expect(next != sent)
        machine.publishFailed(token: sent)
        #expect(machine.nextDeadline == at(.seconds(5)) + interval + deadline, "a stale failure changes nothing")
    }

    @Test("PUBLISH never answered: no verdict; probed again after interval + deadline")
    func publishUnanswered() throws {
        var (machine, first) = try probing()
        #expect(machine.tick(now: start + interval + deadline - .milliseconds(1)) == [])
        let actions = machine.tick(now: start + interval + deadline)
        #expect(!isSilent(actions))
        let second = try token(actions)
        #expect(second != first)
        #expect(machine.published(token: first, receivers: 1, now: start + interval + deadline) == [], "the abandoned probe's answer is stale")
        #expect(machine.received(payload: first) == [])
        #expect(machine.nextDeadline == start + interval + deadline + interval + deadline)
    }

    @Test("tokens are matched exactly: others' messages on the channel, prefixes, stale tokens are ignored")
    func exactMatch() throws {
        var (machine, sent) = try awaiting()
        #expect(machine.received(payload: Array(sent.dropLast())) == [])
        #expect(machine.received(payload: sent + [0x30]) == [])
        #expect(machine.received(payload: []) == [])
        #expect(machine.received(payload: Array("forged".utf8)) == [])
        #expect(machine.received(payload: sent) == [.healthy])
        #expect(machine.received(payload: sent) == [], "a duplicate is stale")
        let next = try token(machine.tick(now: start + interval))
        #expect(machine.published(token: sent, receivers: 1, now: start + interval) == [], "the old token's answer is stale")
        #expect(machine.received(payload: sent) == [], "the old token is stale")
        #expect(machine.received(payload: next) == [.healthy])
    }

    @Test("disconnected: the outstanding probe is forgotten; connected again probes at once")
    func reconnect() throws {
        var (machine, sent) = try awaiting()
        machine.disconnected()
        #expect(machine.nextDeadline == nil)
        #expect(machine.tick(now: at(.seconds(10))) == [], "no verdict while down")
        #expect(machine.received(payload: sent) == [])
        machine.connected(now: at(.seconds(11)))
        let next = try token(machine.tick(now: at(.seconds(11))))
        #expect(next != sent)
    }

    @Test("after a silent verdict, a rebuilt connection probes again and can be healthy")
    func silentThenRebuilt() throws {
        var (machine, sent) = try probing()
        #expect(isSilent(machine.published(token: sent, receivers: 0, now: start)))
        machine.disconnected()
        machine.connected(now: at(.seconds(1)))
        let next = try token(machine.tick(now: at(.seconds(1))))
        #expect(machine.published(token: next, receivers: 1, now: at(.seconds(1))) == [])
        #expect(machine.received(payload: next) == [.healthy])
    }

    @Test("tokens: 32 lowercase hex digits, all different")
    func tokens() throws {
        var machine = makeMachine()
        var seen: Set<[UInt8]> = []
        for round in 0..<200 {
            machine.connected(now: at(.seconds(Int64(round))))
            let sent = try token(machine.tick(now: at(.seconds(Int64(round)))))
            #expect(sent.count == 32)
            #expect(sent.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
            seen.insert(sent)
        }
        #expect(seen.count == 200)
    }

    @Test("a long pause between ticks: the overdue probe goes out once, not once per missed interval")
    func longPause() throws {
        var (machine, sent) = try awaiting()
        #expect(machine.received(payload: sent) == [.healthy])
        let actions = machine.tick(now: at(.seconds(3600)))
        _ = try token(actions)
        #expect(machine.tick(now: at(.seconds(3600))) == [])
    }
}
