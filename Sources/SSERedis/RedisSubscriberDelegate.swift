/// Receives what the subscriber thread sees. Called on that thread: return quickly, never block.
public protocol RedisSubscriberDelegate: AnyObject, Sendable {
    /// Messages from one read of the socket, in the order Redis sent them.
    func subscriber(_ subscriber: RedisSubscriber, received messages: [RedisPubSubMessage])
    /// The subscription connection is up and every wanted channel has been (re)subscribed.
    func subscriberDidConnect(_ subscriber: RedisSubscriber)
    /// The subscription connection is down; the subscriber keeps retrying with backoff.
    func subscriber(_ subscriber: RedisSubscriber, didDisconnectWith error: RedisError)
}
