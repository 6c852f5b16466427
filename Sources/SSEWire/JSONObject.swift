/// A JSON object's members with Python's notion of key identity.
///
/// Python compares `str` keys code point by code point, while Swift's `String` equality is
/// canonical equivalence: `"é"` and `"e\u{301}"` are one key to a Swift `Dictionary` but two
/// to Python. So members are kept as pairs in order, keys compared by their exact UTF-8 bytes;
/// a repeated key replaces the earlier value (as in a Python dict) and keeps its first position.
///
/// Lookups and insertions take constant time on average: past a handful of members an index
/// from each key's bytes to its position is kept beside the pairs, so parsing an object of
/// n keys is linear (a scan per key would make a 15,000-key payload stall a node for seconds).
/// Removing a member is linear in the object's size.
public struct JSONObject: Sendable, Hashable, Sequence {
    public typealias Element = (key: String, value: JSONValue)

    private var members: [Element] = []
    /// Position of each member by its key's bytes; nil while the object is small enough
    /// that a scan is cheaper than hashing.
    private var positions: [UTF8Key: Int]?

    /// Objects up to this many members are searched by a scan.
    private static let scanLimit = 8

    public init() {}

    /// Members in order; a later duplicate key replaces the earlier value.
    public init(_ pairs: some Sequence<(String, JSONValue)>) {
        for (key, value) in pairs { self[key] = value }
    }

    /// The value for exactly this key (byte by byte), or nil.
    public subscript(key: String) -> JSONValue? {
        get { position(of: key).map { members[$0].value } }
        set {
            if let position = position(of: key) {
                if let newValue {
                    members[position].value = newValue
                } else {
                    remove(at: position)
                }
            } else if let newValue {
                positions?[UTF8Key(key)] = members.count
                members.append((key, newValue))
                if positions == nil, members.count > Self.scanLimit { rebuildPositions() }
            }
        }
    }

    private func position(of key: String) -> Int? {
        if let positions { return positions[UTF8Key(key)] }
        return members.firstIndex { $0.key.utf8.elementsEqual(key.utf8) }
    }

    private mutating func remove(at position: Int) {
        members.remove(at: position)
        if positions != nil { rebuildPositions() }
    }

    private mutating func rebuildPositions() {
        var index: [UTF8Key: Int] = [:]
        index.reserveCapacity(members.count)
        for (position, member) in members.enumerated() { index[UTF8Key(member.key)] = position }
        positions = index
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

    /// Same keys (byte for byte) with equal values, in any order, as Python's `dict` equality.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.count == rhs.count
            && lhs.members.allSatisfy { member in rhs[member.key].map { $0 == member.value } ?? false }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for member in sortedByCodePoint {
            hasher.combine(UTF8Key(member.key))
            hasher.combine(member.value)
        }
    }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }
}

/// A `String` hashed and compared by its UTF-8 bytes, the way Python compares `str` keys,
/// instead of by Swift's canonical equivalence.
struct UTF8Key: Hashable, Sendable {
    let string: String

    init(_ string: String) {
        self.string = string
    }

    static func == (lhs: UTF8Key, rhs: UTF8Key) -> Bool {
        lhs.string.utf8.elementsEqual(rhs.string.utf8)
    }

    func hash(into hasher: inout Hasher) {
        let utf8 = string.utf8
        hasher.combine(utf8.count)
        let hashedContiguously: Void? = utf8.withContiguousStorageIfAvailable { bytes in
            hasher.combine(bytes: UnsafeRawBufferPointer(bytes))
        }
        if hashedContiguously == nil {
            for byte in utf8 { hasher.combine(byte) }
        }
    }
}
