import Testing

@testable import SSEEndpoints

@Suite("Router")
struct RouterTests {
    let router = Router(extraRoutes: [
        BrokerRoute(.GET, "/") { _, _ in .decided(BrokerResponse(status: .ok, body: [])) },
        BrokerRoute(.POST, "/demo/task") { _, _ in .decided(BrokerResponse(status: .ok, body: [])) },
    ])

    func name(_ route: Router.Route) -> String {
        switch route {
        case .stream: return "stream"
        case .publish: return "publish"
        case .preflight(let methods): return "preflight \(methods)"
        case .health: return "health"
        case .ready: return "ready"
        case .metrics: return "metrics"
        case .mounted(let route): return "mounted \(route.method.rawValue) \(route.path)"
        case .refuse(let error): return "\(error.status.code) \(error.headers.first { $0.0 == "Allow" }?.1 ?? "")"
        }
    }

    @Test("each path and method to its endpoint; 405 with Allow for a known path; 404 otherwise", arguments: [
        ("GET", "/stream", "stream"), ("HEAD", "/stream", "stream"), ("OPTIONS", "/stream", "preflight GET, HEAD, OPTIONS"),
        ("POST", "/stream", "405 GET, HEAD, OPTIONS"), ("get", "/stream", "405 GET, HEAD, OPTIONS"),
        ("POST", "/publish", "publish"), ("OPTIONS", "/publish", "preflight POST, OPTIONS"), ("GET", "/publish", "405 POST, OPTIONS"),
        ("HEAD", "/publish", "405 POST, OPTIONS"),
        ("GET", "/healthz", "health"), ("HEAD", "/healthz", "health"), ("POST", "/healthz", "405 GET, HEAD"),
        ("GET", "/readyz", "ready"), ("HEAD", "/readyz", "ready"), ("DELETE", "/readyz", "405 GET, HEAD"),
        ("GET", "/metrics", "metrics"), ("HEAD", "/metrics", "405 GET"),
        ("GET", "/", "mounted GET /"), ("HEAD", "/", "404 "), ("POST", "/demo/task", "mounted POST /demo/task"),
        ("GET", "/demo/task", "404 "), ("GET", "/stream/", "404 "), ("GET", "/STREAM", "404 "), ("GET", "", "404 "),
        ("GET", "/nothing", "404 "),
    ])
    func routes(method: String, path: String, expected: String) {
        #expect(name(router.route(method: HTTPRequestMethod(rawValue: method), path: path[...])) == expected)
    }

    @Test("the 404 and 405 messages name the path and the methods")
    func messages() {
        guard case .refuse(let notFound) = router.route(method: .GET, path: "/x y") else { Issue.record("not refused"); return }
        #expect(notFound.message == "no such endpoint: /x y")
        guard case .refuse(let notAllowed) = router.route(method: HTTPRequestMethod(rawValue: "PUT"), path: "/stream") else {
            Issue.record("not refused")
            return
        }
        #expect(notAllowed.status == .methodNotAllowed)
        #expect(notAllowed.message == "method PUT not allowed; use GET, HEAD, OPTIONS")
    }

    @Test("a mounted route never takes a broker path; paths are configurable")
    func mountedNeverShadows() {
        let shadowing = Router(streamPath: "/events", publishPath: "/send", extraRoutes: [
            BrokerRoute(.POST, "/healthz") { _, _ in .decided(BrokerResponse(status: .ok, body: [])) },
            BrokerRoute(.GET, "/events") { _, _ in .decided(BrokerResponse(status: .ok, body: [])) },
        ])
        #expect(name(shadowing.route(method: .POST, path: "/healthz")) == "405 GET, HEAD")
        #expect(name(shadowing.route(method: .GET, path: "/events")) == "stream")
        #expect(name(shadowing.route(method: .POST, path: "/send")) == "publish")
        #expect(name(shadowing.route(method: .GET, path: "/stream")) == "404 ")
    }

    @Test("a request's path is its target before the first ?, and its query is parsed once from the rest")
    func requestTarget() {
        let request = BrokerRequest(method: .GET, target: "/stream?channel=a&channel=b?c", headers: RequestHeaders([]), peer: nil)
        #expect(request.path == "/stream")
        #expect(request.query.all("channel") == ["a", "b?c"])
        let bare = BrokerRequest(method: .GET, target: "?x=1", headers: RequestHeaders([]), peer: nil)
        #expect(bare.path == "")
        #expect(bare.query.first("x") == "1")
    }
}
