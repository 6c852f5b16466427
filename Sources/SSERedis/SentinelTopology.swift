import Logging
import SSEPOSIX
import Synchronization

/// What this process knows of one Sentinel-managed master: the sentinels in the order to ask
/// them, the master connections of the current generation go to, and that generation.
///
/// The generation moves on whenever the master may have changed: an announcement
/// (`SentinelWatcher`), a resolve that finds another master than the one this
/// generation's connections use, or a `-READONLY` reply. Every connection remembers the
/// generation it was resolved in (`Stamp`); one from an older generation is dropped and
/// resolved again: the subscriber at once (it is woken), the command client before its next
/// batch. So all connections of one generation go to one master.
///
/// One topology per `SentinelEndpoint` and process while any subscriber or command client
/// uses it (`acquire`/`release`, reference counted): they share one watcher thread.
final class SentinelTopology: Sendable {
    /// Where a connection was resolved: the topology, its generation then, and the master.
    struct Stamp: Sendable {
        let topology: SentinelTopology
        let generation: UInt64
        let master: SentinelAddress

        /// Whether the master may have changed since.
        var isStale: Bool { topology.generation != generation }
    }

    /// A user's hold on a process-wide topology; give it back with `release()`.
    struct Lease: Sendable {
        let topology: SentinelTopology
        fileprivate let observer: Int?
    }

    fileprivate struct State {
        var order: [SentinelAddress]
        /// The master this generation's connections use, once one was resolved.
        var master: SentinelAddress?
        /// The master a sentinel announced when this generation began, if one did.
        var announced: SentinelAddress?
        var observers: [Int: @Sendable () -> Void] = [:]
        var nextObserver = 0
        var users = 0
        var watcher: SentinelWatcher?
    }

    let endpoint: SentinelEndpoint
    private let currentGeneration = Atomic<UInt64>(0)
    fileprivate let state: Mutex<State>

    /// A topology of its own (no watcher, not shared): for a connect without a lease.
    init(endpoint: SentinelEndpoint) {
        self.endpoint = endpoint
        self.state = Mutex(State(order: endpoint.sentinels))
    }

    /// Moves on at every possible change of master; only ever grows.
    var generation: UInt64 { currentGeneration.load(ordering: .acquiring) }

    /// The sentinels, the one that answered last first.
    var sentinelsInOrder: [SentinelAddress] { state.withLock { $0.order } }

    /// Puts `sentinel` first: it answered (the Sentinel client spec's rule).
    func promote(_ sentinel: SentinelAddress) {
        state.withLock { state in
            guard let index = state.order.firstIndex(of: sentinel), index > 0 else { return }
            state.order.remove(at: index)
            state.order.insert(sentinel, at: 0)
        }
    }

    /// Records that a connection resolved in `generation` reached `master`, and returns the
    /// generation to stamp it with: `generation` itself, or, when this generation's connections
    /// use another master, a new generation (so they reconnect).
    func resolved(_ master: SentinelAddress, in generation: UInt64) -> UInt64 {
        let (stamp, notify) = state.withLock { state -> (UInt64, [@Sendable () -> Void]) in
            let current = currentGeneration.load(ordering: .acquiring)
            guard current == generation else { return (generation, []) }
            if let known = state.master, known != master {
                currentGeneration.store(current + 1, ordering: .releasing)
                state.master = master
                return (current + 1, Array(state.observers.values))
            }
            state.master = master
            return (generation, [])
        }
        for observer in notify { observer() }
        return stamp
    }

    /// Starts a new generation if `generation` is still the current one (the master may have
    /// changed: a read-only reply, a sentinel naming another master); true if it did.
    @discardableResult
    func invalidate(_ generation: UInt64) -> Bool {
        advance(announcing: nil) { _, current in current == generation }
    }

    /// A sentinel announced `master` (`+promoted-slave`, `+switch-master`): starts a new
    /// generation whose resolves try `master` first, unless this generation's connections use
    /// it already or it was announced already; true if a generation began.
    func announce(_ master: SentinelAddress) -> Bool {
        advance(announcing: master) { state, _ in state.master != master && state.announced != master }
    }

    /// Starts a new generation (no master resolved in it yet, `announced` the one to try first)
    /// when `shouldAdvance` says so under the lock, then tells the observers; true if it did.
    private func advance(announcing announced: SentinelAddress?, if shouldAdvance: (State, UInt64) -> Bool) -> Bool {
        let notify: [@Sendable () -> Void]? = state.withLock { state in
            let current = currentGeneration.load(ordering: .acquiring)
            guard shouldAdvance(state, current) else { return nil }
            currentGeneration.store(current + 1, ordering: .releasing)
            state.master = nil
            state.announced = announced
            return Array(state.observers.values)
        }
        for observer in notify ?? [] { observer() }
        return notify != nil
    }

    /// The master announced when `generation` began, while it is the current one and no
    /// connection of it has reached a master yet: only the first resolves after the news try it.
    func announced(in generation: UInt64) -> SentinelAddress? {
        state.withLock { state in
            currentGeneration.load(ordering: .acquiring) == generation && state.master == nil ? state.announced : nil
        }
    }

    /// The announced master could not be used (down, or not a master): later resolves of
    /// `generation` go straight to the sentinels, instead of each waiting for it again.
    func forgetAnnounced(in generation: UInt64) {
        state.withLock { state in
            if currentGeneration.load(ordering: .acquiring) == generation { state.announced = nil }
        }
    }

    /// Starts a new generation when a sentinel names another master than this generation's.
    func check(master: SentinelAddress) {
        let generation = self.generation
        let differs = state.withLock { state in state.master.map { $0 != master } ?? false }
        if differs { invalidate(generation) }
    }

    // MARK: Process-wide sharing

    fileprivate static let registry = Mutex<[SentinelEndpoint: SentinelTopology]>([:])

    /// Takes a hold on the process's topology for `configuration`'s Sentinel endpoint (nil for
    /// any other endpoint), starting its watcher for the first user. `onChange` runs (on the
    /// watcher's or a Redis thread) whenever the generation moves on.
    static func acquire(for configuration: RedisConfiguration, logger: Logger, onChange: (@Sendable () -> Void)? = nil) -> Lease? {
        guard case .sentinel(let endpoint) = configuration.endpoint else { return nil }
        return registry.withLock { topologies in
            let topology = topologies[endpoint] ?? SentinelTopology(endpoint: endpoint)
            topologies[endpoint] = topology
            let observer: Int? = topology.state.withLock { state in
                state.users += 1
                if state.watcher == nil {
                    // Under the registry lock, so a concurrent last `release` cannot miss it.
                    state.watcher = SentinelWatcher(topology: topology, configuration: configuration, logger: logger)
                    state.watcher?.start()
                }
                guard let onChange else { return nil }
                state.nextObserver += 1
                state.observers[state.nextObserver] = onChange
                return state.nextObserver
            }
            return Lease(topology: topology, observer: observer)
        }
    }
}

extension SentinelTopology.Lease {
    /// Gives the hold back. The last user's release stops the watcher and returns its thread,
    /// for the caller to wait for (`join()`, or `await join()` from a task).
    func release() -> OwnedThread? {
        let watcher: SentinelWatcher? = SentinelTopology.registry.withLock { topologies in
            topology.state.withLock { state in
                if let observer { state.observers[observer] = nil }
                state.users -= 1
                guard state.users <= 0 else { return nil }
                if topologies[topology.endpoint] === topology { topologies[topology.endpoint] = nil }
                defer { state.watcher = nil }
                return state.watcher
            }
        }
        return watcher?.stop()
    }
}
