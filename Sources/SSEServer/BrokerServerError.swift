/// Why a ``BrokerServer`` refused to start.
public struct BrokerServerError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, in a sentence.
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}
