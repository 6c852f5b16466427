import SSEWire
import Testing

/// Expected strings were produced by CPython 3.11's `json.dumps` / `repr`.
@Suite("Python json.dumps compatibility")
struct PythonJSONEncoderTests {
    @Test(
        "floats print as Python's repr",
        arguments: [
            (1e-05, "1e-05"), (1e16, "1e+16"), (1.5e300, "1.5e+300"), (0.0001, "0.0001"),
            (1e20, "1e+20"), (123456789012345678.0, "1.2345678901234568e+17"), (Double.leastNonzeroMagnitude, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"), (-0.0, "-0.0"), (0.0, "0.0"),
            (0.1 + 0.2, "0.30000000000000004"), (100.0, "100.0"), (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"), (0.00012345, "0.00012345"), (2.5e-7, "2.5e-07"),
            (1e22, "1e+22"), (-1.5, "-1.5"), (3.14159, "3.14159"), (1.0 / 3.0, "0.3333333333333333"),
            (12345.678, "12345.678"), (1.0, "1.0"),
        ] as [(Double, String)]
    )
    func floatRepr(_ value: Double, _ expected: String) {
        #expect(PythonFloatFormatter.repr(value) == expected)
        #expect(String(decoding: PythonJSONEncoder.encode(.float(value)), as: UTF8.self) == expected)
    }

    @Test("non-finite floats: json.dumps spelling and repr spelling")
    func nonFinite() {
        #expect(String(decoding: PythonJSONEncoder.encode(.float(.infinity)), as: UTF8.self) == "Infinity")
        #expect(String(decoding: PythonJSONEncoder.encode(.float(-.infinity)), as: UTF8.self) == "-Infinity")
        #expect(String(decoding: PythonJSONEncoder.encode(.float(.nan)), as: UTF8.self) == "NaN")
        #expect(PythonFloatFormatter.repr(.infinity) == "inf")
        #expect(PythonFloatFormatter.repr(.nan) == "nan")
    }

    @Test("keys sort by code point: not by Swift String order, not by UTF-16 units")
    func keyOrder() throws {
        let value = try JSONParser.parse(#"{"\uffff":1,"\ud800\udc00":2,"z":3,"é":4,"e\u0301":5,"A":6}"#)
        let text = String(decoding: PythonJSONEncoder.encode(value), as: UTF8.self)
        #expect(text == #"{"A": 6, "e\u0301": 5, "z": 3, "\u00e9": 4, "\uffff": 1, "\ud800\udc00": 2}"#)
    }

    @Test("canonically equivalent keys stay two keys, as in Python")
    func canonicalEquivalentKeys() throws {
        guard case .object(let object) = try JSONParser.parse(#"{"\u00e9": 1, "e\u0301": 2}"#) else {
            Issue.record("not an object")
            return
        }
        #expect(object.count == 2)
        #expect(object["\u{E9}"] == 1)
        #expect(object["e\u{301}"] == 2)
    }

    @Test("ensure_ascii escaping, short forms, DEL and astral characters")
    func asciiEscaping() {
        let text = String(decoding: PythonJSONEncoder.encode(.string("\u{7F}\u{0}\u{1F} é\u{2028}😀\"\\/\u{8}\u{C}\n\r\t")), as: UTF8.self)
        #expect(text == #""\u007f\u0000\u001f \u00e9\u2028\ud83d\ude00\"\\/\b\f\n\r\t""#)
    }

    @Test("numbers survive a round trip as Python's json does")
    func numberRoundTrip() throws {
        let value = try JSONParser.parse("[1E400, -1e400, NaN, -0, 123456789012345678901234567890, -0.0, 1E5]")
        let text = String(decoding: PythonJSONEncoder.encode(value), as: UTF8.self)
        #expect(text == "[Infinity, -Infinity, NaN, 0, 123456789012345678901234567890, -0.0, 100000.0]")
    }

    @Test("separators and nesting", arguments: [
        (#"{"b":[1,{"d":null,"c":true}],"a":{}}"#, #"{"a": {}, "b": [1, {"c": true, "d": null}]}"#),
        ("[]", "[]"),
        (#"  {"x" : [ ] }  "#, #"{"x": []}"#),
    ])
    func layout(_ input: String, _ expected: String) throws {
        #expect(String(decoding: PythonJSONEncoder.encode(try JSONParser.parse(input)), as: UTF8.self) == expected)
    }
}
