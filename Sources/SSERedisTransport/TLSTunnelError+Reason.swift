import NIOCore
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension TLSTunnelError {
    /// An operator's reading of a NIO or TLS error: what failed and, where known, what to change.
    ///
    /// BoringSSL reports an unknown CA and an expired certificate alike (CERTIFICATE_VERIFY_FAILED);
    /// with the server's certificate at hand (`peerCertificate`) its dates tell them apart.
    /// `expectedName` is the name the certificate had to carry (host, address or override).
    static func reason(for error: any Error, peerCertificate: NIOSSLCertificate? = nil, expectedName: String? = nil) -> String {
        switch error {
        case let error as TLSTunnelError:
            return error.message
        case let error as NIOSSLExtraError where error == .failedToValidateHostname:
            return "the server's certificate does not name \(expectedName ?? "the host connected to") in its subjectAltName; "
                + "fix the certificate, set the expected server name, or turn the name check off"
        case let error as NIOSSLError:
            switch error {
            case .handshakeFailed(let inner):
                return handshakeReason(inner, peerCertificate: peerCertificate)
            case .uncleanShutdown:
                return "the server closed the TLS connection without a close_notify"
            default:
                return "\(error)"
            }
        case let error as BoringSSLError:
            return brief(error)
        case let error as ChannelError:
            if case .connectTimeout(let amount) = error {
                return "TCP connect timed out after \(amount.nanoseconds / 1_000_000) ms"
            }
            return "\(error)"
        default:
            return "\(error)"
        }
    }

    /// BoringSSL's reason code (`TLSV1_ALERT_CERTIFICATE_REQUIRED`) without its file and line;
    /// alerts are the server's verdict and say so.
    static func brief(_ error: BoringSSLError) -> String {
        let text = "\(error)"
        guard let start = text.firstRange(of: "OPENSSL_internal:")?.upperBound else { return text }
        let rest = text[start...]
        let code = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
        guard !code.isEmpty else { return text }
        guard let alert = code.firstRange(of: "ALERT_") else { return String(code) }
        let name = code[alert.upperBound...]
        let hint = name == "CERTIFICATE_REQUIRED" ? " (the server requires a client certificate)" : ""
        return "the server sent the TLS alert \(name)\(hint)"
    }

    private static func handshakeReason(_ error: BoringSSLError, peerCertificate: NIOSSLCertificate?) -> String {
        let text = brief(error)
        guard text.contains("CERTIFICATE_VERIFY_FAILED") else {
            return "TLS handshake failed: \(text)"
        }
        guard let certificate = peerCertificate else {
            return "certificate verify failed: the server's certificate is not trusted, expired or not yet valid"
        }
        let now = time(nil)
        if certificate.notValidAfter < now {
            return "certificate verify failed: the server's certificate expired on \(utcDate(certificate.notValidAfter))"
        }
        if certificate.notValidBefore > now {
            return "certificate verify failed: the server's certificate is not valid before \(utcDate(certificate.notValidBefore))"
        }
        return "certificate verify failed: the server's certificate is not signed by a trusted CA "
            + "(trust its CA certificate)"
    }

    private static func utcDate(_ seconds: time_t) -> String {
        var value = seconds
        var parts = tm()
        guard gmtime_r(&value, &parts) != nil else { return "\(seconds)" }
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%SZ", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
