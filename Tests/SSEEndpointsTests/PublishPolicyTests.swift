import NIOCore
import Testing

@testable import SSEEndpoints

@Suite("Publish policy")
struct PublishPolicyTests {
    let policy = PublishPolicy(cors: CORSPolicy(origins: ["https://app.example"]), cookieName: "sse_token")

    func head(_ headers: [(String, String)], peer: SocketAddress? = nil) -> BrokerRequest {
        BrokerRequest(method: .POST, target: "/publish?token=t", headers: RequestHeaders(headers.map { (name: $0.0, value: $0.1) }), peer: peer)
    }

    let loopback: SocketAddress

    init() throws {
        loopback = try SocketAddress(ipAddress: "127.0.0.1", port: 40000)
    }

    @Test("loopback Host names", arguments: [
        ("localhost", true), ("LOCALHOST:5000", true), ("127.0.0.1", true), ("127.255.0.9:80", true), ("[::1]", true),
        ("[::1]:8080", true), ("", false), ("localhost.", false), ("localhost.evil.example", false), ("127.0.0.1.evil.example", false),
        ("127.0.0.256", false), ("127.0.0", false), ("127.0.0.1:99999", false), ("127.0.0.1:", false), ("[::2]", false),
        ("[::1", false), ("[::1]x", false), ("10.0.0.1", false), ("evil.example", false), ("0x7f.0.0.1", false),
    ])
    func loopbackNames(host: String, expected: Bool) {
        #expect(PublishPolicy.isLoopbackName(host) == expected)
    }

    @Test("loopback peers: 127/8, ::1 and v4-mapped 127/8; nothing else")
    func loopbackPeers() throws {
        for (address, expected) in [
            ("127.0.0.1", true), ("127.3.2.1", true), ("::1", true), ("::ffff:127.0.0.1", true),
            ("10.0.0.1", false), ("128.0.0.1", false), ("::2", false), ("::ffff:10.0.0.1", false), ("fe80::1", false),
        ] {
            #expect(PublishPolicy.isLoopback(try SocketAddress(ipAddress: address, port: 1)) == expected, "\(address)")
        }
    }

    @Test("open publish: each rule, in turn")
    func openPublish() throws {
        let remote = try SocketAddress(ipAddress: "192.0.2.7", port: 40000)
        #expect(policy.openPublishRefusal(head([("Host", "localhost")], peer: loopback), allowAnyPeer: false) == nil)
        #expect(policy.openPublishRefusal(head([("Host", "localhost")], peer: remote), allowAnyPeer: false)?.contains("loopback clients") == true)
        #expect(policy.openPublishRefusal(head([("Host", "localhost")], peer: nil), allowAnyPeer: false) != nil)
        #expect(policy.openPublishRefusal(head([("Host", "localhost")], peer: remote), allowAnyPeer: true) == nil)
        for proxy in ["Forwarded", "X-Forwarded-For", "x-real-ip", "X-Forwarded-Host"] {
            #expect(policy.openPublishRefusal(head([("Host", "localhost"), (proxy, "1.2.3.4")], peer: loopback), allowAnyPeer: false) != nil)
        }
        #expect(policy.openPublishRefusal(head([("Host", "evil.example")], peer: loopback), allowAnyPeer: false) != nil)
        #expect(policy.openPublishRefusal(head([], peer: loopback), allowAnyPeer: false) != nil)
        #expect(policy.openPublishRefusal(head([("Host", "localhost"), ("Host", "localhost")], peer: loopback), allowAnyPeer: false) != nil)
        #expect(policy.openPublishRefusal(head([("Host", "localhost"), ("Origin", "https://evil.example")], peer: loopback), allowAnyPeer: false) != nil)
        #expect(policy.openPublishRefusal(head([("Host", "localhost"), ("Origin", "https://evil.example")], peer: remote), allowAnyPeer: true) != nil)
        #expect(policy.openPublishRefusal(head([("Host", "localhost:5000"), ("Origin", "http://localhost:5000")], peer: loopback), allowAnyPeer: false) == nil)
        #expect(policy.openPublishRefusal(head([("Host", "localhost"), ("Origin", "https://app.example")], peer: loopback), allowAnyPeer: false) == nil)
    }

    @Test("credentials: Authorization always, the cookie only from an allowed Origin, never the query token")
    func credentials() {
        let plain = policy.credentials(head([("Host", "h"), ("Authorization", "Bearer abc"), ("Cookie", "sse_token=c")]))
        #expect(plain.bearer == "abc")
        #expect(plain.cookieHeader == nil)
        #expect(plain.queryToken == nil)
        #expect(policy.credentials(head([("Host", "h"), ("Cookie", "sse_token=c"), ("Origin", "https://app.example")])).cookieHeader == "sse_token=c")
        #expect(policy.credentials(head([("Host", "h:1"), ("Cookie", "sse_token=c"), ("Origin", "http://h:1")])).cookieHeader == "sse_token=c")
        #expect(policy.credentials(head([("Host", "h"), ("Cookie", "sse_token=c"), ("Origin", "https://evil.example")])).cookieHeader == nil)
        #expect(policy.credentials(head([("Host", "h"), ("Cookie", "sse_token=c"), ("Origin", "null")])).cookieHeader == nil)
    }

    @Test("a wildcard --cors-origin does not make an origin allowed for credentials or open publish")
    func wildcard() {
        let any = PublishPolicy(cors: CORSPolicy(origins: ["*"]), cookieName: "sse_token")
        #expect(any.originIsAllowed(head([("Host", "localhost"), ("Origin", "https://x.example")])) == false)
        #expect(any.originIsAllowed(head([("Host", "localhost")])) == nil)
    }
}
