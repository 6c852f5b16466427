import NIOCore
import NIOHTTP1
import SSEEndpoints

/// Turns the endpoints' ``BrokerResponse`` into HTTP/1: the one place the NIO host frames a
/// response, whether as parts for SwiftNIO's encoder or as bytes for a handler that sits below
/// it (the request timeout's 408).
///
/// Framing: the response's headers in order, then `Content-Length` when it has a body (never on
/// 204), then `Connection: keep-alive` or `close`; no body bytes for `HEAD`.
enum HTTPResponseWriter {
    /// The response head for HTTP `version`; `keepAlive` says whether the connection stays open.
    static func head(_ response: BrokerResponse, version: HTTPVersion, keepAlive: Bool) -> HTTPResponseHead {
        var headers = HTTPHeaders(response.headers)
        if let body = response.body, response.status != .noContent {
            headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
        }
        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        return HTTPResponseHead(version: version, status: status(response.status), headers: headers)
    }

    static func status(_ status: HTTPStatus) -> HTTPResponseStatus {
        HTTPResponseStatus(statusCode: status.code, reasonPhrase: status.reasonPhrase)
    }

    /// Writes `response` to `request` through the HTTP encoder, and flushes unless `flush` is
    /// false (several answers written together, flushed once). Returns the future of the last
    /// write and whether the connection stays open after it.
    static func write(
        _ response: BrokerResponse,
        to request: HTTPRequestHead,
        context: ChannelHandlerContext,
        wrap: (HTTPServerResponsePart) -> NIOAny,
        flush: Bool = true
    ) -> (done: EventLoopFuture<Void>, keepAlive: Bool) {
        let keepAlive = request.isKeepAlive && !response.closeAfter
        context.write(wrap(.head(head(response, version: request.version, keepAlive: keepAlive))), promise: nil)
        if let body = response.body, !body.isEmpty, request.method != .HEAD {
            context.write(wrap(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let done = context.write(wrap(.end(nil)))
        if flush { context.flush() }
        return (done, keepAlive)
    }

    /// The whole response as HTTP/1.1 bytes with `Connection: close`, for handlers that write
    /// below the HTTP encoder.
    static func bytes(_ response: BrokerResponse, allocator: ByteBufferAllocator) -> ByteBuffer {
        let head = head(response, version: .http1_1, keepAlive: false)
        var text = "HTTP/1.1 \(head.status.code) \(head.status.reasonPhrase)\r\n"
        for (name, value) in head.headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        let body = response.body ?? []
        var buffer = allocator.buffer(capacity: text.utf8.count + body.count)
        buffer.writeString(text)
        buffer.writeBytes(body)
        return buffer
    }
}
