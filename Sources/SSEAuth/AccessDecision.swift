/// The outcome of an access check, with a message for the client.
public enum AccessDecision: Sendable, Hashable {
    /// Allowed; `expiresAt` is when the token stops being valid (a stream ends then).
    case allowed(expiresAt: Double?)
    /// 401: no credentials, or credentials that are not valid.
    case unauthenticated(String)
    /// 403: valid credentials that do not grant this.
    case forbidden(String)
}
