import SSEPOSIX
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Wake-up pipe")
struct WakeupPipeTests {
    private func readable(_ pipe: WakeupPipe) -> Bool {
        var descriptor = pollfd(fd: pipe.readDescriptor, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) == 1
    }

    @Test("signal() wakes a poller; drain() empties the pipe, even after many signals")
    func signalAndDrain() throws {
        let pipe = try WakeupPipe()
        #expect(!readable(pipe))
        pipe.signal()
        #expect(readable(pipe))
        pipe.drain()
        #expect(!readable(pipe))
        // More signals than the pipe holds: none blocks, one drain empties it.
        for _ in 0..<70_000 { pipe.signal() }
        #expect(readable(pipe))
        pipe.drain()
        #expect(!readable(pipe))
    }
}
