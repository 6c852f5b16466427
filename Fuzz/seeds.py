#!/usr/bin/env python3
"""Writes fuzz seeds made from the golden Flask-SSE vectors: one directory per target.

usage: seeds.py OUT_DIR VECTORS.jsonl [VECTORS.jsonl ...]   (missing vector files are skipped)
"""
import hashlib
import json
import os
import sys
import urllib.parse


def write(out, target, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    folder = os.path.join(out, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def write_http(out, request):
    """fuzz-http inputs start with a control byte: bit 0 picks the node, the rest the chunk size."""
    if isinstance(request, str):
        request = request.encode()
    for control in (0xFE, 0xFF, 0x0E):
        write(out, "fuzz-http", bytes([control]) + request)


def main():
    out, paths = sys.argv[1], sys.argv[2:]
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                vector = json.loads(line)
                payload = vector["redis_payload"]
                write(out, "fuzz-payload", payload)
                write(out, "fuzz-json", payload)
                publish = vector.get("publish")
                name = urllib.parse.quote(vector["name"], safe="")
                write(out, "fuzz-query", f"/stream?channel={name}&channel=sse")
                write_http(out, f"GET /stream?channel={name} HTTP/1.1\r\nHost: localhost\r\n\r\n")
                if publish is not None:
                    body = json.dumps(publish).encode()
                    write(out, "fuzz-json", body)
                    write_http(out,
                          b"POST /publish?channel=" + name.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
                          b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
                          + b"\r\n\r\n" + body)
                    if publish.get("id") is not None:
                        write(out, "fuzz-last-event-id", str(publish["id"]))


if __name__ == "__main__":
    main()
