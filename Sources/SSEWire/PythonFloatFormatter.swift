/// Formats a `Double` as Python's `repr(float)` (and so `json.dumps`) prints it.
///
/// Python prints the shortest digits that round-trip, in fixed notation when the decimal
/// exponent is in `-4 ..< 16` (always with a fractional part, `1.0` not `1`), and otherwise
/// in exponent notation with a sign and at least two exponent digits (`1e-05`, `1e+16`).
/// Swift's `description` already yields the shortest round-trip digits; only the layout differs.
public enum PythonFloatFormatter {
    /// `repr(value)`: `inf`, `-inf` and `nan` for non-finite values.
    public static func repr(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        return finiteRepr(value)
    }

    /// `json.dumps(value)`: `Infinity`, `-Infinity` and `NaN` for non-finite values.
    public static func jsonText(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        return finiteRepr(value)
    }

    private static func finiteRepr(_ value: Double) -> String {
        let negative = value.sign == .minus
        if value == 0 { return negative ? "-0.0" : "0.0" }
        let (digits, pointPosition) = shortestDigits(value.magnitude)
        let exponent = pointPosition - 1
        var text = negative ? "-" : ""
        if exponent < -4 || exponent >= 16 {
            text.append(digits[digits.startIndex])
            if digits.count > 1 {
                text.append(".")
                text.append(contentsOf: digits.dropFirst())
            }
            text.append("e")
            text.append(exponent < 0 ? "-" : "+")
            let magnitude = String(abs(exponent))
            if magnitude.count < 2 { text.append("0") }
            text.append(magnitude)
        } else if pointPosition <= 0 {
            text.append("0.")
            text.append(String(repeating: "0", count: -pointPosition))
            text.append(contentsOf: digits)
        } else if pointPosition < digits.count {
            text.append(contentsOf: digits.prefix(pointPosition))
            text.append(".")
            text.append(contentsOf: digits.dropFirst(pointPosition))
        } else {
            text.append(contentsOf: digits)
            text.append(String(repeating: "0", count: pointPosition - digits.count))
            text.append(".0")
        }
        return text
    }

    /// The shortest round-trip significant digits of a positive finite value, and the position
    /// of the decimal point relative to them (value = 0.DIGITS × 10^pointPosition).
    static func shortestDigits(_ value: Double) -> (digits: String, pointPosition: Int) {
        let description = value.description  // e.g. "123.45", "1e-05", "1.5e+300", "5e-324"
        var mantissa = Substring(description)
        var exponent = 0
        if let e = description.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = description[..<e]
            exponent = Int(description[description.index(after: e)...]) ?? 0
        }
        var integerPart = mantissa
        var fractionPart: Substring = ""
        if let dot = mantissa.firstIndex(of: ".") {
            integerPart = mantissa[..<dot]
            fractionPart = mantissa[mantissa.index(after: dot)...]
        }
        var digits = String(integerPart) + String(fractionPart)
        var pointPosition = integerPart.count + exponent
        let leadingZeros = digits.prefix(while: { $0 == "0" }).count
        digits.removeFirst(leadingZeros)
        pointPosition -= leadingZeros
        while digits.count > 1, digits.last == "0" { digits.removeLast() }
        if digits.isEmpty { return ("0", 1) }
        return (digits, pointPosition)
    }
}
