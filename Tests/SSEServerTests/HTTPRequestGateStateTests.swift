import NIOCore
import NIOHTTP1
import Testing

@testable import SSEServer

/// ``HTTPRequestGateState`` alone: which decoder events pass, which wait, and when reads stop.
@Suite("HTTP request gate state")
struct HTTPRequestGateStateTests {
    static let head = HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/publish?channel=c"))
    static let body = HTTPServerRequestPart.body(ByteBuffer(string: "{}"))
    static let end = HTTPServerRequestPart.end(nil)

    static func isHead(_ event: HTTPRequestGateState.Event?) -> Bool {
        if case .part(.head)? = event { return true }
        return false
    }

    @Test("one head passes unasked; the next waits, with everything behind it, until the handler asks; reads stop meanwhile")
    func headsWaitForAsks() {
        var gate = HTTPRequestGateState()
        let r1 = gate.received(.part(Self.head))
        #expect(Self.isHead(r1))
        let r2 = gate.received(.part(Self.body))
        #expect(r2 != nil, "a passed head's body follows it")
        let r3 = gate.received(.part(Self.end))
        #expect(r3 != nil)
        let r4 = gate.received(.part(Self.head))
        #expect(r4 == nil, "not asked for: held")
        let r5 = gate.received(.part(Self.end))
        #expect(r5 == nil, "held behind its head")
        #expect(gate.heldCount == 2)
        let r6 = gate.readAsked()
        #expect(!r6, "reads stop while anything is held")
        let r7 = gate.nextReleased()
        #expect(r7 == nil)
        gate.nextRequestAsked()
        let r8 = gate.nextReleased()
        #expect(Self.isHead(r8))
        let r9 = gate.nextReleased()
        #expect(r9 != nil, "its end")
        let r10 = gate.nextReleased()
        #expect(r10 == nil)
        let r11 = gate.readReleased()
        #expect(!r11, "nothing held, but no request asked for: reads still wait")
        gate.nextRequestAsked()
        let r12 = gate.readReleased()
        #expect(r12, "asked again: the held read goes")
        let r13 = gate.readAsked()
        #expect(r13)
    }

    @Test("a parser error passes only once every earlier request was answered")
    func parserErrorAfterAnswers() {
        var gate = HTTPRequestGateState()
        _ = gate.received(.part(Self.head))
        _ = gate.received(.part(Self.end))
        gate.nextRequestAsked()
        _ = gate.received(.part(Self.head))
        _ = gate.received(.part(Self.end))
        gate.nextRequestAsked()
        let r14 = gate.received(.parserError(.invalidVersion))
        #expect(r14 == nil, "two requests unanswered")
        gate.responseEnded()
        let r15 = gate.nextReleased()
        #expect(r15 == nil, "one still unanswered")
        gate.responseEnded()
        let released = gate.nextReleased()
        if case .parserError? = released {} else { Issue.record("the error passes after both answers") }
    }

    @Test("a parser error cutting the current request short passes at once when nothing earlier is owed")
    func parserErrorMidRequest() {
        var gate = HTTPRequestGateState()
        _ = gate.received(.part(Self.head))
        let passed = gate.received(.parserError(.invalidChunkSize))
        if case .parserError? = passed {} else { Issue.record("passes at once") }
    }

    @Test("removed: what was held is dropped, and a held read is reported so it can be done")
    func removal() {
        var gate = HTTPRequestGateState()
        _ = gate.received(.part(Self.head))
        _ = gate.received(.part(Self.end))
        _ = gate.received(.part(Self.head))
        let r16 = gate.readAsked()
        #expect(!r16)
        let r17 = gate.removed()
        #expect(r17)
        #expect(gate.heldCount == 0)
    }
}
