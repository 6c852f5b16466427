/// Keeping a `REDIS_URL`'s secrets out of `RedisConfigurationError`: the URL is shown masked,
/// and a piece of it is quoted in a reason only when it is not part of what the masking hides.
///
/// What is secret is judged from the URL's shape alone, generously, because the URL is one the
/// parser refused: every byte between the scheme (when the URL has a plain one) and its last `@`
/// (the user-info, however a parser would have split it: a password with an unencoded `?`, `/`,
/// `&` or `:` included), and everything after a `password=` (a `sentinel_password=` value with
/// an unencoded `&`).
extension RedisConfigurationError {
    /// `url` with its secrets masked: everything after the first `password=` (the value of
    /// `sentinel_password=`, which may hold an unencoded `&` or `@`, and what follows), and
    /// before it everything up to the last `@` (the user-info, so a password with an unencoded
    /// `?` or `/` stays hidden). A URL without a plain scheme (`user:pass@host`, `redis:/…`) has
    /// its user-info masked too.
    static func redacted(_ url: String) -> String {
        let start = afterScheme(url)
        let rest = url[start...]
        let secretStart = rest.firstRange(of: "password=")?.upperBound
        let visible = rest[..<(secretStart ?? rest.endIndex)]
        var shown = String(url[..<start])
        if let at = visible.lastIndex(of: "@") {
            shown += "***" + visible[at...]
        } else {
            shown += visible
        }
        return secretStart == nil ? shown : shown + "***"
    }

    /// `text` (a piece of `url` a reason names: a port, a database, a parameter) in quotes, or
    /// a placeholder when it overlaps the secret part of `url` or repeats a piece of it: a
    /// password with an unencoded `/` or `&` can otherwise be split into a "port" or a
    /// "parameter" and quoted, and a "database" can run on into a `password=` that lacks its `?`.
    /// Longer text is described by its length (and the search for it stays linear).
    static func shown(_ text: Substring, of url: String) -> String {
        let needle = Array(text.utf8)
        guard !needle.isEmpty else { return "''" }
        guard needle.count <= maximumShownBytes else { return "a value of \(needle.count) bytes" }
        let secrets = secretRanges(of: url)
        // Only a slice of `url` itself can be placed in it.
        let overlaps = text.base == url && secrets.contains { $0.overlaps(text.startIndex..<text.endIndex) }
        let repeats = secrets.contains { range in contains(Array(url[range].utf8), needle) }
        return overlaps || repeats ? "a value from the credentials part of the URL" : "'\(text)'"
    }

    /// Longest piece of a URL quoted in a reason.
    static let maximumShownBytes = 64

    /// Where in `url` a secret may be (see the type's documentation).
    static func secretRanges(of url: String) -> [Range<String.Index>] {
        let start = afterScheme(url)
        var ranges: [Range<String.Index>] = []
        if let at = url[start...].lastIndex(of: "@") { ranges.append(start..<at) }
        if let password = url.firstRange(of: "password=") { ranges.append(password.upperBound..<url.endIndex) }
        return ranges
    }

    /// Where what follows the scheme starts: after `scheme://` when the URL begins with a plain
    /// scheme, else at the start.
    private static func afterScheme(_ url: String) -> String.Index {
        plainSchemeSeparator(in: url)?.upperBound ?? url.startIndex
    }

    /// The first `://` of `url` when what precedes it is a plain scheme (1 to 64 letters, digits
    /// and `+-.`), else nil: what precedes may then be credentials (`:pw@host://…`).
    static func plainSchemeSeparator(in url: String) -> Range<String.Index>? {
        guard let range = url.firstRange(of: "://"), SentinelAddress.isToken(url[..<range.lowerBound], maximumBytes: 64, punctuation: "+-.")
        else { return nil }
        return range
    }

    /// Whether `needle` (not empty) occurs in `haystack`.
    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return true
        }
        return false
    }
}
