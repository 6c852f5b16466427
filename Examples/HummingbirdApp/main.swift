// An app with its own routes plus the mounted broker: the Swift counterpart of registering
// Flask-SSE's blueprint. Built only with the package trait `Hummingbird`:
//
//     REDIS_URL=redis://127.0.0.1:6379/0 swift run --traits Hummingbird hummingbird-example
//
// then open http://127.0.0.1:8080/ (or `curl -N 'http://127.0.0.1:8080/stream?channel=news'`
// and `curl -X POST http://127.0.0.1:8080/announce -d 'hello'`).
#if Hummingbird
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SSEAuth
import SSEHummingbird
import SSERedis
import SSEWire

/// The app's request context: it knows the peer, so the broker can tell a loopback publisher
/// (open publishing with no credentials configured), and it carries what the app's own
/// authentication granted.
struct AppContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?
    /// Set by `DemoAuthMiddleware`.
    var user: String?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

/// Stands in for the app's real authentication: `X-User: NAME` signs in as NAME.
struct DemoAuthMiddleware: RouterMiddleware {
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        var context = context
        context.user = request.headers[HTTPField.Name("X-User")!]
        return try await next(request, context)
    }
}

var logger = Logger(label: "hummingbird-example")
logger.logLevel = .info
let environment = ProcessInfo.processInfo.environment
let redis = try RedisConfiguration(url: environment["REDIS_URL"] ?? "redis://127.0.0.1:6379/0")
let port = Int(environment["PORT"] ?? "") ?? 8080

let broker = try await SSEBroker(configuration: .init(redis: redis), logger: logger)
let router = Router(context: AppContext.self)
router.add(middleware: DemoAuthMiddleware())

// The app's own routes.
router.get("/") { _, _ in
    Response(
        status: .ok,
        headers: [.contentType: "text/html; charset=utf-8"],
        body: .init(byteBuffer: ByteBuffer(string: """
            <!doctype html><title>Hummingbird + sse-broker</title>
            <h1>news</h1><ul id="news"></ul>
            <form onsubmit="fetch('/announce', {method: 'POST', body: this.text.value}); this.reset(); return false">
            <input name="text" placeholder="announce something"><button>send</button></form>
            <script>
            const list = document.getElementById('news');
            new EventSource('/stream?channel=news').onmessage = (e) => {
                const item = document.createElement('li'); item.textContent = e.data; list.prepend(item);
            };
            </script>
            """))
    )
}
router.post("/announce") { request, _ in
    // The app publishes from its own route, with a history id, as `sse.publish` does in Flask.
    var request = request
    let text = String(buffer: try await request.collectBody(upTo: 4096))
    let receipt = try await broker.publisher.publish(data: .string(text), channel: "news")
    return "published \(receipt.id ?? "") to \(receipt.receivers) node(s)\n"
}

// The broker, mounted: GET /stream and POST /publish. A signed-in user may stream and publish
// their own channels (`user.NAME.*`); everyone else gets the broker's rules (public streams,
// publishing from loopback only).
broker.addRoutes(to: router) { _, context in
    context.user.map { user in
        SSEBroker.Grants(ChannelGrants(subscribe: ["news", "user.\(user).*"], publish: ["user.\(user).*"]))
    }
}

let app = Application(
    router: router,
    configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "hummingbird-example"),
    services: [broker],
    logger: logger
)
try await app.runService()
#else
print(
    """
    hummingbird-example needs the package trait Hummingbird, which also builds Hummingbird 2:
        swift run --traits Hummingbird hummingbird-example
    """
)
#endif
