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

    /// Whether these grants allow streaming all of `channels` (refused whole if any is not
    /// granted), for a host whose own authentication supplies the grants (a Hummingbird app's
    /// middleware); `expiresAt` (Unix seconds) ends the stream then.
    public func decideStream(channels: [String], expiresAt: Double? = nil) -> AccessDecision {
        let denied = Self.denied(channels, by: subscribe)
        guard denied.isEmpty else { return .forbidden("not granted subscribe on: \(denied.joined(separator: ", "))") }
        return .allowed(expiresAt: expiresAt)
    }

    /// Whether these grants allow publishing on `channel`.
    public func decidePublish(channel: String) -> AccessDecision {
        guard Self.denied([channel], by: publish).isEmpty else { return .forbidden("not granted publish on: \(channel)") }
        return .allowed(expiresAt: nil)
    }

    /// The channels of `channels` not granted by `patterns`.
    static func denied(_ channels: [String], by patterns: [String]) -> [String] {
        let compiled = patterns.map(ChannelPattern.init)
        return channels.filter { channel in !compiled.contains { $0.matches(channel) } }
    }
}
