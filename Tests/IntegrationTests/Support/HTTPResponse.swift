/// A response read off a raw connection: status line, headers and the body decoded so far
/// (chunked transfer undone). Strict, so framing mistakes by the server fail the test.
struct HTTPResponse {
    let statusLine: String
    let status: Int
    /// Header names lowercased, in order.
    let headers: [(name: String, value: String)]
    /// Body bytes decoded so far.
    let body: [UInt8]
    /// Whether the terminating zero-size chunk arrived.
    let chunkedComplete: Bool

    func header(_ name: String) -> String? {
        headers.first { $0.name == name.lowercased() }?.value
    }

    var bodyText: String { String(decoding: body, as: UTF8.self) }

    var isChunked: Bool { header("transfer-encoding")?.lowercased() == "chunked" }

    /// Parses what arrived; nil until the head is complete. Throws on broken chunk framing.
    static func parse(_ bytes: [UInt8]) throws -> HTTPResponse? {
        guard let headEnd = bytes.firstRange(of: Array("\r\n\r\n".utf8)) else { return nil }
        let headText = String(decoding: bytes[..<headEnd.lowerBound], as: UTF8.self)
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else { throw TestFailure("bad status line \(statusLine)") }
        let headers = lines.compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let rest = Array(bytes[headEnd.upperBound...])
        let isChunked = headers.contains { $0.0 == "transfer-encoding" && $0.1.lowercased() == "chunked" }
        if isChunked {
            let (body, complete) = try dechunk(rest)
            return HTTPResponse(statusLine: statusLine, status: status, headers: headers, body: body, chunkedComplete: complete)
        }
        return HTTPResponse(statusLine: statusLine, status: status, headers: headers, body: rest, chunkedComplete: false)
    }

    /// Undoes chunked framing for every complete chunk.
    static func dechunk(_ bytes: [UInt8]) throws -> (body: [UInt8], complete: Bool) {
        var body: [UInt8] = []
        var index = 0
        while let lineEnd = bytes[index...].firstRange(of: Array("\r\n".utf8)) {
            let sizeText = String(decoding: bytes[index..<lineEnd.lowerBound], as: UTF8.self)
            guard let size = Int(sizeText, radix: 16) else { throw TestFailure("bad chunk size line \(sizeText.debugDescription)") }
            let dataStart = lineEnd.upperBound
            if size == 0 { return (body, bytes.count >= dataStart + 2) }
            guard bytes.count >= dataStart + size + 2 else { break }
            guard bytes[dataStart + size] == 13, bytes[dataStart + size + 1] == 10 else {
                throw TestFailure("chunk of \(size) bytes not followed by CRLF")
            }
            body.append(contentsOf: bytes[dataStart..<dataStart + size])
            index = dataStart + size + 2
        }
        return (body, false)
    }
}

import Foundation
