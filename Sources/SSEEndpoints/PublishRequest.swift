import SSEWire

/// A `POST /publish` body: `{"data": …, "type": …, "id": …, "retry": …}`, the arguments of
/// Flask-SSE's `sse.publish`, or a JSON array of such objects (a batch, published in order).
/// `data` is required; any other key is refused so typos surface.
package enum PublishRequest {
    /// Most events in one batch body.
    package static let maximumBatchEvents = 1000

    /// What a body asks to publish.
    package enum Body: Equatable {
        /// One event: answered `{"receivers": …, "id": …}`.
        case single(FlaskSSEMessage)
        /// A batch, in order: answered `{"events": [{"receivers": …, "id": …}, …]}`.
        case batch([FlaskSSEMessage])
    }

    /// Reads the body into what to publish, or says what is wrong with it: a batch with one bad
    /// element is refused whole, naming the element.
    package static func body(from body: some Collection<UInt8>) throws(HTTPError) -> Body {
        switch try parse(body) {
        case .array(let elements):
            guard !elements.isEmpty else { throw HTTPError(.badRequest, "the batch is an empty array; send at least one event") }
            guard elements.count <= maximumBatchEvents else {
                throw HTTPError(.badRequest, "the batch has \(elements.count) events; at most \(maximumBatchEvents) per request")
            }
            var messages: [FlaskSSEMessage] = []
            messages.reserveCapacity(elements.count)
            for (index, element) in elements.enumerated() {
                do {
                    messages.append(try message(from: element))
                } catch {
                    throw HTTPError(.badRequest, "batch element \(index): \(error.message)")
                }
            }
            return .batch(messages)
        case let value:
            return .single(try message(from: value))
        }
    }

    /// Reads a single-event body into the message to publish, or says what is wrong with it.
    package static func message(from body: some Collection<UInt8>) throws(HTTPError) -> FlaskSSEMessage {
        try message(from: try parse(body))
    }

    private static func parse(_ body: some Collection<UInt8>) throws(HTTPError) -> JSONValue {
        do {
            return try JSONParser.parse(body)
        } catch {
            throw HTTPError(.badRequest, "body is not valid JSON: \(error)")
        }
    }

    private static func message(from value: JSONValue) throws(HTTPError) -> FlaskSSEMessage {
        guard case .object(let members) = value else {
            throw HTTPError(.badRequest, "body must be a JSON object such as {\"data\": \"hello\"}, or an array of them")
        }
        guard let data = members["data"] else {
            throw HTTPError(.badRequest, "body has no \"data\" field")
        }
        if let unknown = members.keys.first(where: { key in !["data", "type", "id", "retry"].contains { $0.utf8.elementsEqual(key.utf8) } }) {
            throw HTTPError(.badRequest, "unknown field \"\(unknown)\"; allowed: data, type, id, retry")
        }
        return FlaskSSEMessage(data: data, type: members["type"], id: members["id"], retry: members["retry"])
    }
}
