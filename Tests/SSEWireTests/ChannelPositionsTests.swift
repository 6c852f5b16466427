import SSEWire
import Testing

@Suite("Positions per channel: a multi-channel stream's id")
struct ChannelPositionsTests {
    static let channels: [ChannelName] = ["news", "alerts", "b{x}"]

    @Test("an id round-trips, whatever the channels' order in the URL; unknown channels are '-'")
    func roundTrip() {
        var vector = ChannelPositions(channels: Self.channels)
        vector.set(HistoryPosition(epoch: 5, sequence: 7), for: "news")
        vector.set(HistoryPosition(epoch: 9, sequence: 1), for: "alerts")
        let text = vector.description
        #expect(text.hasSuffix(".9-1.-.5-7"), "sorted by bytes: alerts, b{x}, news")
        let reordered = ChannelPositions(text, channels: ["b{x}", "news", "alerts"])
        #expect(reordered == vector)
        #expect(reordered?.position(of: "news") == HistoryPosition(epoch: 5, sequence: 7))
        #expect(reordered?.position(of: "b{x}") == nil)
        #expect(reordered?.isComplete == false)
    }

    @Test("an id of another channel set, another form or a bad position resumes nothing")
    func refuses() {
        var vector = ChannelPositions(channels: Self.channels)
        vector.set(HistoryPosition(epoch: 1, sequence: 2), for: "news")
        let text = vector.description
        #expect(ChannelPositions(text, channels: ["news", "alerts"]) == nil, "fewer channels")
        #expect(ChannelPositions(text, channels: ["news", "alerts", "c"]) == nil, "another channel")
        #expect(ChannelPositions("1-2", channels: Self.channels) == nil, "a single position")
        #expect(ChannelPositions(text + ".1-1", channels: Self.channels) == nil, "one position too many")
        #expect(ChannelPositions(String(text.dropLast(4)), channels: Self.channels) == nil, "one too few")
        let fingerprint = String(text.split(separator: ".")[0])
        #expect(ChannelPositions(fingerprint + ".-.-.1-2", channels: Self.channels) != nil, "the form the checks below break")
        #expect(ChannelPositions(fingerprint + ".-.-.1-x", channels: Self.channels) == nil)
        #expect(ChannelPositions(fingerprint + "..-.1-2", channels: Self.channels) == nil, "an empty part")
        #expect(ChannelPositions("0" + fingerprint.dropFirst() + ".-.-.1-2", channels: Self.channels) == nil || fingerprint.hasPrefix("0"), "another fingerprint")
        #expect(ChannelPositions("", channels: Self.channels) == nil)
        let long = text + String(repeating: "9", count: ChannelPositions.maximumLength(channelCount: 3))
        #expect(ChannelPositions(long, channels: Self.channels) == nil, "past the bound")
    }

    @Test("the longest id of N channels (19-digit numbers, as positions are) fits the bound")
    func bound() {
        let names = (0..<64).map { ChannelName("c\($0)") }
        var vector = ChannelPositions(channels: names)
        for name in names { vector.set(HistoryPosition(epoch: 9_999_999_999_999_999_999, sequence: 9_999_999_999_999_999_999), for: name) }
        #expect(vector.description.utf8.count <= ChannelPositions.maximumLength(channelCount: 64))
        #expect(ChannelPositions(vector.description, channels: names) == vector)
    }

    @Test("channels compare as bytes: composed and decomposed é are two channels")
    func bytes() {
        let vector = ChannelPositions(channels: ["\u{E9}", "e\u{301}"])
        #expect(vector.channels.count == 2)
    }
}

extension ChannelPositionsTests {
    @Test("the fingerprint is FNV-1a 32 over the sorted names, as Fuzz/seeds.py computes it")
    func fingerprint() {
        var ab = ChannelPositions(channels: ["b", "a"])
        ab.set(HistoryPosition(epoch: 1, sequence: 5), for: "a")
        #expect(ab.description == "81977b96.1-5.-")
        var three = ChannelPositions(channels: Self.channels)
        three.set(HistoryPosition(epoch: 1, sequence: 2), for: "news")
        #expect(three.description == "7d4917e3.-.-.1-2")
    }
}
