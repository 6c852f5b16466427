import SSERedis
import Testing

@Suite("Redis errors: transient or permanent; error replies are never data")
struct RedisErrorTests {
    @Test(
        "transient error replies",
        arguments: [
            "LOADING Redis is loading the dataset in memory", "BUSY Redis is busy running a script",
            "TRYAGAIN Multiple keys request during rehashing of slot", "MASTERDOWN Link with MASTER is down",
            "CLUSTERDOWN The cluster is down",
            "READONLY You can't write against a read only replica. script: 3a1b, on @user_script:1.",
            "NOREPLICAS Not enough good replicas to write.",
        ]
    )
    func transientReplies(text: String) {
        let error = RedisError(serverReply: text)
        #expect(error.code == .serverError)
        #expect(error.isTransient)
        #expect(RedisReply.error(text).serverError?.isTransient == true)
        #expect(RedisCommandClient.isTransient(.success(.error(text))))
    }

    @Test(
        "permanent error replies",
        arguments: ["ERR unknown command", "NOPERM this user has no permissions", "WRONGTYPE Operation", "NOSCRIPT No matching script", "loading lowercase", ""]
    )
    func permanentReplies(text: String) {
        #expect(!RedisError(serverReply: text).isTransient)
        #expect(!RedisCommandClient.isTransient(.success(.error(text))))
    }

    @Test("connection failures are transient; overload, shutdown and protocol violations are not")
    func codes() {
        for code in [RedisError.Code.connectionFailed, .connectionLost, .unavailable, .timedOut] {
            #expect(RedisError(code, "x").isTransient)
        }
        for code in [RedisError.Code.overloaded, .shutdown, .protocolViolation] {
            #expect(!RedisError(code, "x").isTransient)
        }
        #expect(!RedisError(.connectionFailed, "AUTH failed", serverCode: "WRONGPASS").isTransient)
        #expect(RedisError(.connectionFailed, "SELECT failed", serverCode: "LOADING").isTransient)
        #expect(!RedisCommandClient.isTransient(.success(.bulkString([]))))
    }

    @Test("value accessors never read an error reply as a value")
    func accessors() {
        let error = RedisReply.error("ERR 42")
        #expect(error.string == nil)
        #expect(error.integer == nil)
        #expect(error.int == nil)
        #expect(error.elements == nil)
        #expect(error.errorText == "ERR 42")
        #expect(RedisReply.integer(.max).int == Int(Int64.max))
        #expect(RedisReply.status("OK").serverError == nil)
    }
}
