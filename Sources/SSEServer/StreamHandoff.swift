/// How a request that becomes a stream leaves ``HTTPRequestHandler``.
enum StreamHandoff {
    /// HTTP/1: the HTTP handlers in `replaced` leave, and the stream writes its head and framed
    /// events to the connection itself; `socket` is its descriptor for direct writes (-1 where
    /// there is none: TLS, an `EmbeddedChannel`).
    case http1(HTTPPipeline.StreamReplaced, socket: Int32)
    /// An HTTP/2 stream: its HTTP/2 codec stays; the head leaves as HEADERS, the events as DATA.
    /// Its connection's streams share one publish budget.
    case http2(HTTP2PublishBudget)
}
