import Testing

@testable import SSEServer

@Suite("Broker server state machine")
struct BrokerServerStateMachineTests {
    /// Resources are a listener's name, waiters the names of `shutdown()` callers.
    typealias Machine = BrokerServerStateMachine<String, String>

    private func running() -> Machine {
        var machine = Machine()
        #expect(machine.startRequested() == nil)
        #expect(machine.startSucceeded("listener").isNone)
        return machine
    }

    @Test("start, run, shut down: the drain releases the listener and resumes its caller")
    func ordinaryLife() {
        var machine = Machine()
        #expect(machine.resources == nil)
        #expect(machine.startRequested() == nil)
        #expect(machine.resources == nil)
        #expect(machine.startSucceeded("listener").isNone)
        #expect(machine.resources == "listener")
        #expect(machine.shutdownRequested("a").drained == .some("listener"))
        #expect(!machine.isStopped)
        #expect(machine.drainFinished() == ["a"])
        #expect(machine.isStopped)
        #expect(machine.resources == "listener", "the port stays known after shutdown")
    }

    @Test("a second start is refused while starting and once running")
    func startTwice() {
        var machine = Machine()
        #expect(machine.startRequested() == nil)
        #expect(machine.startRequested() == .alreadyStarted)
        #expect(machine.startSucceeded("listener").isNone)
        #expect(machine.startRequested() == .alreadyStarted)
    }

    @Test("a start after a shutdown began, or after it finished, is refused")
    func startAfterShutdown() {
        var machine = running()
        _ = machine.shutdownRequested("a")
        #expect(machine.startRequested() == .shuttingDown)
        _ = machine.drainFinished()
        #expect(machine.startRequested() == .shuttingDown)
    }

    @Test("shutdown before start drains nothing and stops the node for good")
    func shutdownBeforeStart() {
        var machine = Machine()
        guard case .drain(nil) = machine.shutdownRequested("a") else {
            Issue.record("a shutdown before start did not drain")
            return
        }
        #expect(machine.startRequested() == .shuttingDown)
        #expect(machine.drainFinished() == ["a"])
        #expect(machine.startRequested() == .shuttingDown)
    }

    @Test("concurrent and repeated shutdowns: one drain, every caller resumed when it ends")
    func shutdownTwice() {
        var machine = running()
        #expect(machine.shutdownRequested("a").drained == .some("listener"))
        #expect(machine.shutdownRequested("b").isWait)
        #expect(machine.shutdownRequested("c").isWait)
        #expect(machine.drainFinished() == ["a", "b", "c"])
        guard case .resume("d") = machine.shutdownRequested("d") else {
            Issue.record("a shutdown after the drain was not answered at once")
            return
        }
    }

    @Test("a shutdown during start waits for the start to settle, then drains what it made")
    func shutdownDuringStart() {
        var machine = Machine()
        #expect(machine.startRequested() == nil)
        #expect(machine.shutdownRequested("a").isWait)
        #expect(machine.startRequested() == .shuttingDown)
        guard case .drain("listener") = machine.startSucceeded("listener") else {
            Issue.record("the settled start did not hand its listener to the drain")
            return
        }
        #expect(machine.shutdownRequested("b").isWait)
        #expect(machine.drainFinished() == ["a", "b"])
    }

    @Test("a failed start drains (releasing the loops) and the node cannot start again")
    func failedStart() {
        var machine = Machine()
        #expect(machine.startRequested() == nil)
        guard case .drain(nil) = machine.startFailed() else {
            Issue.record("a failed start did not drain")
            return
        }
        #expect(machine.shutdownRequested("a").isWait)
        #expect(machine.drainFinished() == ["a"])
        #expect(machine.startRequested() == .shuttingDown)
    }

    @Test("a failed start with a shutdown waiting resumes that waiter after the drain")
    func failedStartWithWaiter() {
        var machine = Machine()
        #expect(machine.startRequested() == nil)
        #expect(machine.shutdownRequested("a").isWait)
        guard case .drain(nil) = machine.startFailed() else {
            Issue.record("a failed start did not drain")
            return
        }
        #expect(machine.drainFinished() == ["a"])
    }
}

extension BrokerServerStateMachine.StartedAction {
    var isNone: Bool {
        if case .none = self { return true }
        return false
    }
}

extension BrokerServerStateMachine.ShutdownAction {
    var isWait: Bool {
        if case .wait = self { return true }
        return false
    }

    /// The resources handed to the drain; nil when this is not a drain.
    var drained: Resources?? {
        if case .drain(let resources) = self { return .some(resources) }
        return nil
    }
}
