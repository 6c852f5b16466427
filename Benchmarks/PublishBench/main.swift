// sse-publish-bench: SSEPublisher's throughput to one channel, single publishes pipelined
// (a window of publishes in flight) or batches, with or without history. Prints one JSON line.
//
//   sse-publish-bench --redis redis://127.0.0.1:6379/0 --events 200000 --mode single --window 1024
//   sse-publish-bench --redis ... --mode batch --batch 64 --window 16 --history 0
import Dispatch
import Foundation
import SSEHistory
import SSEPublisher
import SSERedis
import SSEWire
import Synchronization

struct Options {
    var redis = "redis://127.0.0.1:6379/0"
    var channel = "bench"
    var events = 100_000
    var mode = "single"
    var window = 1024
    var batch = 64
    var size = 64
    var history = 1000

    init(_ arguments: [String]) throws {
        var index = 1
        func value() throws -> String {
            index += 1
            guard index < arguments.count else { throw BenchError("missing value for \(arguments[index - 1])") }
            return arguments[index]
        }
        func number() throws -> Int {
            let text = try value()
            guard let parsed = Int(text), parsed >= 0 else { throw BenchError("not a count: \(text)") }
            return parsed
        }
        while index < arguments.count {
            switch arguments[index] {
            case "--redis": redis = try value()
            case "--channel": channel = try value()
            case "--events": events = max(1, try number())
            case "--mode": mode = try value()
            case "--window": window = max(1, try number())
            case "--batch": batch = max(1, try number())
            case "--size": size = max(1, try number())
            case "--history": history = try number()
            default: throw BenchError("unknown option \(arguments[index])")
            }
            index += 1
        }
        guard mode == "single" || mode == "batch" else { throw BenchError("--mode is single or batch") }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func run() throws {
    let options = try Options(CommandLine.arguments)
    let history = options.history > 0 ? HistoryConfiguration(length: options.history) : .disabled
    let publisher = SSEPublisher(redis: try RedisConfiguration(url: options.redis), history: history)
    defer { publisher.shutdown() }
    let message = FlaskSSEMessage(data: .string(String(repeating: "x", count: options.size)))
    // Warm up: the connection and the script.
    let ready = DispatchSemaphore(value: 0)
    publisher.publish(message, channel: options.channel) { _ in ready.signal() }
    ready.wait()

    let window = DispatchSemaphore(value: options.window)
    let finished = DispatchSemaphore(value: 0)
    let counter = Counter(expected: options.events)
    let started = DispatchTime.now().uptimeNanoseconds
    if options.mode == "single" {
        for _ in 0..<options.events {
            window.wait()
            publisher.publish(message, channel: options.channel) { result in
                counter.add(1, failed: (try? result.get()) == nil)
                window.signal()
                if counter.isDone { finished.signal() }
            }
        }
    } else {
        var left = options.events
        while left > 0 {
            let count = min(options.batch, left)
            left -= count
            window.wait()
            publisher.publish(Array(repeating: message, count: count), channel: options.channel) { result in
                counter.add(count, failed: (try? result.get()) == nil)
                window.signal()
                if counter.isDone { finished.signal() }
            }
        }
    }
    finished.wait()
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    let rate = Double(options.events) / seconds
    print(
        #"{"mode": "\#(options.mode)", "history": \#(options.history), "events": \#(options.events), "window": \#(options.window), "batch": \#(options.mode == "batch" ? options.batch : 1), "size": \#(options.size), "seconds": \#(String(format: "%.3f", seconds)), "events_per_second": \#(Int(rate)), "failed": \#(counter.failures)}"#
    )
}

/// Events answered so far (any thread).
final class Counter: Sendable {
    private let state = Mutex((answered: 0, failed: 0))
    let expected: Int

    init(expected: Int) { self.expected = expected }

    func add(_ count: Int, failed isFailure: Bool) {
        state.withLock { state in
            state.answered += count
            if isFailure { state.failed += count }
        }
    }

    var isDone: Bool { state.withLock { $0.answered >= expected } }
    var failures: Int { state.withLock { $0.failed } }
}

do {
    try run()
} catch {
    FileHandle.standardError.write(Data("sse-publish-bench: \(error)\n".utf8))
    exit(2)
}
