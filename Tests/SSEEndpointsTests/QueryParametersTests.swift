import Testing

@testable import SSEEndpoints

@Suite("Query strings decode as Werkzeug decodes them")
struct QueryParametersTests {
    @Test("decoding", arguments: [
        ("/stream?channel=a%20b", "a b"),
        ("/stream?channel=a+b", "a b"),
        ("/stream?channel=%E2%82%AC", "€"),
        ("/stream?channel=%zz", "%zz"),
        ("/stream?channel=%4", "%4"),
        ("/stream?channel=%ff", "\u{FFFD}"),
        ("/stream?x=1&channel=first&channel=second", "first"),
        ("/stream?channel", ""),
        ("/stream?channel=a=b", "a=b"),
    ])
    func decoding(_ uri: String, _ expected: String) {
        #expect(QueryParameters(uri: uri).first("channel") == expected)
    }

    @Test("repeated names keep every value in order")
    func repeated() {
        let query = QueryParameters(uri: "/stream?channel=a&other=1&channel=b&&channel=c")
        #expect(query.all("channel") == ["a", "b", "c"])
        #expect(query.first("missing") == nil)
        #expect(QueryParameters(uri: "/stream").all("channel").isEmpty)
    }
}
