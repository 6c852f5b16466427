import FuzzSupport
@testable import SSERedis

/// `RedisConfiguration(url:)` on any bytes (a `REDIS_URL` is the operator's, or injected
/// configuration). Beyond "no trap": an accepted URL's `description` does not depend on its
/// password or sentinel password (it stays the same when they change), every port is 1...65535,
/// every sentinel host is a plain token and at most 16 sentinels, every cluster seed a plain token
/// and at most 64 of them, a cluster on database 0; a refused URL's reason quotes
/// nothing from the part that may hold credentials, and its masked URL does not show that part.
@main
enum FuzzRedisURL {
    static func main() { FuzzDriver.run { data, count in fuzzRedisURL(data, count) } }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRedisURL(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let url = String(decoding: FuzzCheck.bytes(data, count), as: UTF8.self)
    do {
        let configuration = try RedisConfiguration(url: url)
        checkAccepted(configuration)
    } catch {
        checkRefused(error, url: url)
    }
    return 0
}

private func checkAccepted(_ configuration: RedisConfiguration) {
    let shown = configuration.description
    if let password = configuration.password {
        var other = configuration
        other.password = password == "x" ? "y" : "x"
        FuzzCheck.require(other.description == shown, "the description depends on the password: \(shown.debugDescription)")
    }
    FuzzCheck.require(configuration.database >= 0, "negative database")
    switch configuration.endpoint {
    case .tcp(_, let port):
        FuzzCheck.require((1...65535).contains(port), "port \(port)")
    case .unixSocket(let path):
        FuzzCheck.require(path.hasPrefix("/"), "relative socket path")
    case .sentinel(let endpoint):
        FuzzCheck.require((1...SentinelEndpoint.maximumSentinels).contains(endpoint.sentinels.count), "\(endpoint.sentinels.count) sentinels")
        for sentinel in endpoint.sentinels {
            FuzzCheck.require(SentinelAddress.isValidHost(sentinel.host), "sentinel host \(sentinel.host.debugDescription)")
            FuzzCheck.require((1...65535).contains(sentinel.port), "sentinel port \(sentinel.port)")
        }
        FuzzCheck.require(SentinelEndpoint.isValidMasterName(endpoint.masterName), "master name \(endpoint.masterName.debugDescription)")
        if let password = endpoint.password {
            var other = endpoint
            other.password = password == "x" ? "y" : "x"
            var changed = configuration
            changed.endpoint = .sentinel(other)
            FuzzCheck.require(changed.description == shown, "the description depends on the sentinel password: \(shown.debugDescription)")
        }
    case .cluster(let endpoint):
        FuzzCheck.require((1...ClusterEndpoint.maximumSeeds).contains(endpoint.seeds.count), "\(endpoint.seeds.count) seeds")
        for seed in endpoint.seeds {
            FuzzCheck.require(SentinelAddress.isValidHost(seed.host), "seed host \(seed.host.debugDescription)")
            FuzzCheck.require((1...65535).contains(seed.port), "seed port \(seed.port)")
        }
        FuzzCheck.require(configuration.database == 0, "a cluster with database \(configuration.database)")
        FuzzCheck.require(endpoint.slot == nil, "a slot from a URL")
    }
}

/// What may hold a secret, judged independently of the parser: from after a plain scheme (or
/// the start) to the last `@`, and everything after `password=`; and what is plainly public: the
/// scheme, and what lies between the last `@` and any `password=`.
private func parts(of url: String) -> (secret: [[UInt8]], public: [[UInt8]]) {
    var rest = Substring(url)
    var open: [[UInt8]] = []
    if let range = url.firstRange(of: "://"),
        !url[..<range.lowerBound].isEmpty,
        url[..<range.lowerBound].utf8.allSatisfy({ byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || "+-.".utf8.contains(byte)
        })
    {
        rest = url[range.upperBound...]
        // The parser names the scheme lowercased.
        open.append(Array(url[..<range.upperBound].lowercased().utf8))
    }
    var secret: [[UInt8]] = []
    var afterUserInfo = rest
    if let at = rest.lastIndex(of: "@") {
        secret.append(Array(rest[..<at].utf8))
        afterUserInfo = rest[at...]
    }
    if let password = url.firstRange(of: "password=") {
        secret.append(Array(url[password.upperBound...].utf8))
        if let inside = afterUserInfo.firstRange(of: "password=") { afterUserInfo = afterUserInfo[..<inside.lowerBound] }
    }
    open.append(Array(afterUserInfo.utf8))
    return (secret, open)
}

private func occurs(_ needle: ArraySlice<UInt8>, in haystack: [UInt8]) -> Bool {
    guard !needle.isEmpty, needle.count <= haystack.count else { return needle.isEmpty }
    for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
        return true
    }
    return false
}

private func checkRefused(_ error: RedisConfigurationError, url: String) {
    let (secrets, open) = parts(of: url)
    let reason = Array(error.reason.utf8)
    // Every 'quoted' piece of the reason (when the URL has no quote of its own to confuse the pairing).
    if !url.utf8.contains(UInt8(ascii: "'")) {
        let quotes = reason.indices.filter { reason[$0] == UInt8(ascii: "'") }
        for pair in stride(from: 0, to: quotes.count - 1, by: 2) {
            let piece = reason[(quotes[pair] + 1)..<quotes[pair + 1]]
            // A piece that is also in the plainly public part may be quoted (a scheme, a host).
            guard !piece.isEmpty, !open.contains(where: { occurs(piece, in: $0) }) else { continue }
            for secret in secrets where occurs(piece, in: secret) {
                FuzzCheck.require(false, "the reason quotes a piece of the credentials: \(error.reason.debugDescription) for \(url.debugDescription)")
            }
        }
    }
    // The masked URL shows no user-info long enough to be recognisable (unless it is also
    // elsewhere in the URL): what precedes the last `@` before any `password=` (whose value is
    // masked whole, an `@` in it included).
    let beforePassword = url.firstRange(of: "password=").map { String(url[..<$0.lowerBound]) } ?? url
    if let userInfo = parts(of: beforePassword).secret.first, userInfo.count >= 6, occurs(userInfo[...], in: Array(error.redactedURL.utf8)) {
        var remainder = Array(url.utf8)
        if let start = (0...(remainder.count - userInfo.count)).first(where: { remainder[$0..<($0 + userInfo.count)].elementsEqual(userInfo) }) {
            remainder.removeSubrange(start..<(start + userInfo.count))
        }
        FuzzCheck.require(occurs(userInfo[...], in: remainder), "the masked URL shows the user-info: \(error.redactedURL.debugDescription) for \(url.debugDescription)")
    }
}
