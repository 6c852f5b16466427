import JWTKit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Decides stream and publish access from the request's credentials.
///
/// A stream's token comes from `Authorization: Bearer`, a cookie, or a `token` query
/// parameter, in that order; a publish's from `Authorization` or the cookie only (the HTTP
/// layer passes the cookie only from an allowed `Origin`), never the query. Tokens are
/// verified with jwt-kit against the one configured key, so a token signed with another
/// algorithm or key is refused.
public final class AccessController: Sendable {
    public let configuration: AccessConfiguration
    private let keys: JWTKeyCollection?

    /// Loads the key. Throws a readable error for a PEM that is neither RSA nor P-256.
    public init(configuration: AccessConfiguration) async throws {
        self.configuration = configuration
        switch configuration.tokenKey {
        case nil:
            keys = nil
        case .hmacSecret(let secret):
            // RFC 7518 §3.2: an HS256 key must be at least as long as the hash (256 bits).
            guard secret.utf8.count >= 32 else {
                throw AccessConfigurationError(reason: "the JWT secret must be at least 32 bytes for HS256 (RFC 7518 section 3.2)")
            }
            keys = await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        case .publicKeyPEM(let pem):
            if let rsa = try? Insecure.RSA.PublicKey(pem: pem) {
                keys = await JWTKeyCollection().add(rsa: rsa, digestAlgorithm: .sha256)
            } else if let ecdsa = try? ES256PublicKey(pem: pem) {
                keys = await JWTKeyCollection().add(ecdsa: ecdsa)
            } else {
                throw AccessConfigurationError(reason: "the public key is neither an RSA nor a P-256 (ES256) key in PEM form")
            }
        }
    }

    /// Where a request's credentials were found.
    public struct Credentials: Sendable {
        public var bearer: String?
        public var cookieHeader: String?
        public var queryToken: String?

        public init(authorization: String? = nil, cookieHeader: String? = nil, queryToken: String? = nil) {
            if let authorization, authorization.lowercased().hasPrefix("bearer ") {
                self.bearer = String(Self.trimmed(authorization.dropFirst(7)))
            }
            self.cookieHeader = cookieHeader
            self.queryToken = queryToken
        }

        /// The token from the first source that has one.
        func token(cookieName: String) -> String? {
            if let bearer, !bearer.isEmpty { return bearer }
            if let cookie = cookieHeader.flatMap({ Self.cookie(cookieName, in: $0) }), !cookie.isEmpty { return cookie }
            if let queryToken, !queryToken.isEmpty { return queryToken }
            return nil
        }

        static func cookie(_ name: String, in header: String) -> String? {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, trimmed(parts[0]) == name {
                    return String(trimmed(parts[1]))
                }
            }
            return nil
        }

        private static func trimmed(_ text: Substring) -> Substring {
            var text = text
            while text.first == " " || text.first == "\t" { text.removeFirst() }
            while text.last == " " || text.last == "\t" { text.removeLast() }
            return text
        }
    }

    /// May these credentials stream all of `channels`? A stream is refused whole if any is not granted.
    public func authorizeStream(channels: [String], credentials: Credentials) async -> AccessDecision {
        guard let keys else { return .allowed(expiresAt: nil) }
        guard let token = credentials.token(cookieName: configuration.cookieName) else {
            return .unauthenticated("a token is required: send Authorization: Bearer, the \(configuration.cookieName) cookie, or ?token=")
        }
        switch await verify(token, with: keys) {
        case .failure(let message):
            return .unauthenticated(message)
        case .success(let claims):
            let denied = ChannelGrants.denied(channels, by: claims.sse?.subscribe ?? [])
            guard denied.isEmpty else {
                return .forbidden("token does not grant subscribe on: \(denied.joined(separator: ", "))")
            }
            return .allowed(expiresAt: claims.exp?.value.timeIntervalSince1970)
        }
    }

    /// May these credentials publish on `channel`? Without auth configured, publishing is open
    /// unless `openPublishRefusal` says why this request may not publish openly (the HTTP
    /// layer's verdict on its peer, proxy headers, `Host` and `Origin`); that reason is the 403.
    public func authorizePublish(channel: String, credentials: Credentials, openPublishRefusal: String?) async -> AccessDecision {
        let (presented, keys): (String, JWTKeyCollection)
        switch publishStep(credentials: credentials, openPublishRefusal: openPublishRefusal) {
        case .decided(let decision): return decision
        case .verify(let token, with: let collection): (presented, keys) = (token, collection)
        }
        switch await verify(presented, with: keys) {
        case .failure(let message):
            return .unauthenticated(message)
        case .success(let claims):
            guard ChannelGrants.denied([channel], by: claims.sse?.publish ?? []).isEmpty else {
                return .forbidden("token does not grant publish on: \(channel)")
            }
            return .allowed(expiresAt: nil)
        }
    }

    /// The publish decision when it needs no token verification (open publishing, the publish
    /// key, no credentials at all), so a host can decide it without leaving its thread; nil when
    /// a JWT must be verified (`authorizePublish`). Never differs from `authorizePublish`.
    public func decidePublishNow(credentials: Credentials, openPublishRefusal: String?) -> AccessDecision? {
        if case .decided(let decision) = publishStep(credentials: credentials, openPublishRefusal: openPublishRefusal) { return decision }
        return nil
    }

    /// How far a publish's access is decided without awaiting anything.
    private enum PublishStep {
        case decided(AccessDecision)
        /// The presented token must be verified as a JWT.
        case verify(String, with: JWTKeyCollection)
    }

    private func publishStep(credentials: Credentials, openPublishRefusal: String?) -> PublishStep {
        guard configuration.publishingNeedsCredentials else {
            if let openPublishRefusal { return .decided(.forbidden(openPublishRefusal)) }
            return .decided(.allowed(expiresAt: nil))
        }
        // Never the query token: a link must not be able to publish.
        let cookie = credentials.cookieHeader.flatMap { Credentials.cookie(configuration.cookieName, in: $0) }
        guard let presented = [credentials.bearer, cookie].compactMap({ $0 }).first(where: { !$0.isEmpty }) else {
            return .decided(.unauthenticated("publishing needs a bearer token (a JWT with sse.publish, or the publish key)"))
        }
        if let publishKey = configuration.publishKey, Self.constantTimeEqual(presented, publishKey) {
            return .decided(.allowed(expiresAt: nil))
        }
        guard let keys else { return .decided(.unauthenticated("invalid publish key")) }
        return .verify(presented, with: keys)
    }

    private enum Verification {
        case success(BrokerTokenClaims)
        case failure(String)
    }

    private func verify(_ token: String, with keys: JWTKeyCollection) async -> Verification {
        do {
            return .success(try await keys.verify(token, as: BrokerTokenClaims.self))
        } catch let error as JWTError {
            switch error.errorType {
            case .claimVerificationFailure:
                if error.failedClaim is ExpirationClaim { return .failure("token expired") }
                if error.failedClaim is NotBeforeClaim { return .failure("token not yet valid") }
                return .failure("token claims rejected")
            case .signatureVerificationFailed: return .failure("bad token signature")
            default: return .failure("invalid token: \(error.errorType)")
            }
        } catch {
            return .failure("invalid token")
        }
    }

    /// Compares secrets without leaking where they differ through timing.
    static func constantTimeEqual(_ lhs: String, _ rhs: String) -> Bool {
        let a = Array(lhs.utf8)
        let b = Array(rhs.utf8)
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}

/// A key that cannot be used, with the reason.
public struct AccessConfigurationError: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}
