import NIOCore
import Testing

@testable import SSEServer

@Suite("Request timeout state machine")
struct RequestTimeoutStateMachineTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    func machine() -> RequestTimeoutStateMachine {
        RequestTimeoutStateMachine(requestTimeout: .seconds(10), idleTimeout: .seconds(60))
    }

    @Test("a new connection has request-timeout from accept; its first bytes do not move it")
    func firstRequestFromAccept() {
        var machine = machine()
        #expect(machine.connected(now: start) == .schedule(start + .seconds(10)))
        #expect(machine.bytesReceived(now: start + .seconds(3)) == .none)
        #expect(machine.bytesReceived(now: start + .seconds(9)) == .none)
        #expect(machine.timerFired(now: start + .seconds(10)) == .requestTimeout)
    }

    @Test("nothing received: a quiet close, not a 408")
    func silent() {
        var machine = machine()
        _ = machine.connected(now: start)
        #expect(machine.timerFired(now: start + .seconds(10)) == .close)
    }

    @Test("an early firing re-arms for the same deadline")
    func earlyFiring() {
        var machine = machine()
        _ = machine.connected(now: start)
        #expect(machine.timerFired(now: start + .seconds(5)) == .schedule(start + .seconds(10)))
    }

    @Test("answering has only the stall guard; after the response the idle timeout runs; the next byte starts a request timeout that later bytes do not extend")
    func keepAliveCycle() {
        var machine = machine()
        _ = machine.connected(now: start)
        _ = machine.bytesReceived(now: start)
        #expect(machine.requestEnded(now: start + .seconds(1)) == .schedule(start + .seconds(61)))
        #expect(machine.timerFired(now: start + .seconds(20)) == .schedule(start + .seconds(61)))
        let answered = start + .seconds(20)
        #expect(machine.responseEnded(now: answered) == .schedule(answered + .seconds(60)))
        let next = answered + .seconds(30)
        #expect(machine.bytesReceived(now: next) == .schedule(next + .seconds(10)))
        #expect(machine.bytesReceived(now: next + .seconds(5)) == .none)
        #expect(machine.timerFired(now: next + .seconds(10)) == .requestTimeout)
    }

    @Test("idle past idle-timeout: closed quietly")
    func idle() {
        var machine = machine()
        _ = machine.connected(now: start)
        _ = machine.requestEnded(now: start)
        _ = machine.responseEnded(now: start)
        #expect(machine.timerFired(now: start + .seconds(60)) == .close)
    }

    @Test("an answer that makes no progress for idle-timeout (a peer that does not read) closes the connection")
    func stalledAnswer() {
        var machine = machine()
        _ = machine.connected(now: start)
        _ = machine.requestEnded(now: start)
        #expect(machine.timerFired(now: start + .seconds(60)) == .close)
    }

    @Test("pipelined requests: idle only after the last answer; bytes that came meanwhile start a request timeout")
    func pipelined() {
        var machine = machine()
        _ = machine.connected(now: start)
        _ = machine.requestEnded(now: start)
        #expect(machine.requestEnded(now: start) == .schedule(start + .seconds(60)))
        #expect(machine.responseEnded(now: start) == .schedule(start + .seconds(60)))
        _ = machine.bytesReceived(now: start)
        #expect(machine.responseEnded(now: start + .seconds(1)) == .schedule(start + .seconds(11)))
        #expect(machine.timerFired(now: start + .seconds(11)) == .requestTimeout)
    }

    @Test("a stream leaves the machine: nothing fires, nothing re-arms")
    func stream() {
        var machine = machine()
        _ = machine.connected(now: start)
        _ = machine.requestEnded(now: start)
        #expect(machine.finish() == .cancelTimer)
        #expect(machine.bytesReceived(now: start) == .none)
        #expect(machine.responseEnded(now: start) == .none)
        #expect(machine.timerFired(now: start + .seconds(1000)) == .none)
        #expect(machine.finish() == .none)
    }
}
