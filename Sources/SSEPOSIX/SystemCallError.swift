#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A system call that failed: which one, and its `errno`.
package struct SystemCallError: Error, CustomStringConvertible, Sendable, Hashable {
    /// The call, e.g. `"pipe"`.
    package let call: String
    /// `errno` right after the call.
    package let code: Int32

    package init(_ call: String, code: Int32) {
        self.call = call
        self.code = code
    }

    package var description: String {
        "\(call)() failed: \(String(cString: strerror(code))) (errno \(code))"
    }
}
