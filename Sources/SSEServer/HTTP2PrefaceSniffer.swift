import NIOCore

/// On a cleartext listener with `--h2c`: tells an HTTP/2 client with prior knowledge from an
/// HTTP/1 one by the first bytes (HTTP/2's 24-byte connection preface), installs the matching
/// handlers behind itself, hands them what it read, and leaves.
///
/// It holds at most the preface's length, decides as soon as a byte differs from it, and
/// closes a connection that sends too little before `timeout`.
final class HTTP2PrefaceSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// What every HTTP/2 connection begins with (RFC 9113, section 3.4).
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let timeout: TimeAmount
    /// Installs the handlers for HTTP/2 (true) or HTTP/1 (false) after this one.
    private let configure: (_ isHTTP2: Bool, _ channel: any Channel) throws -> Void
    private var deadline = ClosingDeadline()
    private var received: ByteBuffer?
    private var decided = false

    init(timeout: TimeAmount, configure: @escaping (_ isHTTP2: Bool, _ channel: any Channel) throws -> Void) {
        self.timeout = timeout
        self.configure = configure
    }

    func handlerAdded(context: ChannelHandlerContext) {
        deadline.start(context, after: timeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard !decided else {
            context.fireChannelRead(data)
            return
        }
        if var held = received {
            held.writeBuffer(&bytes)
            bytes = held
        }
        switch Self.classify(bytes.readableBytesView) {
        case .undecided:
            received = bytes
        case .http2:
            decide(context: context, isHTTP2: true, bytes)
        case .http1:
            decide(context: context, isHTTP2: false, bytes)
        }
    }

    /// What the first bytes of a connection say.
    enum Verdict: Equatable {
        case http2
        case http1
        /// A proper prefix of the preface: wait for more.
        case undecided
    }

    static func classify(_ bytes: some Collection<UInt8>) -> Verdict {
        var matched = 0
        for (byte, expected) in zip(bytes, preface) {
            guard byte == expected else { return .http1 }
            matched += 1
        }
        return matched == preface.count ? .http2 : .undecided
    }

    private func decide(context: ChannelHandlerContext, isHTTP2: Bool, _ bytes: ByteBuffer) {
        decided = true
        received = nil
        deadline.cancel()
        do {
            try configure(isHTTP2, context.channel)
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(wrapInboundOut(bytes))
        context.fireChannelReadComplete()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline.cancel()
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension HTTP2PrefaceSniffer: Sendable {}
