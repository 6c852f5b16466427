/// Receives what the subscriber thread sees. Called on that thread: return quickly, never block.
public protocol RedisSubscriberDelegate: AnyObject, Sendable {
    /// Messages from one read of the socket, in the order Redis sent them.
    func subscriber(_ subscriber: RedisSubscriber, received messages: [RedisPubSubMessage])
    /// The subscription connection is up and every wanted channel has been (re)subscribed.
    func subscriberDidConnect(_ subscriber: RedisSubscriber)
    /// The subscription connection is down; the subscriber keeps retrying with backoff.
    func subscriber(_ subscriber: RedisSubscriber, didDisconnectWith error: RedisError)
    /// Redis refused to subscribe `channels` (an ACL user without access answers `-NOPERM`),
    /// with Redis's error text.
    ///
    /// Called once when a wanted channel becomes refused, not again while it stays refused
    /// (`RedisSubscriber.refusedChannels` lists those). The subscriber keeps retrying refused
    /// channels (on every reconnect, and with a backoff of `refusalRetryBaseMilliseconds`
    /// doubling up to `refusalRetryCapMilliseconds`, since an ACL can change); a channel that
    /// is later confirmed leaves the refused set. Only the named channels are affected.
    func subscriber(_ subscriber: RedisSubscriber, refused channels: [String], error: String)
    /// The delivery probe found the subscription connected but not delivering (`reason` says
    /// how); the subscriber drops the connection and reconnects, and `isDelivering` stays false
    /// until a probe succeeds on the rebuilt connection.
    func subscriber(_ subscriber: RedisSubscriber, foundSilent reason: String)
    /// With `Configuration.historyOnShards`: `channels` were subscribed again on their shard
    /// after a gap (a slot moved, a shard failed over or its link reconnected); what was
    /// published on them meanwhile reached this node only through history.
    func subscriber(_ subscriber: RedisSubscriber, resubscribed channels: [String])
}

extension RedisSubscriberDelegate {
    /// Default: nothing (the refusal is logged by the subscriber and listed in `refusedChannels`).
    public func subscriber(_ subscriber: RedisSubscriber, refused channels: [String], error: String) {}

    /// Default: nothing (the subscriber logs the verdict and reconnects).
    public func subscriber(_ subscriber: RedisSubscriber, foundSilent reason: String) {}

    /// Default: nothing.
    public func subscriber(_ subscriber: RedisSubscriber, resubscribed channels: [String]) {}
}
