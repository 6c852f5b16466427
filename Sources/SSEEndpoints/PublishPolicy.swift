import NIOCore
import SSEAuth

/// Who may publish, decided from the request head and the connection's peer (item 8 of the
/// hardening issue), before any body is read.
///
/// - Credentials come from `Authorization` only, plus the token cookie when the request's
///   `Origin` is allowed (an explicit `--cors-origin`, or the node's own origin, i.e. `Origin`
///   naming the `Host` the request was sent to): a cross-site page cannot publish with a
///   logged-in browser's cookie. `?token=` never authorizes a publish.
/// - Open publish (no auth configured) is for a loopback peer that is not a proxy's
///   forwarding: a request with `Forwarded`, `X-Forwarded-For`, `X-Forwarded-Host` or
///   `X-Real-IP`, a `Host` that is not a loopback name (DNS rebinding), or an `Origin` not
///   allowed (a cross-site page's `fetch` or form) is refused.
package struct PublishPolicy: Sendable {
    package let cors: CORSPolicy
    package let cookieName: String

    package init(cors: CORSPolicy, cookieName: String) {
        self.cors = cors
        self.cookieName = cookieName
    }

    package static let proxyHeaders = ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip"]

    /// The credentials a publish may use.
    package func credentials(_ head: BrokerRequest) -> AccessController.Credentials {
        let cookies = originIsAllowed(head) == true ? head.headers[canonicalForm: "cookie"].joined(separator: "; ") : nil
        return AccessController.Credentials(authorization: head.headers.first(name: "authorization"), cookieHeader: cookies, queryToken: nil)
    }

    /// Why this request may not publish without credentials; nil when it may (from a loopback
    /// peer, or from anywhere with `--allow-open-publish`).
    package func openPublishRefusal(_ head: BrokerRequest, allowAnyPeer: Bool) -> String? {
        if originIsAllowed(head) == false {
            return "publishing from origin \(head.headers.first(name: "origin") ?? "") is not allowed (see --cors-origin)"
        }
        if allowAnyPeer { return nil }
        guard let peer = head.peer, Self.isLoopback(peer) else {
            return "publishing without credentials is open only to loopback clients; configure --jwt-secret, --jwt-public-key or --publish-key, or pass --allow-open-publish"
        }
        if let header = Self.proxyHeaders.first(where: { head.headers.contains(name: $0) }) {
            return "publishing without credentials is not open to proxied requests (\(header) header)"
        }
        let hosts = head.headers[canonicalForm: "host"]
        guard hosts.count == 1, let host = hosts.first, Self.isLoopbackName(String(host)) else {
            return "publishing without credentials needs a loopback Host (localhost, 127.x.x.x or [::1])"
        }
        return nil
    }

    /// Whether the request's `Origin` is allowed to use credentials and open publish: nil when
    /// it has none (not a browser's cross-origin or form request).
    package func originIsAllowed(_ head: BrokerRequest) -> Bool? {
        let origins = head.headers[canonicalForm: "origin"]
        guard let first = origins.first else { return nil }
        guard origins.count == 1 else { return false }
        let origin = String(first)
        if cors.origins.contains(origin) { return true }
        // The node's own pages: a same-origin POST carries Origin too. Its host is the Host the
        // browser sent, so a rebound name is still refused by the loopback Host rule above.
        let hosts = head.headers[canonicalForm: "host"]
        guard hosts.count == 1, let host = hosts.first else { return false }
        let lowered = origin.lowercased()
        let hostLowered = host.lowercased()
        return lowered == "http://" + hostLowered || lowered == "https://" + hostLowered
    }

    /// Whether `address` is a loopback peer (127.0.0.0/8, ::1, or ::ffff:127.x.x.x).
    package static func isLoopback(_ address: SocketAddress) -> Bool {
        switch address {
        case .v4(let v4):
            return UInt32(bigEndian: v4.address.sin_addr.s_addr) >> 24 == 127
        case .v6(let v6):
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            if bytes == [UInt8](repeating: 0, count: 15) + [1] { return true }
            return bytes.prefix(10).allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF && bytes[12] == 127
        case .unixDomainSocket:
            return false
        }
    }

    /// Whether a `Host` header names a loopback address: `localhost`, a dotted 127.x.x.x or
    /// `[::1]`, each with an optional port.
    package static func isLoopbackName(_ host: String) -> Bool {
        var name = Substring(host.lowercased())
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return false }
            let rest = name[name.index(after: close)...]
            guard rest.isEmpty || isPort(rest.dropFirst()) && rest.first == ":" else { return false }
            return name[name.index(after: name.startIndex)..<close] == "::1"
        }
        if let colon = name.lastIndex(of: ":") {
            guard isPort(name[name.index(after: colon)...]) else { return false }
            name = name[..<colon]
        }
        if name == "localhost" { return true }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCIIDigit) && (Int(part) ?? 256) <= 255
        }
    }

    private static func isPort(_ text: Substring) -> Bool {
        !text.isEmpty && text.count <= 5 && text.allSatisfy(\.isASCIIDigit) && (Int(text) ?? 65536) <= 65535
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
