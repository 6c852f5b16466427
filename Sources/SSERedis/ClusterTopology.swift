/// Which node serves which slots of a Redis Cluster, decoded strictly from `CLUSTER SLOTS`.
///
/// A hostile or confused node yields a reason, never an address to dial that was not plainly
/// one: every count is bounded, every slot range checked, every host and port validated.
public struct ClusterTopology: Sendable, Hashable {
    /// One shard: the master serving some slot ranges, and its replicas.
    public struct Shard: Sendable, Hashable {
        public var master: SentinelAddress
        public var replicas: [SentinelAddress]
        /// The slot ranges the master serves, in the order the reply gave them.
        public var slots: [ClosedRange<Int>]
    }

    /// The shards, one per distinct master, in the order the reply first named them.
    public let shards: [Shard]
    /// For every slot, the index of its shard in `shards`, or -1 where no master serves it.
    private let owners: [Int16]

    /// Most nodes (master and replicas) one slot range may list.
    static let maximumNodesPerRange = 64
    /// Most shards accepted (a Redis Cluster is meant for at most about 1,000 nodes).
    static let maximumShards = 1024

    /// The master serving `slot`, or nil when the slot is out of range or unserved.
    public func master(forSlot slot: Int) -> SentinelAddress? {
        shardIndex(forSlot: slot).map { shards[$0].master }
    }

    /// The index in `shards` of the shard serving `slot`.
    public func shardIndex(forSlot slot: Int) -> Int? {
        guard (0..<ClusterSlot.count).contains(slot) else { return nil }
        let owner = Int(owners[slot])
        return owner >= 0 ? owner : nil
    }

    /// Slots no master serves.
    public var unservedSlotCount: Int { owners.lazy.filter { $0 < 0 }.count }

    /// Decodes the reply to `CLUSTER SLOTS` from the node at `askedHost` (a node that does not
    /// know its own address answers an empty host: it means the host asked).
    ///
    /// Reply (Redis 7.0, RESP2): an array of `[start, end, master, replica…]`, each node
    /// `[host, port, id, …]`; a host `?` (an unknown endpoint) leaves that node out, and a
    /// malformed replica entry is skipped (only a malformed master spoils the reply). Linear in
    /// the reply: each slot is assigned once, replicas are kept in a set, at most 64 per shard.
    public static func decode(slots reply: RedisReply, askedHost: String) -> Result<ClusterTopology, ClusterTopologyError> {
        guard case .array(let ranges) = reply else {
            if let text = reply.errorText { return .failure(ClusterTopologyError("CLUSTER SLOTS answered '\(SentinelReplyDecoder.quoted(text))'")) }
            return .failure(ClusterTopologyError("CLUSTER SLOTS answered something other than an array"))
        }
        guard ranges.count <= ClusterSlot.count else {
            return .failure(ClusterTopologyError("CLUSTER SLOTS listed \(ranges.count) ranges, more than there are slots"))
        }
        var shards: [Shard] = []
        var shardByMaster: [SentinelAddress: Int] = [:]
        var replicasByShard: [Set<SentinelAddress>] = []
        var owners = [Int16](repeating: -1, count: ClusterSlot.count)
        for range in ranges {
            guard case .array(let items) = range, items.count >= 3, items.count <= maximumNodesPerRange + 2,
                let start = items[0].int, let end = items[1].int
            else { return .failure(ClusterTopologyError("CLUSTER SLOTS listed a range that is not [start, end, master, …]")) }
            guard (0..<ClusterSlot.count).contains(start), (0..<ClusterSlot.count).contains(end), start <= end else {
                return .failure(ClusterTopologyError("CLUSTER SLOTS listed slots \(start)-\(end), outside 0-16383"))
            }
            var nodes: [SentinelAddress] = []
            var masterKnown = true
            for (position, item) in items.dropFirst(2).enumerated() {
                switch node(item, askedHost: askedHost) {
                case .success(let address?): nodes.append(address)
                case .success(nil): if position == 0 { masterKnown = false }
                // A bad master entry spoils the reply; a bad replica entry only itself.
                case .failure(let error): if position == 0 { return .failure(error) }
                }
            }
            guard masterKnown, let master = nodes.first else { continue }
            let index: Int
            if let known = shardByMaster[master] {
                index = known
            } else {
                guard shards.count < maximumShards else {
                    return .failure(ClusterTopologyError("CLUSTER SLOTS named more than \(maximumShards) masters"))
                }
                index = shards.count
                shardByMaster[master] = index
                shards.append(Shard(master: master, replicas: [], slots: []))
                replicasByShard.append([])
            }
            for replica in nodes.dropFirst() where shards[index].replicas.count < maximumNodesPerRange {
                if replicasByShard[index].insert(replica).inserted { shards[index].replicas.append(replica) }
            }
            shards[index].slots.append(start...end)
            // Each slot once, so a hostile reply costs at most one pass over the slots.
            for slot in start...end {
                guard owners[slot] < 0 else { return .failure(ClusterTopologyError("CLUSTER SLOTS listed slot \(slot) twice")) }
                owners[slot] = Int16(index)
            }
        }
        return .success(ClusterTopology(shards: shards, owners: owners))
    }

    /// One node of a range: its address, nil for an unknown endpoint (`?`), or why it is bad.
    /// A null or empty host is the host asked (what the cluster specification says a client
    /// should assume).
    private static func node(_ reply: RedisReply, askedHost: String) -> Result<SentinelAddress?, ClusterTopologyError> {
        guard case .array(let fields) = reply, fields.count >= 2, let port = fields[1].int
        else { return .failure(ClusterTopologyError("CLUSTER SLOTS listed a node that is not [host, port, …]")) }
        let hostBytes: [UInt8]
        switch fields[0] {
        case .bulkString(let bytes): hostBytes = bytes
        case .null: hostBytes = []
        default: return .failure(ClusterTopologyError("CLUSTER SLOTS listed a node that is not [host, port, …]"))
        }
        if hostBytes == [UInt8(ascii: "?")] { return .success(nil) }
        let host = hostBytes.isEmpty ? askedHost : String(decoding: hostBytes, as: UTF8.self)
        guard hostBytes.count <= SentinelAddress.maximumHostBytes, SentinelAddress.isValidHost(host) else {
            return .failure(ClusterTopologyError("CLUSTER SLOTS named a host that is not a host name or address"))
        }
        guard (1...65535).contains(port) else {
            return .failure(ClusterTopologyError("CLUSTER SLOTS named port \(port), outside 1-65535"))
        }
        return .success(SentinelAddress(host: host, port: port))
    }
}

/// Why a `CLUSTER SLOTS` reply could not be used.
public struct ClusterTopologyError: Error, Hashable, CustomStringConvertible {
    public let reason: String
    init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
