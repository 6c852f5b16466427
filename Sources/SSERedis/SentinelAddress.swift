/// One Redis Sentinel (or a master a Sentinel names): host and port.
public struct SentinelAddress: Sendable, Hashable, CustomStringConvertible {
    /// A name or an IP address (IPv6 without brackets).
    public var host: String
    public var port: Int

    /// Sentinel's usual port.
    public static let defaultPort = 26379
    /// Longest host accepted, in bytes (a DNS name is at most 253).
    public static let maximumHostBytes = 255

    public init(host: String, port: Int = SentinelAddress.defaultPort) {
        self.host = host
        self.port = port
    }

    /// `host:port`, IPv6 in brackets.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Whether `text` can be a host: 1 to 255 bytes of ASCII letters, digits and `-._:%`
    /// (names, IPv4, IPv6 with a zone). Anything else (spaces, control bytes, `/`, `@`) is refused,
    /// so a hostile Sentinel reply cannot smuggle text into a connect or a log line.
    static func isValidHost(_ text: some StringProtocol) -> Bool {
        isToken(text, maximumBytes: maximumHostBytes, punctuation: "-._:%")
    }

    /// Whether `text` is 1 to `maximumBytes` bytes of ASCII letters, digits and `punctuation`.
    static func isToken(_ text: some StringProtocol, maximumBytes: Int, punctuation: String) -> Bool {
        let bytes = text.utf8
        guard !bytes.isEmpty, bytes.count <= maximumBytes else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            default:
                return punctuation.utf8.contains(byte)
            }
        }
    }

    /// A port from text: decimal digits only, 1...65535.
    static func port(_ text: some StringProtocol) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 5, text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            let port = Int(text), (1...65535).contains(port)
        else { return nil }
        return port
    }
}
