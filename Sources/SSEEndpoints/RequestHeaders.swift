/// A request's header fields, in the order received, looked up without regard to ASCII case.
///
/// The lookups mean what SwiftNIO's `HTTPHeaders` means by them (`first(name:)`,
/// `contains(name:)`, `subscript(canonicalForm:)`), so decisions made on them are the same
/// whichever host built the request.
package struct RequestHeaders: Sendable {
    private let fields: [(name: String, value: String)]

    package init(_ fields: [(name: String, value: String)]) {
        self.fields = fields
    }

    /// The first value of `name`, whole.
    package func first(name: String) -> String? {
        fields.first { Self.sameName($0.name, name) }?.value
    }

    package func contains(name: String) -> Bool {
        fields.contains { Self.sameName($0.name, name) }
    }

    /// Every value of `name`, each split on commas with surrounding blanks trimmed, as SwiftNIO's
    /// `HTTPHeaders[canonicalForm:]` (`Set-Cookie` is never split).
    package subscript(canonicalForm name: String) -> [Substring] {
        let values = fields.filter { Self.sameName($0.name, name) }.map(\.value)
        if Self.sameName(name, "set-cookie") { return values.map { $0[...] } }
        return values.flatMap { value in value.split(separator: ",").map(Self.trimmed) }
    }

    private static func sameName(_ left: String, _ right: String) -> Bool {
        left.utf8.count == right.utf8.count
            && zip(left.utf8, right.utf8).allSatisfy { lowered($0) == lowered($1) }
    }

    private static func lowered(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
    }

    private static func trimmed(_ text: Substring) -> Substring {
        let blank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        guard let start = text.utf8.firstIndex(where: { !blank($0) }), let end = text.utf8.lastIndex(where: { !blank($0) }) else {
            return Substring()
        }
        return Substring(text.utf8[start...end])
    }
}
