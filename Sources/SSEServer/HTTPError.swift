import NIOHTTP1
import SSEWire

/// A request the broker refuses, with the status and a message for the client.
///
/// Sent as a JSON body `{"error": MESSAGE}`, so clients and logs see why.
struct HTTPError: Error, Sendable {
    let status: HTTPResponseStatus
    let message: String
    /// Extra headers, such as `Allow` on 405.
    var headers: [(String, String)] = []

    init(_ status: HTTPResponseStatus, _ message: String, headers: [(String, String)] = []) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    /// The JSON body.
    var body: [UInt8] {
        PythonJSONEncoder.encode(.object(["error": .string(message)]))
    }

    static func methodNotAllowed(_ method: HTTPMethod, allowed: [HTTPMethod]) -> HTTPError {
        let names = allowed.map(\.rawValue).joined(separator: ", ")
        return HTTPError(.methodNotAllowed, "method \(method.rawValue) not allowed; use \(names)", headers: [("Allow", names)])
    }
}
