/// Redis reached through Sentinel: the sentinels to ask, the name of the master they watch, and
/// the credentials for the sentinels themselves (redis.io "Sentinel client spec").
///
/// The master's own credentials and database are the `RedisConfiguration`'s, as for
/// `redis://`: redis-py's `Sentinel(sentinel_kwargs=…)` does not pass the master password to
/// the sentinels either. Every connect asks the sentinels where the master is, and checks with
/// `ROLE` that it is one (`SentinelResolver`).
public struct SentinelEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// The sentinels, in the order to ask them first.
    public var sentinels: [SentinelAddress]
    /// The name the sentinels monitor the master under (`sentinel monitor NAME …`).
    public var masterName: String
    /// ACL user for the sentinels (`AUTH user password`).
    public var username: String?
    /// Password for the sentinels (`requirepass` in the sentinel configuration).
    public var password: String?

    /// Most sentinels one endpoint may name.
    public static let maximumSentinels = 16
    /// Longest master name, in bytes.
    public static let maximumMasterNameBytes = 255

    public init(sentinels: [SentinelAddress], masterName: String, username: String? = nil, password: String? = nil) {
        self.sentinels = sentinels
        self.masterName = masterName
        self.username = username
        self.password = password
    }

    /// `h1:26379,h2:26380/mymaster`, without credentials.
    public var description: String {
        sentinels.map(\.description).joined(separator: ",") + "/" + masterName
    }

    /// Whether `name` can be a master name: 1 to 255 bytes of ASCII letters, digits and `-._:`.
    static func isValidMasterName(_ name: some StringProtocol) -> Bool {
        SentinelAddress.isToken(name, maximumBytes: maximumMasterNameBytes, punctuation: "-._:")
    }
}
