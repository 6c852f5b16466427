/// Reads what Sentinel and `ROLE` answer, strictly: a confused or hostile server yields a
/// reason, never an address to dial that was not plainly one.
///
/// Replies (Redis 7.0, RESP2): `SENTINEL get-master-addr-by-name NAME` is `[ip, port]`, or a
/// null array when the sentinel does not monitor NAME; `ROLE` is an array whose first element
/// is `master`, `slave` or `sentinel`; a `+switch-master` message is
/// `"NAME OLD-IP OLD-PORT NEW-IP NEW-PORT"`, a `+promoted-slave` message
/// `"slave IP:PORT IP PORT @ NAME MASTER-IP MASTER-PORT"`.
enum SentinelReplyDecoder {
    /// What a sentinel said about the master.
    enum MasterAnswer: Hashable {
        /// Where the master is.
        case master(SentinelAddress)
        /// The sentinel does not monitor a master of that name.
        case unknown
        /// Anything else: an error reply, a malformed address; with a printable reason.
        case invalid(String)
    }

    /// Longest server text quoted in a reason.
    static let maximumQuotedBytes = 200

    /// Decodes the reply to `SENTINEL get-master-addr-by-name`.
    static func masterAddress(_ reply: RedisReply) -> MasterAnswer {
        switch reply {
        case .null:
            return .unknown
        case .error(let text):
            return .invalid("answered '\(quoted(text))'")
        case .array(let items):
            guard items.count == 2, case .bulkString(let hostBytes) = items[0], case .bulkString(let portBytes) = items[1] else {
                return .invalid("answered an array that is not [ip, port]")
            }
            let host = String(decoding: hostBytes, as: UTF8.self)
            guard hostBytes.count <= SentinelAddress.maximumHostBytes, SentinelAddress.isValidHost(host) else {
                return .invalid("named a master host that is not a host name or address")
            }
            guard let port = SentinelAddress.port(String(decoding: portBytes, as: UTF8.self)) else {
                return .invalid("named a master port that is not 1...65535")
            }
            return .master(SentinelAddress(host: host, port: port))
        default:
            return .invalid("answered neither an address nor null")
        }
    }

    /// The role `ROLE` reports (`master`, `slave`, `sentinel`), or nil when the reply is not
    /// one (an error reply included).
    static func role(_ reply: RedisReply) -> String? {
        guard case .array(let items) = reply, let first = items.first, case .bulkString(let bytes) = first,
            (1...16).contains(bytes.count), bytes.allSatisfy({ (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) })
        else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The new master a `+switch-master` payload announces for `masterName`; nil when the
    /// message is about another master or is malformed.
    static func switchMaster(_ payload: [UInt8], masterName: String) -> SentinelAddress? {
        guard payload.count <= 2 * SentinelAddress.maximumHostBytes + SentinelEndpoint.maximumMasterNameBytes + 32 else { return nil }
        let parts = payload.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].elementsEqual(masterName.utf8) else { return nil }
        return address(host: parts[3], port: parts[4])
    }

    /// The replica a `+promoted-slave` payload says the failover leader made master of
    /// `masterName`; nil when it is about another master or is malformed.
    static func promotedReplica(_ payload: [UInt8], masterName: String) -> SentinelAddress? {
        guard payload.count <= 4 * SentinelAddress.maximumHostBytes + SentinelEndpoint.maximumMasterNameBytes + 64 else { return nil }
        let parts = payload.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 8, parts[0].elementsEqual("slave".utf8), parts[4].elementsEqual("@".utf8),
            parts[5].elementsEqual(masterName.utf8)
        else { return nil }
        return address(host: parts[2], port: parts[3])
    }

    /// An address from a message's host and port fields, both checked.
    private static func address(host hostBytes: ArraySlice<UInt8>, port portBytes: ArraySlice<UInt8>) -> SentinelAddress? {
        let host = String(decoding: hostBytes, as: UTF8.self)
        guard SentinelAddress.isValidHost(host), let port = SentinelAddress.port(String(decoding: portBytes, as: UTF8.self)) else {
            return nil
        }
        return SentinelAddress(host: host, port: port)
    }

    /// `text` cut to `maximumQuotedBytes`, with control bytes and non-ASCII shown as `?`, for
    /// a log line or an error message.
    static func quoted(_ text: String) -> String {
        String(decoding: text.utf8.prefix(maximumQuotedBytes).map { (0x20..<0x7F).contains($0) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }
}
