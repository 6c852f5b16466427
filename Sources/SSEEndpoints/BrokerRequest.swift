import NIOCore

/// One request as the broker's endpoints see it, whichever host received it: method, path,
/// query (parsed once, here), header lookups and the peer the publish policy asks about.
///
/// The standalone server builds it from NIOHTTP1's request head; a framework host builds it
/// from its own request type.
package struct BrokerRequest: Sendable {
    package let method: HTTPRequestMethod
    /// The request target before the first `?`.
    package let path: Substring
    package let query: QueryParameters
    package let headers: RequestHeaders
    /// The connection's peer; nil when unknown (never loopback then).
    package var peer: SocketAddress?

    /// - Parameter target: the request target as sent (`/stream?channel=a`).
    package init(method: HTTPRequestMethod, target: String, headers: RequestHeaders, peer: SocketAddress?) {
        self.method = method
        self.path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        self.query = QueryParameters(uri: target)
        self.headers = headers
        self.peer = peer
    }

    /// Whether the client sent `Expect: 100-continue`.
    package var expectsContinue: Bool {
        headers[canonicalForm: "expect"].contains { $0.lowercased() == "100-continue" }
    }

    /// The `Content-Length` the client declared: nil without one, `Int.max` when it is not a
    /// number that fits (the HTTP parser refuses those anyway).
    package var declaredContentLength: Int? {
        headers.first(name: "content-length").map { Int($0) ?? Int.max }
    }
}
