/// The settings the endpoints decide by, taken from the node's configuration.
package struct EndpointConfiguration: Sendable {
    /// Largest publish body, and largest ignored body of any other request (`--max-payload`).
    package var maxPayloadBytes: Int
    /// Longest channel name, in UTF-8 bytes.
    package var maxChannelNameBytes: Int
    /// Most distinct channels one stream may name (`--max-channels`).
    package var maxChannelsPerStream: Int
    /// `--cors-origin` values (`*` for any).
    package var corsOrigins: [String]

    package init(maxPayloadBytes: Int, maxChannelNameBytes: Int, maxChannelsPerStream: Int, corsOrigins: [String]) {
        self.maxPayloadBytes = maxPayloadBytes
        self.maxChannelNameBytes = maxChannelNameBytes
        self.maxChannelsPerStream = maxChannelsPerStream
        self.corsOrigins = corsOrigins
    }
}
