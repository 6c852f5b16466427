/// A stream request the endpoints allowed: what the host opens.
package struct StreamOpening: Sendable {
    /// Validated and distinct, in the order asked for.
    package let channels: [String]
    /// `Last-Event-ID`, else `?lastEventId=`; nil when absent or empty.
    package let resumeFrom: String?
    /// When the token that allowed it expires (Unix seconds); the stream ends then.
    package let expiresAt: Double?
    /// CORS headers for the stream's head; empty when CORS is off or the origin sent none.
    package let corsHeaders: [(String, String)]
    /// A `HEAD` request: the host answers with a stream's head and no body, and opens nothing.
    package let headOnly: Bool
}

/// What the endpoints decide for `GET /stream`: open a stream, or answer instead.
package enum StreamAnswer: Sendable {
    case open(StreamOpening)
    case respond(BrokerResponse)
}
