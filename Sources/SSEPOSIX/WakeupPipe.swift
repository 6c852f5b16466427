#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A self-pipe that lets any thread wake a thread blocked in `poll()`.
///
/// A thread that waits in `poll()` for its socket also polls ``readDescriptor``, so another
/// thread can make it look at new work or a stop flag at once, without a timeout to poll on.
/// `signal()` is safe from any thread; `drain()` only from the polling thread.
package final class WakeupPipe: Sendable {
    /// Read end, polled for `POLLIN`.
    package let readDescriptor: Int32
    private let writeDescriptor: Int32

    /// Creates the pipe, both ends non-blocking and close-on-exec.
    package init() throws(SystemCallError) {
        var descriptors: [Int32] = [-1, -1]
        guard pipe(&descriptors) == 0 else {
            throw SystemCallError("pipe", code: errno)
        }
        for descriptor in descriptors {
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        }
        readDescriptor = descriptors[0]
        writeDescriptor = descriptors[1]
    }

    deinit {
        close(readDescriptor)
        close(writeDescriptor)
    }

    /// Wakes the poller. A full pipe already means a wake-up is pending, so EAGAIN is fine.
    package func signal() {
        var byte: UInt8 = 1
        _ = write(writeDescriptor, &byte, 1)
    }

    /// Empties the pipe after a wake-up.
    package func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(readDescriptor, &buffer, buffer.count) > 0 {}
    }
}
