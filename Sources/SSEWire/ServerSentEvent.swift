/// One event as it goes on the wire: the fields of the WHATWG `text/event-stream` format.
///
/// Field values are already rendered as text (Flask-SSE formats them with Python's `str()`),
/// and never contain what would break framing: the initializer leaves out an `event` or `id`
/// with CR, LF or NUL and a `retry` that is not all ASCII digits (CONTRACT.md section 3).
public struct ServerSentEvent: Sendable, Hashable {
    /// The `event:` field, if any.
    public let type: String?
    /// The text framed as `data:` lines, split as Python's `str.splitlines()` does.
    public let data: String
    /// The `id:` field, if any.
    public let id: String?
    /// The `retry:` field (milliseconds), if any.
    public let retry: String?

    /// Creates an event, dropping fields that could forge other fields.
    public init(data: String, type: String? = nil, id: String? = nil, retry: String? = nil) {
        self.data = data
        self.type = type.flatMap { Self.isSafeFieldValue($0) && !$0.isEmpty ? $0 : nil }
        self.id = id.flatMap { Self.isSafeFieldValue($0) && !$0.isEmpty ? $0 : nil }
        self.retry = retry.flatMap { Self.isDigits($0) ? $0 : nil }
    }

    /// A field value is safe when it has no CR, LF or NUL (WHATWG SSE: those end a line or,
    /// for `id`, make the browser ignore the field).
    static func isSafeFieldValue(_ value: String) -> Bool {
        !value.utf8.contains { $0 == 0x0A || $0 == 0x0D || $0 == 0x00 }
    }

    static func isDigits(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }
}
