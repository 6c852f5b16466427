import SSEWire

extension JSONValue {
    /// Equality where NaN equals NaN and the sign of a float zero counts: what a
    /// parse-encode-parse round trip must preserve. (`==` is false for NaN, as in Python.)
    public func isSame(as other: JSONValue) -> Bool {
        switch (self, other) {
        case (.float(let a), .float(let b)):
            return (a.isNaN && b.isNaN) || (a == b && a.sign == b.sign)
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.isSame(as: $1) }
        case (.object(let a), .object(let b)):
            return a.count == b.count && a.allSatisfy { member in b[member.key].map { member.value.isSame(as: $0) } ?? false }
        default:
            return self == other
        }
    }
}
