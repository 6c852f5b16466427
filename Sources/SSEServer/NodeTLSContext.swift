import NIOSSL
import SSERedisTransport
import Synchronization

/// The node's server-side TLS context, built from `--tls-cert` and `--tls-key`, and built again
/// on SIGHUP or when either file changes on disk. A new context serves new connections; open
/// ones (and their streams) keep the one they started with. A reload that fails (a missing
/// file, a key that does not match the certificate, a half-written file) keeps the old context
/// and says why, so a botched rotation never takes the node off the air.
///
/// Loading reads files: it runs on the caller's thread (start-up, the reload task), never on an
/// event loop; handing the context out is a lock and a reference.
final class NodeTLSContext: Sendable {
    /// How a reload went.
    enum ReloadOutcome: Equatable, Sendable {
        /// Neither file changed since the last load (only when not forced).
        case unchanged
        case reloaded
        /// The old context stays; the reason names the file or the problem.
        case failed(String)
    }

    private struct Loaded {
        let context: NIOSSLContext
        let stamps: [FileStamp]
    }

    let configuration: NodeTLSConfiguration
    /// ALPN protocols offered, most preferred first.
    let applicationProtocols: [String]
    private let loaded: Mutex<Loaded>

    /// Loads the files now; throws ``BrokerServerError`` naming what is wrong.
    init(configuration: NodeTLSConfiguration, offersHTTP2: Bool) throws {
        self.configuration = configuration
        self.applicationProtocols = offersHTTP2 ? ["h2", "http/1.1"] : ["http/1.1"]
        switch Self.load(configuration, applicationProtocols: applicationProtocols) {
        case .success(let loaded): self.loaded = Mutex(loaded)
        case .failure(let error): throw error
        }
    }

    /// The context new connections use.
    var context: NIOSSLContext { loaded.withLock { $0.context } }

    /// Builds the context again if a file changed (or always, with `force`, as SIGHUP asks).
    func reload(force: Bool) -> ReloadOutcome {
        if !force {
            let stamps = try? Self.stamps(configuration)
            if let stamps, stamps == loaded.withLock({ $0.stamps }) { return .unchanged }
        }
        switch Self.load(configuration, applicationProtocols: applicationProtocols) {
        case .success(let fresh):
            loaded.withLock { $0 = fresh }
            return .reloaded
        case .failure(let error):
            return .failed(error.description)
        }
    }

    private static func stamps(_ configuration: NodeTLSConfiguration) throws -> [FileStamp] {
        [try FileStamp(configuration.certificateChainFile), try FileStamp(configuration.privateKeyFile)]
    }

    private static func load(_ configuration: NodeTLSConfiguration, applicationProtocols: [String]) -> Result<Loaded, BrokerServerError> {
        let stamps: [FileStamp]
        do {
            stamps = try Self.stamps(configuration)
        } catch {
            return .failure(BrokerServerError("TLS: \(error)"))
        }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(configuration.certificateChainFile)
        } catch {
            return .failure(BrokerServerError("TLS: no PEM certificate could be read from \(configuration.certificateChainFile) (\(error))"))
        }
        guard !chain.isEmpty else {
            return .failure(BrokerServerError("TLS: \(configuration.certificateChainFile) holds no certificate"))
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: configuration.privateKeyFile, format: .pem)
        } catch {
            return .failure(BrokerServerError("TLS: no PEM private key could be read from \(configuration.privateKeyFile) (\(error))"))
        }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        tls.applicationProtocols = applicationProtocols
        // A peer that vanished must not hold a closing connection for the default 5 s.
        tls.shutdownTimeout = .seconds(1)
        do {
            return .success(Loaded(context: try NIOSSLContext(configuration: tls), stamps: stamps))
        } catch {
            return .failure(BrokerServerError("TLS: the key in \(configuration.privateKeyFile) does not fit the certificate in \(configuration.certificateChainFile), or either is unusable (\(error))"))
        }
    }
}
