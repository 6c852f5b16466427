import NIOCore
import NIOHTTP1
import SSEEndpoints

/// Answers requests the HTTP parser rejects, then lets the decoder close the connection.
///
/// In the place of NIO's `HTTPServerProtocolErrorHandler`, with the broker's answers: 431 for a
/// request head over `--max-head-bytes`, 400 for anything else malformed, each with a JSON body.
/// Other connections are untouched. Once a response with `Connection: close` went out (a
/// request refused before its body came), the request cut short by that close is not answered
/// again.
final class HTTPProtocolErrorResponder: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var hasUnterminatedResponse = false
    /// A response said `Connection: close`: the connection ends after it, unanswered from then on.
    private var closing = false
    private let maxHeadBytes: Int

    init(maxHeadBytes: Int) {
        self.maxHeadBytes = maxHeadBytes
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        // A request cut short by the connection's end (`invalidEOFState`: our own close after a
        // 408, or the peer's) has nobody left to answer.
        let cutShort: Bool
        if case .invalidEOFState = parserError { cutShort = true } else { cutShort = false }
        if !hasUnterminatedResponse, !closing, !cutShort {
            closing = true
            let answer: HTTPError
            if case .headerOverflow = parserError {
                answer = HTTPError(.requestHeaderFieldsTooLarge, "request head larger than \(maxHeadBytes) bytes")
            } else {
                answer = HTTPError(.badRequest, "malformed HTTP request: \(parserError)")
            }
            let response = BrokerResponse.error(answer, closeAfter: true)
            context.write(wrapOutboundOut(.head(HTTPResponseWriter.head(response, version: .http1_1, keepAlive: false))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: answer.body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            context.close(promise: nil)
        }
        // The decoder stops parsing after an error but does not close: the close above does.
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where (100..<200).contains(head.status.code) && head.status.code != 101: break
        case .head(let head):
            hasUnterminatedResponse = true
            if head.headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "close" }) { closing = true }
        case .body: break
        case .end: hasUnterminatedResponse = false
        }
        context.write(data, promise: promise)
    }
}

@available(*, unavailable)
extension HTTPProtocolErrorResponder: Sendable {}
