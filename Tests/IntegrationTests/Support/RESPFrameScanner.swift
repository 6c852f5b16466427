/// Splits a RESP2 byte stream (server to client) into whole frames, and tells pub/sub pushes
/// (`["message", …]`, `["pmessage", …]`) from everything else, for `SilencingRelay`.
///
/// Incremental and linear: each byte is looked at a bounded number of times (a line is searched
/// again only while it is incomplete, and lines are bounded), a bulk payload is skipped by its
/// length, and only the one incomplete frame is kept. Lengths, depth and line sizes are bounded;
/// anything else is `malformed` (the relay then closes the connection).
struct RESPFrameScanner {
    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    /// One whole frame's bytes, and whether it is a pub/sub push.
    struct Frame {
        let bytes: ArraySlice<UInt8>
        let isPush: Bool
    }

    static let maximumLine = 1024
    static let maximumBulk = 64 * 1024 * 1024
    static let maximumElements = 1 << 20
    static let maximumDepth = 8

    private var buffer: [UInt8] = []
    /// Next byte to parse in `buffer`.
    private var position = 0
    /// Elements still to come in each open array, outermost first.
    private var open: [Int] = []
    /// Element count of the top-level array being read (to find its first element).
    private var topCount = 0
    private var topIsPush = false
    /// While a bulk payload is awaited: where it starts and where it ends (after its CRLF).
    private var bulk: (start: Int, end: Int)?

    /// Bytes held for an incomplete frame.
    var bufferedBytes: Int { buffer.count }

    /// Takes `bytes`; returns the frames they complete, in order.
    mutating func feed(_ bytes: some Sequence<UInt8>) throws(Malformed) -> [Frame] {
        buffer.append(contentsOf: bytes)
        var frames: [Frame] = []
        var frameStart = 0
        while true {
            let completed: Bool
            if let (start, end) = bulk {
                guard buffer.count >= end else { break }
                guard buffer[end - 2] == 0x0D, buffer[end - 1] == 0x0A else { throw Malformed(description: "bulk not ended by CRLF") }
                if open.count == 1, open[0] == topCount {
                    let kind = buffer[start..<(end - 2)]
                    topIsPush = kind.elementsEqual("message".utf8) || kind.elementsEqual("pmessage".utf8)
                }
                bulk = nil
                position = end
                completed = valueCompleted()
            } else {
                guard position < buffer.count else { break }
                guard let lineEnd = lineEnd(from: position) else {
                    guard buffer.count - position <= Self.maximumLine else { throw Malformed(description: "line too long") }
                    break
                }
                let type = buffer[position]
                let body = buffer[(position + 1)..<lineEnd]
                position = lineEnd + 2
                switch type {
                case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: ":"):
                    completed = valueCompleted()
                case UInt8(ascii: "$"):
                    let length = try Self.length(body, maximum: Self.maximumBulk)
                    if length < 0 {
                        completed = valueCompleted()
                    } else {
                        bulk = (position, position + length + 2)
                        continue
                    }
                case UInt8(ascii: "*"):
                    let count = try Self.length(body, maximum: Self.maximumElements)
                    if count <= 0 {
                        completed = valueCompleted()
                    } else {
                        guard open.count < Self.maximumDepth else { throw Malformed(description: "arrays nested too deep") }
                        if open.isEmpty { topCount = count }
                        open.append(count)
                        continue
                    }
                default:
                    throw Malformed(description: "unknown RESP type byte \(type)")
                }
            }
            if completed {
                frames.append(Frame(bytes: buffer[frameStart..<position], isPush: topIsPush))
                frameStart = position
                topIsPush = false
                topCount = 0
            }
        }
        if frameStart > 0 {
            // The frames' slices keep the bytes they share with `buffer` (copy on write): keep
            // only the incomplete rest here.
            buffer.removeFirst(frameStart)
            position -= frameStart
            if let (start, end) = bulk { bulk = (start - frameStart, end - frameStart) }
        }
        return frames
    }

    /// A value ended: count it in its arrays; true when that ends the top-level frame.
    private mutating func valueCompleted() -> Bool {
        while let last = open.last {
            if last > 1 {
                open[open.count - 1] = last - 1
                return false
            }
            open.removeLast()
        }
        return true
    }

    /// Where the CRLF of the line starting at `start` begins, if it has arrived.
    private func lineEnd(from start: Int) -> Int? {
        var index = start
        let limit = min(buffer.count - 1, start + Self.maximumLine)
        while index < limit {
            if buffer[index] == 0x0D, buffer[index + 1] == 0x0A { return index }
            index += 1
        }
        return nil
    }

    private static func length(_ digits: ArraySlice<UInt8>, maximum: Int) throws(Malformed) -> Int {
        if digits.elementsEqual("-1".utf8) { return -1 }
        guard !digits.isEmpty, digits.count <= 10, digits.allSatisfy({ (0x30...0x39).contains($0) }) else {
            throw Malformed(description: "bad length")
        }
        let value = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard value <= maximum else { throw Malformed(description: "length \(value) over \(maximum)") }
        return value
    }
}
