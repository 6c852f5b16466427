/// Lets a repeated log line out at most once per `interval`, counting what came meanwhile.
struct ReportGate {
    let interval: Duration
    private var last: ContinuousClock.Instant?
    private var held = 0

    init(every interval: Duration) {
        self.interval = interval
    }

    /// `count` more occurrences at `now`: the number to report (those held back since the last
    /// report plus these), or nil while the interval since the last report has not passed.
    mutating func take(_ count: Int = 1, now: ContinuousClock.Instant) -> Int? {
        held += count
        guard last.map({ $0.duration(to: now) >= interval }) ?? true else { return nil }
        defer {
            last = now
            held = 0
        }
        return held
    }
}
