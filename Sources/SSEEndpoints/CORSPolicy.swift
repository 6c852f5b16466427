/// Cross-origin access for pages on other origins (`--cors-origin`, repeatable, or `*`).
///
/// With explicit origins the matching origin is echoed with `Access-Control-Allow-Credentials`,
/// so cookie auth works cross-origin; with `*` any origin is allowed but never with credentials,
/// as the Fetch standard requires.
package struct CORSPolicy: Sendable {
    package let allowsAnyOrigin: Bool
    package let origins: Set<String>

    package init(origins: [String]) {
        allowsAnyOrigin = origins.contains("*")
        self.origins = Set(origins.filter { $0 != "*" })
    }

    package var isEnabled: Bool { allowsAnyOrigin || !origins.isEmpty }

    /// Headers for a response to a request from `origin`.
    package func headers(origin: String?) -> [(String, String)] {
        guard isEnabled, let origin else { return [] }
        if origins.contains(origin) {
            return [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true"), ("Vary", "Origin")]
        }
        if allowsAnyOrigin { return [("Access-Control-Allow-Origin", "*")] }
        return [("Vary", "Origin")]
    }

    /// Headers for a preflight (`OPTIONS`) from `origin` for a resource allowing `methods`.
    package func preflightHeaders(origin: String?, methods: String) -> [(String, String)] {
        let allow = headers(origin: origin)
        guard allow.contains(where: { $0.0 == "Access-Control-Allow-Origin" }) else { return allow }
        return allow + [
            ("Access-Control-Allow-Methods", methods),
            ("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID"),
            ("Access-Control-Max-Age", "600"),
        ]
    }
}
