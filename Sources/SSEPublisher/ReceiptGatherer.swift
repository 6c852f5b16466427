import SSERedis
import Synchronization

/// Collects the receipts of a batch of pipelined `PUBLISH`es, in their order, and reports once:
/// all of them, or the first failure.
final class ReceiptGatherer: Sendable {
    private struct State {
        var receipts: [PublishReceipt?]
        var missing: Int
        var failure: RedisError?
    }

    private let state: Mutex<State>
    private let completion: @Sendable (Result<[PublishReceipt], RedisError>) -> Void

    init(count: Int, completion: @escaping @Sendable (Result<[PublishReceipt], RedisError>) -> Void) {
        self.state = Mutex(State(receipts: Array(repeating: nil, count: count), missing: count))
        self.completion = completion
    }

    func record(_ result: Result<PublishReceipt, RedisError>, at index: Int) {
        let outcome: Result<[PublishReceipt], RedisError>? = state.withLock { state in
            guard state.receipts.indices.contains(index), state.receipts[index] == nil, state.missing > 0 else { return nil }
            switch result {
            case .success(let receipt): state.receipts[index] = receipt
            case .failure(let error): state.failure = state.failure ?? error
            }
            state.missing -= 1
            guard state.missing == 0 else { return nil }
            if let failure = state.failure { return .failure(failure) }
            return .success(state.receipts.compactMap { $0 })
        }
        if let outcome { completion(outcome) }
    }
}
