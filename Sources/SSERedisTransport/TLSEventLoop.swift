import NIOPosix

/// The one event loop thread that runs every TLS tunnel of the process.
///
/// Created on first use (the first TLS connect), never shut down, like `NIOSingletons`. Kept
/// apart from any HTTP server's loops: TLS work for Redis never adds latency to streams, and
/// a process with no server (a publisher) gets it too. Nothing blocks on it: contexts are
/// built on the caller's thread, and waits happen on the callers' own threads.
public enum TLSEventLoop {
    /// The lazily created one-thread group.
    public static let group: MultiThreadedEventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
}
