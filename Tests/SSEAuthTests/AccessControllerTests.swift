import Foundation
import JWTKit
import SSEAuth
import Testing

/// Mints tokens the way an application would, with jwt-kit.
struct TokenMint {
    static let secret = "test-secret-0123456789-abcdefghijklmnop"

    static func hmac(_ claims: BrokerTokenClaims, secret: String = TokenMint.secret) async throws -> String {
        try await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256).sign(claims)
    }

    static func rsaPrivatePEM() throws -> String {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/rs256-test-private", withExtension: "pem"))
        return try String(contentsOf: url, encoding: .utf8)
    }

    static func rsaPublicPEM() throws -> String {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/rs256-test-public", withExtension: "pem"))
        return try String(contentsOf: url, encoding: .utf8)
    }

    static func rsa(_ claims: BrokerTokenClaims) async throws -> String {
        let key = try Insecure.RSA.PrivateKey(pem: try rsaPrivatePEM())
        return try await JWTKeyCollection().add(rsa: key, digestAlgorithm: .sha256).sign(claims)
    }

    static func claims(subscribe: [String] = [], publish: [String] = [], expiresIn: TimeInterval? = 60, notBeforeIn: TimeInterval? = nil) -> BrokerTokenClaims {
        BrokerTokenClaims(
            exp: expiresIn.map { ExpirationClaim(value: Date().addingTimeInterval($0)) },
            nbf: notBeforeIn.map { NotBeforeClaim(value: Date().addingTimeInterval($0)) },
            sse: ChannelGrants(subscribe: subscribe, publish: publish)
        )
    }
}

@Suite("Access control: the token matrix")
struct AccessControllerTests {
    static func hmacController(publishKey: String? = nil) async throws -> AccessController {
        try await AccessController(
            configuration: AccessConfiguration(tokenKey: .hmacSecret(TokenMint.secret), publishKey: publishKey)
        )
    }

    @Test("streams: valid, expired, not yet valid, bad signature, not granted, glob, none")
    func streamMatrix() async throws {
        let access = try await Self.hmacController()
        func decide(_ token: String?, _ channels: [String]) async -> AccessDecision {
            await access.authorizeStream(channels: channels, credentials: .init(authorization: token.map { "Bearer \($0)" }))
        }
        let valid = try await TokenMint.hmac(TokenMint.claims(subscribe: ["news", "user.42.*"]))
        guard case .allowed(let expiry?) = await decide(valid, ["news"]) else { Issue.record("valid token refused"); return }
        #expect(abs(expiry - Date().addingTimeInterval(60).timeIntervalSince1970) < 5)
        #expect(await decide(valid, ["user.42.inbox", "user.42.a.b"]) == .allowed(expiresAt: expiry))
        #expect(await decide(valid, ["news", "secret"]) == .forbidden("token does not grant subscribe on: secret"))
        #expect(await decide(valid, ["user.43.inbox"]) == .forbidden("token does not grant subscribe on: user.43.inbox"))
        #expect(await decide(try await TokenMint.hmac(TokenMint.claims(subscribe: ["news"], expiresIn: -10)), ["news"]) == .unauthenticated("token expired"))
        #expect(await decide(try await TokenMint.hmac(TokenMint.claims(subscribe: ["news"], notBeforeIn: 60)), ["news"]) == .unauthenticated("token not yet valid"))
        #expect(await decide(try await TokenMint.hmac(TokenMint.claims(subscribe: ["news"]), secret: "another-secret-xxxxxxxxxxxxxxxxxxxxxxxxxx"), ["news"]) == .unauthenticated("bad token signature"))
        #expect(await decide(try await TokenMint.rsa(TokenMint.claims(subscribe: ["news"])), ["news"]).isUnauthenticated)
        #expect(await decide("not.a.jwt", ["news"]).isUnauthenticated)
        #expect(await decide(Self.unsignedToken(subscribe: ["news"]), ["news"]).isUnauthenticated)
        #expect(await decide(nil, ["news"]).isUnauthenticated)
        let noClaim = try await TokenMint.hmac(BrokerTokenClaims(sse: nil))
        #expect(await decide(noClaim, ["news"]) == .forbidden("token does not grant subscribe on: news"))
    }

    @Test("the token is taken from the Authorization header, a cookie, or the token query parameter")
    func tokenSources() async throws {
        let access = try await Self.hmacController()
        let token = try await TokenMint.hmac(TokenMint.claims(subscribe: ["news"]))
        for credentials in [
            AccessController.Credentials(authorization: "Bearer \(token)"),
            AccessController.Credentials(authorization: "bearer  \(token) "),
            AccessController.Credentials(cookieHeader: "theme=dark; sse_token=\(token); other=1"),
            AccessController.Credentials(queryToken: token),
        ] {
            #expect(await access.authorizeStream(channels: ["news"], credentials: credentials).isAllowed)
        }
        #expect(await access.authorizeStream(channels: ["news"], credentials: .init(cookieHeader: "sse_tokenx=\(token)")).isUnauthenticated)
        #expect(await access.authorizeStream(channels: ["news"], credentials: .init(authorization: "Basic \(token)")).isUnauthenticated)
    }

    @Test("publishing: sse.publish grants, globs, the publish key, and refusals")
    func publishMatrix() async throws {
        let access = try await Self.hmacController(publishKey: "static-publish-key")
        func decide(_ bearer: String?, _ channel: String) async -> AccessDecision {
            await access.authorizePublish(channel: channel, credentials: .init(authorization: bearer.map { "Bearer \($0)" }), openPublishRefusal: nil)
        }
        let publisher = try await TokenMint.hmac(TokenMint.claims(subscribe: ["news"], publish: ["news", "jobs.*"]))
        #expect(await decide(publisher, "news").isAllowed)
        #expect(await decide(publisher, "jobs.17").isAllowed)
        #expect(await decide(publisher, "other") == .forbidden("token does not grant publish on: other"))
        let subscriberOnly = try await TokenMint.hmac(TokenMint.claims(subscribe: ["news"]))
        #expect(await decide(subscriberOnly, "news") == .forbidden("token does not grant publish on: news"))
        #expect(await decide("static-publish-key", "anything").isAllowed)
        #expect(await decide("static-publish-kez", "anything").isUnauthenticated)
        #expect(await decide(try await TokenMint.hmac(TokenMint.claims(publish: ["news"], expiresIn: -1)), "news") == .unauthenticated("token expired"))
        #expect(await decide(nil, "news").isUnauthenticated)
        // The cookie (passed by the HTTP layer only from an allowed Origin) counts; the query token never does.
        #expect(await access.authorizePublish(channel: "news", credentials: .init(cookieHeader: "sse_token=\(publisher)"), openPublishRefusal: nil).isAllowed)
        #expect(await access.authorizePublish(channel: "news", credentials: .init(queryToken: publisher), openPublishRefusal: nil).isUnauthenticated)
        #expect(await access.authorizePublish(channel: "news", credentials: .init(queryToken: "static-publish-key"), openPublishRefusal: nil).isUnauthenticated)
    }

    @Test("RS256 and ES256 public keys verify their tokens and refuse HS256 ones")
    func publicKeys() async throws {
        let rsa = try await AccessController(configuration: .init(tokenKey: .publicKeyPEM(try TokenMint.rsaPublicPEM())))
        let claims = TokenMint.claims(subscribe: ["news"])
        #expect(await rsa.authorizeStream(channels: ["news"], credentials: .init(queryToken: try await TokenMint.rsa(claims))).isAllowed)
        #expect(await rsa.authorizeStream(channels: ["news"], credentials: .init(queryToken: try await TokenMint.hmac(claims))).isUnauthenticated)

        let ecdsaKey = ES256PrivateKey()
        let ecdsa = try await AccessController(configuration: .init(tokenKey: .publicKeyPEM(ecdsaKey.publicKey.pemRepresentation)))
        let ecdsaToken = try await JWTKeyCollection().add(ecdsa: ecdsaKey).sign(claims)
        #expect(await ecdsa.authorizeStream(channels: ["news"], credentials: .init(queryToken: ecdsaToken)).isAllowed)
        #expect(await ecdsa.authorizeStream(channels: ["news"], credentials: .init(queryToken: try await TokenMint.rsa(claims))).isUnauthenticated)
        await #expect(throws: AccessConfigurationError.self) {
            try await AccessController(configuration: .init(tokenKey: .publicKeyPEM("not a key")))
        }
        await #expect(throws: AccessConfigurationError.self) {
            try await AccessController(configuration: .init(tokenKey: .hmacSecret("too-short")))
        }
    }

    @Test("without auth: streams open; publishing open unless the HTTP layer says why not (its reason is the 403)")
    func noAuth() async throws {
        let open = try await AccessController(configuration: .init())
        #expect(await open.authorizeStream(channels: ["x"], credentials: .init()).isAllowed)
        #expect(await open.authorizePublish(channel: "x", credentials: .init(), openPublishRefusal: nil).isAllowed)
        #expect(await open.authorizePublish(channel: "x", credentials: .init(), openPublishRefusal: "not loopback") == .forbidden("not loopback"))
    }

    /// `alg: none` with no signature: must never pass.
    static func unsignedToken(subscribe: [String]) -> String {
        func base64URL(_ text: String) -> String {
            Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        let channels = subscribe.map { "\"\($0)\"" }.joined(separator: ",")
        return base64URL(#"{"alg":"none","typ":"JWT"}"#) + "." + base64URL(#"{"sse":{"subscribe":[\#(channels)]}}"#) + "."
    }
}

@Suite("Channel patterns")
struct ChannelPatternTests {
    @Test("globs", arguments: [
        ("news", "news", true), ("news", "news2", false), ("user.42.*", "user.42.inbox", true),
        ("user.42.*", "user.42.", true), ("user.42.*", "user.421", false), ("*", "anything", true),
        ("*.log", "app.log", true), ("*.log", "app.logs", false), ("a*b*c", "aXXbYYc", true), ("a*b*c", "aXXc", false),
        ("a*a", "a", false), ("a*a", "aa", true),
    ])
    func globs(_ pattern: String, _ channel: String, _ expected: Bool) {
        #expect(ChannelPattern(pattern).matches(channel) == expected)
    }
}

extension AccessDecision {
    var isAllowed: Bool {
        if case .allowed = self { return true }
        return false
    }

    var isUnauthenticated: Bool {
        if case .unauthenticated = self { return true }
        return false
    }
}

@Suite("Grants a host supplies")
struct SuppliedGrantsTests {
    @Test("a stream is allowed only when every channel is granted; globs as in tokens")
    func streams() {
        let grants = ChannelGrants(subscribe: ["news", "user.42.*"], publish: ["news"])
        #expect(grants.decideStream(channels: ["news", "user.42.inbox"], expiresAt: 5) == .allowed(expiresAt: 5))
        #expect(grants.decideStream(channels: ["news", "user.43.inbox"]) == .forbidden("not granted subscribe on: user.43.inbox"))
        #expect(ChannelGrants().decideStream(channels: ["news"]) == .forbidden("not granted subscribe on: news"))
    }

    @Test("publishing needs a publish grant, a subscribe grant is not enough")
    func publishing() {
        let grants = ChannelGrants(subscribe: ["news", "chat"], publish: ["news"])
        #expect(grants.decidePublish(channel: "news") == .allowed(expiresAt: nil))
        #expect(grants.decidePublish(channel: "chat") == .forbidden("not granted publish on: chat"))
    }
}
