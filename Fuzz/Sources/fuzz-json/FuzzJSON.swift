import FuzzSupport
import SSEWire

/// The JSON parser and Python's encoder: no trap on any input, and for every document the
/// parser accepts, `parse(encode(v))` is `v` again, the encoding is printable ASCII (Flask's
/// `ensure_ascii=True`), and encoding is idempotent.
@main
enum FuzzJSON {
    static func main() { FuzzDriver.run { data, count in fuzzJSON(data, count) } }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let input = FuzzCheck.bytes(data, count)
    guard let value = try? JSONParser.parse(input) else { return 0 }
    let encoded = PythonJSONEncoder.encode(value)
    FuzzCheck.require(encoded.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }, "encoding is not printable ASCII: \(FuzzCheck.describe(encoded))")
    let reparsed: JSONValue
    do {
        reparsed = try JSONParser.parse(encoded)
    } catch {
        FuzzCheck.require(false, "encoding of \(FuzzCheck.describe(input)) does not parse (\(error)): \(FuzzCheck.describe(encoded))")
        return 0
    }
    FuzzCheck.require(reparsed.isSame(as: value), "parse(encode(v)) != v for \(FuzzCheck.describe(input))")
    FuzzCheck.require(PythonJSONEncoder.encode(reparsed) == encoded, "encoding is not idempotent for \(FuzzCheck.describe(input))")
    if value == reparsed {  // false only when a NaN is inside
        FuzzCheck.require(value.hashValue == reparsed.hashValue, "equal values hash differently for \(FuzzCheck.describe(input))")
    }
    return 0
}
