/// A JSON object's members with Python's notion of key identity.
///
/// Python compares `str` keys code point by code point, while Swift's `String` equality is
/// canonical equivalence: `"é"` and `"e\u{301}"` are one key to a Swift `Dictionary` but two
/// to Python. So members are kept as pairs, keys compared by their exact scalars; a repeated
/// key replaces the earlier value (as in a Python dict) and keeps its first position.
public struct JSONObject: Sendable, Hashable, Sequence {
    public typealias Element = (key: String, value: JSONValue)

    private var members: [Element] = []

    public init() {}

    /// Members in order; a later duplicate key replaces the earlier value.
    public init(_ pairs: some Sequence<(String, JSONValue)>) {
        for (key, value) in pairs { self[key] = value }
    }

    /// The value for exactly this key (scalar by scalar), or nil.
    public subscript(key: String) -> JSONValue? {
        get { index(of: key).map { members[$0].value } }
        set {
            if let position = index(of: key) {
                if let newValue {
                    members[position].value = newValue
                } else {
                    members.remove(at: position)
                }
            } else if let newValue {
                members.append((key, newValue))
            }
        }
    }

    private func index(of key: String) -> Int? {
        members.firstIndex { $0.key.utf8.elementsEqual(key.utf8) }
    }

    public var count: Int { members.count }
    public var isEmpty: Bool { members.isEmpty }
    public var keys: [String] { members.map(\.key) }

    /// Members sorted as Python's `sorted()` sorts `str` keys: by code point, which is the
    /// lexicographic order of their UTF-8 bytes (unlike Swift's `String` or UTF-16 order).
    public var sortedByCodePoint: [Element] {
        members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
    }

    public func makeIterator() -> IndexingIterator<[Element]> {
        members.makeIterator()
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.count == rhs.count
            && lhs.members.allSatisfy { member in rhs[member.key].map { $0 == member.value } ?? false }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for member in sortedByCodePoint {
            hasher.combine(Array(member.key.utf8))
            hasher.combine(member.value)
        }
    }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }
}
