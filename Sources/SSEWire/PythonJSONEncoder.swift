/// Serializes a `JSONValue` byte for byte as Flask's `json.dumps` does.
///
/// Flask's default provider calls `json.dumps(value, sort_keys=True, ensure_ascii=True)` with
/// the default separators `", "` and `": "`. So: keys sorted by Unicode code point at every
/// depth, every character outside `0x20...0x7E` escaped (`\u007f` included, astral characters
/// as surrogate pairs), integers with all their digits, floats as Python's `repr(float)`,
/// and `NaN`/`Infinity`/`-Infinity` for non-finite floats (`allow_nan=True`).
public enum PythonJSONEncoder {
    /// Returns the ASCII bytes of `json.dumps(value)` under Flask's settings.
    public static func encode(_ value: JSONValue) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(64)
        append(value, to: &output)
        return output
    }

    /// Appends the serialization of `value` to `output`.
    ///
    /// Containers are walked with an explicit stack, not recursion, so encoding uses the same
    /// small amount of thread stack at any depth.
    public static func append(_ value: JSONValue, to output: inout [UInt8]) {
        var open: [OpenContainer] = []
        var next: JSONValue? = value
        while true {
            if let current = next {
                next = nil
                switch current {
                case .null:
                    output.append(contentsOf: "null".utf8)
                case .bool(let flag):
                    output.append(contentsOf: (flag ? "true" : "false").utf8)
                case .integer(let integer):
                    output.append(contentsOf: integer.digits.utf8)
                case .float(let double):
                    output.append(contentsOf: PythonFloatFormatter.jsonText(double).utf8)
                case .string(let string):
                    appendString(string, to: &output)
                case .array(let elements):
                    output.append(UInt8(ascii: "["))
                    open.append(.array(elements, next: 0))
                case .object(let members):
                    output.append(UInt8(ascii: "{"))
                    open.append(.object(members.sortedByCodePoint, next: 0))
                }
            }
            // Emit the next member of the innermost container, or close it.
            guard let container = open.popLast() else { return }
            switch container {
            case .array(let elements, let position):
                guard position < elements.count else {
                    output.append(UInt8(ascii: "]"))
                    continue
                }
                if position > 0 { output.append(contentsOf: ", ".utf8) }
                open.append(.array(elements, next: position + 1))
                next = elements[position]
            case .object(let members, let position):
                guard position < members.count else {
                    output.append(UInt8(ascii: "}"))
                    continue
                }
                if position > 0 { output.append(contentsOf: ", ".utf8) }
                appendString(members[position].key, to: &output)
                output.append(contentsOf: ": ".utf8)
                open.append(.object(members, next: position + 1))
                next = members[position].value
            }
        }
    }

    /// A container being written and the position of its next member.
    private enum OpenContainer {
        case array([JSONValue], next: Int)
        case object([JSONObject.Element], next: Int)
    }

    /// Appends a JSON string literal with `ensure_ascii=True` escaping.
    public static func appendString(_ string: String, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for scalar in string.unicodeScalars {
            let value = scalar.value
            switch value {
            case 0x22: output.append(contentsOf: #"\""#.utf8)
            case 0x5C: output.append(contentsOf: #"\\"#.utf8)
            case 0x0A: output.append(contentsOf: #"\n"#.utf8)
            case 0x0D: output.append(contentsOf: #"\r"#.utf8)
            case 0x09: output.append(contentsOf: #"\t"#.utf8)
            case 0x08: output.append(contentsOf: #"\b"#.utf8)
            case 0x0C: output.append(contentsOf: #"\f"#.utf8)
            case 0x20...0x7E: output.append(UInt8(value))
            case 0x10000...:
                let offset = value - 0x10000
                appendUnicodeEscape(UInt16(0xD800 + (offset >> 10)), to: &output)
                appendUnicodeEscape(UInt16(0xDC00 + (offset & 0x3FF)), to: &output)
            default:
                appendUnicodeEscape(UInt16(value), to: &output)
            }
        }
        output.append(UInt8(ascii: "\""))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func appendUnicodeEscape(_ unit: UInt16, to output: inout [UInt8]) {
        output.append(contentsOf: #"\u"#.utf8)
        output.append(hexDigits[Int(unit >> 12)])
        output.append(hexDigits[Int((unit >> 8) & 0xF)])
        output.append(hexDigits[Int((unit >> 4) & 0xF)])
        output.append(hexDigits[Int(unit & 0xF)])
    }
}
