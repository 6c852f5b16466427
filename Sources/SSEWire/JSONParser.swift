/// Parses JSON text the way Python's `json.loads` does with its defaults.
///
/// It accepts what `json.loads` accepts and rejects what it rejects, because the broker must
/// treat a Redis payload as conforming exactly when Flask-SSE would: surrounding whitespace,
/// `NaN`/`Infinity`/`-Infinity`, duplicate keys (the last wins), no raw control characters
/// inside strings (`strict=True`). Lone UTF-16 surrogates in `\u` escapes become U+FFFD,
/// since a Swift `String` cannot hold them.
///
/// Two limits stand in for Python's: nesting deeper than `maximumDepth` is rejected (Python
/// raises `RecursionError` somewhere near 1,000 levels, depending on its stack), and an integer
/// longer than `maximumIntegerDigits` is rejected as Python 3.11+ rejects it (`ValueError:
/// Exceeds the limit (4300 digits) for integer string conversion`). A Redis payload refused for
/// either reason is one Flask-SSE's `Message(**json.loads(p))` would not accept, so the broker
/// delivers it as plain text (and `POST /publish` answers 400).
///
/// Parsing is linear in the input and uses no recursion: open containers are kept in an
/// explicit stack, and object members are indexed (`JSONObject`). The depth bound protects what
/// walks a value recursively afterwards (encoding, hashing, comparing, releasing it).
public struct JSONParser {
    /// Nesting deeper than this is rejected.
    public static let maximumDepth = 512
    /// Integers with more decimal digits than this (sign not counted) are rejected, as
    /// Python's `sys.int_info.default_max_str_digits`.
    public static let maximumIntegerDigits = 4300

    private let bytes: [UInt8]
    private var index: Int = 0

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Parses one JSON document from UTF-8 bytes. A leading UTF-8 byte-order mark is skipped.
    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONParsingError) -> JSONValue {
        var parser = JSONParser(bytes: Array(bytes))
        if parser.bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.index = 3 }
        parser.skipWhitespace()
        let value = try parser.parseValue()
        parser.skipWhitespace()
        guard parser.index == parser.bytes.count else {
            throw JSONParsingError(.trailingData, offset: parser.index)
        }
        return value
    }

    /// Parses one JSON document from a string.
    public static func parse(_ text: String) throws(JSONParsingError) -> JSONValue {
        try parse(Array(text.utf8))
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D {
            index += 1
        }
    }

    /// The containers being filled, innermost last: the document's nesting lives here, not in
    /// the call stack, so no input can exhaust a thread's stack while parsing. Arrays and
    /// objects sit in stacks of their own so each is appended to in place (a copy per member
    /// would make parsing quadratic).
    private struct OpenContainers {
        enum Kind { case array, object }
        var kinds: [Kind] = []
        var arrays: [[JSONValue]] = []
        var objects: [JSONObject] = []
        /// Per open object, the key whose value comes next.
        var keys: [String] = []

        var depth: Int { kinds.count }
    }

    private mutating func parseValue() throws(JSONParsingError) -> JSONValue {
        var open = OpenContainers()
        while true {
            guard var value = try parseValueStart(into: &open) else { continue }  // a container opened
            // Hand the value to the innermost open container, closing each one that ends here.
            closing: while let kind = open.kinds.last {
                skipWhitespace()
                switch kind {
                case .array:
                    open.arrays[open.arrays.count - 1].append(value)
                    switch current {
                    case UInt8(ascii: ","):
                        index += 1
                        break closing
                    case UInt8(ascii: "]"):
                        index += 1
                        open.kinds.removeLast()
                        value = .array(open.arrays.removeLast())
                    case nil: throw JSONParsingError(.unexpectedEnd, offset: index)
                    default: throw JSONParsingError(.unexpectedCharacter, offset: index)
                    }
                case .object:
                    open.objects[open.objects.count - 1][open.keys.removeLast()] = value
                    switch current {
                    case UInt8(ascii: ","):
                        index += 1
                        open.keys.append(try parseKey())
                        break closing
                    case UInt8(ascii: "}"):
                        index += 1
                        open.kinds.removeLast()
                        value = .object(open.objects.removeLast())
                    case nil: throw JSONParsingError(.unexpectedEnd, offset: index)
                    default: throw JSONParsingError(.unexpectedCharacter, offset: index)
                    }
                }
            }
            if open.kinds.isEmpty { return value }
        }
    }

    /// Reads the start of a value: a whole scalar or empty container (returned), or the opening
    /// of a non-empty container, pushed onto `open` (nil returned).
    private mutating func parseValueStart(into open: inout OpenContainers) throws(JSONParsingError) -> JSONValue? {
        skipWhitespace()
        guard let byte = current else { throw JSONParsingError(.unexpectedEnd, offset: index) }
        switch byte {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            guard open.depth < Self.maximumDepth else { throw JSONParsingError(.tooDeep, offset: index) }
            index += 1
            skipWhitespace()
            if byte == UInt8(ascii: "[") {
                if current == UInt8(ascii: "]") {
                    index += 1
                    return .array([])
                }
                open.kinds.append(.array)
                open.arrays.append([])
            } else {
                if current == UInt8(ascii: "}") {
                    index += 1
                    return .object(JSONObject())
                }
                open.keys.append(try parseKey())
                open.kinds.append(.object)
                open.objects.append(JSONObject())
            }
            return nil
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "N"): try expectLiteral("NaN"); return .float(.nan)
        case UInt8(ascii: "I"): try expectLiteral("Infinity"); return .float(.infinity)
        case UInt8(ascii: "-"):
            if bytes[index...].starts(with: "-Infinity".utf8) {
                index += 9
                return .float(-.infinity)
            }
            return try parseNumber()
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw JSONParsingError(.unexpectedCharacter, offset: index)
        }
    }

    /// An object key and its colon: `"KEY" :`, with the whitespace around them.
    private mutating func parseKey() throws(JSONParsingError) -> String {
        skipWhitespace()
        guard current == UInt8(ascii: "\"") else { throw JSONParsingError(.expectedKey, offset: index) }
        let key = try parseString()
        skipWhitespace()
        guard current == UInt8(ascii: ":") else { throw JSONParsingError(.expectedColon, offset: index) }
        index += 1
        return key
    }

    private mutating func expectLiteral(_ literal: String) throws(JSONParsingError) {
        guard bytes[index...].starts(with: literal.utf8) else {
            throw JSONParsingError(.unexpectedCharacter, offset: index)
        }
        index += literal.utf8.count
    }

    /// Python's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`.
    private mutating func parseNumber() throws(JSONParsingError) -> JSONValue {
        let start = index
        if current == UInt8(ascii: "-") { index += 1 }
        guard let first = current, isDigit(first) else { throw JSONParsingError(.invalidNumber, offset: index) }
        if first == UInt8(ascii: "0") {
            index += 1
        } else {
            while let byte = current, isDigit(byte) { index += 1 }
        }
        var isInteger = true
        if current == UInt8(ascii: "."), index + 1 < bytes.count, isDigit(bytes[index + 1]) {
            isInteger = false
            index += 1
            while let byte = current, isDigit(byte) { index += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            var lookahead = index + 1
            if lookahead < bytes.count, bytes[lookahead] == UInt8(ascii: "+") || bytes[lookahead] == UInt8(ascii: "-") {
                lookahead += 1
            }
            if lookahead < bytes.count, isDigit(bytes[lookahead]) {
                isInteger = false
                index = lookahead
                while let byte = current, isDigit(byte) { index += 1 }
            }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if isInteger {
            let digitCount = index - start - (bytes[start] == UInt8(ascii: "-") ? 1 : 0)
            guard digitCount <= Self.maximumIntegerDigits else {
                throw JSONParsingError(.integerTooLong, offset: start)
            }
            guard let integer = JSONInteger(text) else { throw JSONParsingError(.invalidNumber, offset: start) }
            return .integer(integer)
        }
        // Python's float() gives ±inf on overflow and Swift's Double(String) agrees.
        guard let double = Double(text) else { throw JSONParsingError(.invalidNumber, offset: start) }
        return .float(double)
    }

    private func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private mutating func parseString() throws(JSONParsingError) -> String {
        index += 1  // opening quote
        var scalars = String.UnicodeScalarView()
        var runStart = index
        func flushRun(_ end: Int) throws(JSONParsingError) {
            guard runStart < end else { return }
            guard let run = String(validating: bytes[runStart..<end], as: UTF8.self) else {
                throw JSONParsingError(.invalidUTF8, offset: runStart)
            }
            scalars.append(contentsOf: run.unicodeScalars)
        }
        while true {
            guard let byte = current else { throw JSONParsingError(.unterminatedString, offset: index) }
            if byte == UInt8(ascii: "\"") {
                try flushRun(index)
                index += 1
                return String(scalars)
            }
            if byte < 0x20 {
                throw JSONParsingError(.controlCharacterInString, offset: index)
            }
            if byte == UInt8(ascii: "\\") {
                try flushRun(index)
                index += 1
                scalars.append(try parseEscape())
                runStart = index
                continue
            }
            index += 1
        }
    }

    private mutating func parseEscape() throws(JSONParsingError) -> Unicode.Scalar {
        guard let byte = current else { throw JSONParsingError(.unterminatedString, offset: index) }
        index += 1
        switch byte {
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            let unit = try parseHex4()
            if (0xD800...0xDBFF).contains(unit), bytes[index...].starts(with: "\\u".utf8) {
                let save = index
                index += 2
                let low = try parseHex4()
                if (0xDC00...0xDFFF).contains(low) {
                    let value = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                    return Unicode.Scalar(value) ?? "\u{FFFD}"
                }
                index = save
            }
            return Unicode.Scalar(UInt32(unit)) ?? "\u{FFFD}"
        default:
            throw JSONParsingError(.invalidEscape, offset: index - 1)
        }
    }

    private mutating func parseHex4() throws(JSONParsingError) -> UInt16 {
        guard index + 4 <= bytes.count else { throw JSONParsingError(.invalidEscape, offset: index) }
        var value: UInt16 = 0
        for byte in bytes[index..<index + 4] {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw JSONParsingError(.invalidEscape, offset: index)
            }
            value = value << 4 | UInt16(digit)
        }
        index += 4
        return value
    }
}

/// Why a JSON document was rejected, and where.
public struct JSONParsingError: Error, Hashable, CustomStringConvertible {
    /// The kind of failure; extensible without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public static let unexpectedEnd = Code("unexpected end of input")
        public static let unexpectedCharacter = Code("unexpected character")
        public static let trailingData = Code("extra data after the document")
        public static let expectedKey = Code("expected a string key")
        public static let expectedColon = Code("expected ':'")
        public static let invalidNumber = Code("invalid number")
        public static let invalidEscape = Code("invalid escape")
        public static let invalidUTF8 = Code("invalid UTF-8")
        public static let unterminatedString = Code("unterminated string")
        public static let controlCharacterInString = Code("control character in string")
        public static let tooDeep = Code("nesting too deep")
        public static let integerTooLong = Code("integer with more than 4300 digits")
        public var description: String { name }
    }

    public let code: Code
    /// Byte offset into the input where the problem was found.
    public let offset: Int

    public init(_ code: Code, offset: Int) {
        self.code = code
        self.offset = offset
    }

    public var description: String { "\(code) at byte \(offset)" }
}
