#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CLibFuzzer

/// Runs libFuzzer on one target function.
///
/// SwiftPM gives every executable its own `main` (the linker may keep it or libFuzzer's), so
/// each target has both: `@_cdecl("LLVMFuzzerTestOneInput")` for libFuzzer's `main`, and a
/// `@main` that calls this, which hands the command line to libFuzzer's driver
/// (`-max_total_time=…`, corpus directories, or input files to replay) with the same function.
public enum FuzzDriver {
    /// A fuzz target: one input, return 0.
    public typealias Target = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32

    public static func run(_ target: Target) -> Never {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, target))
    }
}
