/// Renders a `ServerSentEvent` as event-stream text, byte for byte as Flask-SSE's
/// `Message.__str__` does.
///
/// `event:T` first when there is a type, one `data:LINE` per line of the data, then `id:I`,
/// then `retry:R`; lines joined by `\n` with no space after the colon, the event ended by
/// `\n\n`. No `\r` is ever written.
public enum EventTextEncoder {
    /// The UTF-8 bytes of the event's text.
    public static func encode(_ event: ServerSentEvent) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(event.data.utf8.count + 32)
        append(event, to: &output)
        return output
    }

    /// Appends the UTF-8 bytes of the event's text to `output`.
    public static func append(_ event: ServerSentEvent, to output: inout [UInt8]) {
        var first = true
        func appendLine(_ field: String, _ value: some Sequence<UInt8>) {
            if !first { output.append(UInt8(ascii: "\n")) }
            first = false
            output.append(contentsOf: field.utf8)
            output.append(UInt8(ascii: ":"))
            output.append(contentsOf: value)
        }
        if let type = event.type { appendLine("event", type.utf8) }
        for line in PythonLineSplitter.lines(event.data) { appendLine("data", line.utf8) }
        if let id = event.id { appendLine("id", id.utf8) }
        if let retry = event.retry { appendLine("retry", retry.utf8) }
        output.append(contentsOf: "\n\n".utf8)
    }

    /// A comment frame (`:TEXT\n\n`), ignored by clients; used for heartbeats.
    ///
    /// Line breaks in `text` are removed so a comment can never become an event.
    public static func comment(_ text: String = "") -> [UInt8] {
        var output: [UInt8] = [UInt8(ascii: ":")]
        output.append(contentsOf: text.utf8.filter { $0 != 0x0A && $0 != 0x0D })
        output.append(contentsOf: "\n\n".utf8)
        return output
    }
}
