/// Redis Cluster's key-to-slot rule (the cluster specification's "Keys distribution model"):
/// CRC16-XMODEM of the key modulo 16384, where a key with a hash tag hashes only the tag.
///
/// The hash tag is the bytes between the first `{` and the first `}` after it, when there is at
/// least one byte between them; otherwise the whole key is hashed. Sharded pub/sub channels
/// (`SSUBSCRIBE`, `SPUBLISH`) hash the same way as keys. Linear in the key's length.
public enum ClusterSlot {
    /// Slots in a cluster.
    public static let count = 16384

    /// The slot `key` hashes to, in 0..<16384.
    public static func slot(of key: some Collection<UInt8>) -> Int {
        let hashed = hashedPart(of: Array(key))
        return Int(crc16(hashed) & 0x3FFF)
    }

    /// The slot of a text key, hashed as its UTF-8 bytes (as Redis receives it).
    public static func slot(of key: String) -> Int {
        slot(of: Array(key.utf8))
    }

    /// The bytes Redis hashes for `key`: its non-empty hash tag, or the whole key.
    static func hashedPart(of key: [UInt8]) -> ArraySlice<UInt8> {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")) else { return key[...] }
        let afterOpen = key.index(after: open)
        guard let close = key[afterOpen...].firstIndex(of: UInt8(ascii: "}")), close > afterOpen else { return key[...] }
        return key[afterOpen..<close]
    }

    /// A hash tag that puts a key in the slot of `key`: `{TAG}anything` hashes to
    /// `slot(of: key)`. The tag is the part Redis hashes for `key` when it holds no `}` (so the
    /// tag ends where it should; always so for a key with a tag), else the shortest decimal
    /// string that hashes to that slot. For keys that must share a script with a channel
    /// (`SPUBLISH` inside it) whatever the channel's name.
    public static func hashTag(sameSlotAs key: some Collection<UInt8>) -> [UInt8] {
        let bytes = Array(key)
        let hashed = hashedPart(of: bytes)
        if !hashed.isEmpty, !hashed.contains(UInt8(ascii: "}")) { return Array(hashed) }
        return Array(decimalTags[Int(crc16(hashed) & 0x3FFF)].utf8)
    }

    /// For every slot, the shortest (then smallest) decimal string hashing to it.
    private static let decimalTags: [String] = {
        var tags = [String?](repeating: nil, count: count)
        var found = 0
        var number = 0
        while found < count {
            let text = String(number)
            let slot = Int(crc16(text.utf8) & 0x3FFF)
            if tags[slot] == nil {
                tags[slot] = text
                found += 1
            }
            number += 1
        }
        return tags.map { $0 ?? "" }
    }()

    /// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection.
    static func crc16(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int((crc >> 8) ^ UInt16(byte)) & 0xFF]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}
