/// Why a stream cannot be resumed exactly from the position it asked for; sent to the client in
/// the documented `history-gap` event.
public enum HistoryGap: String, Sendable, Hashable {
    /// Events after the position were trimmed by `--history`.
    case trimmed
    /// The channel's history expired (`--history-ttl` after its last publish).
    case expired
    /// The position is not one this Redis issued: malformed, not the broker's form, from the
    /// future, or from an epoch Redis no longer knows.
    case unknown
    /// History could not be read: Redis kept failing the query until the retry time ran out.
    case unavailable
    /// Redis lost events after the position: its history sequence moved backwards (a promoted
    /// lagging replica, AOF `everysec` after a crash, an RDB restore) and a new epoch began.
    case lost
}
