#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SSEWire

/// Invariant checks for fuzz targets: a broken invariant aborts, which libFuzzer records as a
/// crash and saves the input that caused it.
public enum FuzzCheck {
    /// Aborts with `message` on standard error unless `condition` holds.
    public static func require(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
        guard !condition else { return }
        let text = "invariant broken at \(file):\(line): \(message())\n"
        var utf8 = Array(text.utf8)
        _ = utf8.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
        abort()
    }

    /// The bytes libFuzzer hands a target, as a Swift array.
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ count: Int) -> [UInt8] {
        guard let data, count > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: count))
    }

    /// A readable prefix of an input, for messages.
    public static func describe(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes.prefix(600), as: UTF8.self).debugDescription
    }
}

/// The framing rules of event text the broker writes (CONTRACT.md sections 2 and 3).
public enum EventTextCheck {
    /// Checks that `text` is exactly one well-formed event carrying `event`'s fields: it ends
    /// with a blank line, has no CR and no other blank line, every line is `event:`, `data:`,
    /// `id:` or `retry:` in that order, and a WHATWG parser reads back the same fields.
    public static func check(_ text: [UInt8], renders event: ServerSentEvent) {
        FuzzCheck.require(text.count >= 2 && text.suffix(2) == [10, 10], "event text does not end with a blank line: \(FuzzCheck.describe(text))")
        FuzzCheck.require(!text.contains(13), "CR in event text: \(FuzzCheck.describe(text))")
        var type: [UInt8]?
        var dataLines: [[UInt8]] = []
        var id: [UInt8]?
        var retry: [UInt8]?
        var stage = 0
        let body = text.dropLast(2)
        if !body.isEmpty {
            for line in body.split(separator: 10, omittingEmptySubsequences: false) {
                FuzzCheck.require(!line.isEmpty, "blank line inside one event: \(FuzzCheck.describe(text))")
                guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                    FuzzCheck.require(false, "line without a field: \(FuzzCheck.describe(line))")
                    return
                }
                let value = Array(line[line.index(after: colon)...])
                switch String(decoding: line[..<colon], as: UTF8.self) {
                case "event":
                    FuzzCheck.require(stage == 0 && type == nil, "event: out of order")
                    type = value
                case "data":
                    FuzzCheck.require(stage <= 1, "data: after id or retry")
                    stage = 1
                    dataLines.append(value)
                case "id":
                    FuzzCheck.require(stage <= 1 && id == nil, "id: out of order")
                    stage = 2
                    id = value
                case "retry":
                    FuzzCheck.require(stage <= 2 && retry == nil, "retry: out of order")
                    stage = 3
                    retry = value
                default:
                    FuzzCheck.require(false, "unknown field in \(FuzzCheck.describe(line))")
                }
            }
        }
        FuzzCheck.require(type == event.type.map { Array($0.utf8) }, "event: field differs")
        FuzzCheck.require(id == event.id.map { Array($0.utf8) }, "id: field differs")
        FuzzCheck.require(retry == event.retry.map { Array($0.utf8) }, "retry: field differs")
        if let id { FuzzCheck.require(!id.contains(0), "NUL in id") }
        if let retry { FuzzCheck.require(!retry.isEmpty && retry.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }, "retry not digits") }
        let expectedLines = PythonLineSplitter.lines(event.data).map { Array($0.utf8) }
        FuzzCheck.require(dataLines == expectedLines, "data lines differ from splitlines()")
    }
}
