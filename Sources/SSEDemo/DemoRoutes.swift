import SSEEndpoints
import SSERedis

/// The demo mounted on a node: `GET /` (and `HEAD`) serves the page, `POST /demo/task` starts a
/// background task (publish authorization as for `POST /publish` on `demo.task`, 429 beyond
/// the running limit), and ``DemoPublisher`` publishes the live data while the node serves.
package struct DemoRoutes: BrokerExtension {
    package let publisher: DemoPublisher

    /// Reads the page now, so an install without its resource bundle stops when the demo is
    /// mounted (SwiftPM's `Bundle.module` traps), never on a request.
    package init(publisher: DemoPublisher) {
        self.publisher = publisher
        _ = DemoPage.html
    }

    /// The demo as a node mounts it, with the node's own publisher: `nodeName` names the node
    /// in its status events, `maxTasks` bounds `POST /demo/task`, `redis` is where the clock's
    /// per-second lock is taken.
    package static func factory(redis: RedisConfiguration, nodeName: String, maxTasks: Int) -> BrokerExtensionFactory {
        { node in
            DemoRoutes(
                publisher: DemoPublisher(
                    publisher: node.publisher,
                    redis: redis,
                    nodeName: nodeName,
                    maxTasks: maxTasks,
                    streams: node.streamCount,
                    logger: node.logger
                )
            )
        }
    }

    package var routes: [BrokerRoute] {
        let page: @Sendable (BrokerRequest, BrokerEndpoints) -> AccessGated<BrokerResponse> = { _, _ in
            .decided(BrokerResponse(status: .ok, headers: [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-cache")], body: DemoPage.html))
        }
        let demo = publisher
        return [
            BrokerRoute(.GET, "/", respond: page),
            BrokerRoute(.HEAD, "/", respond: page),
            BrokerRoute(.POST, "/demo/task") { request, endpoints in
                let cors = endpoints.corsHeaders(request)
                return endpoints.whenPublishAllowed(request, channel: "demo.task") {
                    guard let task = demo.startTask() else {
                        let busy = HTTPError(.tooManyRequests, "\(demo.maxTasks) demo tasks are already running; retry shortly", headers: [("Retry-After", "5")])
                        return .error(busy, extraHeaders: cors)
                    }
                    return .json(.ok, ["task": .string(task)], extraHeaders: cors)
                }
            },
        ]
    }

    package func run() async {
        await publisher.run()
    }
}
