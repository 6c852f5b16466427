/// Splits text into lines exactly as Python's `str.splitlines()` does.
///
/// Flask-SSE frames `data` with `splitlines()`, which breaks on more than CR and LF:
/// `\n`, `\r\n`, `\r`, `\v`, `\f`, `\x1c`, `\x1d`, `\x1e`, `\x85`, U+2028 and U+2029.
/// A trailing line break does not make an extra empty line, and an empty string has no lines.
public enum PythonLineSplitter {
    /// Whether `scalar` ends a line for `str.splitlines()`.
    public static func isLineBreak(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029: return true
        default: return false
        }
    }

    /// The lines of `text`, without their line breaks.
    public static func lines(_ text: String) -> [Substring] {
        var lines: [Substring] = []
        let scalars = text.unicodeScalars
        var lineStart = scalars.startIndex
        var position = scalars.startIndex
        while position < scalars.endIndex {
            let scalar = scalars[position]
            guard isLineBreak(scalar) else {
                position = scalars.index(after: position)
                continue
            }
            lines.append(Substring(scalars[lineStart..<position]))
            var next = scalars.index(after: position)
            if scalar == "\r", next < scalars.endIndex, scalars[next] == "\n" {
                next = scalars.index(after: next)
            }
            position = next
            lineStart = next
        }
        if lineStart < scalars.endIndex {
            lines.append(Substring(scalars[lineStart..<scalars.endIndex]))
        }
        return lines
    }
}
