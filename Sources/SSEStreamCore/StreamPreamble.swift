import NIOCore
import SSEWire

/// The bytes that open every stream, built once per node: the status line and headers
/// (CONTRACT.md section 3), then, with `--retry-ms`, a `retry:` frame.
package struct StreamPreamble: Sendable {
    /// Response headers of every stream, sent at once.
    package static let headers: [(String, String)] = [
        ("Content-Type", "text/event-stream; charset=utf-8"),
        ("Cache-Control", "no-cache"),
        ("X-Accel-Buffering", "no"),
    ]

    /// For HTTP/1.1 clients: chunked body.
    package let chunked: ByteBuffer
    /// For HTTP/1.0 clients: close-delimited body.
    package let closeDelimited: ByteBuffer
    /// The body's opening alone (the `retry:` frame, the demo's `node` event; often empty), for
    /// hosts that write the head and frame the body themselves.
    package let opening: ByteBuffer

    /// - Parameter nodeName: with `--demo`, a `node` event naming the node opens every stream.
    package init(retryMilliseconds: Int?, nodeName: String? = nil, extraHeaders: [(String, String)] = [], allocator: ByteBufferAllocator = .init()) {
        func head(_ version: String, _ framing: String) -> String {
            var text = "HTTP/\(version) 200 OK\r\n"
            for (name, value) in Self.headers + extraHeaders { text += "\(name): \(value)\r\n" }
            return text + framing + "\r\n"
        }
        var opening: [UInt8] = []
        if let retryMilliseconds { opening += Array("retry:\(retryMilliseconds)\n\n".utf8) }
        if let nodeName {
            let data = String(decoding: PythonJSONEncoder.encode(["node": .string(nodeName)]), as: UTF8.self)
            opening += EventTextEncoder.encode(ServerSentEvent(data: data, type: "node"))
        }
        var chunked = allocator.buffer(string: head("1.1", "Transfer-Encoding: chunked\r\n"))
        var closeDelimited = allocator.buffer(string: head("1.0", "Connection: close\r\n"))
        if !opening.isEmpty {
            var framed = EncodedEvent(text: opening, allocator: allocator).chunked
            chunked.writeBuffer(&framed)
            closeDelimited.writeBytes(opening)
        }
        self.chunked = chunked
        self.closeDelimited = closeDelimited
        self.opening = allocator.buffer(bytes: opening)
    }

    package func bytes(chunked isChunked: Bool) -> ByteBuffer {
        isChunked ? chunked : closeDelimited
    }
}
