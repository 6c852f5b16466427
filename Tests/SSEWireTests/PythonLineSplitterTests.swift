import SSEWire
import Testing

/// Expected lines were produced by CPython's `str.splitlines()`.
@Suite("Python str.splitlines compatibility")
struct PythonLineSplitterTests {
    @Test("splits like str.splitlines", arguments: [
        ("a\u{0B}b\u{0C}c\u{1C}d\u{1D}e\u{1E}f\u{85}g\u{2028}h\u{2029}i", ["a", "b", "c", "d", "e", "f", "g", "h", "i"]),
        ("\n", [""]),
        ("\n\n", ["", ""]),
        ("a\r\n\r\nb", ["a", "", "b"]),
        ("", []),
        ("x\r", ["x"]),
        ("a\rb\nc\r\nd", ["a", "b", "c", "d"]),
        ("no break", ["no break"]),
        ("\u{1F}\u{1F}", ["\u{1F}\u{1F}"]),
    ] as [(String, [String])])
    func splits(_ input: String, _ expected: [String]) {
        #expect(PythonLineSplitter.lines(input).map(String.init) == expected)
    }

    @Test("\\r\\n is one break even though Swift sees one Character")
    func crlfIsOneBreak() {
        #expect(PythonLineSplitter.lines("a\r\nb").count == 2)
    }
}
