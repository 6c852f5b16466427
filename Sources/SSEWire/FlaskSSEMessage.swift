/// A Flask-SSE message: the JSON object Flask-SSE puts on Redis, `{"data": …, "type"?, "id"?, "retry"?}`.
///
/// This is the codec of CONTRACT.md sections 1 and 2, both ways: `redisPayload` is what
/// `sse.publish(data, type=, id=, retry=)` writes, and `init(redisPayload:)` reads what any
/// publisher wrote, accepting exactly the payloads Flask-SSE's `Message(**json.loads(p))` accepts.
public struct FlaskSSEMessage: Sendable, Hashable {
    public var data: JSONValue
    public var type: JSONValue?
    public var id: JSONValue?
    public var retry: JSONValue?

    public init(data: JSONValue, type: JSONValue? = nil, id: JSONValue? = nil, retry: JSONValue? = nil) {
        self.data = data
        self.type = type
        self.id = id
        self.retry = retry
    }

    /// Reads a conforming payload: a JSON object with `data` and no keys but `type`, `id` and
    /// `retry`. Returns nil for anything else (the broker then delivers it as plain text).
    public init?(redisPayload: some Collection<UInt8>) {
        guard case .object(let members)? = try? JSONParser.parse(redisPayload),
            let data = members["data"],
            members.keys.allSatisfy({ key in Self.knownKeys.contains { $0.utf8.elementsEqual(key.utf8) } })
        else { return nil }
        self.init(data: data, type: members["type"], id: members["id"], retry: members["retry"])
    }

    private static let knownKeys = ["data", "type", "id", "retry"]

    /// The bytes Flask-SSE's `sse.publish` would put on Redis for these arguments: falsy
    /// `type`, `id` and `retry` left out, keys sorted, Python separators and escapes.
    public var redisPayload: [UInt8] {
        let (head, tail) = payloadAroundID
        guard let id, id.isTruthy else { return head + tail }
        var payload = head
        payload.append(contentsOf: ", \"id\": ".utf8)
        PythonJSONEncoder.append(id, to: &payload)
        return payload + tail
    }

    /// The payload cut where `"id"` goes (keys sort as data < id < retry < type), so an id
    /// assigned later, inside Redis, can be spliced in: `head + ", \"id\": …" + tail`.
    /// `head + tail` is the payload without an id.
    public var payloadAroundID: (head: [UInt8], tail: [UInt8]) {
        var head = Array("{\"data\": ".utf8)
        PythonJSONEncoder.append(data, to: &head)
        var tail: [UInt8] = []
        if let retry, retry.isTruthy {
            tail.append(contentsOf: ", \"retry\": ".utf8)
            PythonJSONEncoder.append(retry, to: &tail)
        }
        if let type, type.isTruthy {
            tail.append(contentsOf: ", \"type\": ".utf8)
            PythonJSONEncoder.append(type, to: &tail)
        }
        tail.append(UInt8(ascii: "}"))
        return (head, tail)
    }

    /// The event Flask-SSE's stream renders for this message.
    public var event: ServerSentEvent {
        let text: String
        if case .string(let string) = data {
            text = string
        } else {
            text = String(decoding: PythonJSONEncoder.encode(data), as: UTF8.self)
        }
        return ServerSentEvent(
            data: text,
            type: Self.fieldText(type),
            id: Self.fieldText(id),
            retry: Self.fieldText(retry)
        )
    }

    /// Python's `"{}".format(value)` for a truthy scalar; nil for falsy values and for
    /// arrays and objects, which no EventSource field can use (a documented departure).
    static func fieldText(_ value: JSONValue?) -> String? {
        guard let value, value.isTruthy else { return nil }
        switch value {
        case .string(let string): return string
        case .integer(let integer): return integer.digits
        case .float(let double): return PythonFloatFormatter.repr(double)
        case .bool(let flag): return flag ? "True" : "False"
        case .null, .array, .object: return nil
        }
    }
}

extension ServerSentEvent {
    /// The event for any Redis payload: a conforming Flask-SSE payload renders as Flask-SSE
    /// renders it; anything else (not JSON, not an object, no `data`, other keys) becomes a
    /// plain-text event whose data is the raw payload, invalid UTF-8 replaced by U+FFFD.
    public init(redisPayload: some Collection<UInt8>) {
        if let message = FlaskSSEMessage(redisPayload: redisPayload) {
            self = message.event
        } else {
            self.init(data: String(decoding: redisPayload, as: UTF8.self))
        }
    }
}
