/// A JSON value as Python's `json` module sees it.
///
/// Flask-SSE round-trips payloads through `json.loads` / `json.dumps`, so the model keeps
/// what Python keeps: integers of any size (as their exact digits), floats as `Double`,
/// and objects whose keys are compared scalar by scalar, as Python compares `str`.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// An integer of arbitrary size, held as its canonical decimal digits (`-?[1-9][0-9]*` or `0`).
    case integer(JSONInteger)
    case float(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// Python truthiness: `None`, `False`, `0`, `0.0`, `""`, `[]` and `{}` are falsy.
    ///
    /// Flask-SSE includes `type`, `id` and `retry` only when they are truthy.
    public var isTruthy: Bool {
        switch self {
        case .null: return false
        case .bool(let value): return value
        case .integer(let value): return !value.isZero
        case .float(let value): return value != 0
        case .string(let value): return !value.isEmpty
        case .array(let value): return !value.isEmpty
        case .object(let value): return !value.isEmpty
        }
    }
}

/// An integer of arbitrary size, kept as canonical decimal digits.
///
/// Python integers have no size limit and `json.dumps` prints all their digits; the broker
/// never does arithmetic on them, so keeping the digits is exact and cheap.
public struct JSONInteger: Sendable, Hashable, CustomStringConvertible {
    /// Canonical decimal text: no leading zeros, no `-0`.
    public let digits: String

    /// Creates an integer from decimal text; returns nil unless it is `-?[0-9]+`.
    /// Leading zeros are removed and `-0` becomes `0`.
    public init?(_ text: some StringProtocol) {
        var utf8 = Substring(text).utf8[...]
        let negative = utf8.first == UInt8(ascii: "-")
        if negative { utf8 = utf8.dropFirst() }
        guard !utf8.isEmpty, utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        let trimmed = utf8.drop(while: { $0 == UInt8(ascii: "0") })
        if trimmed.isEmpty {
            self.digits = "0"
        } else {
            self.digits = (negative ? "-" : "") + String(decoding: trimmed, as: UTF8.self)
        }
    }

    public init(_ value: some BinaryInteger) {
        self.digits = String(value)
    }

    public var isZero: Bool { digits == "0" }
    public var description: String { digits }
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSONValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int) { self = .integer(JSONInteger(value)) }
}

extension JSONValue: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) { self = .float(value) }
}

extension JSONValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSONValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    /// Later duplicates win, as in a Python dict literal.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements))
    }
}
