import FuzzNode
import FuzzSupport

/// The HTTP/2 connection input: an accepted cleartext connection of a node with `--h2c`,
/// configured as `ConnectionPipeline` configures it (the preface sniffer, then `HTTP2Pipeline`
/// or `HTTPPipeline`), with real `BrokerServices`, Redis unreachable (as in `fuzz-http`).
///
/// The first input byte is a control byte: bit 0 clear, the client sends HTTP/2's connection
/// preface and then the rest of the input (frames after the preface); set, the rest of the
/// input from the first byte (what the sniffer decides on). Bit 1 chooses the node (open, or
/// with a publish key and a JWT key), bits 2-4 the size of the chunks the input arrives in.
///
/// The output must be what the sniffer's decision calls for: for a connection that begins
/// with the preface, well-formed HTTP/2 (`HTTP2OutputCheck`); for any other beginning,
/// well-formed HTTP/1.x responses (`HTTPResponseCheck`); for a proper prefix of the preface,
/// nothing. No answer is a 500, the output is at most `outputBound` for the input's size, and
/// no stream or subscription outlives the connection.
@main
enum FuzzH2 {
    static func main() { FuzzDriver.run { data, count in fuzzH2(data, count) } }
}

/// What every HTTP/2 connection begins with (RFC 9113, section 3.4).
let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

/// The chunk sizes bits 2-4 choose: single bytes, a frame header, the preface, and larger.
let chunkSizes = [1, 2, 5, 9, 24, 64, 512, 16_384]

let nodes = FuzzNode.pair(label: "fuzz.h2") { $0.http2.acceptsCleartext = true }

/// The most a connection may write for `inputCount` bytes in: a fixed allowance, then a
/// multiple of the input. The largest answers per byte in are whole responses to requests of a
/// few HPACK-indexed bytes (a 13-byte HEADERS frame fetches `/metrics`, about 700 bytes; a
/// byte that breaks the connection gets a 17-byte GOAWAY).
func outputBound(_ inputCount: Int) -> Int { 65_536 + 256 * inputCount }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzH2(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let input = FuzzCheck.bytes(data, count)
    guard let control = input.first else { return 0 }
    let node = control & 2 == 0 ? nodes.open : nodes.keyed
    let chunkSize = chunkSizes[Int(control >> 2) & 7]
    let request = control & 1 == 0 ? preface + input.dropFirst() : Array(input.dropFirst())
    // Publishes (HPACK hides the method) are answered from Redis's thread: always wait for them.
    let bytes = node.exchange(request, chunkSize: chunkSize, patient: true, wiring: .accepted)
    FuzzCheck.require(bytes.count <= outputBound(request.count), "\(bytes.count) bytes out for \(request.count) in")
    let statuses: [Int]
    if request.starts(with: preface) {
        statuses = HTTP2OutputCheck.check(bytes)
    } else if preface.starts(with: request) {
        FuzzCheck.require(bytes.isEmpty, "an answer before the sniffer could decide: \(FuzzCheck.describe(bytes))")
        statuses = []
    } else {
        statuses = HTTPResponseCheck.check(bytes)
    }
    FuzzCheck.require(statuses.allSatisfy { $0 != 500 }, "a 500 answer: \(FuzzCheck.describe(bytes))")
    node.requireNothingLeft(after: bytes)
    return 0
}
