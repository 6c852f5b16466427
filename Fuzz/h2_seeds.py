#!/usr/bin/env python3
"""Writes the committed seeds of fuzz-h2 (Fuzz/Corpus/fuzz-h2): HTTP/2 client sequences made by
the `h2` package (SETTINGS, HEADERS for streams and publishes, DATA, WINDOW_UPDATE, RST_STREAM,
PING, GOAWAY), and HTTP/1.1 requests and near-prefaces for the --h2c sniffer.

Run once, by hand, when the seeds should change (make fuzz does not need `h2`):
    python3 -m venv /tmp/h2-venv && /tmp/h2-venv/bin/pip install h2
    /tmp/h2-venv/bin/python Fuzz/h2_seeds.py Fuzz/Corpus/fuzz-h2

An input is a control byte and bytes (see Fuzz/Sources/fuzz-h2): bit 0 clear, the target sends
the connection preface itself and the bytes are the frames after it; set, the bytes are the whole
connection. Bit 1 picks the node (open, or keyed: publish key `fuzz-key`), bits 2-4 the chunk size.
"""
import hashlib
import os
import sys

import h2.config
import h2.connection
import h2.settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
KEYED = 2


def chunk(index):
    return index << 2


def client(settings=None):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    if settings:
        conn.update_settings(settings)
    return conn


def request(conn, stream, method, path, extra=(), end=True):
    headers = [(":method", method), (":scheme", "http"), (":authority", "localhost"), (":path", path)]
    conn.send_headers(stream, headers + list(extra), end_stream=end)


def publish(conn, stream, channel, body, extra=(), pieces=1):
    request(conn, stream, "POST", f"/publish?channel={channel}",
            [("content-type", "application/json"), ("content-length", str(len(body)))] + list(extra), end=False)
    size = max(1, len(body) // pieces)
    for start in range(0, len(body), size):
        part = body[start:start + size]
        conn.send_data(stream, part, end_stream=start + size >= len(body))


def sequences():
    """(name, node bit, bytes from the preface on)."""
    conn = client()
    request(conn, 1, "GET", "/stream?channel=a")
    yield "stream", 0, conn.data_to_send()

    conn = client()
    request(conn, 1, "GET", "/stream?channel=a", [("last-event-id", "1700000000000-0")])
    conn.increment_flow_control_window(1 << 20)
    conn.increment_flow_control_window(4096, stream_id=1)
    conn.ping(b"12345678")
    conn.reset_stream(1)
    yield "stream-window-ping-reset", 0, conn.data_to_send()

    conn = client()
    publish(conn, 1, "a", b'{"data": "hello", "type": "greeting", "id": "7"}')
    yield "publish", 0, conn.data_to_send()

    conn = client()
    publish(conn, 1, "a", b'{"data": {"n": 1}, "retry": 3000}', pieces=3)
    request(conn, 3, "GET", "/stream?channel=a&channel=b")
    conn.ping(b"\0" * 8)
    conn.close_connection(last_stream_id=3)
    yield "publish-pieces-stream-goaway", 0, conn.data_to_send()

    conn = client()
    publish(conn, 1, "a", b'{"data": "x"}', [("authorization", "Bearer fuzz-key")])
    request(conn, 3, "GET", "/stream?channel=a", [("origin", "https://app.example")])
    yield "keyed-publish-cors-stream", KEYED, conn.data_to_send()

    conn = client({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16, h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0})
    request(conn, 1, "GET", "/stream?channel=a")
    request(conn, 3, "GET", "/healthz")
    request(conn, 5, "HEAD", "/readyz")
    request(conn, 7, "GET", "/metrics")
    yield "small-window-many-streams", 0, conn.data_to_send()

    conn = client()
    request(conn, 1, "GET", "/stream?channel=a", end=False)
    request(conn, 3, "POST", "/publish?channel=a", [("expect", "100-continue"), ("content-length", "20")], end=False)
    conn.send_data(3, b'{"data"')
    request(conn, 5, "DELETE", "/stream?channel=" + "x" * 300)
    yield "unfinished-requests", 0, conn.data_to_send()

    conn = client({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    for stream in range(1, 12, 2):
        request(conn, stream, "GET", f"/stream?channel=c{stream}")
    conn.reset_stream(5)
    conn.close_connection()
    yield "streams-past-the-limit", 0, conn.data_to_send()


HTTP1 = [
    b"GET /stream?channel=a HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"POST /publish?channel=a HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b"Content-Length: 13\r\n\r\n{\"data\": \"x\"}",
    b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    b"PRI * HTTP/1.1\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r",
    b"PRI * HTTP/2.0\r\n\r\nXM\r\n\r\n",
    b"P",
]


def write(out, data):
    with open(os.path.join(out, "seed-" + hashlib.sha1(data).hexdigest()[:12]), "wb") as f:
        f.write(data)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for _, node, data in sequences():
        assert data.startswith(PREFACE)
        # After the preface (the target sends it), in large and in frame-header chunks, and whole.
        write(out, bytes([node | chunk(6)]) + data[len(PREFACE):])
        write(out, bytes([node | chunk(3)]) + data[len(PREFACE):])
        write(out, bytes([node | 1 | chunk(4)]) + data)
    for data in HTTP1:
        write(out, bytes([1 | chunk(6)]) + data)
        write(out, bytes([1 | chunk(0)]) + data)


if __name__ == "__main__":
    main()
