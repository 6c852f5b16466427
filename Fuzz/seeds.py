#!/usr/bin/env python3
"""Writes fuzz seeds made from the golden Flask-SSE vectors, and the Redis URL and Sentinel reply
seeds: one directory per target.

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


REDIS_URLS = [
    "redis://localhost:6379/0",
    "redis://:p%40ss@127.0.0.1:6380/2",
    "redis://user:secret@[::1]:6379?db=3",
    "redis://",
    "rediss://:secret@redis.example:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem",
    "rediss://u:pw@h?ssl_certfile=/c.pem&ssl_keyfile=/k.pem&ssl_check_hostname=true",
    "unix:///var/run/redis.sock?db=1",
    "unix://:secret@/tmp/redis.sock",
    "redis+sentinel://h1,h2:26380,[::1]:26381/mymaster/1?sentinel_password=s%26cret&sentinel_username=watch",
    "redis+sentinel://u:master@[fe80::1%25eth0]:26379,10.0.0.2/my-master.1?db=2",
    "redis+sentinel://:p@h1/mymaster?sentinel_password=x&db=0",
    "rediss+sentinel://:p@h1,h2/mymaster?ssl_ca_certs=/ca.pem&sentinel_password=y",
    "redis+sentinel://:hunter2/x?y@h1/mymaster",
    "redis+sentinel://" + ",".join(f"h{i}:{26379 + i}" for i in range(16)) + "/m",
    ":secret@host:6379",
    "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,[::1]:7002/0",
    "rediss+cluster://u:pw@h1,h2:7001?ssl_ca_certs=/ca.pem&pubsub=classic",
    "redis+cluster://h1:7000,h2?history=shared&pubsub=both",
    "redis+cluster://:p%40ss@h1?pubsub=both&db=0",
    "redis+cluster://" + ",".join(f"n{i}:{7000 + i}" for i in range(64)),
]


# Replies a hostile cluster node may send: CLUSTER SLOTS answers, sharded pub/sub kinds.
def node(host, port, ident="id"):
    return [host, port, ident, []]


CLUSTER_REPLIES = [
    [[0, 5460, node("127.0.0.1", 7000), node("127.0.0.1", 7003)], [5461, 10922, node("127.0.0.1", 7001)],
     [10923, 16383, node("", 7002), node("?", 7005)]],
    [[0, 16383, node("10.0.0.1", 6379)]],
    [[0, 16384, node("a", 1)]],
    [[9, 3, node("a", 1)]],
    [[0, 3, node("a b", 1)]],
    [[0, 3, node("a", 0)]],
    [[0, 16383, node("a", 1)], [0, 16383, node("b", 2)]],
    [[0, 3]],
    b"-ERR This instance has cluster support disabled",
    ["smessage", "news", "{\"data\": \"x\"}"],
    ["ssubscribe", "news", 1],
    ["sunsubscribe", "news", 0],
    b"-MOVED 866 127.0.0.1:7001",
    b"-ASK 866 127.0.0.1:7001",
    b"-CROSSSLOT Keys in request don't hash to the same slot",
    ["pong", ""],
]


def resp(value):
    """RESP2 for None (null), str (bulk), bytes (status, or error if it starts with '-'), int, list."""
    if value is None:
        return b"*-1\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return (value if value.startswith(b"-") else b"+" + value) + b"\r\n"
    if isinstance(value, str):
        data = value.encode()
        return b"$%d\r\n%s\r\n" % (len(data), data)
    return b"*%d\r\n" % len(value) + b"".join(resp(v) for v in value)


SENTINEL_REPLIES = [
    ["10.0.0.1", "6379"],
    ["::1", "6380"],
    None,
    b"-ERR unknown command",
    b"-NOPERM this user has no permissions",
    ["10.0.0.1", "0"],
    ["10.0.0.1", "65536"],
    ["bad host", "6379"],
    ["10.0.0.1"],
    ["master", 0, []],
    ["slave", "10.0.0.1", 6379, "connected", 42],
    ["sentinel", ["mymaster"]],
    ["message", "+switch-master", "mymaster 10.0.0.1 6379 10.0.0.2 6380"],
    ["message", "+promoted-slave", "slave 10.0.0.2:6380 10.0.0.2 6380 @ mymaster 10.0.0.1 6379"],
    ["message", "+switch-master", "other 10.0.0.1 6379 10.0.0.2 6380"],
    ["subscribe", "+switch-master", 1],
    [["nested", ["deeper", ["deepest"]]]],
]


def write_redis_seeds(out):
    for url in REDIS_URLS:
        write(out, "fuzz-redis-url", url)
    for reply in SENTINEL_REPLIES:
        write(out, "fuzz-sentinel-reply", resp(reply))
    write(out, "fuzz-sentinel-reply", b"".join(resp(r) for r in SENTINEL_REPLIES))
    write(out, "fuzz-sentinel-reply", b"*2147483647\r\n")
    write(out, "fuzz-sentinel-reply", b"$100000\r\n")
    write(out, "fuzz-sentinel-reply", b"mymaster 10.0.0.1 6379 10.0.0.2 6380")
    for reply in CLUSTER_REPLIES:
        write(out, "fuzz-cluster-reply", resp(reply))
    write(out, "fuzz-cluster-reply", b"".join(resp(r) for r in CLUSTER_REPLIES))
    write(out, "fuzz-cluster-reply", b"*16384\r\n" + b"*3\r\n:0\r\n:0\r\n*2\r\n$1\r\na\r\n:1\r\n" * 3)


def write_publish(out, channel: str, body: bytes) -> None:
    write_http(out,
               b"POST /publish?channel=" + channel.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
               b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
               + b"\r\n\r\n" + body)


def write_batch_seeds(out, publishes: list) -> None:
    """Batch bodies (a JSON array of publishes): valid, with one bad element, empty, oversized."""
    if publishes:
        write_publish(out, "batch", json.dumps(publishes[:8]).encode())
        write_publish(out, "batch", json.dumps(publishes[:3] + [{"nodata": 1}]).encode())
    write_publish(out, "batch", b"[]")
    write_publish(out, "batch", b"[" + b",".join([b'{"data":1}'] * 1001) + b"]")
    write_publish(out, "batch", b'[{"data": 1}, 7, [{"data": 2}]]')


def channel_positions(channels, positions) -> str:
    """A multi-channel stream's id with positions per channel (ChannelPositions in SSEWire):
    FNV-1a 32 over the sorted names (each followed by a zero byte), then one part per channel."""
    names = sorted(set(c.encode() for c in channels))
    value = 0x811C9DC5
    for name in names:
        for byte in name + b"\x00":
            value ^= byte
            value = (value * 0x01000193) & 0xFFFFFFFF
    parts = [positions.get(name.decode(), "-") for name in names]
    return ".".join([f"{value:08x}"] + parts)


def write_channel_positions_seeds(out) -> None:
    """Ids for the channel sets fuzz-last-event-id reads vectors for."""
    write(out, "fuzz-last-event-id", channel_positions(["a", "b"], {"a": "1733000000000-5"}))
    write(out, "fuzz-last-event-id", channel_positions(["news", "alerts", "b{x}"], {"news": "1-2", "alerts": "3-4", "b{x}": "5-6"}))
    many = [f"c{i}" for i in range(64)]
    write(out, "fuzz-last-event-id", channel_positions(many, {name: "9999999999999999999-9999999999999999999" for name in many}))


def main():
    out, paths = sys.argv[1], sys.argv[2:]
    write_redis_seeds(out)
    publishes = []
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
                    publishes.append(publish)
                    body = json.dumps(publish).encode()
                    write(out, "fuzz-json", body)
                    write_publish(out, name, body)
                    if publish.get("id") is not None:
                        write(out, "fuzz-last-event-id", str(publish["id"]))
    write_batch_seeds(out, publishes)
    write_channel_positions_seeds(out)


if __name__ == "__main__":
    main()
