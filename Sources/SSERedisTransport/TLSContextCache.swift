import NIOSSL
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds the `NIOSSLContext` for a configuration once and hands it out again, until one of its
/// files changes on disk (then the next tunnel reloads: rotated certificates need no restart).
///
/// Building a context reads files and the system trust store (blocking disk I/O that must never
/// run on an event loop), so `context(for:)` runs on the caller's thread. Bounded: at most
/// `maximumEntries` configurations are kept.
public final class TLSContextCache: Sendable {
    /// The process's cache, used by `TLSTunnel.open`.
    public static let shared = TLSContextCache()
    /// More configurations than this in one process is unusual; the cache then starts over.
    static let maximumEntries = 16

    private struct Entry {
        let stamps: [FileStamp?]
        let context: NIOSSLContext
    }

    private let entries = Mutex<[TLSTunnelConfiguration: Entry]>([:])

    public init() {}

    /// The context for `configuration`, built now if it is not cached or a file changed.
    public func context(for configuration: TLSTunnelConfiguration) throws(TLSTunnelError) -> NIOSSLContext {
        var stamps: [FileStamp?] = []
        for file in configuration.files {
            stamps.append(try file.map { path throws(TLSTunnelError) in try FileStamp(path) })
        }
        if let cached = entries.withLock({ $0[configuration] }), cached.stamps == stamps {
            return cached.context
        }
        let context = try Self.makeContext(configuration)
        entries.withLock { entries in
            if entries.count >= Self.maximumEntries { entries.removeAll() }
            entries[configuration] = Entry(stamps: stamps, context: context)
        }
        return context
    }

    static func makeContext(_ configuration: TLSTunnelConfiguration) throws(TLSTunnelError) -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = configuration.minimumVersion == .tlsv13 ? .tlsv13 : .tlsv12
        // A peer that vanished must not hold a closing channel for the default 5 s.
        tls.shutdownTimeout = .seconds(1)
        switch configuration.verification {
        case .full: tls.certificateVerification = .fullVerification
        case .noHostname: tls.certificateVerification = .noHostnameVerification
        case .none: tls.certificateVerification = .none
        }
        if let file = configuration.additionalTrustRootsFile {
            tls.additionalTrustRoots = [.certificates(try certificates(file, "CA certificates"))]
        }
        if let file = configuration.certificateChainFile {
            tls.certificateChain = try certificates(file, "client certificate").map { .certificate($0) }
        }
        if let file = configuration.privateKeyFile {
            do {
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: file, format: .pem))
            } catch {
                throw TLSTunnelError(.badFile, "cannot load the private key \(file) (an unencrypted PEM key is needed)")
            }
        }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw TLSTunnelError(.badFile, "cannot use these TLS settings (does the key match the certificate?): \(error)")
        }
    }

    private static func certificates(_ file: String, _ what: String) throws(TLSTunnelError) -> [NIOSSLCertificate] {
        let loaded: [NIOSSLCertificate]
        do {
            loaded = try NIOSSLCertificate.fromPEMFile(file)
        } catch {
            throw TLSTunnelError(.badFile, "cannot load the \(what) \(file) (PEM expected)")
        }
        guard !loaded.isEmpty else {
            throw TLSTunnelError(.badFile, "the \(what) file \(file) holds no PEM certificate")
        }
        return loaded
    }
}
