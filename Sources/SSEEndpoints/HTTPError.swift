import SSEWire

/// A request the broker refuses, with the status and a message for the client.
///
/// Sent as a JSON body `{"error": MESSAGE}`, so clients and logs see why.
package struct HTTPError: Error, Sendable {
    package let status: HTTPStatus
    package let message: String
    /// Extra headers, such as `Allow` on 405.
    package var headers: [(String, String)] = []

    package init(_ status: HTTPStatus, _ message: String, headers: [(String, String)] = []) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    /// The JSON body.
    package var body: [UInt8] {
        PythonJSONEncoder.encode(.object(["error": .string(message)]))
    }

    package static func methodNotAllowed(_ method: HTTPRequestMethod, allowed: [HTTPRequestMethod]) -> HTTPError {
        let names = allowed.map(\.rawValue).joined(separator: ", ")
        return HTTPError(.methodNotAllowed, "method \(method.rawValue) not allowed; use \(names)", headers: [("Allow", names)])
    }
}
