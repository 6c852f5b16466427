import SSERedis

/// Validates the channel names a client asks for.
///
/// A missing or empty first `channel` means `sse`, as in Flask-SSE. Names are otherwise opaque
/// Redis channel names, but a name longer than the limit or with control characters (Unicode
/// category Cc) is refused with 400: such names are mistakes or attacks, never real channels.
/// So is the prefix of the nodes' delivery probe channels (`RedisSubscriber.probeChannelPrefix`).
package struct ChannelNameValidator: Sendable {
    package let maximumBytes: Int
    /// Most distinct channels one stream may name (`--max-channels`).
    package var maximumChannels: Int

    package init(maximumBytes: Int, maximumChannels: Int = 64) {
        self.maximumBytes = maximumBytes
        self.maximumChannels = maximumChannels
    }

    /// The channels of a stream request: every `channel` value; with none or one, Flask-SSE's
    /// meaning (the first value, `sse` when missing or empty). A name repeated byte for byte
    /// counts once (the stream gets each event once); names that differ in their bytes are
    /// different Redis channels even when Unicode calls them equivalent. More than
    /// `maximumChannels` distinct names: 400.
    package func streamChannels(_ query: QueryParameters) throws(HTTPError) -> [String] {
        let values = query.all("channel")
        if values.count <= 1 {
            return [try validate(values.first ?? "")]
        }
        var seen: Set<[UInt8]> = []
        var channels: [String] = []
        for value in values {
            guard !value.isEmpty else { throw HTTPError(.badRequest, "empty channel name in a multi-channel stream") }
            let channel = try validate(value)
            guard seen.insert(Array(channel.utf8)).inserted else { continue }
            guard channels.count < maximumChannels else {
                throw HTTPError(.badRequest, "a stream may name at most \(maximumChannels) channels")
            }
            channels.append(channel)
        }
        return channels
    }

    /// The channel of a publish request: the first `channel` value, `sse` when missing or empty.
    package func publishChannel(_ query: QueryParameters) throws(HTTPError) -> String {
        try validate(query.first("channel") ?? "")
    }

    /// Applies the default and the rules to one name.
    package func validate(_ raw: String) throws(HTTPError) -> String {
        let name = raw.isEmpty ? "sse" : raw
        guard name.utf8.count <= maximumBytes else {
            throw HTTPError(.badRequest, "channel name longer than \(maximumBytes) bytes")
        }
        guard !name.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) else {
            throw HTTPError(.badRequest, "channel name contains control characters")
        }
        // The nodes' delivery probes: a client that streamed one could not break a probe (its
        // tokens are random), but one that published there could waste a node's checks.
        guard !name.utf8.starts(with: RedisSubscriber.probeChannelPrefix.utf8) else {
            throw HTTPError(.badRequest, "channel names starting with \(RedisSubscriber.probeChannelPrefix) are reserved for the broker")
        }
        return name
    }
}
