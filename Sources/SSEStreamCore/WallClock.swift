#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Unix time, for what is measured against other machines' clocks: token expiry (`exp`) and
/// publishers' `publishedAt` stamps. Durations inside the node use monotonic clocks instead.
package enum WallClock {
    /// Seconds since 1970.
    package static func seconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
