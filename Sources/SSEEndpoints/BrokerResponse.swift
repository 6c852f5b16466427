import SSEWire

/// A complete answer to one request, whichever host writes it: status, headers, body, and
/// whether the connection closes after it.
///
/// Hosts add the framing headers themselves (`Content-Length` when there is a body,
/// `Connection`), and leave the body out for `HEAD`.
package struct BrokerResponse: Sendable {
    package var status: HTTPStatus
    /// In order; never `Content-Length` or `Connection`, which the host writes.
    package var headers: [(String, String)]
    /// Nil for a response whose body is not described (a `HEAD` of a stream): no `Content-Length`.
    package var body: [UInt8]?
    /// The connection ends after this response (it was sent before its request's body was read).
    package var closeAfter: Bool

    package init(status: HTTPStatus, headers: [(String, String)] = [], body: [UInt8]?, closeAfter: Bool = false) {
        self.status = status
        self.headers = headers
        self.body = body
        self.closeAfter = closeAfter
    }

    /// A JSON answer as the broker writes them (`", "` and `": "` separators).
    package static func json(_ status: HTTPStatus, _ object: JSONObject, extraHeaders: [(String, String)] = []) -> BrokerResponse {
        BrokerResponse(status: status, headers: [("Content-Type", "application/json")] + extraHeaders, body: PythonJSONEncoder.encode(.object(object)))
    }

    /// A refusal: the error's headers, then `extraHeaders` (CORS), with its JSON body.
    package static func error(_ error: HTTPError, extraHeaders: [(String, String)] = [], closeAfter: Bool = false) -> BrokerResponse {
        BrokerResponse(
            status: error.status,
            headers: error.headers + extraHeaders + [("Content-Type", "application/json")],
            body: error.body,
            closeAfter: closeAfter
        )
    }
}
