/// Which endpoint answers a request, from its path and method alone: no I/O, no validation.
///
/// A known path asked with a method it does not serve gets 405 with `Allow`; `OPTIONS` on the
/// stream and publish paths is a CORS preflight; `HEAD` is served wherever `GET` is, except
/// `/metrics`. Extension routes match exactly after the broker's own paths; anything else is 404.
package struct Router: Sendable {
    /// An endpoint of the broker.
    package enum Route: Sendable {
        case stream
        case publish
        /// A CORS preflight for a resource allowing `methods`.
        case preflight(methods: String)
        case health
        case ready
        case metrics
        case mounted(BrokerRoute)
        case refuse(HTTPError)
    }

    package let streamPath: String
    package let publishPath: String
    private let extraRoutes: [BrokerRoute]

    package init(streamPath: String = "/stream", publishPath: String = "/publish", extraRoutes: [BrokerRoute] = []) {
        self.streamPath = streamPath
        self.publishPath = publishPath
        self.extraRoutes = extraRoutes
    }

    package func route(method: HTTPRequestMethod, path: Substring) -> Route {
        switch (path, method) {
        case (streamPath[...], .GET), (streamPath[...], .HEAD):
            return .stream
        case (streamPath[...], .OPTIONS):
            return .preflight(methods: "GET, HEAD, OPTIONS")
        case (streamPath[...], _):
            return .refuse(.methodNotAllowed(method, allowed: [.GET, .HEAD, .OPTIONS]))
        case (publishPath[...], .POST):
            return .publish
        case (publishPath[...], .OPTIONS):
            return .preflight(methods: "POST, OPTIONS")
        case (publishPath[...], _):
            return .refuse(.methodNotAllowed(method, allowed: [.POST, .OPTIONS]))
        case ("/healthz", .GET), ("/healthz", .HEAD):
            return .health
        case ("/readyz", .GET), ("/readyz", .HEAD):
            return .ready
        case ("/healthz", _), ("/readyz", _):
            return .refuse(.methodNotAllowed(method, allowed: [.GET, .HEAD]))
        case ("/metrics", .GET):
            return .metrics
        case ("/metrics", _):
            return .refuse(.methodNotAllowed(method, allowed: [.GET]))
        default:
            if let route = extraRoutes.first(where: { $0.method == method && $0.path.utf8.elementsEqual(path.utf8) }) {
                return .mounted(route)
            }
            return .refuse(HTTPError(.notFound, "no such endpoint: \(path)"))
        }
    }
}
