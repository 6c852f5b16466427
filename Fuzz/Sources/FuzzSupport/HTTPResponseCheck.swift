/// What a server's output must look like: a sequence of well-formed HTTP/1.x responses.
///
/// Each response has a status line and `Name: value` header lines with no bare CR or LF, one
/// framing (`Content-Length` that matches its body, or chunked with sizes that match, or, for
/// an HTTP/1.0 stream, the rest of the output), and nothing follows a `Connection: close`
/// response. Event-stream bodies are checked as event text (no CR, known fields only).
public enum HTTPResponseCheck {
    /// Checks `output` and returns the status codes of the responses in it.
    @discardableResult
    public static func check(_ output: [UInt8]) -> [Int] {
        var statuses: [Int] = []
        var position = 0
        var closed = false
        while position < output.count {
            FuzzCheck.require(!closed, "bytes after a Connection: close response, in \(FuzzCheck.describe(output))")
            guard let headEnd = find([13, 10, 13, 10], in: output, from: position) else {
                FuzzCheck.require(false, "incomplete response head: \(FuzzCheck.describe(output[position...]))")
                return statuses
            }
            let lines = split(output[position..<headEnd])
            position = headEnd + 4
            guard let statusLine = lines.first else { return statuses }
            let status = parseStatusLine(statusLine)
            statuses.append(status)
            var contentLength: Int?
            var chunked = false
            var eventStream = false
            var headerNames: [String] = []
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex else {
                    FuzzCheck.require(false, "header line without a name: \(FuzzCheck.describe(line))")
                    return statuses
                }
                let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
                let value = String(decoding: line[line.index(after: colon)...], as: UTF8.self).trimmingSpaces()
                FuzzCheck.require(name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "bad header name \(name.debugDescription)")
                headerNames.append(name)
                switch name {
                case "content-length":
                    FuzzCheck.require(contentLength == nil, "two Content-Length headers")
                    contentLength = Int(value)
                    FuzzCheck.require(contentLength.map { $0 >= 0 } ?? false, "bad Content-Length \(value.debugDescription)")
                case "transfer-encoding":
                    chunked = value.lowercased() == "chunked"
                case "connection":
                    if value.lowercased().contains("close") { closed = true }
                case "content-type":
                    eventStream = value.hasPrefix("text/event-stream")
                default:
                    break
                }
            }
            FuzzCheck.require(!(chunked && contentLength != nil), "both chunked and Content-Length")
            if status < 200 || status == 204 || status == 304 { continue }
            // A HEAD response declares a body it does not send: the next response follows at once.
            if output[position...].starts(with: "HTTP/1.".utf8) || (position == output.count && (contentLength ?? 0) > 0) { continue }
            if let contentLength {
                FuzzCheck.require(output.count - position >= contentLength, "body shorter than Content-Length \(contentLength)")
                position += contentLength
            } else if chunked {
                var body: [UInt8] = []
                var ended = false
                while position < output.count {
                    guard let sizeEnd = find([13, 10], in: output, from: position),
                        let size = Int(String(decoding: output[position..<sizeEnd], as: UTF8.self), radix: 16), size >= 0
                    else {
                        FuzzCheck.require(false, "bad chunk size line: \(FuzzCheck.describe(output[position...]))")
                        return statuses
                    }
                    let dataStart = sizeEnd + 2
                    FuzzCheck.require(output.count - dataStart >= size + 2, "chunk shorter than its size \(size)")
                    FuzzCheck.require(output[dataStart + size] == 13 && output[dataStart + size + 1] == 10, "chunk not followed by CRLF")
                    body.append(contentsOf: output[dataStart..<dataStart + size])
                    position = dataStart + size + 2
                    if size == 0 {
                        ended = true
                        break
                    }
                }
                if eventStream { checkEventStream(body) }
                if !ended { closed = true }  // a stream cut off when the connection closed
            } else {
                FuzzCheck.require(eventStream, "a response without framing that is not a stream (status \(status))")
                checkEventStream(Array(output[position...]))
                position = output.count
            }
        }
        return statuses
    }

    /// The status code of `HTTP/1.x NNN Reason`.
    static func parseStatusLine(_ line: ArraySlice<UInt8>) -> Int {
        let text = String(decoding: line, as: UTF8.self)
        FuzzCheck.require(text.hasPrefix("HTTP/1.1 ") || text.hasPrefix("HTTP/1.0 "), "bad status line \(text.debugDescription)")
        let code = Int(text.dropFirst(9).prefix(3)) ?? 0
        FuzzCheck.require((100...599).contains(code), "bad status code in \(text.debugDescription)")
        return code
    }

    /// Event text as a stream writes it: no CR, and every line a known field or a comment.
    public static func checkEventStream(_ body: [UInt8]) {
        FuzzCheck.require(!body.contains(13), "CR in an event stream")
        for line in body.split(separator: 10) {
            let known = [":", "event:", "data:", "id:", "retry:"].contains { line.starts(with: $0.utf8) }
            FuzzCheck.require(known, "unexpected line in an event stream: \(FuzzCheck.describe(line))")
        }
    }

    /// Lines separated by CRLF; a bare CR or LF inside a line breaks the head.
    static func split(_ head: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var start = head.startIndex
        var index = head.startIndex
        while index < head.endIndex {
            if head[index] == 13, index + 1 < head.endIndex, head[index + 1] == 10 {
                lines.append(head[start..<index])
                index += 2
                start = index
                continue
            }
            FuzzCheck.require(head[index] != 13 && head[index] != 10, "bare CR or LF in a response head: \(FuzzCheck.describe(head))")
            index += 1
        }
        lines.append(head[start..<head.endIndex])
        return lines
    }

    public static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        var index = start
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0], haystack[index..<index + needle.count].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}

extension String {
    func trimmingSpaces() -> String {
        String(self.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
