import Dispatch
import SSEPOSIX
import Synchronization
import Testing

@Suite("Owned thread")
struct OwnedThreadTests {
    /// A gate the test opens to let a thread's body return.
    final class Gate: Sendable {
        private let semaphore = DispatchSemaphore(value: 0)
        func open() { semaphore.signal() }
        func pass() { semaphore.wait() }
    }

    @Test("join() waits for the body to return, and returns at once after")
    func joinWaitsForTheBody() async throws {
        let gate = Gate()
        let steps = Mutex<[String]>([])
        let thread = try #require(OwnedThread.spawn {
            gate.pass()
            steps.withLock { $0.append("body") }
        })
        #expect(!thread.hasEnded)
        let joiner = Task.detached {
            Self.blockingJoin(thread)
            steps.withLock { $0.append("joined") }
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(steps.withLock { $0 }.isEmpty, "join() returned before the body ended")
        gate.open()
        await joiner.value
        #expect(steps.withLock { $0 } == ["body", "joined"])
        #expect(thread.hasEnded)
        Self.blockingJoin(thread)
        await thread.join()
    }

    /// A flag a thread sets and tasks read.
    final class Flag: Sendable {
        private let value = Mutex(false)
        func set() { value.withLock { $0 = true } }
        var isSet: Bool { value.withLock { $0 } }
    }

    /// The blocking `join()` (from a task, Swift picks the `async` one); fine on a test's thread.
    private static func blockingJoin(_ thread: OwnedThread) {
        thread.join()
    }

    @Test("await join() suspends until the body returns; several waiters all resume")
    func asyncJoin() async throws {
        let gate = Gate()
        let ended = Flag()
        let thread = try #require(OwnedThread.spawn {
            gate.pass()
            ended.set()
        })
        let waiters = (0..<3).map { _ in
            Task {
                await thread.join()
                return ended.isSet
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        gate.open()
        for waiter in waiters { #expect(await waiter.value) }
    }
}
