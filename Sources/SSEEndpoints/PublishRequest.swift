import SSEWire

/// A `POST /publish` body: `{"data": …, "type": …, "id": …, "retry": …}`, the arguments of
/// Flask-SSE's `sse.publish`. `data` is required; any other key is refused so typos surface.
package enum PublishRequest {
    /// Reads the body into the message to publish, or says what is wrong with it.
    package static func message(from body: some Collection<UInt8>) throws(HTTPError) -> FlaskSSEMessage {
        let value: JSONValue
        do {
            value = try JSONParser.parse(body)
        } catch {
            throw HTTPError(.badRequest, "body is not valid JSON: \(error)")
        }
        guard case .object(let members) = value else {
            throw HTTPError(.badRequest, "body must be a JSON object such as {\"data\": \"hello\"}")
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
