import NIOCore
import NIOPosix
import SSEStreamCore
import Synchronization
import Testing

/// The bounded sink on a real event loop with a consumer task, as a host drives it.
@Suite("Bounded stream sink")
struct BoundedStreamSinkTests {
    static func text(_ buffers: [ByteBuffer]?) -> String? {
        buffers.map { $0.map { String(buffer: $0) }.joined() }
    }

    @Test("bytes leave at flush, in the order written; queued bytes wait for the next flush")
    func ordering() async throws {
        let harness = try await SinkHarness.make()
        try await harness.onLoop { sink, _ in
            sink.write(ByteBuffer(string: "a"))
            sink.write(ByteBuffer(string: "b"))
            sink.flush()
            sink.write(ByteBuffer(string: "c"))
            sink.writeAndFlush(ByteBuffer(string: "d"))
            // Queued, not flushed: must not reach the consumer with the others.
            sink.write(ByteBuffer(string: "e"))
        }
        let (first, second) = try await withTimeout {
            var iterator = harness.chunks.makeAsyncIterator()
            let first = try await iterator.nextBatch()
            try await harness.onLoop { sink, _ in sink.writeAndFlush(ByteBuffer(string: "f")) }
            let second = try await iterator.nextBatch()
            return (first.map { $0.map { String(buffer: $0) } }, second.map { $0.map { String(buffer: $0) } })
        }
        #expect(first == ["a", "b", "c", "d"])
        #expect(second == ["e", "f"])
        // The iterator above was dropped: the stream is over.
        #expect(await harness.log.wait(for: .closed))
        #expect(try await harness.onLoop { sink, _ in sink.isClosed })
    }

    @Test("next() gives the buffers one at a time, in order")
    func oneAtATime() async throws {
        let harness = try await SinkHarness.make(low: 500, high: 1000)
        try await harness.onLoop { sink, _ in
            for number in 0..<10 { sink.write(ByteBuffer(string: "\(number)")) }
            sink.flush()
            sink.end(after: ByteBuffer(string: "end"))
        }
        let seen = try await withTimeout {
            var seen: [String] = []
            for try await buffer in harness.chunks { seen.append(String(buffer: buffer)) }
            return seen
        }
        #expect(seen == (0..<10).map { "\($0)" } + ["end"])
    }

    @Test("one consumer: what it reads is exactly what was flushed, then nil after end")
    func endDrainsThenFinishes() async throws {
        let harness = try await SinkHarness.make(low: 500, high: 1000)
        try await harness.onLoop { sink, _ in
            sink.writeAndFlush(ByteBuffer(string: "event:1\n\n"))
            sink.write(ByteBuffer(string: "event:2\n\n"))
            sink.end(after: ByteBuffer(string: "event:3\n\n"))
            // After the end nothing more is taken.
            sink.writeAndFlush(ByteBuffer(string: "late"))
        }
        #expect(harness.log.count(of: .closed) == 0)
        let read = try await withTimeout {
            var out = ""
            for try await chunk in harness.chunks { out += String(buffer: chunk) }
            return out
        }
        #expect(read == "event:1\n\nevent:2\n\nevent:3\n\n")
        #expect(await harness.log.wait(for: .closed))
        try await harness.settle()
        #expect(harness.log.events == [.closed])
    }

    @Test("a consumer already waiting when the stream ends with nothing more finishes")
    func endWhileWaiting() async throws {
        let harness = try await SinkHarness.make()
        let reader = Task {
            var count = 0
            for try await _ in harness.chunks { count += 1 }
            return count
        }
        try await harness.onLoop { sink, _ in sink.writeAndFlush(ByteBuffer(string: "one")) }
        try await harness.onLoop { sink, _ in sink.end(after: nil) }
        let count = try await withTimeout { try await reader.value }
        #expect(count == 1)
        #expect(await harness.log.wait(for: .closed))
    }

    @Test("past high: not writable at once, during the write; writable again once the consumer took it below low")
    func writability() async throws {
        let harness = try await SinkHarness.make(low: 50, high: 100)
        let after = try await harness.onLoop { sink, owner -> [SinkEvent] in
            sink.write(ByteBuffer(repeating: 1, count: 60))
            let first = owner.log.events
            sink.write(ByteBuffer(repeating: 2, count: 60))  // 120 > 100: not writable now
            sink.flush()
            return first + owner.log.events + [.writable(sink.isWritable)]
        }
        #expect(after == [.writable(false), .writable(false)])
        #expect(try await harness.onLoop { sink, _ in sink.unreadBytes } == 120)
        let consumer = Task {
            var iterator = harness.chunks.makeAsyncIterator()
            var bytes = 0
            while let batch = try await iterator.nextBatch() {
                bytes += batch.reduce(0) { $0 + $1.readableBytes }
            }
            return bytes
        }
        #expect(await harness.log.wait(for: .writable(true)))
        let state = try await harness.onLoop { sink, _ in (sink.isWritable, sink.unreadBytes) }
        #expect(state == (true, 0))
        try await harness.onLoop { sink, _ in sink.end(after: ByteBuffer(repeating: 3, count: 5)) }
        #expect(try await withTimeout { try await consumer.value } == 125)
        // The closed callback runs on the loop after the consumer saw the end.
        #expect(await harness.log.wait(for: .closed))
        #expect(harness.log.events == [.writable(false), .writable(true), .closed])
    }

    @Test("taken but not written out yet counts as unread: writability waits for the consumer to come back")
    func lentBytesCount() async throws {
        let harness = try await SinkHarness.make(low: 50, high: 100)
        try await harness.onLoop { sink, _ in sink.writeAndFlush(ByteBuffer(repeating: 1, count: 150)) }
        let (taken, proceed) = AsyncStream.makeStream(of: Void.self)
        let (tookIt, tookSignal) = AsyncStream.makeStream(of: Int.self)
        let consumer = Task {
            var iterator = harness.chunks.makeAsyncIterator()
            let batch = try await iterator.nextBatch()
            tookSignal.yield(batch?.count ?? 0)
            // "Writing it out": the host's writer is blocked until the test says so.
            for await _ in taken { break }
            _ = try await iterator.nextBatch()
        }
        var signals = tookIt.makeAsyncIterator()
        #expect(await signals.next() == 1)
        try await harness.settle()
        #expect(try await harness.onLoop { sink, _ in (sink.isWritable, sink.unreadBytes) } == (false, 150))
        proceed.yield()
        #expect(await harness.log.wait(for: .writable(true)))
        try await harness.onLoop { sink, _ in sink.abort() }
        await #expect(throws: BoundedStreamSink.CutOffError.self) { try await consumer.value }
    }

    @Test("abort drops what is held: the consumer throws CutOffError at once, the owner hears closed once")
    func abort() async throws {
        let harness = try await SinkHarness.make()
        let after = try await harness.onLoop { sink, _ -> Int in
            sink.writeAndFlush(ByteBuffer(string: "flushed, never taken"))
            sink.write(ByteBuffer(string: "never flushed"))
            sink.abort()
            sink.writeAndFlush(ByteBuffer(string: "after"))
            return sink.unreadBytes
        }
        #expect(after == 0)
        await #expect(throws: BoundedStreamSink.CutOffError.self) {
            try await withTimeout {
                var iterator = harness.chunks.makeAsyncIterator()
                _ = try await iterator.next()
            }
        }
        #expect(await harness.log.wait(for: .closed))
        try await harness.onLoop { sink, _ in sink.abort() }
        harness.chunks.cancel()
        try await harness.settle()
        #expect(harness.log.count(of: .closed) == 1)
        #expect(try await harness.onLoop { sink, _ in sink.isClosed })
    }

    @Test("abort wakes a consumer that is waiting")
    func abortWakesWaiter() async throws {
        let harness = try await SinkHarness.make()
        let reader = Task {
            var iterator = harness.chunks.makeAsyncIterator()
            _ = try await iterator.next()
            _ = try await iterator.next()
        }
        try await harness.onLoop { sink, _ in sink.writeAndFlush(ByteBuffer(string: "first")) }
        try await Task.sleep(for: .milliseconds(20))
        try await harness.onLoop { sink, _ in sink.abort() }
        await #expect(throws: BoundedStreamSink.CutOffError.self) { try await withTimeout { try await reader.value } }
        #expect(await harness.log.wait(for: .closed))
    }

    enum Departure: String, CaseIterable, Sendable {
        case taskCancelled, iteratorDropped, hostCancelled, chunksDroppedUnread, cancelledBeforeReading
    }

    @Test("the consumer going away tells the owner sinkClosed exactly once", arguments: Departure.allCases)
    func consumerGoesAway(_ departure: Departure) async throws {
        let harness = try await SinkHarness.make()
        try await harness.onLoop { sink, _ in sink.writeAndFlush(ByteBuffer(string: "x")) }
        switch departure {
        case .taskCancelled:
            let reader = Task {
                for try await _ in harness.chunks {}
            }
            try await Task.sleep(for: .milliseconds(20))
            reader.cancel()
            try await withTimeout { try await reader.value }
        case .iteratorDropped:
            try await withTimeout {
                var iterator = harness.chunks.makeAsyncIterator()
                _ = try await iterator.next()
            }
        case .hostCancelled:
            let (tookFirst, signal) = AsyncStream.makeStream(of: Void.self)
            let reader = Task {
                var count = 0
                for try await _ in harness.chunks {
                    count += 1
                    signal.yield()
                }
                return count
            }
            for await _ in tookFirst { break }
            harness.chunks.cancel()
            #expect(try await withTimeout { try await reader.value } == 1)
        case .chunksDroppedUnread:
            try await dropHarnessChunks(loop: harness.loop)
            return
        case .cancelledBeforeReading:
            harness.chunks.cancel()
            var iterator = harness.chunks.makeAsyncIterator()
            #expect(try await iterator.next() == nil)
        }
        #expect(await harness.log.wait(for: .closed))
        // Anything later, from either side, does not report it again.
        harness.chunks.cancel()
        try await harness.onLoop { sink, _ in
            sink.writeAndFlush(ByteBuffer(string: "late"))
            sink.end(after: nil)
            sink.abort()
        }
        try await harness.settle()
        #expect(harness.log.count(of: .closed) == 1)
        #expect(try await harness.onLoop { sink, _ in (sink.isClosed, sink.unreadBytes) } == (true, 0))
    }

    /// A sink whose chunks the host never iterates and drops (a response that was never sent).
    private func dropHarnessChunks(loop: any EventLoop) async throws {
        let log = SinkEventLog()
        let owner = try await loop.submit { () -> NIOLoopBound<SinkOwner> in
            let (sink, chunks) = BoundedStreamSink.makeSink(on: loop, clientBufferBytes: 100)
            let owner = SinkOwner(sink: sink, log: log)
            sink.owner = owner
            sink.writeAndFlush(ByteBuffer(string: "x"))
            _ = consume chunks
            return NIOLoopBound(owner, eventLoop: loop)
        }.get()
        #expect(await log.wait(for: .closed))
        try await loop.submit {}.get()
        #expect(log.count(of: .closed) == 1)
        #expect(try await loop.submit { owner.value.sink.isClosed }.get())
    }

    @Test("a consumer that never reads: a stream that writes only while writable holds at most high + one write")
    func neverReadingStaysBounded() async throws {
        let high = 16 * 1024
        let event = 1000
        let harness = try await SinkHarness.make(low: high / 2, high: high)
        let (held, accepted) = try await harness.onLoop { sink, _ -> (Int, Int) in
            var held = 0
            var accepted = 0
            for _ in 0..<1000 {
                // The stream's policy: a client that is not writable and past its budget
                // (here the high watermark itself) is cut off.
                if !sink.isWritable, sink.unreadBytes > high {
                    sink.abort()
                    break
                }
                sink.writeAndFlush(ByteBuffer(repeating: 7, count: event))
                held = max(held, sink.unreadBytes)
                accepted += 1
            }
            return (held, accepted)
        }
        #expect(held <= high + event)
        #expect(accepted == high / event + 1)
        #expect(await harness.log.wait(for: .closed))
        var iterator = harness.chunks.makeAsyncIterator()
        await #expect(throws: BoundedStreamSink.CutOffError.self) { _ = try await iterator.next() }
    }

    @Test("producer on a real loop, consumer task: every byte arrives once, in order, never more than high + one write held")
    func concurrency() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { group.shutdownGracefully { _ in } }
        let high = 4096
        let harness = try await SinkHarness.make(low: high / 4, high: high, on: group.next())
        let (expected, maxWrite) = Self.chunkPlan(count: 3000)
        let maxHeld = Peak()

        try await harness.onLoop { sink, owner in
            var index = 0
            func pump() {
                while sink.isWritable, index < expected.count {
                    sink.write(expected[index])
                    index += 1
                    if index % 3 == 0 { sink.flush() }
                }
                sink.flush()
                let held = sink.unreadBytes
                maxHeld.note(held)
                if index == expected.count { sink.end(after: nil) }
            }
            owner.onWritable = pump
            pump()
        }
        let received = try await withTimeout(seconds: 60) {
            var out = ByteBuffer()
            var iterator = harness.chunks.makeAsyncIterator()
            var batches = 0
            while let batch = try await iterator.nextBatch() {
                for var buffer in batch { out.writeBuffer(&buffer) }
                batches += 1
                if batches % 7 == 0 { try await Task.sleep(for: .milliseconds(1)) } else { await Task.yield() }
            }
            return out
        }
        var whole = ByteBuffer()
        for var buffer in expected { whole.writeBuffer(&buffer) }
        #expect(received == whole)
        #expect(maxHeld.value <= high + maxWrite)
        #expect(await harness.log.wait(for: .closed))
        let events = harness.log.events
        #expect(events.last == .closed)
        #expect(events.count(where: { $0 == .closed }) == 1)
        // Writability alternated, starting with not writable.
        let flips = events.dropLast()
        #expect(flips.count >= 2)
        #expect(zip(flips, flips.dropFirst()).allSatisfy { $0 != $1 })
        #expect(flips.first == .writable(false))
    }

    /// `count` numbered chunks of scattered sizes (1...300 bytes, a fixed sequence so a failure
    /// replays), and the largest size.
    static func chunkPlan(count: Int) -> ([ByteBuffer], Int) {
        var chunks: [ByteBuffer] = []
        var largest = 0
        for number in 0..<count {
            let size = (number &* 7919 &+ 13) % 300 + 1
            var buffer = ByteBuffer(string: "\(number):")
            buffer.writeBytes([UInt8](repeating: UInt8(truncatingIfNeeded: number), count: size))
            largest = max(largest, buffer.readableBytes)
            chunks.append(buffer)
        }
        return (chunks, largest)
    }

    /// The largest value noted, from any thread.
    final class Peak: Sendable {
        private let peak = Mutex(0)
        var value: Int { peak.withLock { $0 } }
        func note(_ value: Int) { peak.withLock { $0 = max($0, value) } }
    }
}
