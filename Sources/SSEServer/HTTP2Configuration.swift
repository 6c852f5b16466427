/// HTTP/2 on the node: negotiated by ALPN on TLS, or spoken in cleartext by clients that know
/// it in advance (`--h2c`, for proxies that speak HTTP/2 to their upstreams).
public struct HTTP2Configuration: Sendable, Hashable {
    /// Offer `h2` by ALPN when the node serves TLS (else HTTP/1.1 only).
    public var isEnabled: Bool
    /// Accept HTTP/2 with prior knowledge on a cleartext listener, beside HTTP/1.1 (told apart
    /// by the connection preface).
    public var acceptsCleartext: Bool
    /// Streams one HTTP/2 connection may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`);
    /// every `EventSource` of a page holds one.
    public var maxConcurrentStreams: Int

    public init(isEnabled: Bool = true, acceptsCleartext: Bool = false, maxConcurrentStreams: Int = 100) {
        self.isEnabled = isEnabled
        self.acceptsCleartext = acceptsCleartext
        self.maxConcurrentStreams = maxConcurrentStreams
    }

    /// The largest value `maxConcurrentStreams` may take: HTTP/2 allows 2^31-1, but every stream
    /// costs the node memory, so a connection is kept to what a page can reasonably use.
    public static let maxConcurrentStreamsLimit = 1_000
}
