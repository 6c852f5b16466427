/// The channels a token grants, from its `sse` claim:
/// `{"sse": {"subscribe": ["news", "user.42.*"], "publish": ["news"]}}`.
public struct ChannelGrants: Sendable, Hashable, Codable {
    public var subscribe: [String]
    public var publish: [String]

    public init(subscribe: [String] = [], publish: [String] = []) {
        self.subscribe = subscribe
        self.publish = publish
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        subscribe = try container.decodeIfPresent([String].self, forKey: .subscribe) ?? []
        publish = try container.decodeIfPresent([String].self, forKey: .publish) ?? []
    }

    /// The channels of `channels` not granted by `patterns`.
    static func denied(_ channels: [String], by patterns: [String]) -> [String] {
        let compiled = patterns.map(ChannelPattern.init)
        return channels.filter { channel in !compiled.contains { $0.matches(channel) } }
    }
}
