import Foundation
import SSERedis
import Testing

/// The Redis Cluster test harness itself (`RedisClusterProcess`): a real cluster forms, a slot
/// moves with its keys, a replica takes over by `CLUSTER FAILOVER`, and nothing outlives a test.
///
/// Serialized: each test starts three to six `redis-server`s, and on two cores clusters forming
/// at once slow each other's gossip for no gain.
@Suite("Redis Cluster harness", .serialized, .timeLimit(.minutes(2)))
struct RedisClusterHarnessTests {
    @Test("three masters form a cluster whose every node agrees on who serves all 16384 slots; a key's master serves it, another master answers MOVED; everything stops with the scope")
    func forms() async throws {
        let started = ContinuousClock.now
        var pids: [Int32] = []
        let ports = try await withRedisCluster { cluster in
            print("cluster of 3 formed in \(started.duration(to: .now))")
            pids = cluster.ports.compactMap { cluster.pid(port: $0) }
            #expect(cluster.ports.count == 3)
            #expect(Set(cluster.ports).count == 3)
            #expect(cluster.ports.allSatisfy { $0 < 55536 })
            let masters = try await cluster.masterPorts()
            #expect(masters == cluster.ports.sorted())
            #expect(cluster.seedPorts == cluster.ports)
            #expect(try await cluster.replicaPorts().isEmpty)
            #expect(cluster.url == "redis+cluster://" + cluster.ports.map { "127.0.0.1:\($0)" }.joined(separator: ","))

            let view = try await cluster.slotRanges(port: cluster.ports[0])
            #expect(RedisClusterProcess.coverageGap(view) == nil, "\(view)")
            #expect(view.reduce(0) { $0 + $1.slots.count } == RedisClusterProcess.slotCount)
            #expect(Set(view.map(\.masterPort)) == Set(masters))
            for port in cluster.ports.dropFirst() {
                #expect(try await cluster.slotRanges(port: port) == view, "node \(port) disagrees")
                #expect(try await cluster.command(port: port, "CLUSTER", "INFO").string?.contains("cluster_state:ok") == true)
            }

            let key = "harness:greeting"
            let slot = try await cluster.slot(ofKey: key)
            #expect(slot == (try await cluster.slot(ofKey: "{\(key)}:other")))
            let owner = try await cluster.masterPort(forSlot: slot)
            #expect(try await cluster.command(port: owner, "SET", key, "hello") == .status("OK"))
            #expect(try await cluster.command(port: owner, "GET", key) == .bulkString(Array("hello".utf8)))
            let other = try #require(masters.first { $0 != owner })
            let moved = try await cluster.command(port: other, "GET", key)
            #expect(moved == .error("MOVED \(slot) 127.0.0.1:\(owner)"))
            #expect(moved.serverError?.serverCode == "MOVED")

            try cluster.kill(port: other)
            #expect(try FreePort.isListening(other) == false)
            #expect(cluster.livePorts == cluster.ports.filter { $0 != other })
            #expect(try await cluster.masterPorts() == masters.filter { $0 != other })
            return cluster.ports
        }
        for port in ports {
            #expect(try FreePort.isListening(port) == false, "node \(port) still listens after the scope")
            #expect(try FreePort.isListening(port + ClusterPort.busOffset) == false, "bus \(port + ClusterPort.busOffset) still listens after the scope")
        }
        for pid in pids { #expect(kill(pid, 0) != 0, "redis-server \(pid) still runs after the scope") }
    }

    @Test("migrateSlot moves a slot with its keys (MIGRATE with AUTH on a password cluster): every node names the new master, which serves the keys; the old one answers MOVED")
    func migratesSlot() async throws {
        try await withRedisCluster(password: "cluster-secret") { cluster in
            #expect(cluster.url == "redis+cluster://:cluster-secret@" + cluster.seedPorts.map { "127.0.0.1:\($0)" }.joined(separator: ","))
            let keys = ["{harness:moving}:a", "{harness:moving}:b"]
            let slot = try await cluster.slot(ofKey: keys[0])
            #expect(try await cluster.slot(ofKey: keys[1]) == slot)
            let source = try await cluster.masterPort(forSlot: slot)
            for key in keys { #expect(try await cluster.command(port: source, "SET", key, "value of \(key)") == .status("OK")) }
            let target = try #require(try await cluster.masterPorts().first { $0 != source })

            let started = ContinuousClock.now
            try await cluster.migrateSlot(slot, to: target)
            print("slot \(slot) moved from \(source) to \(target) in \(started.duration(to: .now))")

            #expect(try await cluster.slot(ofKey: keys[0]) == slot)
            #expect(try await cluster.masterPort(forSlot: slot) == target)
            for port in cluster.ports {
                let view = try await cluster.slotRanges(port: port)
                #expect(RedisClusterProcess.coverageGap(view) == nil, "\(port): \(view)")
                #expect(view.first { $0.slots.contains(slot) }?.masterPort == target, "\(port): \(view)")
            }
            for key in keys {
                #expect(try await cluster.command(port: target, "GET", key) == .bulkString(Array("value of \(key)".utf8)))
                #expect(try await cluster.command(port: source, "GET", key) == .error("MOVED \(slot) 127.0.0.1:\(target)"))
            }
            #expect(try await cluster.command(port: source, "CLUSTER", "COUNTKEYSINSLOT", String(slot)) == .integer(0))
            #expect(try await cluster.command(port: target, "CLUSTER", "COUNTKEYSINSLOT", String(slot)) == .integer(2))
            // No slot is left half-moved (`[slot->-id]` / `[slot-<-id]` markers) on either side.
            for port in [source, target] {
                guard let nodes = try await cluster.command(port: port, "CLUSTER", "NODES").string else {
                    Issue.record("no CLUSTER NODES from \(port)")
                    continue
                }
                #expect(!nodes.contains("[\(slot)-"), "\(port): \(nodes)")
            }
            // A connection without the password is refused.
            let anonymous = RedisCommandClient(redis: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: target)), logger: .init(label: "test.cluster"))
            defer { anonymous.shutdown() }
            #expect(try await anonymous.send("GET", keys[0]).serverError?.serverCode == "NOAUTH")
        }
    }

    @Test("with a replica per master, CLUSTER FAILOVER makes the replica master of its slots with the data, and its old master its replica")
    func failsOver() async throws {
        try await withRedisCluster(replicasPerMaster: 1) { cluster in
            #expect(cluster.ports.count == 6)
            let masters = try await cluster.masterPorts()
            let replicas = try await cluster.replicaPorts()
            #expect(masters.count == 3)
            #expect(replicas.count == 3)
            #expect(Set(masters + replicas) == Set(cluster.ports))
            #expect(Set(cluster.seedPorts) == Set(masters))
            let replica = try #require(replicas.first)
            let oldMaster = try await cluster.masterPort(ofReplica: replica)
            #expect(masters.contains(oldMaster))

            var found: (key: String, slot: Int)?
            for index in 0..<200 where found == nil {
                let key = "harness:failover:\(index)"
                let slot = try await cluster.slot(ofKey: key)
                if try await cluster.masterPort(forSlot: slot) == oldMaster { found = (key, slot) }
            }
            let (key, slot) = try #require(found, "no key of 200 hashes to a slot of \(oldMaster)")
            #expect(try await cluster.command(port: oldMaster, "SET", key, "kept") == .status("OK"))
            #expect(try await cluster.command(port: oldMaster, "WAIT", "1", "5000") == .integer(1))

            let started = ContinuousClock.now
            try await cluster.failover(replicaPort: replica)
            print("replica \(replica) took over from \(oldMaster) in \(started.duration(to: .now))")

            #expect(try await cluster.command(port: replica, "ROLE").elements?.first?.string == "master")
            try await eventually("\(oldMaster) to answer ROLE slave") {
                try await cluster.command(port: oldMaster, "ROLE").elements?.first?.string == "slave"
            }
            let after = try await cluster.masterPorts()
            #expect(after.contains(replica))
            #expect(!after.contains(oldMaster))
            #expect(try await cluster.replicaPorts().contains(oldMaster))
            #expect(try await cluster.masterPort(ofReplica: oldMaster) == replica)
            #expect(try await cluster.masterPort(forSlot: slot) == replica)
            #expect(try await cluster.command(port: replica, "GET", key) == .bulkString(Array("kept".utf8)))
            #expect(try await cluster.command(port: replica, "SET", key, "written after") == .status("OK"))
        }
    }
}
