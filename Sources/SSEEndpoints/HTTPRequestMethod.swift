/// A request method as sent, compared byte for byte (methods are case-sensitive, RFC 9110 9.1).
package struct HTTPRequestMethod: RawRepresentable, Sendable, Hashable {
    package let rawValue: String

    package init(rawValue: String) {
        self.rawValue = rawValue
    }

    package static let GET = HTTPRequestMethod(rawValue: "GET")
    package static let HEAD = HTTPRequestMethod(rawValue: "HEAD")
    package static let POST = HTTPRequestMethod(rawValue: "POST")
    package static let OPTIONS = HTTPRequestMethod(rawValue: "OPTIONS")
}
