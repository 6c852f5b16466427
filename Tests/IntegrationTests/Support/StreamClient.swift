/// An SSE client over a raw socket: sends the request, checks nothing itself, and splits
/// the decoded body into events exactly as framed (each ends with a blank line), so tests can
/// compare bytes. Comment frames (heartbeats) are set apart, as EventSource ignores them.
final class StreamClient: Sendable {
    let connection: TestConnection

    private init(connection: TestConnection) {
        self.connection = connection
    }

    /// Opens `target` (path and query) and waits for the response head.
    static func open(
        port: Int,
        _ target: String,
        headers: [String: String] = [:],
        version: String = "HTTP/1.1",
        method: String = "GET",
        waitForHead: Bool = true
    ) async throws -> StreamClient {
        let connection = try await TestConnection.connect(port: port)
        var request = "\(method) \(target) \(version)\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\n"
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        try await connection.send(request)
        let client = StreamClient(connection: connection)
        if waitForHead {
            _ = try await client.head()
        }
        return client
    }

    /// The response so far (waits for the head).
    func head(timeout: Duration = .seconds(10)) async throws -> HTTPResponse {
        try await connection.waitFor(timeout: timeout, "a response head") { (try? HTTPResponse.parse($0)) != nil }
        guard let response = try HTTPResponse.parse(connection.received) else { throw TestFailure("no response head") }
        return response
    }

    /// Every complete frame of the body so far, events and comments, each with its blank line.
    func frames() throws -> [String] {
        guard let response = try HTTPResponse.parse(connection.received) else { return [] }
        return Self.split(response.body)
    }

    /// The complete events so far (comment frames left out).
    func events() throws -> [String] {
        try frames().filter { !$0.hasPrefix(":") }
    }

    /// Waits until at least `count` events arrived and returns them all; fails at once when the
    /// connection closed with fewer (a stream cut off), instead of waiting out `timeout`.
    @discardableResult
    func waitForEvents(_ count: Int, timeout: Duration = .seconds(15)) async throws -> [String] {
        try await eventually(timeout: timeout, "\(count) events (have \((try? self.events().count) ?? -1))") {
            // Read before counting: whatever came before the close is in by then.
            let closed = connection.isClosed
            let have = try self.events().count
            if have >= count { return true }
            if closed { throw TestFailure("the stream closed after \(have) of \(count) events") }
            return false
        }
        return try events()
    }

    func close() async {
        await connection.close()
    }

    /// Splits an event-stream body at each blank line (`\n\n`); an incomplete tail is left out.
    static func split(_ body: [UInt8]) -> [String] {
        var frames: [String] = []
        var start = 0
        var index = 0
        while index + 1 < body.count {
            if body[index] == 10, body[index + 1] == 10 {
                frames.append(String(decoding: body[start...index + 1], as: UTF8.self))
                index += 2
                start = index
            } else {
                index += 1
            }
        }
        return frames
    }
}
