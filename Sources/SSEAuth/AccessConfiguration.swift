/// How the broker decides who may stream and publish. Auth is off unless a JWT key or a
/// publish key is configured (Flask-SSE parity).
public struct AccessConfiguration: Sendable {
    /// A verification key for stream and publish tokens.
    public enum TokenKey: Sendable, Hashable {
        /// HS256 with a shared secret.
        case hmacSecret(String)
        /// RS256 or ES256 with a PEM public key (RSA or P-256).
        case publicKeyPEM(String)
    }

    public var tokenKey: TokenKey?
    /// A static bearer token that may publish on every channel.
    public var publishKey: String?
    /// Cookie that may carry the token (EventSource cannot set headers).
    public var cookieName: String
    /// Whether `POST /publish` is open without credentials although the node listens beyond loopback.
    public var allowOpenPublish: Bool

    public init(tokenKey: TokenKey? = nil, publishKey: String? = nil, cookieName: String = "sse_token", allowOpenPublish: Bool = false) {
        self.tokenKey = tokenKey
        self.publishKey = publishKey
        self.cookieName = cookieName
        self.allowOpenPublish = allowOpenPublish
    }

    /// Whether streams need a token.
    public var streamsNeedToken: Bool { tokenKey != nil }
    /// Whether publishing needs credentials (a token or the publish key).
    public var publishingNeedsCredentials: Bool { tokenKey != nil || publishKey != nil }
}
