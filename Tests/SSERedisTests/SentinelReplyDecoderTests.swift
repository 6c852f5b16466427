@testable import SSERedis
import Testing

@Suite("Sentinel replies are read strictly")
struct SentinelReplyDecoderTests {
    static func bulk(_ text: String) -> RedisReply { .bulkString(Array(text.utf8)) }

    @Test("get-master-addr-by-name", arguments: [
        (RedisReply.array([bulk("127.0.0.1"), bulk("6380")]), SentinelReplyDecoder.MasterAnswer.master(SentinelAddress(host: "127.0.0.1", port: 6380))),
        (.array([bulk("::1"), bulk("65535")]), .master(SentinelAddress(host: "::1", port: 65535))),
        (.array([bulk("redis-0.redis.svc"), bulk("1")]), .master(SentinelAddress(host: "redis-0.redis.svc", port: 1))),
        (.null, .unknown),
    ])
    func masterAddress(_ reply: RedisReply, _ expected: SentinelReplyDecoder.MasterAnswer) {
        #expect(SentinelReplyDecoder.masterAddress(reply) == expected)
    }

    @Test("hostile or confused get-master-addr-by-name replies give a reason, never an address", arguments: [
        RedisReply.array([]),
        .array([bulk("127.0.0.1")]),
        .array([bulk("127.0.0.1"), bulk("6380"), bulk("extra")]),
        .array([bulk("127.0.0.1"), .integer(6380)]),
        .array([.status("127.0.0.1"), bulk("6380")]),
        .array([bulk(""), bulk("6380")]),
        .array([bulk("evil host"), bulk("6380")]),
        .array([bulk("h\r\nPING"), bulk("6380")]),
        .array([bulk("h/../x"), bulk("6380")]),
        .array([bulk(String(repeating: "h", count: 256)), bulk("6380")]),
        .array([bulk("127.0.0.1"), bulk("0")]),
        .array([bulk("127.0.0.1"), bulk("65536")]),
        .array([bulk("127.0.0.1"), bulk("-1")]),
        .array([bulk("127.0.0.1"), bulk("+80")]),
        .array([bulk("127.0.0.1"), bulk(" 80")]),
        .array([bulk("127.0.0.1"), bulk("000000080")]),
        .array([bulk("127.0.0.1"), bulk("")]),
        .bulkString(Array("127.0.0.1:6380".utf8)),
        .integer(1),
        .status("OK"),
        .error("ERR unknown command"),
    ])
    func invalidMasterAddress(_ reply: RedisReply) {
        guard case .invalid(let reason) = SentinelReplyDecoder.masterAddress(reply) else {
            Issue.record("\(reply) was accepted")
            return
        }
        #expect(!reason.isEmpty)
        #expect(reason.utf8.allSatisfy { (0x20..<0x7F).contains($0) })
    }

    @Test("an error reply is quoted bounded and printable")
    func quotedError() {
        let hostile = "ERR \u{1B}[31m" + String(repeating: "x", count: 1000) + "\r\n"
        guard case .invalid(let reason) = SentinelReplyDecoder.masterAddress(.error(hostile)) else {
            Issue.record("accepted")
            return
        }
        #expect(reason.utf8.count <= SentinelReplyDecoder.maximumQuotedBytes + 20)
        #expect(reason.utf8.allSatisfy { (0x20..<0x7F).contains($0) })
    }

    @Test("ROLE", arguments: [
        (RedisReply.array([bulk("master"), .integer(0), .array([])]), "master"),
        (.array([bulk("slave"), bulk("127.0.0.1"), .integer(6379), bulk("connected"), .integer(1)]), "slave"),
        (.array([bulk("sentinel"), .array([bulk("mymaster")])]), "sentinel"),
        (.array([]), nil),
        (.array([.status("master")]), nil),
        (.array([bulk("MASTER")]), nil),
        (.array([bulk("master\r\n")]), nil),
        (.array([bulk("")]), nil),
        (.array([bulk(String(repeating: "a", count: 17))]), nil),
        (.bulkString(Array("master".utf8)), nil),
        (.error("NOPERM this user has no permissions to run the 'role' command"), nil),
        (.null, nil),
    ] as [(RedisReply, String?)])
    func role(_ reply: RedisReply, _ expected: String?) {
        #expect(SentinelReplyDecoder.role(reply) == expected)
    }

    @Test("+switch-master", arguments: [
        ("mymaster 127.0.0.1 33863 127.0.0.1 57039", SentinelAddress(host: "127.0.0.1", port: 57039)),
        ("mymaster ::1 1 ::2 2", SentinelAddress(host: "::2", port: 2)),
        ("other 127.0.0.1 1 127.0.0.1 2", nil),
        ("mymaster2 127.0.0.1 1 127.0.0.1 2", nil),
        ("mymaster 127.0.0.1 1 127.0.0.1", nil),
        ("mymaster 127.0.0.1 1 127.0.0.1 2 3", nil),
        ("mymaster  127.0.0.1 1 127.0.0.1 2", nil),
        ("mymaster 127.0.0.1 1 bad\u{0}host 2", nil),
        ("mymaster 127.0.0.1 1 127.0.0.1 99999", nil),
        ("mymaster 127.0.0.1 1 127.0.0.1 ", nil),
        ("", nil),
        ("mymaster 127.0.0.1 1 \(String(repeating: "h", count: 300)) 2", nil),
    ] as [(String, SentinelAddress?)])
    func switchMaster(_ payload: String, _ expected: SentinelAddress?) {
        #expect(SentinelReplyDecoder.switchMaster(Array(payload.utf8), masterName: "mymaster") == expected)
    }

    @Test("+promoted-slave", arguments: [
        ("slave 127.0.0.1:18002 127.0.0.1 18002 @ mymaster 127.0.0.1 18001", SentinelAddress(host: "127.0.0.1", port: 18002)),
        ("slave [::1]:7 ::1 7 @ mymaster ::1 6", SentinelAddress(host: "::1", port: 7)),
        ("slave 127.0.0.1:18002 127.0.0.1 18002 @ other 127.0.0.1 18001", nil),
        ("master mymaster 127.0.0.1 18001", nil),
        ("sentinel 127.0.0.1:1 127.0.0.1 1 @ mymaster 127.0.0.1 18001", nil),
        ("slave 127.0.0.1:18002 127.0.0.1 18002 # mymaster 127.0.0.1 18001", nil),
        ("slave 127.0.0.1:18002 127.0.0.1 0 @ mymaster 127.0.0.1 18001", nil),
        ("slave x bad/host 1 @ mymaster 127.0.0.1 18001", nil),
        ("slave 127.0.0.1:18002 127.0.0.1 18002 @ mymaster 127.0.0.1", nil),
    ] as [(String, SentinelAddress?)])
    func promotedReplica(_ payload: String, _ expected: SentinelAddress?) {
        #expect(SentinelReplyDecoder.promotedReplica(Array(payload.utf8), masterName: "mymaster") == expected)
    }
}
