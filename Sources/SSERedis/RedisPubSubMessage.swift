/// One pub/sub message as Redis delivered it: `["message", channel, payload]`.
public struct RedisPubSubMessage: Sendable, Hashable {
    public let channel: String
    public let payload: [UInt8]

    public init(channel: String, payload: [UInt8]) {
        self.channel = channel
        self.payload = payload
    }
}
