/// Which command client serves a cluster slot, and when to read the topology again: the pure
/// part of `ClusterCommandRouter` (no I/O, no clock of its own; the router carries its actions out).
///
/// The router keeps one client per *representative* slot: a client routed to that slot, which
/// follows that slot's master through migrations and failovers by itself. A command on slot s
/// goes to the client whose representative has the same master as s (the master s has in the
/// overrides, else in the topology); without one, a client routed to s is made, at most
/// `maximumClients` of them; past that, the nearest representative serves (a `-MOVED` then costs
/// one hop). Without a topology (or for a slot no master serves), the first client serves (one
/// is made if there is none), and a topology read is asked for.
///
/// Overrides are what `-MOVED` replies said (slot → address), used at once, before the seeds'
/// `CLUSTER SLOTS` may know; a topology read drops those recorded before it started. At most
/// `maximumOverrides` are kept (the oldest goes first).
///
/// Topology reads: at most one in flight, started at most every `minimumReadInterval` (after a
/// failed read, `retryInterval`), wanted at start, after every `-MOVED`, and every
/// `refreshInterval` while commands flow (asked on each route, so no timer is needed).
struct ClusterRoutingStateMachine {
    /// Where a command goes.
    enum Route: Equatable {
        /// To the client of representative slot `representative`; `create`: that client is new
        /// (the router makes it, routed to that slot).
        case client(representative: Int, create: Bool)
        /// Nowhere: the router is shut down.
        case refused
    }

    /// A route and whether the router should start a topology read now.
    struct Action: Equatable {
        var route: Route
        var startTopologyRead: Bool
    }

    private struct Override {
        var address: SentinelAddress
        /// When it was recorded, in `overrideClock` ticks.
        var recorded: UInt64
    }

    private enum Read {
        case idle(lastStarted: ContinuousClock.Instant?, failed: Bool)
        /// In flight; `overrideClock` when it started.
        case inFlight(started: ContinuousClock.Instant, overridesBefore: UInt64)
    }

    static let minimumReadInterval = Duration.milliseconds(100)
    static let refreshInterval = Duration.seconds(30)
    static let maximumOverrides = 128

    let maximumClients: Int
    let retryInterval: Duration
    private(set) var topology: ClusterTopology?
    /// The representative slots, in the order their clients were made.
    private(set) var representatives: [Int] = []
    private var isRepresentative = Set<Int>()
    private var overrides: [Int: Override] = [:]
    private var overrideClock: UInt64 = 0
    private var read = Read.idle(lastStarted: nil, failed: false)
    /// A read was asked for (a `-MOVED`, no topology yet) and has not started since.
    private var readWanted = true
    private(set) var isStopped = false

    /// - Parameters:
    ///   - maximumClients: most representatives (clients), at least 1.
    ///   - retryInterval: the wait after a failed topology read before the next (at least
    ///     `minimumReadInterval`).
    init(maximumClients: Int, retryInterval: Duration) {
        self.maximumClients = max(1, maximumClients)
        self.retryInterval = max(retryInterval, Self.minimumReadInterval)
    }

    /// How many overrides are held.
    var overrideCount: Int { overrides.count }

    /// Whether a topology read is in flight.
    var isReading: Bool {
        if case .inFlight = read { return true }
        return false
    }

    /// The master serving `slot` as far as is known: a `-MOVED`'s word first, then the topology.
    func master(forSlot slot: Int) -> SentinelAddress? {
        overrides[slot]?.address ?? topology?.master(forSlot: slot)
    }

    /// Whether to start the first topology read (at the router's start).
    mutating func start(now: ContinuousClock.Instant) -> Bool {
        startReadIfDue(now: now)
    }

    /// Where a command on `slot` goes (nil: a command without a key, which any client serves).
    mutating func route(slot: Int?, now: ContinuousClock.Instant) -> Action {
        guard !isStopped else { return Action(route: .refused, startTopologyRead: false) }
        guard let slot, (0..<ClusterSlot.count).contains(slot) else {
            let route: Route = representatives.first.map { .client(representative: $0, create: false) } ?? add(0)
            return Action(route: route, startTopologyRead: startReadIfDue(now: now))
        }
        let route: Route
        if let master = master(forSlot: slot) {
            if isRepresentative.contains(slot) {
                // The slot's own client: it follows that slot's master by itself.
                route = .client(representative: slot, create: false)
            } else if let shared = representatives.first(where: { self.master(forSlot: $0) == master }) {
                route = .client(representative: shared, create: false)
            } else {
                route = add(slot)
            }
        } else {
            // No topology yet, or no master serves the slot as far as it says: an existing
            // client takes it (a `-MOVED` then says where it goes, at the cost of one hop), the
            // first one is made for it, and the topology is read again. Making a client per slot
            // here would fill `maximumClients` before the first topology arrives, and leave no
            // client for a master that joins later.
            readWanted = true
            if isRepresentative.contains(slot) {
                route = .client(representative: slot, create: false)
            } else {
                route = representatives.first.map { .client(representative: $0, create: false) } ?? add(slot)
            }
        }
        return Action(route: route, startTopologyRead: startReadIfDue(now: now))
    }

    /// A `-MOVED slot address` reply: `slot` is served at `address` now. Recorded at once; a
    /// topology read is wanted. Returns whether to start one now.
    mutating func moved(slot: Int, to address: SentinelAddress, now: ContinuousClock.Instant) -> Bool {
        guard !isStopped, (0..<ClusterSlot.count).contains(slot) else { return false }
        if overrides[slot] == nil, overrides.count >= Self.maximumOverrides,
            let oldest = overrides.min(by: { $0.value.recorded < $1.value.recorded })?.key
        {
            overrides[oldest] = nil
        }
        overrideClock += 1
        overrides[slot] = Override(address: address, recorded: overrideClock)
        readWanted = true
        return startReadIfDue(now: now)
    }

    /// A redirection that names no usable slot or address (a `-MOVED` this client cannot
    /// follow): nothing is recorded, but a topology read is wanted. Returns whether to start one now.
    mutating func redirectionUnreadable(now: ContinuousClock.Instant) -> Bool {
        guard !isStopped else { return false }
        readWanted = true
        return startReadIfDue(now: now)
    }

    /// The topology read in flight ended: with the topology read, or nil when it failed. The
    /// overrides recorded before it started are dropped (the topology read knows at least as
    /// much). Returns whether to start another read now.
    mutating func topologyRead(_ result: ClusterTopology?, now: ContinuousClock.Instant) -> Bool {
        guard case .inFlight(let started, let overridesBefore) = read else { return false }
        if let result {
            topology = result
            overrides = overrides.filter { $0.value.recorded > overridesBefore }
            read = .idle(lastStarted: started, failed: false)
        } else {
            read = .idle(lastStarted: started, failed: true)
            readWanted = true
        }
        return startReadIfDue(now: now)
    }

    /// Stops routing: every later route is refused and no read starts.
    mutating func stop() {
        isStopped = true
    }

    /// A new representative `slot`, or the nearest one when there are `maximumClients` already.
    private mutating func add(_ slot: Int) -> Route {
        guard representatives.count >= maximumClients else {
            representatives.append(slot)
            isRepresentative.insert(slot)
            return .client(representative: slot, create: true)
        }
        // Non-empty: maximumClients is at least 1.
        let nearest = representatives.min { abs($0 - slot) < abs($1 - slot) } ?? slot
        return .client(representative: nearest, create: false)
    }

    /// Whether a read starts now (and marks it in flight): none is in flight, one is wanted or
    /// the refresh interval has passed, and the last started long enough ago.
    private mutating func startReadIfDue(now: ContinuousClock.Instant) -> Bool {
        guard !isStopped, case .idle(let lastStarted, let failed) = read else { return false }
        if let lastStarted {
            let since = lastStarted.duration(to: now)
            guard readWanted ? since >= (failed ? retryInterval : Self.minimumReadInterval) : since >= Self.refreshInterval else { return false }
        }
        readWanted = false
        read = .inFlight(started: now, overridesBefore: overrideClock)
        return true
    }
}
