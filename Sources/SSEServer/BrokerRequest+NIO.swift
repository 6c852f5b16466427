import NIOCore
import NIOHTTP1
import SSEEndpoints

extension BrokerRequest {
    /// The endpoints' view of a request head that arrived from `peer`.
    init(_ head: HTTPRequestHead, peer: SocketAddress?) {
        self.init(
            method: HTTPRequestMethod(rawValue: head.method.rawValue),
            target: head.uri,
            headers: RequestHeaders(head.headers.map { (name: $0.name, value: $0.value) }),
            peer: peer
        )
    }
}
