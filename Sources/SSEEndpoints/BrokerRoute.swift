/// A route served beside the broker's own endpoints (the demo's page and task endpoint):
/// one method on one exact path.
package struct BrokerRoute: Sendable {
    package let method: HTTPRequestMethod
    package let path: String
    /// Answers a request; the body, if any, is ignored (up to `--max-payload`).
    package let respond: @Sendable (BrokerRequest, BrokerEndpoints) -> AccessGated<BrokerResponse>

    package init(
        _ method: HTTPRequestMethod,
        _ path: String,
        respond: @escaping @Sendable (BrokerRequest, BrokerEndpoints) -> AccessGated<BrokerResponse>
    ) {
        self.method = method
        self.path = path
        self.respond = respond
    }
}
