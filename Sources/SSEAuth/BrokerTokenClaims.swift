import JWTKit

/// The claims the broker reads from a token: `exp` and `nbf` (both optional, both enforced
/// when present) and the `sse` grants.
public struct BrokerTokenClaims: JWTPayload, Sendable {
    public var exp: ExpirationClaim?
    public var nbf: NotBeforeClaim?
    public var sse: ChannelGrants?

    public init(exp: ExpirationClaim? = nil, nbf: NotBeforeClaim? = nil, sse: ChannelGrants?) {
        self.exp = exp
        self.nbf = nbf
        self.sse = sse
    }

    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp?.verifyNotExpired()
        try nbf?.verifyNotBefore()
    }
}
