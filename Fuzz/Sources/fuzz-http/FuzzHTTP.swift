import FuzzNode
import FuzzSupport

/// The HTTP request path: the node's real pipeline (`HTTPPipeline`) with real `BrokerServices`
/// on a thread-safe testing channel, pointed at a Redis that does not exist (port 1: the
/// subscriber is never started, publishes fail fast with 503). Bytes in, split where the
/// fuzzer says; bytes out, which must be well-formed HTTP/1.x responses (`HTTPResponseCheck`).
///
/// The first input byte chooses the node (bit 0: open, or with a publish key and a JWT key) and
/// the chunk size (the other bits, 1...128 bytes); the rest is what the client sends. After it,
/// the clock jumps past every timeout, then the client goes away.
@main
enum FuzzHTTP {
    static func main() { FuzzDriver.run { data, count in fuzzHTTP(data, count) } }
}

/// The open node and the keyed one, built once and shared by every input.
let nodes = FuzzNode.pair(label: "fuzz.http")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let input = FuzzCheck.bytes(data, count)
    guard let control = input.first else { return 0 }
    let node = control & 1 == 0 ? nodes.open : nodes.keyed
    let chunkSize = Int(control >> 1) + 1
    let request = Array(input.dropFirst())
    // Only publishes (Redis's thread answers) and the keyed node (an access check task) have
    // answers that come from off the loop and need waiting for.
    let patient = control & 1 == 1 || HTTPResponseCheck.find(Array("POST".utf8), in: request, from: 0) != nil
    let bytes = node.exchange(request, chunkSize: chunkSize, patient: patient, wiring: .http1)
    let statuses = HTTPResponseCheck.check(bytes)
    FuzzCheck.require(statuses.allSatisfy { $0 != 500 }, "a 500 answer: \(FuzzCheck.describe(bytes))")
    node.requireNothingLeft(after: bytes)
    return 0
}
