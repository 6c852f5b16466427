import Testing

/// The test relay's frame scanner: whole frames out, pushes told apart, at every chunk size.
@Suite("RESP frame scanner (test relay)")
struct RESPFrameScannerTests {
    static let frames: [(String, Bool)] = [
        ("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n", false),
        ("*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nhe\r\no\r\n", true),
        ("*2\r\n$4\r\npong\r\n$0\r\n\r\n", false),
        ("*4\r\n$8\r\npmessage\r\n$2\r\na*\r\n$2\r\nab\r\n$0\r\n\r\n", true),
        ("+PONG\r\n", false),
        (":12\r\n", false),
        ("-ERR no\r\n", false),
        ("$-1\r\n", false),
        ("*0\r\n", false),
        ("*2\r\n*1\r\n$7\r\nmessage\r\n$1\r\nx\r\n", false),
        ("*3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$2\r\n\r\n\r\n", true),
    ]

    @Test("every chunk size gives the same frames and push flags", arguments: 1...16)
    func chunks(_ size: Int) throws {
        let stream = Array(Self.frames.map(\.0).joined().utf8)
        var scanner = RESPFrameScanner()
        var out: [(String, Bool)] = []
        var start = 0
        while start < stream.count {
            let end = min(stream.count, start + size)
            for frame in try scanner.feed(stream[start..<end]) {
                out.append((String(decoding: frame.bytes, as: UTF8.self), frame.isPush))
            }
            start = end
        }
        #expect(out.map(\.0) == Self.frames.map(\.0))
        #expect(out.map(\.1) == Self.frames.map(\.1))
        #expect(scanner.bufferedBytes == 0)
    }

    @Test("malformed or over the bounds: an error", arguments: ["?x\r\n", "$99999999999\r\n", "*-2\r\n", "$3\r\nabcXY", String(repeating: "+", count: 2000)])
    func malformed(_ text: String) {
        var scanner = RESPFrameScanner()
        #expect(throws: RESPFrameScanner.Malformed.self) { try scanner.feed(Array(text.utf8)) }
    }
}
