import NIOCore

/// Where one stream's bytes go: a NIO channel (the standalone server) or a bounded buffer that a host
/// framework drains. Called only on the stream's event loop.
public protocol StreamSink: AnyObject {
    /// Queues `bytes` to leave at the next `flush()`.
    func write(_ bytes: ByteBuffer)
    /// Sends what `write` queued.
    func flush()
    /// Writes and flushes `bytes` at once, by the fastest path the sink has.
    func writeAndFlush(_ bytes: ByteBuffer)
    /// Bytes flushed to the sink that the client has not taken yet (asked only while it is not writable).
    var unreadBytes: Int { get }
    /// Ends the stream cleanly after `last` (nil: nothing more), then closes.
    func end(after last: ByteBuffer?)
    /// Closes at once: the client was cut off.
    func abort()
}

/// What a sink tells the stream it carries (on the stream's loop).
public protocol StreamSinkOwner: AnyObject {
    func sinkWritabilityChanged(isWritable: Bool)
    func sinkClosed()
}
