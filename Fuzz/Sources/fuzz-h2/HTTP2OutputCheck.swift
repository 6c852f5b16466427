import FuzzSupport
import NIOCore
import NIOHPACK

/// What a node's HTTP/2 output must look like: whole frames (RFC 9113, section 4), the first
/// one its SETTINGS, only frame types a server sends, each on the stream its type belongs to
/// with the length its type has, header blocks that are not interleaved with other frames and
/// that decode (HPACK) to a response with a `:status`, no DATA before a stream's final HEADERS
/// nor anything after its END_STREAM, and event-stream bodies that are event text.
enum HTTP2OutputCheck {
    private enum FrameType: UInt8 {
        case data = 0, headers = 1, rstStream = 3, settings = 4, ping = 6, goAway = 7, windowUpdate = 8, continuation = 9
    }

    private struct Stream {
        var answered = false
        var ended = false
        var eventStream = false
        var body: [UInt8] = []
    }

    private static let endStream: UInt8 = 0x1
    private static let ack: UInt8 = 0x1
    private static let endHeaders: UInt8 = 0x4
    private static let padded: UInt8 = 0x8
    private static let priority: UInt8 = 0x20

    /// Checks `output` and returns the final `:status` of every response in it.
    @discardableResult
    static func check(_ output: [UInt8]) -> [Int] {
        var statuses: [Int] = []
        var streams: [UInt32: Stream] = [:]
        // The node's encoder takes any table size the client allows (SETTINGS_HEADER_TABLE_SIZE);
        // past what is kept here the blocks are no longer decoded, nor statuses checked.
        var decoder: HPACKDecoder? = HPACKDecoder(allocator: ByteBufferAllocator(), maxDynamicTableSize: 1 << 16)
        /// The header block being gathered: its stream, whether it ends the stream, its bytes.
        var block: (stream: UInt32, endsStream: Bool, bytes: [UInt8])?
        var position = 0
        var first = true
        while position < output.count {
            FuzzCheck.require(output.count - position >= 9, "a frame header cut short at \(position) of \(output.count)")
            let length = Int(output[position]) << 16 | Int(output[position + 1]) << 8 | Int(output[position + 2])
            let rawType = output[position + 3]
            let flags = output[position + 4]
            let streamWord = UInt32(output[position + 5]) << 24 | UInt32(output[position + 6]) << 16 | UInt32(output[position + 7]) << 8 | UInt32(output[position + 8])
            let payloadStart = position + 9
            FuzzCheck.require(output.count - payloadStart >= length, "a frame of \(length) bytes cut short at \(position) of \(output.count)")
            let payload = Array(output[payloadStart..<payloadStart + length])
            position = payloadStart + length
            FuzzCheck.require(streamWord & 0x8000_0000 == 0, "the reserved bit is set on a frame")
            let stream = streamWord & 0x7FFF_FFFF
            guard let type = FrameType(rawValue: rawType) else {
                FuzzCheck.require(false, "a frame of type \(rawType), which a server does not send")
                return statuses
            }
            if first {
                FuzzCheck.require(type == .settings && flags & ack == 0, "the output does not begin with the server's SETTINGS")
                first = false
            }
            if let open = block {
                FuzzCheck.require(type == .continuation && stream == open.stream, "a frame inside the header block of stream \(open.stream)")
            } else {
                FuzzCheck.require(type != .continuation, "CONTINUATION without a header block")
            }
            switch type {
            case .settings:
                FuzzCheck.require(stream == 0 && length % 6 == 0 && (flags & ack == 0 || length == 0), "bad SETTINGS (\(length) bytes, flags \(flags), stream \(stream))")
            case .ping:
                FuzzCheck.require(stream == 0 && length == 8, "bad PING (\(length) bytes, stream \(stream))")
            case .goAway:
                FuzzCheck.require(stream == 0 && length >= 8, "bad GOAWAY (\(length) bytes, stream \(stream))")
            case .windowUpdate:
                FuzzCheck.require(length == 4, "bad WINDOW_UPDATE (\(length) bytes)")
            case .rstStream:
                FuzzCheck.require(stream != 0 && length == 4, "bad RST_STREAM (\(length) bytes, stream \(stream))")
            case .data:
                FuzzCheck.require(stream % 2 == 1, "DATA on stream \(stream), which a client did not open")
                var state = streams[stream] ?? Stream()
                FuzzCheck.require(state.answered && !state.ended, "DATA on stream \(stream) before its response head or after its end")
                if state.eventStream { state.body += unpadded(payload, flags: flags) }
                if flags & endStream != 0 { state.ended = true }
                streams[stream] = state
            case .headers:
                FuzzCheck.require(stream % 2 == 1, "HEADERS on stream \(stream), which a client did not open")
                FuzzCheck.require(!(streams[stream]?.ended ?? false), "HEADERS on stream \(stream) after its end")
                var fragment = unpadded(payload, flags: flags)
                if flags & priority != 0 {
                    FuzzCheck.require(fragment.count >= 5, "HEADERS too short for its priority")
                    fragment.removeFirst(5)
                }
                block = (stream, flags & endStream != 0, fragment)
            case .continuation:
                block?.bytes += payload
            }
            guard flags & endHeaders != 0, type == .headers || type == .continuation, let done = block else { continue }
            block = nil
            var state = streams[stream] ?? Stream()
            if done.endsStream { state.ended = true }
            defer { streams[stream] = state }
            // Every block is decoded, in order: each may change the dynamic table.
            var buffer = ByteBuffer(bytes: done.bytes)
            var headers: HPACKHeaders?
            if var hpack = decoder {
                headers = try? hpack.decodeHeaders(from: &buffer)
                decoder = headers == nil ? nil : hpack
            }
            if state.answered { continue }  // trailers
            guard let headers else {
                // Not decoded: taken as the response head, its status and type unknown.
                state.answered = true
                continue
            }
            let status = headers.first(name: ":status").flatMap { Int($0) }
            FuzzCheck.require(status.map { (100...599).contains($0) } ?? false, "a response head without a valid :status on stream \(stream): \(headers)")
            guard let status, status >= 200 else { continue }
            state.answered = true
            state.eventStream = headers.first(name: "content-type")?.hasPrefix("text/event-stream") ?? false
            statuses.append(status)
        }
        FuzzCheck.require(block == nil, "the output ends inside a header block")
        for (_, stream) in streams where stream.eventStream {
            // A stream cut off (RST_STREAM, the connection closed, a small window) may end inside
            // an event: its complete lines are checked.
            guard let lastLineEnd = stream.body.lastIndex(of: 10) else { continue }
            HTTPResponseCheck.checkEventStream(Array(stream.body[...lastLineEnd]))
        }
        return statuses
    }

    /// A DATA or HEADERS payload without its padding.
    private static func unpadded(_ payload: [UInt8], flags: UInt8) -> [UInt8] {
        guard flags & padded != 0 else { return payload }
        FuzzCheck.require(!payload.isEmpty && Int(payload[0]) < payload.count, "bad padding")
        return Array(payload[1..<payload.count - Int(payload[0])])
    }
}
