import CHiredis
import SSEWire

/// What one reply on a subscription connection is (Redis pub/sub, RESP2; the sharded kinds
/// `smessage`, `ssubscribe` and `sunsubscribe` read as their classic counterparts).
///
/// Read straight from the hiredis node, without building the whole `RedisReply` tree; every
/// element's presence and type is checked, so an error reply or a malformed array is never
/// taken for a message or a confirmation.
enum SubscriberReply: Equatable {
    /// `["message", channel, payload]` (or `smessage`).
    case message(RedisPubSubMessage)
    /// `["subscribe", channel, count]`.
    case subscribed(ChannelName)
    /// `["unsubscribe", channel, count]`.
    case unsubscribed(ChannelName)
    /// `["pong", ""]` in subscribed mode, `+PONG` with no subscription.
    case pong
    /// An error reply: it answers the oldest command in flight.
    case error(String)
    /// Anything else (nobody asked for it).
    case unexpected(String)

    init(_ node: redisReply) {
        switch node.type {
        case REDIS_REPLY_ERROR:
            self = .error(String(decoding: RedisReply.bytes(node), as: UTF8.self))
        case REDIS_REPLY_STATUS where RedisReply.bytes(node).elementsEqual("PONG".utf8):
            self = .pong
        case REDIS_REPLY_ARRAY:
            self = Self.array(node)
        default:
            self = .unexpected("reply of type \(node.type)")
        }
    }

    private static func array(_ node: redisReply) -> SubscriberReply {
        guard node.elements >= 1, node.elements <= 3, let elements = node.element,
            let kindNode = elements[0]?.pointee, kindNode.type == REDIS_REPLY_STRING
        else { return .unexpected("malformed array") }
        let kind = RedisReply.bytes(kindNode)
        if kind.elementsEqual("pong".utf8) { return .pong }
        guard node.elements == 3, let channelNode = elements[1]?.pointee, channelNode.type == REDIS_REPLY_STRING,
            let third = elements[2]?.pointee
        else { return .unexpected("malformed \(String(decoding: kind.prefix(32), as: UTF8.self))") }
        let channel = ChannelName(bytes: RedisReply.bytes(channelNode))
        if kind.elementsEqual("message".utf8) || kind.elementsEqual("smessage".utf8), third.type == REDIS_REPLY_STRING {
            return .message(RedisPubSubMessage(channel: channel.text, payload: Array(RedisReply.bytes(third))))
        }
        if kind.elementsEqual("subscribe".utf8) || kind.elementsEqual("ssubscribe".utf8), third.type == REDIS_REPLY_INTEGER {
            return .subscribed(channel)
        }
        if kind.elementsEqual("unsubscribe".utf8) || kind.elementsEqual("sunsubscribe".utf8), third.type == REDIS_REPLY_INTEGER {
            return .unsubscribed(channel)
        }
        return .unexpected(String(decoding: kind.prefix(32), as: UTF8.self))
    }
}
