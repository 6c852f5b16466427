import SSERedis
import Testing

@Suite("Redis Cluster key slots")
struct ClusterSlotTests {
    /// Slots Redis 7.0 answered for these keys (`CLUSTER KEYSLOT`); the integration tests also
    /// compare a random corpus with a real cluster.
    @Test("the slot Redis computes", arguments: [
        ("123456789", 12739),  // CRC16-XMODEM check value 0x31C3
        ("foo", 12182),
        ("bar", 5061),
        ("hello", 866),
        ("{user1000}.following", 3443),
        ("foo{}{bar}", 8363),  // an empty first tag: the whole key is hashed
        ("foo{{bar}}zap", 4015),  // the tag is `{bar`
        ("foo{bar}{zap}", 5061),  // only the first tag counts: `bar`
        ("a{}b", 13694),
        ("{sse-broker}", 10458),
        ("sse-broker", 10458),
        ("", 0),
    ])
    func knownSlots(_ key: String, _ slot: Int) {
        #expect(ClusterSlot.slot(of: key) == slot)
    }

    @Test("keys with one hash tag share a slot; bytes are hashed, not characters")
    func tags() {
        let tagged = ["{news}", "x{news}y", "{news}sse:history:stream:{other}", "news"]
        #expect(Set(tagged.map { ClusterSlot.slot(of: $0) }).count == 1)
        #expect(ClusterSlot.slot(of: "é") == ClusterSlot.slot(of: [0xC3, 0xA9]))
        for key in ["a", "{", "}", "{}", "}{", "{{}}", String(repeating: "x", count: 100_000)] {
            #expect((0..<ClusterSlot.count).contains(ClusterSlot.slot(of: key)))
        }
    }

    @Test("a hash tag for any key's slot: {tag}… lands in that key's slot, whatever braces the key holds")
    func hashTags() {
        var keys = ["news", "a{b}c", "a{b", "x{}y", "}{", "{}", "a}b", "{{}}", "", "é", String(repeating: "}", count: 40)]
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ab{}x}".utf8)
        for _ in 0..<500 {
            keys.append(String(decoding: (0..<Int.random(in: 0...12, using: &generator)).map { _ in alphabet.randomElement(using: &generator) ?? 97 }, as: UTF8.self))
        }
        for key in keys {
            let tag = ClusterSlot.hashTag(sameSlotAs: Array(key.utf8))
            #expect(!tag.isEmpty && !tag.contains(UInt8(ascii: "}")), "\(key)")
            let derived = Array("sse:".utf8) + [UInt8(ascii: "{")] + tag + [UInt8(ascii: "}")] + Array(":stream:".utf8) + Array(key.utf8)
            #expect(ClusterSlot.slot(of: derived) == ClusterSlot.slot(of: key), "\(key)")
        }
        // A key with its own tag keeps it, so its keys read plainly.
        #expect(ClusterSlot.hashTag(sameSlotAs: Array("user:{42}:feed".utf8)) == Array("42".utf8))
    }
}
