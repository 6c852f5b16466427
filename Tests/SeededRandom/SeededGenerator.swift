#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A deterministic random generator (SplitMix64) for tests that draw random inputs, so a
/// failure can be replayed: put ``description`` (the seed and how to replay it) in the failure
/// messages, then run the test again with `SSE_TEST_SEED=<seed>`.
///
/// Each run draws a fresh seed unless `SSE_TEST_SEED` is set (decimal, or hex with `0x`), so
/// the tests keep exploring new inputs while every failure stays reproducible.
public struct SeededGenerator: RandomNumberGenerator, Sendable, CustomStringConvertible {
    /// The environment variable that fixes the seed.
    public static let environmentVariable = "SSE_TEST_SEED"

    /// The seed this generator started from (with ``shard``).
    public let seed: UInt64
    /// Which of a test's shards this is: shards of one seed draw different numbers.
    public let shard: Int
    private var state: UInt64

    /// A generator that starts from `seed` (and `shard`).
    public init(seed: UInt64, shard: Int = 0) {
        self.seed = seed
        self.shard = shard
        self.state = seed ^ (UInt64(truncatingIfNeeded: shard) &* 0xD1B5_4A32_D192_ED03)
    }

    /// A generator seeded from `SSE_TEST_SEED` if it is set, else from `fixed` if given (a test
    /// that has always used one seed), else from a fresh random seed. `shard` (a test argument)
    /// gives each shard its own numbers from the same seed.
    public static func forTest(fixed: UInt64? = nil, shard: Int = 0) -> SeededGenerator {
        SeededGenerator(seed: environmentSeed ?? fixed ?? UInt64.random(in: .min ... .max), shard: shard)
    }

    /// `SSE_TEST_SEED` parsed; a value that is not a number stops the run rather than being
    /// silently replaced by a random seed.
    private static var environmentSeed: UInt64? {
        guard let raw = getenv(environmentVariable) else { return nil }
        let text = String(cString: raw)
        guard !text.isEmpty else { return nil }
        let parsed = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
        guard let parsed else { preconditionFailure("\(environmentVariable)=\(text) is not a number") }
        return parsed
    }

    /// SplitMix64 (Steele, Lea, Flood 2014): full period, passes BigCrush; ample for test inputs.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The seed and how to replay it, for failure messages.
    public var description: String {
        "seed \(seed)\(shard == 0 ? "" : ", shard \(shard)") (replay: \(Self.environmentVariable)=\(seed))"
    }
}
