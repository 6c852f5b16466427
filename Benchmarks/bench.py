#!/usr/bin/env python3
"""`make bench`: the scenarios of the performance issue, run against sse-broker, Nchan (Redis-backed)
and Flask-SSE 1.0.0 (gunicorn + gevent) with the same load tool (loadgen/sse-load.c), plus the
tool's own ceiling (loadgen/sse-trivial.c). Prints a table and writes BENCHMARKS.md.

Everything runs on loopback; every process started here is stopped by pid. Figures on a 2-core
machine shared by servers and load tool: read the ratios, not the absolute numbers.
"""
import atexit
import binascii
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".build" / "bench"
BROKER = ROOT / ".build" / "release" / "sse-broker"
PUBLISH_BENCH = ROOT / ".build" / "release" / "sse-publish-bench"
HEARTBEAT = os.environ.get("BENCH_HEARTBEAT", "15")
QUICK = os.environ.get("BENCH_QUICK") == "1"
# BENCH_ONLY=tls runs only the TLS row, BENCH_ONLY=p1 only the publish paths, BENCH_ONLY=s5 only the reconnect
# storm, BENCH_ONLY=s1tls only S1 over plaintext, TLS and HTTP/2, BENCH_ONLY=cluster only C1 (classic vs sharded
# pub/sub on a 3-master Redis Cluster) and C1b (POST /publish there, history per channel vs one shared slot)
# (printed, BENCHMARKS.md left as it is).
ONLY = os.environ.get("BENCH_ONLY", "")
WORK = Path(tempfile.mkdtemp(prefix="sse-bench-"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
STARTED: list[subprocess.Popen] = []


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start(args: list[str], **kwargs) -> subprocess.Popen:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    STARTED.append(process)
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


RUNS = [0]


def load(label: str, port=None, ports=None, **options) -> dict:
    # Fresh channel names for every run: no subscription or buffer left over from the last one.
    RUNS[0] += 1
    args = [str(BIN / "sse-load"), "--label", label, "--sources", "8", "--prefix", f"r{RUNS[0]}c"]
    if options.pop("wait_numsub_per_channel", False):
        args += ["--wait-numsub", str(options["connections"] // options.get("channels", 1))]
    if ports:
        args += ["--ports", ",".join(map(str, ports))]
    else:
        args += ["--port", str(port)]
    for key, value in options.items():
        if value is True:   # a flag without a value (--tls, --h2)
            args.append("--" + key.replace("_", "-"))
        else:
            args += ["--" + key.replace("_", "-"), str(value)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"{label}: sse-load failed: {result.stderr.strip()[-400:]}")
    return json.loads(result.stdout)


# ---- servers under test -------------------------------------------------------------------

def make_certificates(directory: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 (EC P-256), for the TLS row."""
    directory.mkdir(exist_ok=True)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "30", "-subj", "/CN=bench CA")
    (directory / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "30", "-extfile", "server.ext")


class Redis:
    """The bench's Redis: plain on `port`; with `tls`, also TLS on `tls_port` (certificates made here)."""

    def __init__(self, tls: bool = False) -> None:
        self.port = free_port()
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(WORK)]
        self.tls_port = None
        if tls:
            certs = WORK / "tls"
            make_certificates(certs)
            self.ca = certs / "ca.crt"
            self.tls_port = free_port()
            args += ["--tls-port", str(self.tls_port), "--tls-cert-file", str(certs / "server.crt"),
                     "--tls-key-file", str(certs / "server.key"), "--tls-ca-cert-file", str(self.ca),
                     "--tls-auth-clients", "no"]
        self.process = start(args)
        wait_port(self.port)
        if self.tls_port:
            wait_port(self.tls_port)

    def url(self, tls: bool = False) -> str:
        if tls:
            return f"rediss://127.0.0.1:{self.tls_port}/0?ssl_ca_certs={self.ca}"
        return f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "FLUSHALL"], capture_output=True, check=True)


class Broker:
    """One or more sse-broker nodes."""
    name = "sse-broker"
    path = "/stream?channel=%s%d"
    publish = {"publish": "redis", "format": "flask"}

    def __init__(self, redis: Redis, nodes: int = 1, threads: int | None = None, tls: bool = False,
                 history: bool = False, https: Path | None = None) -> None:
        self.redis = redis
        if tls:
            self.name = "sse-broker, TLS Redis"
        if history:
            self.name = "sse-broker, history on"
        # https: a directory from make_certificates; the node serves HTTPS (ALPN h2, http/1.1) on its port.
        serve = []
        if https:
            self.name = "sse-broker, HTTPS"
            serve = ["--tls-cert", str(https / "server.crt"), "--tls-key", str(https / "server.key"),
                     "--h2-max-streams", str(S1TLS_STREAMS_PER_CONN)]
        self.ports = [free_port() for _ in range(nodes)]
        threads = str(threads or (1 if nodes > 1 else 2))
        self.processes = [
            start([str(BROKER), "--port", str(port), "--redis-url", redis.url(tls), "--history", "1000" if history else "0",
                   "--heartbeat", HEARTBEAT, "--log-level", "error", "--threads", threads, "--client-buffer", str(4 << 20),
                   *serve])
            for port in self.ports
        ]
        for port in self.ports:
            wait_port(port)

    @property
    def pids(self) -> str:
        return ",".join(str(process.pid) for process in self.processes)

    def options(self) -> dict:
        return dict(path=self.path, publish_port=self.redis.port, pids=self.pids, **self.publish)

    def stop(self) -> None:
        for process in self.processes:
            stop(process)


class Peer:
    """A peer started by Benchmarks/peers/NAME.sh start|stop."""

    def __init__(self, script: str, name: str, redis: Redis, path: str, publish: dict, workers: int = 2,
                 instance: str = "") -> None:
        self.name, self.path, self.publish, self.redis = name, path, publish, redis
        self.port = free_port()
        self.dir = WORK / f"{script}{instance}"   # several instances of one peer each get their own
        self.dir.mkdir(exist_ok=True)
        self.env = dict(os.environ, PEER_DIR=str(self.dir), PORT=str(self.port), REDIS_PORT=str(redis.port), WORKERS=str(workers))
        self.script = ROOT / "Benchmarks" / "peers" / f"{script}.sh"
        subprocess.run([str(self.script), "start"], env=self.env, check=True, timeout=600, capture_output=True)
        wait_port(self.port)

    @property
    def pids(self) -> str:
        pid_files = list(self.dir.glob("*.pid"))
        master = int(pid_files[0].read_text().strip())
        return ",".join(str(pid) for pid in [master, *children(master)])

    def options(self) -> dict:
        publish_port = self.port if self.publish.get("publish") == "http" else self.redis.port
        return dict(path=self.path, publish_port=publish_port, pids=self.pids, **self.publish)

    def stop(self) -> None:
        subprocess.run([str(self.script), "stop"], env=self.env, check=False, timeout=120, capture_output=True)


def nchan(redis: Redis, workers: int = 2, instance: str = "") -> Peer:
    return Peer("nchan", "Nchan", redis, "/sub/%s%d", {"publish": "http"}, workers=workers, instance=instance)


def flask_sse(redis: Redis) -> Peer:
    # Flask-SSE subscribes only once its response starts: wait until Redis shows every subscriber.
    return Peer("flask_sse", "Flask-SSE", redis, "/stream?channel=%s%d",
                {"publish": "redis", "format": "flask", "wait_numsub_per_channel": True})


# ---- scenarios --------------------------------------------------------------------------------

def trivial_run(connections: int, events: int, rate: float, size: int = 64, threads: int = 1) -> dict:
    port = free_port()
    server = start([str(BIN / "sse-trivial"), "--port", str(port), "--expect", str(connections), "--events", str(events),
                    "--rate", str(rate), "--size", str(size), "--warmup-ms", "1500", "--threads", str(threads)])
    wait_port(port)
    try:
        return load("trivial", port=port, path="/s%s%d", connections=connections, events=events, rate=rate, size=size,
                    publish="none", warmup_ms=300, drain_ms=2000, pids=str(server.pid))
    finally:
        stop(server)


def port_of(server) -> int:
    return getattr(server, "port", None) or server.ports[0]


def max_lossless(server, connections: int, rates: list[float], seconds: float, name: str | None = None,
                 **extra) -> tuple[dict | None, list[dict]]:
    """The highest rate in `rates` with zero loss, trying in order and stopping at the first loss.
    `extra`: more load-tool options (S1-TLS: the transport); `name` labels the runs."""
    best, runs = None, []
    name = name or server.name
    for rate in rates:
        result = load(f"{name} {rate:.0f}/s", port=port_of(server),
                      connections=connections, events=int(rate * seconds), rate=rate, size=64, warmup_ms=1000,
                      drain_ms=3000, **server.options(), **extra)
        runs.append(result)
        log(f"  {name} S1 {rate:.0f}/s: lost {result['lost']}, dup {result['duplicates']}, "
            f"{result['deliveries_per_second']:.0f} deliveries/s, p99 {result['p99_ms']} ms")
        if result["lost"] or result["duplicates"] or result["closed_connections"]:
            break
        best = result
        if result.get("achieved_rate", rate) < 0.9 * rate:
            log(f"  {name}: publishing reached only {result['achieved_rate']:.0f}/s; stopping the search")
            break
    return best, runs


def paired_ratios(runs: dict[str, list[dict]]) -> dict[str, list[float]]:
    """Per-round ratios, sorted: the broker's p99 over the ceiling's and Nchan's over the broker's,
    each from runs of the same round. The machine's speed drifts over minutes (a shared VM), and a
    ratio within one round cancels that drift where a ratio of separate medians does not."""
    mine = runs.get("sse-broker", [])
    pairs = {"broker / ceiling": (mine, runs.get("trivial", [])), "Nchan / broker": (runs.get("Nchan", []), mine)}
    return {name: sorted(round(a["p99_ms"] / b["p99_ms"], 2) for a, b in zip(top, bottom)
                         if b["p99_ms"] and not a["lost"] and not b["lost"])
            for name, (top, bottom) in pairs.items()}


def median_run(runs: list[dict]) -> dict:
    """The run with the median p99: one sample on a shared 2-core machine is noise."""
    return sorted(runs, key=lambda run: run["p99_ms"])[len(runs) // 2]


# Latency rates for S1 and how many interleaved rounds each gets (one run per server per round).
LATENCY_RATES = [(100, 3), (300, 1)] if QUICK else [(100, 9), (300, 3), (600, 3)]


def s1(redis: Redis, servers: list) -> dict:
    """Latency at low rates (trivial ceiling, broker and peers in interleaved rounds, so each sees
    the same machine weather), then the highest lossless rate."""
    connections = 300 if QUICK else 1000
    rates = [1000, 3000, 10000] if QUICK else [1000, 2000, 5000, 10000, 20000, 40000]
    out = {"latency": {}}
    for rate, rounds in LATENCY_RATES:
        events = max(300, int(rate * 3))
        runs = {"trivial": [], "trivial x2": []}
        for round_number in range(rounds):
            runs["trivial"].append(trivial_run(connections, events, rate))
            # The same ceiling writing from two threads, as the broker's two event loops and
            # Nchan's two workers do: on two cores they compete with the reader the same way.
            runs["trivial x2"].append(trivial_run(connections, events, rate, threads=2))
            for server in servers:
                if server.name == "Flask-SSE" and (rate != 100 or round_number):
                    continue   # it loses events already at 100/s: one run shows it
                redis.flush()
                runs.setdefault(server.name, []).append(load(
                    f"{server.name} {rate}/s", port=port_of(server), connections=connections, events=events, rate=rate,
                    size=64, warmup_ms=1000, drain_ms=3000, **server.options()))
        out["latency"][rate] = {name: {"median": median_run(results), "p99s": sorted(r["p99_ms"] for r in results)}
                                for name, results in runs.items()}
        out.setdefault("paired", {})[rate] = paired_ratios(runs)
        log(f"  {rate}/s p99 medians: " + ", ".join(f"{name} {entry['median']['p99_ms']} ms"
                                                     for name, entry in out["latency"][rate].items()))
    for server in servers:
        at100 = out["latency"][100][server.name]["median"]
        if at100["lost"]:   # no lossless rate to search for
            out[server.name] = {"best": None, "runs": [at100]}
            continue
        redis.flush()
        best, runs = max_lossless(server, connections, rates, 2.0 if QUICK else 3.0)
        out[server.name] = {"best": best or at100, "runs": [at100, *runs]}
    return out


def tls_row(redis: Redis) -> dict:
    """S1 with the node's subscription over plain TCP and over TLS, in the same run and the same
    Redis (the load tool publishes over plain TCP to both): p99 at 100 events/s in interleaved
    rounds, then the highest lossless rate of each."""
    connections = 300 if QUICK else 1000
    rates = [1000, 3000, 10000] if QUICK else [1000, 2000, 5000, 10000, 20000, 40000]
    rounds = 3 if QUICK else 5
    servers = [Broker(redis), Broker(redis, tls=True)]
    out = {"latency": {}, "best": {}}
    try:
        runs = {server.name: [] for server in servers}
        for _ in range(rounds):
            for server in servers:
                runs[server.name].append(load(
                    f"{server.name} 100/s", port=port_of(server), connections=connections, events=300, rate=100,
                    size=64, warmup_ms=1000, drain_ms=3000, **server.options()))
        for server in servers:
            out["latency"][server.name] = {"median": median_run(runs[server.name]),
                                           "p99s": sorted(r["p99_ms"] for r in runs[server.name])}
            best, _ = max_lossless(server, connections, rates, 2.0 if QUICK else 3.0)
            out["best"][server.name] = best
        log("  TLS row p99 at 100/s: " + ", ".join(f"{name} {entry['median']['p99_ms']} ms"
                                                  for name, entry in out["latency"].items()))
    finally:
        for server in servers:
            server.stop()
    out["connections"] = connections
    return out


def tls_report(entry: dict) -> list[str]:
    lines = ["## TLS to Redis: S1 with the subscription over plain TCP and over TLS\n",
             f"{entry['connections']} streams on one channel, 64-byte events, one node (2 loops); the load tool publishes "
             "over plain TCP, the node subscribes over `redis://` or `rediss://` (TLS 1.3, EC P-256) to the same Redis.\n",
             "| Redis link | p99 at 100 events/s (median; all rounds) | highest lossless rate | deliveries/s there | p99 there |",
             "|---|---|---|---|---|"]
    for name, latency in entry["latency"].items():
        best = entry["best"].get(name)
        rounds = ", ".join(str(p) for p in latency["p99s"])
        if best:
            lines.append(f"| {name} | {latency['median']['p99_ms']} ms ({rounds}) | {best['rate']:.0f}/s | "
                         f"{best['deliveries_per_second'] / 1e6:.2f}M | {best['p99_ms']} ms |")
        else:
            lines.append(f"| {name} | {latency['median']['p99_ms']} ms ({rounds}) | none | | |")
    return lines


# S1-TLS: S1's streams (one channel, 64-byte events, Redis PUBLISH, history off) over plaintext HTTP/1.1,
# HTTP/1.1 over TLS and HTTP/2 over TLS with S1TLS_STREAMS_PER_CONN streams per TCP connection.
S1TLS_STREAMS_PER_CONN = 100
S1TLS_ROWS = [
    # (name, the node serves HTTPS, load-tool options)
    ("plaintext HTTP/1.1", False, {}),
    ("HTTP/1.1 over TLS", True, {"tls": True}),
    (f"HTTP/2 over TLS, {S1TLS_STREAMS_PER_CONN} streams per connection", True,
     {"h2": True, "streams_per_conn": S1TLS_STREAMS_PER_CONN}),
]


def s1tls(redis: Redis) -> dict:
    """The three transports of S1TLS_ROWS: p99 at 100 events/s in interleaved rounds (one plaintext node
    and one HTTPS node, the same build and Redis), then each one's highest lossless rate, then memory
    per idle stream on a fresh node per row (RSS after the streams connected, less before, per stream)."""
    connections = 300 if QUICK else 1000
    # S1's search from a lower first step: HTTP/2 may lose events already at 1,000/s.
    rates = [300, 1000, 3000, 10000] if QUICK else [300, 1000, 2000, 5000, 10000, 20000, 40000]
    rounds = 3 if QUICK else 5
    certs = WORK / "node-tls"
    if not (certs / "server.crt").exists():
        make_certificates(certs)
    trust = {"tls_ca": str(certs / "ca.crt"), "tls_sni": "localhost"}
    rows = [(name, https, dict(options, **trust) if https else options) for name, https, options in S1TLS_ROWS]
    out = {"connections": connections, "streams_per_conn": S1TLS_STREAMS_PER_CONN, "rounds": rounds,
           "latency": {}, "best": {}, "steps": {}, "idle": {}}
    nodes = {False: Broker(redis), True: Broker(redis, https=certs)}
    try:
        runs = {name: [] for name, _, _ in rows}
        for _ in range(rounds):
            for name, https, options in rows:
                redis.flush()
                runs[name].append(load(f"S1-TLS {name} 100/s", port=port_of(nodes[https]), connections=connections,
                                       events=300, rate=100, size=64, warmup_ms=1000, drain_ms=3000,
                                       **nodes[https].options(), **options))
        plain = runs[rows[0][0]]
        for name, _, _ in rows:
            out["latency"][name] = {"median": median_run(runs[name]), "p99s": sorted(r["p99_ms"] for r in runs[name]),
                                    "versus_plaintext": sorted(round(a["p99_ms"] / b["p99_ms"], 2) for a, b in zip(runs[name], plain)
                                                               if b["p99_ms"] and not a["lost"] and not b["lost"])}
        log("  S1-TLS p99 at 100/s: " + ", ".join(f"{name} {entry['median']['p99_ms']} ms"
                                                 for name, entry in out["latency"].items()))
        for name, https, options in rows:
            redis.flush()
            out["best"][name], out["steps"][name] = max_lossless(nodes[https], connections, rates, 2.0 if QUICK else 3.0,
                                                                 name=f"S1-TLS {name}", **options)
    finally:
        for node in nodes.values():
            node.stop()
    for name, https, options in rows:
        # A fresh node per row: after the runs above its heap holds freed memory new streams would reuse.
        node = Broker(redis, https=certs if https else None)
        try:
            redis.flush()
            out["idle"][name] = load(f"S1-TLS {name} idle", port=port_of(node), connections=connections, events=100,
                                     rate=100, size=64, warmup_ms=3000, drain_ms=5000, **node.options(), **options)
        finally:
            node.stop()
        log(f"  S1-TLS {name}: {out['idle'][name]['server_rss_bytes_per_connection']:.0f} B per idle stream")
    return out


def s1tls_report(entry: dict) -> list[str]:
    connections, per = entry["connections"], entry["streams_per_conn"]
    lines = [f"## S1-TLS: S1 over plaintext HTTP/1.1, HTTP/1.1 over TLS and HTTP/2 over TLS ({connections:,} streams)\n",
             f"S1's load: {connections:,} streams on one channel, 64-byte events by Redis `PUBLISH`, one node of 2 event "
             "loops, history off. The TLS rows share one node started with `--tls-cert`/`--tls-key` (a CA and a "
             "localhost leaf, EC P-256, made with openssl at run time; ALPN `h2` then `http/1.1`), the plaintext row "
             "another of the same build. The load tool (OpenSSL, nghttp2) checks the certificate against that CA with "
             f"SNI localhost and does a full handshake per TCP connection; HTTP/2 multiplexes {per} streams "
             f"(`GET /stream?channel=...`) on each connection ({-(-connections // per)} connections), with 16 MiB stream "
             "and connection windows. Latency and loss are counted per stream as in S1. p99 at 100 events/s: the "
             f"median of {entry['rounds']} interleaved rounds (the three rows one after another in each round); the "
             "ratio to plaintext is per round. Highest lossless rate: S1's search with a first step at 300/s (it stops "
             "at the first loss). "
             "Memory: a fresh node per row, its RSS once the streams are connected, less before, per stream.\n",
             "| transport | TCP connections | p50 / p99 / p99.9 ms at 100 events/s | p99 / plaintext's, per round | "
             "server CPU per delivery at 100/s | highest lossless rate | deliveries/s there | p99 there | "
             "server / load tool CPU there | memory per idle stream |",
             "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    reference = next(iter(entry["latency"]), None)
    for name, latency in entry["latency"].items():
        run, best, idle = latency["median"], entry["best"].get(name), entry["idle"].get(name)
        cpu = f"{run['server_cpu_percent'] * 10_000 / (run['rate'] * run['connections']):.1f} µs"
        ratios = "(reference)" if name == reference else ", ".join(f"{r:.2f}" for r in latency["versus_plaintext"])
        ceiling = (f"{best['achieved_rate']:.0f}/s | {best['deliveries_per_second'] / 1e6:.2f}M | {best['p99_ms']} ms | "
                   f"{best['server_cpu_percent']:.0f}% / {best.get('reader_cpu_percent', 0):.0f}%"
                   if best else "none lossless | | | ")
        memory = f"{idle['server_rss_bytes_per_connection'] / 1024:.1f} KB" if idle else "n/a"
        lines.append(f"| {name} | {run.get('tcp_connections', run['connections']):,} | {latency_cell(latency)} | "
                     f"{ratios} | {cpu} | {ceiling} | {memory} |")
    lines.append("")
    lines.append("CPU is the share of one core over the run (`/proc` for the server; the load tool's reader for itself: "
                 "it decrypts every TLS record as the server encrypts it, on the same two cores). Every p99 at 100/s, "
                 "sorted: " + "; ".join(f"{name} {latency['p99s']}" for name, latency in entry["latency"].items()) + ".")
    lines.append("")
    lines.append("Every step of the search, in order:\n")
    for name, steps in entry["steps"].items():
        lines.append(f"- {name}: " + "; ".join(
            f"{run['rate']:.0f}/s: {run['deliveries_per_second'] / 1e6:.2f}M deliveries/s, {run['lost']} lost, "
            f"p99 {run['p99_ms']} ms" for run in steps))
    return lines


# P1: the publish paths side by side, 1,000 streams on one channel, 64-byte events.
P1_PATHS = [
    # (name, history on, load-tool publish options)
    ("raw Redis PUBLISH, history off", False, {"publish": "redis", "format": "flask"}),
    ("POST /publish, history off", False, {"publish": "broker", "publish_conns": 4}),
    ("POST /publish, history on (default)", True, {"publish": "broker", "publish_conns": 4}),
    ("POST /publish batches of 16, history on", True, {"publish": "broker", "publish_conns": 4, "publish_batch": 16}),
]


def p1(redis: Redis) -> dict:
    """Each publish path at 100 events/s (p99, interleaved rounds) and asked 5,000 events/s (what
    it reached, lossless or not), through the same node build; Nchan's HTTP publisher beside them;
    SSEPublisher's own rate to one channel (no streams) with history, single and batched."""
    connections = 300 if QUICK else 1000
    rounds = 2 if QUICK else 3
    brokers = {False: Broker(redis), True: Broker(redis, history=True)}
    out = {"connections": connections, "latency": {}, "high": {}, "publisher": []}
    peer = None
    try:
        try:
            peer = nchan(redis)
        except Exception as error:
            log(f"  Nchan failed to start: {error}")
        paths = [(name, brokers[history], options) for name, history, options in P1_PATHS]
        if peer:
            paths.append(("Nchan HTTP publish, Redis-backed", peer, {"publish": "http"}))

        def run(name, server, options, rate, events):
            settings = dict(server.options())
            settings.update(options)
            if options.get("publish") == "broker":
                settings["publish_port"] = port_of(server)
            redis.flush()
            return load(f"P1 {name} {rate}/s", port=port_of(server), connections=connections, events=events, rate=rate,
                        size=64, warmup_ms=1000, drain_ms=3000, **settings)

        runs = {name: [] for name, _, _ in paths}
        for _ in range(rounds):
            for name, server, options in paths:
                runs[name].append(run(name, server, options, 100, 300))
        for name, _, _ in paths:
            out["latency"][name] = {"median": median_run(runs[name]), "p99s": sorted(r["p99_ms"] for r in runs[name])}
        for name, server, options in paths:
            out["high"][name] = run(name, server, options, 5000, 3000 if QUICK else 10000)
            entry = out["high"][name]
            log(f"  P1 {name}: reached {entry['achieved_rate']:.0f}/s, lost {entry['lost']}, "
                f"{entry['deliveries_per_second']:.0f} deliveries/s")
        events = 50_000 if QUICK else 200_000
        for mode, extra in (("single, 1,024 in flight", ["--mode", "single", "--window", "1024"]),
                            ("batches of 64, 16 in flight", ["--mode", "batch", "--batch", "64", "--window", "16"])):
            result = subprocess.run([str(PUBLISH_BENCH), "--redis", redis.url(False), "--events", str(events),
                                     "--channel", "p1-publisher", *extra], capture_output=True, text=True, timeout=600)
            if result.returncode:
                raise RuntimeError(f"sse-publish-bench failed: {result.stderr.strip()[-400:]}")
            entry = json.loads(result.stdout)
            entry["label"] = f"SSEPublisher with history, {mode}"
            out["publisher"].append(entry)
            log(f"  P1 {entry['label']}: {entry['events_per_second']} publishes/s")
    finally:
        for broker in brokers.values():
            broker.stop()
        if peer:
            peer.stop()
    return out


def p1_report(entry: dict) -> list[str]:
    lines = [f"## P1: publish paths ({entry['connections']} streams on one channel, 64-byte events)\n",
             "One node (2 event loops), one Redis, the same load tool; HTTP publishers: 4 keep-alive connections. "
             "p99 at 100 events/s is the median of interleaved rounds; \"asked 5,000/s\" is one run: the rate the "
             "publisher reached and whether every stream got every event.\n",
             "| publish path | p50 / p99 / p99.9 ms at 100 events/s | asked 5,000 events/s: reached | lost | deliveries/s |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, latency in entry["latency"].items():
        high = entry["high"].get(name, {})
        lines.append(f"| {name} | {latency_cell(latency)} | {high.get('achieved_rate', 0):.0f}/s | "
                     f"{high.get('lost', '-')} | {high.get('deliveries_per_second', 0) / 1e6:.2f}M |")
    for publisher in entry.get("publisher", []):
        lines.append(f"| {publisher['label']} (no streams) | - | {publisher['events_per_second']:,}/s | - | - |")
    return lines


def s2(redis: Redis, server, connections: int) -> dict:
    redis.flush()
    result = load(f"{server.name} idle", port=port_of(server), connections=connections,
                  events=100, rate=100, size=64, warmup_ms=3000, drain_ms=5000, **server.options())
    log(f"  {server.name} S2: {result['server_rss_bytes_per_connection']:.0f} B/conn, lost {result['lost']}, p99 {result['p99_ms']} ms")
    return result


def s3(redis: Redis) -> dict:
    """1, 2 and 3 nodes of one event loop each, clients spread over them, at a rate past what one
    loop can carry; and one node with two loops for reference."""
    connections = 600 if QUICK else 1500
    rate = 2000 if QUICK else 5000
    out = {}
    for label, nodes, threads in (("1 node x 1 loop", 1, 1), ("2 nodes x 1 loop", 2, 1), ("3 nodes x 1 loop", 3, 1),
                                  ("1 node x 2 loops", 1, 2)):
        broker = Broker(redis, nodes=nodes, threads=threads)
        try:
            result = load(label, ports=broker.ports, connections=connections, events=int(rate * 3), rate=rate,
                          size=64, warmup_ms=1500, drain_ms=4000, processes=2, **broker.options())
        finally:
            broker.stop()
        result["nodes"], result["threads"] = nodes, threads
        log(f"  {label}: {result['deliveries_per_second']:.0f} deliveries/s, lost {result['lost']}, p99 {result['p99_ms']} ms")
        out[label] = result
    return out


def s4(redis: Redis) -> dict:
    """10,000 channels x 5 clients: 50,000 streams, past one process's 20,000 files, so three
    broker nodes (one loop each) against three Nchan workers, read by three load processes."""
    channels = 600 if QUICK else 10000
    size = 1 if QUICK else 3
    out = {}
    broker = Broker(redis, nodes=size, threads=1 if size > 1 else 2)
    try:
        out["sse-broker"] = s4_run(redis, broker, channels, size)
    finally:
        broker.stop()
    try:
        peer = nchan(redis, workers=max(2, size))
    except Exception as error:
        log(f"  Nchan failed to start: {error}")
        return out
    try:
        out["Nchan"] = s4_run(redis, peer, channels, size)
    except RuntimeError as error:
        log(f"  Nchan S4 failed: {error}")
        out["Nchan"] = {"error": str(error)}
    finally:
        peer.stop()
    return out


def s4_run(redis: Redis, server, channels: int, processes: int) -> dict:
    redis.flush()
    ports = getattr(server, "ports", None) or [server.port]
    result = load(f"{server.name} channels", ports=ports, connections=channels * 5, channels=channels,
                  events=channels * 2, rate=2000, size=64, warmup_ms=3000, drain_ms=5000, processes=processes,
                  **server.options())
    result["processes"] = processes
    log(f"  {server.name} S4: {result['deliveries_per_second']:.0f} deliveries/s, lost {result['lost']}, p99 {result['p99_ms']} ms")
    return result


# S5: a node holding S5_STREAMS streams under a steady publish is killed (SIGKILL); its clients
# resume on the other two nodes with Last-Event-ID, as EventSource does. The steady publish is
# S5_RATE events/s to one channel through a surviving node: 75,000 deliveries/s at 15,000 streams.
# Here every delivery at a low rate is a write of its own (~6 µs of a shared core), so 10/s keeps
# the servers ~70% busy before the storm starts and 100/s would be 1.5M writes/s, far past two
# cores: 5/s leaves the storm most of the machine. EventSource waits the server's `retry:` (neither
# server sends one here) or its own default before reconnecting; the load tool uses a 0 ms base
# plus a uniform 0-1,000 ms jitter per connection, the spread of 15,000 browsers' timers.
S5_STREAMS = 3000 if QUICK else 15000
S5_RATE = 5
S5_KILL_AFTER_MS = 5000     # into the steady publish
S5_JITTER_MS = 1000
S5_SECONDS = 15             # of publishing: 5 s before the kill, the storm, the steady state after
S5_ROUNDS = 1 if QUICK else 3   # interleaved, fresh servers each; the report shows the median round


def raise_file_limit() -> None:
    """15,000 streams on one node: servers started from here inherit the hard open-file limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def s5_run(redis: Redis, server, label: str, port: int, resume_ports: list[int], publish_port: int,
           survivors: str, victims: str) -> dict:
    redis.flush()
    options = dict(server.options())
    # History ids come only from events published through a node (POST /publish), not raw PUBLISH.
    options.update(publish="broker" if isinstance(server, Broker) else "http", publish_port=publish_port, pids=survivors)
    options.pop("format", None)
    result = load(label, port=port, connections=S5_STREAMS, events=S5_RATE * S5_SECONDS, rate=S5_RATE, size=64,
                  warmup_ms=2000, drain_ms=5000, resume_ports=",".join(map(str, resume_ports)), retry_ms=0,
                  retry_jitter_ms=S5_JITTER_MS, kill_pids=victims, kill_after_ms=S5_KILL_AFTER_MS,
                  storm_timeout_ms=60000, steady_ms=3000, redis_pids=str(redis.process.pid), **options)
    r = result["resume"]
    log(f"  {label} S5: {r['resumed']} of {r['closed_connections']} resumed, all in {r['storm_seconds']} s, "
        f"lost {result['lost']}, dup {result['duplicates']}, {r['broker_cpu_us_per_resume']} µs broker + "
        f"{r['redis_cpu_us_per_resume']} µs Redis CPU per resume")
    return result


def s5_round(redis: Redis) -> dict:
    """One storm each: sse-broker (3 nodes, history on), then Nchan (3 instances on the same Redis)."""
    out = {}
    broker = Broker(redis, nodes=3, threads=1, history=True)
    try:
        first, second, third = broker.processes
        out["sse-broker"] = s5_run(redis, broker, "sse-broker, history on", broker.ports[0], broker.ports[1:],
                                   broker.ports[1], f"{second.pid},{third.pid}", str(first.pid))
    finally:
        broker.stop()
    instances = []
    try:
        for index in range(3):
            instances.append(nchan(redis, instance=f"-s5-{index}"))
        victim, *rest = instances
        out["Nchan"] = s5_run(redis, victim, "Nchan, Redis buffer", victim.port, [peer.port for peer in rest],
                              rest[0].port, ",".join(peer.pids for peer in rest), victim.pids)
    except Exception as error:   # reported, not fatal
        log(f"  Nchan S5 failed: {error}")
        out["Nchan"] = {"error": str(error)}
    finally:
        for peer in instances:
            peer.stop()
    return out


def s5(redis: Redis) -> dict:
    """The reconnect storm in S5_ROUNDS interleaved rounds; per server the round with the median
    time to all resumed, and every round's figures."""
    raise_file_limit()
    rounds = [s5_round(redis) for _ in range(S5_ROUNDS)]
    out = {"results": {}, "rounds": {}}
    for name in ("sse-broker", "Nchan"):
        runs = [entry[name] for entry in rounds if "resume" in entry.get(name, {})]
        if runs:
            out["results"][name] = sorted(runs, key=lambda run: run["resume"]["storm_seconds"])[len(runs) // 2]
        elif any(name in entry for entry in rounds):
            out["results"][name] = next(entry[name] for entry in rounds if name in entry)
        out["rounds"][name] = [{key: run["resume"][key] for key in ("storm_seconds", "from_connect_p99_ms",
                                                                    "broker_cpu_us_per_resume", "redis_cpu_us_per_resume")}
                               | {"lost": run["lost"], "duplicates": run["duplicates"]} for run in runs]
    return out


def s5_report(s5_entry: dict) -> list[str]:
    entry = s5_entry["results"]
    first = next((result for result in entry.values() if "resume" in result), None)
    streams = first["connections"] if first else S5_STREAMS
    lines = [f"## S5: reconnect storm, a node holding {streams:,} streams is killed\n",
             f"Three nodes on one Redis; {streams:,} streams on one channel, all on node 1; "
             f"{first['rate'] if first else S5_RATE:.0f} events/s (64 bytes) published through node 2 for the whole run. "
             f"{S5_KILL_AFTER_MS / 1000:.0f} s into the publish node 1 gets SIGKILL (Nchan: its master and workers). "
             "Each client then resumes as EventSource does: it waits its reconnection time (no server sends `retry:` "
             f"here, so 0 ms plus a uniform 0-{S5_JITTER_MS:,} ms jitter per client: the spread of many browsers' timers) "
             "and reconnects to node 2 or 3 (round robin) with `Last-Event-ID`, the id of the last event it got. "
             "sse-broker: 3 nodes of one loop, `--history 1000` (ids from POST /publish); Nchan: 3 nginx instances "
             "of 2 workers, `nchan_use_redis on`, resuming from the message buffer in Redis.\n",
             "| server | streams | time to all resumed (s) | resume time p50 / p99 from the close (ms) | "
             "from the reconnect p50 / p99 (ms) | lost | duplicates | history-gap notices | failed attempts | "
             "broker CPU per resume | Redis CPU per resume |",
             "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    rounds = s5_entry.get("rounds", {})
    if any(len(runs) > 1 for runs in rounds.values()):
        lines[1] = lines[1].rstrip("\n") + (f" The round with the median time to all resumed of {max(len(r) for r in rounds.values())} "
                     "interleaved rounds (fresh servers each); every round is listed below the table.\n")
    for name, result in entry.items():
        if "resume" not in result:
            lines.append(f"| {name} | failed: {result.get('error', '?').splitlines()[0][:160]} | | | | | | | | | |")
            continue
        r = result["resume"]
        resumed = f"{r['storm_seconds']:.2f}" + ("" if r["resumed"] == r["closed_connections"] and not r.get("timed_out")
                                                 else f" ({r['closed_connections'] - r['resumed']} never resumed)")
        lines.append(f"| {name} | {result['connections']:,} | {resumed} | {r['from_close_p50_ms']:.0f} / "
                     f"{r['from_close_p99_ms']:.0f} | {r['from_connect_p50_ms']} / {r['from_connect_p99_ms']} | "
                     f"{result['lost']} | {result['duplicates']} | {r['history_gap_notices']} | {r['failed_attempts']} | "
                     f"{r['broker_cpu_us_per_resume']:.0f} µs (net ≈{r.get('broker_cpu_us_per_resume_net', 0):.0f}) | "
                     f"{r['redis_cpu_us_per_resume']:.0f} µs (net ≈{r.get('redis_cpu_us_per_resume_net', 0):.0f}) |")
    lines.append("")
    lines.append("A stream has resumed when its first new event after the reconnect arrives (replayed or live: the "
                 "sequence at or past the next one it expects), or its response head if it already had every event "
                 "published by then (nothing to replay). Time to all resumed runs from the first close to the last "
                 f"resume, so it holds the jitter (up to {S5_JITTER_MS / 1000:.0f} s); \"from the reconnect\" is from "
                 "a stream's connect to its resume: the server's part, queueing included (the storm wants more CPU than "
                 "the two cores have). Lost and duplicates count every stream's events by the payload's sequence over "
                 "the whole run, across the reconnect. CPU per resume: the surviving servers' processes and Redis "
                 "(/proc), from the kill until every stream had resumed, divided by the resumes; that includes the live "
                 "delivery to the streams already resumed and the publishes. The net figure is an estimate of the "
                 "resumes' own: less the rate before the kill over the window and, per stream-second live in the window, "
                 "what a live stream cost in the 3 s after the storm.\n")
    for name, result in entry.items():
        if "resume" not in result:
            continue
        r = result["resume"]
        lines.append(f"- {name}: {r['resumed']:,} of {r['closed_connections']:,} streams resumed "
                     f"({r.get('resumed_at_head', 0):,} with nothing to replay; "
                     f"{r['attempts']:,} attempts, {r['ended_more_than_once']} streams needed more than one); the storm "
                     f"window {r['kill_to_all_resumed_seconds']:.2f} s from the kill; surviving servers' CPU "
                     f"{r['broker_cpu_percent_before']:.0f}% before the kill, {r['broker_cpu_percent_storm']:.0f}% in the "
                     f"storm, {r['broker_cpu_percent_after']:.0f}% after it (the {result['connections']:,} streams live); "
                     f"Redis {r['redis_cpu_percent_before']:.0f}% / {r['redis_cpu_percent_storm']:.0f}% / "
                     f"{r['redis_cpu_percent_after']:.0f}%. Response head p50 / p99 {r['head_p50_ms']} / "
                     f"{r['head_p99_ms']} ms after the connect.")
    for name, runs in rounds.items():
        if len(runs) > 1:
            lines.append(f"- {name}, every round: " + "; ".join(
                f"{run['storm_seconds']:.2f} s to all resumed, reconnect p99 {run['from_connect_p99_ms']:.0f} ms, "
                f"{run['broker_cpu_us_per_resume']:.0f} / {run['redis_cpu_us_per_resume']:.0f} µs server / Redis CPU "
                f"per resume, {run['lost']} lost, {run['duplicates']} dup" for run in runs))
    return lines


# ---- C1: Redis Cluster, classic PUBLISH vs sharded SPUBLISH ---------------------------------------
# One publish load on a fresh 3-master cluster per configuration (no replicas, loopback): classic
# PUBLISH, which Redis Cluster broadcasts to every node over the cluster bus (issue 20), against
# sharded SPUBLISH, which stays on the shard of its channel. The load tool publishes every event to
# its channel's master in both modes, so the command is the only difference on the publishing side.

CLUSTER_MASTERS = 3
CLUSTER_STREAMS = 300 if QUICK else 1000
CLUSTER_CHANNELS = 30   # an equal number on each master (see cluster_channels)
# (events/s, seconds, spread): "all" spreads the events over CLUSTER_CHANNELS channels, a third on each
# master: a moderate rate both modes carry without loss, then a higher one; "one" over a third as many
# channels, all on the first master (M1), which shows where each kind of publish does its work.
CLUSTER_LOADS = [(1000, 5, "all"), (1000, 3, "one")] if QUICK else [(1000, 10, "all"), (5000, 5, "all"), (1000, 5, "one")]
CLUSTER_IDLE_SECONDS = 3
# (label, publish command, the broker's ?pubsub=)
CLUSTER_CONFIGS = [
    ("classic PUBLISH, broker pubsub=classic", "PUBLISH", "classic"),
    ("classic PUBLISH, broker pubsub=both", "PUBLISH", "both"),
    ("sharded SPUBLISH, broker pubsub=both", "SPUBLISH", "both"),
]
CLUSTER_BUS_OFFSET = 10000
CLUSTER_BUS_STATS = ("publish_sent", "publish_received", "publishshard_sent", "publishshard_received")


def key_slot(name: str) -> int:
    """Redis Cluster's slot of a name: CRC16-XMODEM (crc_hqx from 0) of its hash tag (the text inside the
    first {...}, when not empty) or else the whole name, mod 16384. Only to pick names quickly; the slots
    used are then asked of Redis (CLUSTER KEYSLOT)."""
    start = name.find("{")
    if start >= 0:
        end = name.find("}", start + 1)
        if end > start + 1:
            name = name[start + 1:end]
    return binascii.crc_hqx(name.encode(), 0) % 16384


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def cluster_port(taken: set[int]) -> int:
    """A port P with P and its bus port P + 10000 both free, both below the ephemeral range (no
    connection's own port lands on them) and P + 10000 below 55535."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 49152
    upper = min(low, 55535) - CLUSTER_BUS_OFFSET - 1
    for _ in range(500):
        port = 10000 + int.from_bytes(os.urandom(2), "big") % (upper - 10000)
        if port in taken or port + CLUSTER_BUS_OFFSET in taken:
            continue
        if bindable(port) and bindable(port + CLUSTER_BUS_OFFSET):
            taken.update((port, port + CLUSTER_BUS_OFFSET))
            return port
    raise RuntimeError("no free port P with P + 10000 also free")


def redis_cli(port: int, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(["redis-cli", "-p", str(port), *args], input=stdin, capture_output=True, text=True,
                            timeout=60)
    if result.returncode != 0 or result.stdout.startswith("ERR"):
        raise RuntimeError(f"redis-cli -p {port} {' '.join(args)}: {(result.stderr or result.stdout).strip()[-300:]}")
    return result.stdout


CLUSTERS = [0]


class RedisCluster:
    """A throwaway Redis Cluster of `masters` masters and no replicas on loopback, each node in its own
    directory, every process stopped by pid. Ready once every node says cluster_state:ok and every
    node's CLUSTER SLOTS names the same masters for all 16384 slots (bounded: 30 s)."""

    def __init__(self, masters: int = CLUSTER_MASTERS) -> None:
        CLUSTERS[0] += 1
        self.dir = WORK / f"cluster-{CLUSTERS[0]}"
        self.dir.mkdir()
        self.processes: dict[int, subprocess.Popen] = {}
        taken: set[int] = set()
        try:
            for _ in range(masters):
                self._start_node(taken)
            self.ports = list(self.processes)
            redis_cli(self.ports[0], "--cluster", "create", *[f"127.0.0.1:{port}" for port in self.ports],
                      "--cluster-replicas", "0", "--cluster-yes")
            self.slots = self._wait_formed()
        except BaseException:
            self.stop()
            raise

    def _start_node(self, taken: set[int]) -> None:
        for _ in range(5):   # on another port pair if the node exits first (a port taken since it was picked)
            port = cluster_port(taken)
            own = self.dir / f"node-{port}"
            own.mkdir()
            process = start(["redis-server", "--cluster-enabled", "yes", "--cluster-config-file",
                             str(self.dir / f"nodes-{port}.conf"), "--cluster-node-timeout", "2000", "--save", "",
                             "--appendonly", "no", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(own)])
            deadline = time.time() + 10
            while time.time() < deadline and process.poll() is None:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        self.processes[port] = process
                        return
                time.sleep(0.05)
            stop(process)
        raise RuntimeError("no cluster-mode redis-server started")

    def slot_map(self, port: int) -> list[tuple[int, int, int]]:
        """(first slot, last slot, master port) from one node's CLUSTER SLOTS."""
        return sorted((entry[0], entry[1], entry[2][1]) for entry in json.loads(redis_cli(port, "--json", "CLUSTER", "SLOTS")))

    def _wait_formed(self) -> list[tuple[int, int, int]]:
        deadline = time.time() + 30
        missing = "nothing checked yet"
        while time.time() < deadline:
            try:
                maps = [self.slot_map(port) for port in self.ports]
                states = [("cluster_state:ok" in redis_cli(port, "CLUSTER", "INFO")) for port in self.ports]
                covered = sum(last - first + 1 for first, last, _ in maps[0])
                agree = all(m == maps[0] for m in maps)
                if all(states) and covered == 16384 and agree and {owner for _, _, owner in maps[0]} == set(self.ports):
                    return maps[0]
                missing = f"cluster_state:ok {states}, {covered} slots covered, slot maps agree: {agree}"
            except (RuntimeError, ValueError, IndexError, TypeError) as error:
                missing = str(error)
            time.sleep(0.1)
        raise RuntimeError(f"the cluster on {self.ports} did not form within 30 s ({missing})")

    def owner(self, slot: int) -> int:
        return next(owner for first, last, owner in self.slots if first <= slot <= last)

    def url(self, pubsub: str) -> str:
        seeds = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"redis+cluster://{seeds}" + ("" if pubsub == "both" else f"?pubsub={pubsub}")

    @property
    def pids(self) -> list[int]:
        return [self.processes[port].pid for port in self.ports]

    def cpu_seconds(self) -> list[float]:
        """utime + stime of each master, in start order (/proc/PID/stat)."""
        out = []
        for pid in self.pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
        return out

    def bus_stats(self) -> list[dict[str, int]]:
        """Each master's cluster-bus publish messages so far (CLUSTER INFO lists a type once it is nonzero)."""
        out = []
        for port in self.ports:
            info = dict(line.split(":", 1) for line in redis_cli(port, "CLUSTER", "INFO").split() if ":" in line)
            out.append({name: int(info.get(f"cluster_stats_messages_{name}", 0)) for name in CLUSTER_BUS_STATS})
        return out

    def subscribers(self) -> list[tuple[int, int]]:
        """Per master, the classic and the sharded subscriptions its clients hold (CLIENT LIST sub= and ssub=)."""
        out = []
        for port in self.ports:
            classic = sharded = 0
            for line in redis_cli(port, "CLIENT", "LIST").splitlines():
                fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
                classic += int(fields.get("sub", 0))
                sharded += int(fields.get("ssub", 0))
            out.append((classic, sharded))
        return out

    def stop(self) -> None:
        for process in self.processes.values():
            stop(process)


def cluster_channels(cluster: RedisCluster, tag: str, count: int, only: int | None = None) -> tuple[str, list[int]]:
    """A prefix whose `count` channels (PREFIX0, PREFIX1, ...) fall evenly on the masters (a bounded
    search), or, for `only`, a hash-tagged prefix `{...}` whose slot master `only` serves (the names
    PREFIXk differ only in their last characters, and CRC16 is linear: their slots never share one
    master's range); then each channel's slot from CLUSTER KEYSLOT and its master from CLUSTER SLOTS."""
    masters = len(cluster.ports)
    for attempt in range(100_000):
        if only is not None:
            prefix = f"{{c1{tag}n{attempt}}}"
            if cluster.owner(key_slot(prefix)) == only:
                break
            continue
        prefix = f"c1{tag}n{attempt}c"
        owners = [cluster.owner(key_slot(f"{prefix}{k}")) for k in range(count)]
        counts = [owners.count(port) for port in cluster.ports]
        if max(counts) - min(counts) <= (0 if count % masters == 0 else 1):
            break
    else:
        raise RuntimeError(f"no prefix puts {count} channels {'on ' + str(only) if only else 'evenly'} in the search")
    names = [f"{prefix}{k}" for k in range(count)]
    said = redis_cli(cluster.ports[0], stdin="".join(f"CLUSTER KEYSLOT {name}\n" for name in names)).split()
    slots = [int(value) for value in said]
    if slots != [key_slot(name) for name in names]:
        raise RuntimeError(f"CLUSTER KEYSLOT disagrees with CRC16 for {prefix}: {said[:5]}")
    return prefix, [cluster.owner(slot) for slot in slots]


def cluster_load(cluster: RedisCluster, label: str, **options) -> dict:
    """`load`, with each master's subscriptions sampled while the streams are connected (which master
    holds the broker's classic subscription; the sharded ones per shard)."""
    RUNS[0] += 1
    args = [str(BIN / "sse-load"), "--label", label, "--sources", "8"]
    for key, value in options.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    STARTED.append(process)
    seen = [(0, 0)] * len(cluster.ports)
    try:
        deadline = time.time() + 900
        while process.poll() is None and time.time() < deadline:
            time.sleep(0.5)
            try:
                now = cluster.subscribers()
            except RuntimeError:
                continue
            seen = [(max(a[0], b[0]), max(a[1], b[1])) for a, b in zip(seen, now)]
        stdout, stderr = process.communicate(timeout=30)
    finally:
        stop(process)
    if process.returncode != 0:
        raise RuntimeError(f"{label}: sse-load failed: {stderr.strip()[-400:]}")
    result = json.loads(stdout)
    result["subscriptions_per_master"] = seen
    return result


def cluster_run(config: tuple[str, str, str], tag: str) -> dict:
    """One configuration on a fresh cluster and a fresh broker: the masters' idle CPU, then each load of
    CLUSTER_LOADS on fresh channels, with every master's CPU over the publish window and its bus messages."""
    label, command, pubsub = config
    cluster = RedisCluster()
    broker = None
    try:
        before = cluster.cpu_seconds()
        time.sleep(CLUSTER_IDLE_SECONDS)
        idle = [(after - first) / CLUSTER_IDLE_SECONDS for first, after in zip(before, cluster.cpu_seconds())]
        port = free_port()
        broker = start([str(BROKER), "--port", str(port), "--redis-url", cluster.url(pubsub), "--history", "0",
                        "--redis-probe-interval", "0", "--threads", "2", "--heartbeat", HEARTBEAT, "--log-level", "error",
                        "--client-buffer", str(4 << 20)])
        wait_port(port)
        out = {"label": label, "command": command, "pubsub": pubsub, "masters": cluster.ports,
               "idle_cpu_per_second": idle, "loads": []}
        for rate, seconds, spread in CLUSTER_LOADS:
            only = cluster.ports[0] if spread == "one" else None
            channels = CLUSTER_CHANNELS // CLUSTER_MASTERS if only else CLUSTER_CHANNELS
            prefix, channel_ports = cluster_channels(cluster, f"{tag}{spread}{rate}", channels, only)
            bus_before = cluster.bus_stats()
            result = cluster_load(
                cluster, f"C1 {label} {rate}/s {spread}", port=port, prefix=prefix, path=Broker.path,
                connections=CLUSTER_STREAMS, channels=channels, events=int(rate * seconds), rate=rate, size=64,
                warmup_ms=2000, drain_ms=3000, publish="redis", format="flask", publish_port=cluster.ports[0],
                publish_command=command, channel_ports=",".join(map(str, channel_ports)), pids=broker.pid,
                redis_pids=",".join(map(str, cluster.pids)))
            bus = [{name: after[name] - first[name] for name in CLUSTER_BUS_STATS}
                   for first, after in zip(bus_before, cluster.bus_stats())]
            cpu = result["redis_cpu_window_seconds"]
            window = result["seconds"]
            events = max(result["published"] - result["publish_errors"], 1)
            result |= {
                "spread": spread, "prefix": prefix, "channel_ports": channel_ports,
                "channels_per_master": [channel_ports.count(p) for p in cluster.ports],
                "bus": bus,
                "bus_publish_received_per_event": sum(b["publish_received"] + b["publishshard_received"] for b in bus) / events,
                "redis_cpu_seconds": sum(cpu),
                "redis_cpu_us_per_event": sum(cpu) * 1e6 / events,
                # less each master's idle rate (cluster cron, bus pings) over the window
                "redis_cpu_us_per_event_net": max(sum(cpu) - sum(idle) * window, 0) * 1e6 / events,
                "redis_cpu_share": [c / sum(cpu) if sum(cpu) else 0 for c in cpu],
                "broker_cpu_us_per_event": result["server_cpu_percent"] / 100 * window * 1e6 / events,
            }
            out["loads"].append(result)
            log(f"  C1 {label} {rate}/s {spread}: {result['deliveries_per_second']:.0f} deliveries/s, lost {result['lost']}, "
                f"publish errors {result['publish_errors']}, bus publish messages per event "
                f"{result['bus_publish_received_per_event']:.2f}, Redis {result['redis_cpu_us_per_event']:.1f} µs/event "
                f"(net {result['redis_cpu_us_per_event_net']:.1f}), per master " + " / ".join(f"{c * 1000:.0f} ms" for c in cpu)
                + f", subscriptions (classic, sharded) per master {result['subscriptions_per_master']}")
        return out
    finally:
        if broker:
            stop(broker)
        cluster.stop()


def cluster_bench() -> dict:
    """C1: each configuration of CLUSTER_CONFIGS on a fresh cluster of its own, one after another; then
    C1b (cluster_history_bench)."""
    started = time.time()
    runs = [cluster_run(config, str(index)) for index, config in enumerate(CLUSTER_CONFIGS)]
    seconds = round(time.time() - started)
    log("C1b: POST /publish on the cluster, history per channel vs one shared slot")
    try:
        history = cluster_history_bench()
    except Exception as error:   # reported, not fatal: C1's own figures are kept
        log(f"C1b failed: {error}")
        history = {"error": str(error)}
    return {"runs": runs, "streams": CLUSTER_STREAMS, "channels": CLUSTER_CHANNELS, "masters": CLUSTER_MASTERS,
            "quick": QUICK, "generated": time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
            "seconds": seconds, "history": history}


def cluster_report(entry: dict) -> list[str]:
    streams, channels, masters = entry["streams"], entry["channels"], entry["masters"]
    third = channels // masters
    lines = ["## C1: Redis Cluster, classic vs sharded pub/sub\n",
             f"One publish load on a {masters}-master Redis Cluster (no replicas, loopback), classic `PUBLISH` against "
             f"sharded `SPUBLISH`. {streams:,} streams on one broker node (release build, 2 event loops, `--history 0`, "
             "`--redis-probe-interval 0`, `--redis-url redis+cluster://M1,M2,M3`, `?pubsub=classic` or the default "
             f"`both`); 64-byte events round robin over {channels} channels chosen so each master serves {third} "
             f"(\"all\", {streams // channels} streams per channel), or over {third} channels all served by M1 "
             f"(\"M1 only\", {streams // third} streams per channel; hash-tagged `{{…}}k`, one slot): slots by "
             "`CLUSTER KEYSLOT`, owners by `CLUSTER SLOTS`. The load tool publishes each event to its channel's master in both modes "
             "(pipelined, one connection per master), so the command is the only difference on the publishing side. "
             "Each configuration runs on a fresh cluster (`--cluster-node-timeout 2000`, no persistence) and a fresh "
             f"broker, its loads one after another on fresh channels ({entry['seconds']} s for the three).\n",
             "Redis CPU: utime + stime of each redis-server (/proc/PID/stat, 10 ms ticks) over the publish window "
             "(the first publish until every stream had every event), summed over the masters, per event published "
             f"(with lost 0, every event reached every stream); \"net\" less each master's idle rate (measured for {CLUSTER_IDLE_SECONDS} s "
             "on the formed cluster before the broker started; one tick there is a few tenths of a percent, so it is "
             "rough) over the window. Per master: M1 / M2 / M3 CPU in ms "
             "and share; \"sub\" marks the master holding the broker's classic `SUBSCRIBE` connection (any node). "
             "Bus messages: cluster-bus publish messages received per event, summed over the masters (`CLUSTER INFO` "
             "`cluster_stats_messages_publish_received` + `publishshard_received`).\n",
             "| configuration | load | events/s asked (reached) | deliveries/s | lost | bus messages per event | "
             "Redis CPU per event, all masters (net of idle) | per master: CPU ms (share) | broker CPU per event | "
             "p50 / p99 ms |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"]
    keyed: dict[tuple, dict[str, dict]] = {}
    for run in entry["runs"]:
        for result in run["loads"]:
            keyed.setdefault((result["rate"], result["spread"]), {})[run["label"]] = result
            cpu = result["redis_cpu_window_seconds"]
            marks = [" sub" if classic else "" for classic, _ in result.get("subscriptions_per_master", [])] or [""] * len(cpu)
            shares = " / ".join(f"{c * 1000:.0f} ({s * 100:.0f}%){mark}" for c, s, mark
                                in zip(cpu, result["redis_cpu_share"], marks))
            errors = f", {result['publish_errors']} publish errors" if result["publish_errors"] else ""
            load_name = "all" if result["spread"] == "all" else "M1 only"
            lines.append(f"| {run['label']} | {load_name} | {result['rate']:,.0f} ({result['achieved_rate']:,.0f}) | "
                         f"{result['deliveries_per_second']:,.0f} | {result['lost']}{errors} | "
                         f"{result['bus_publish_received_per_event']:.2f} | "
                         f"{result['redis_cpu_us_per_event']:.1f} µs ({result['redis_cpu_us_per_event_net']:.1f}) | "
                         f"{shares} | {result['broker_cpu_us_per_event']:.0f} µs | "
                         f"{result['p50_ms']} / {result['p99_ms']} |")
    lines.append("")
    for (rate, spread), results in sorted(keyed.items(), key=lambda item: (item[0][1] != "all", item[0][0])):
        sharded = results.get(CLUSTER_CONFIGS[2][0])
        for classic_label in (CLUSTER_CONFIGS[0][0], CLUSTER_CONFIGS[1][0]):
            classic = results.get(classic_label)
            if sharded and classic and sharded["redis_cpu_us_per_event"]:
                lines.append(f"- {rate:,.0f} events/s, {'all' if spread == 'all' else 'M1 only'}: Redis CPU per event, "
                             f"classic PUBLISH ({classic_label.split(', ')[1]}) / sharded SPUBLISH: "
                             f"{classic['redis_cpu_us_per_event'] / sharded['redis_cpu_us_per_event']:.2f}x (net "
                             f"{classic['redis_cpu_us_per_event_net'] / max(sharded['redis_cpu_us_per_event_net'], 1e-9):.2f}x)")
    idle = "; ".join(f"{run['label']}: " + " / ".join(f"{value * 100:.2f}%" for value in run["idle_cpu_per_second"])
                     for run in entry["runs"])
    lines.append(f"- Idle CPU of M1 / M2 / M3 before the load (% of a core): {idle}")
    history = entry.get("history")
    if history and history.get("error"):
        lines += ["", "### C1b: our POST /publish, history per channel vs one shared slot\n", f"Failed: {history['error']}"]
    elif history:
        lines += [""] + cluster_history_report(history, streams, channels, masters)
    return lines


# ---- C1b: our POST /publish on the cluster, history per channel vs one shared slot ----------------
# The broker's own publish path on the same cluster set-up: POST /publish with history on, into the
# channels C1 spreads over the masters (the broker routes each publish itself). `?history=per-channel`
# (the cluster default: each channel's history in its own slot, the script on that channel's master,
# which SPUBLISHes) against `?history=shared` (all history in slot {sse-broker}, one master runs every
# script and PUBLISHes classically, broadcast over the cluster bus). Rounds interleave the layouts, each
# run on a fresh cluster and a fresh broker.

# (label, the cluster URL's history=)
CLUSTER_HISTORY_CONFIGS = [
    ("history per channel (default)", "per-channel"),
    ("history shared (one slot)", "shared"),
]
# (events/s asked, seconds): one rate both layouts carry, then a higher one
CLUSTER_HISTORY_LOADS = [(1000, 5), (3000, 3)] if QUICK else [(1000, 10), (3000, 5)]
CLUSTER_HISTORY_ROUNDS = 1 if QUICK else 3
CLUSTER_HISTORY_CONNS = 4   # keep-alive POST /publish connections, as in P1
CLUSTER_HISTORY_SLOT_TAG = "{sse-broker}"   # the shared layout's hash tag (slot 10458)
# INFO commandstats entries read per master: the scripts, and what they call (Redis counts a script's
# own calls too: XADD once per event stored, PUBLISH / SPUBLISH once per event sent, HMGET once per call of
# the state script (a stream opening, a vouching read), XRANGE by replay pages)
CLUSTER_COMMAND_STATS = ("evalsha", "eval", "xadd", "publish", "spublish", "hmget", "xrange")


class RedisLink:
    """One plain RESP connection to a node for the samplers: no redis-cli process per sample on a
    2-core machine the load shares. Only commands answering one bulk string (INFO, CLIENT LIST)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")

    def bulk(self, *args: str) -> str:
        self.sock.sendall((f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)).encode())
        head = self.file.readline()
        if not head.startswith(b"$"):
            raise RuntimeError(f"{' '.join(args)}: {head.decode(errors='replace').strip()[:200]}")
        data = self.file.read(int(head[1:]) + 2)
        return data[:-2].decode(errors="replace")

    def command_stats(self) -> dict[str, dict[str, int]]:
        """calls and usec of CLUSTER_COMMAND_STATS so far (absent: never called)."""
        out = {name: {"calls": 0, "usec": 0, "failed_calls": 0} for name in CLUSTER_COMMAND_STATS}
        for line in self.bulk("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, _, fields = line[len("cmdstat_"):].partition(":")
                if name in out:
                    values = dict(item.split("=", 1) for item in fields.split(",") if "=" in item)
                    out[name] = {key: int(values.get(key, 0)) for key in ("calls", "usec", "failed_calls")}
        return out

    def subscriptions(self) -> tuple[int, int]:
        classic = sharded = 0
        for line in self.bulk("CLIENT", "LIST").splitlines():
            fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
            classic += int(fields.get("sub", 0))
            sharded += int(fields.get("ssub", 0))
        return classic, sharded

    def close(self) -> None:
        self.sock.close()


def stats_delta(after: list[dict], before: list[dict]) -> list[dict[str, dict[str, int]]]:
    return [{name: {key: a[name][key] - b[name][key] for key in ("calls", "usec", "failed_calls")} for name in CLUSTER_COMMAND_STATS}
            for a, b in zip(after, before)]


def cluster_history_load(links: list[RedisLink], label: str, **options) -> dict:
    """`cluster_load` for POST /publish: subscriptions per master sampled every 0.5 s, and each master's
    command stats before the load tool starts, at the last sample before the first XADD (the streams
    connected and warmed up, nothing published yet) and after it ends, so the script calls counted are
    the publish window's, apart from what opening the streams cost."""
    args = [str(BIN / "sse-load"), "--label", label, "--sources", "8"]
    for key, value in options.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    baseline = [link.command_stats() for link in links]
    stored = sum(master["xadd"]["calls"] for master in baseline)
    before_publishing = baseline
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    STARTED.append(process)
    seen = [(0, 0)] * len(links)
    try:
        deadline = time.time() + 900
        while process.poll() is None and time.time() < deadline:
            time.sleep(0.5)
            try:
                now = [link.command_stats() for link in links]
                if sum(master["xadd"]["calls"] for master in now) == stored:
                    before_publishing = now
                subs = [link.subscriptions() for link in links]
            except (OSError, RuntimeError, ValueError):
                continue
            seen = [(max(a[0], b[0]), max(a[1], b[1])) for a, b in zip(seen, subs)]
        stdout, stderr = process.communicate(timeout=30)
    finally:
        stop(process)
    if process.returncode != 0:
        raise RuntimeError(f"{label}: sse-load failed: {stderr.strip()[-400:]}")
    after = [link.command_stats() for link in links]
    result = json.loads(stdout)
    result["subscriptions_per_master"] = seen
    result["commands"] = stats_delta(after, before_publishing)
    result["commands_opening"] = stats_delta(before_publishing, baseline)
    return result


def cluster_history_run(config: tuple[str, str], tag: str) -> dict:
    """One layout on a fresh cluster and a fresh broker (history on): the masters' idle CPU, then each
    load of CLUSTER_HISTORY_LOADS by POST /publish on fresh channels spread evenly over the masters."""
    label, history = config
    cluster = RedisCluster()
    broker, links = None, []
    try:
        before = cluster.cpu_seconds()
        time.sleep(CLUSTER_IDLE_SECONDS)
        idle = [(after - first) / CLUSTER_IDLE_SECONDS for first, after in zip(before, cluster.cpu_seconds())]
        url = cluster.url("both") + ("" if history == "per-channel" else f"?history={history}")
        port = free_port()
        broker = start([str(BROKER), "--port", str(port), "--redis-url", url, "--history", "1000",
                        "--redis-probe-interval", "0", "--threads", "2", "--heartbeat", HEARTBEAT, "--log-level", "error",
                        "--client-buffer", str(4 << 20)])
        wait_port(port)
        links = [RedisLink(p) for p in cluster.ports]
        shared_master = cluster.owner(key_slot(CLUSTER_HISTORY_SLOT_TAG))
        out = {"label": label, "history": history, "url": url, "masters": cluster.ports,
               "shared_slot_master": cluster.ports.index(shared_master), "idle_cpu_per_second": idle, "loads": []}
        for rate, seconds in CLUSTER_HISTORY_LOADS:
            prefix, channel_ports = cluster_channels(cluster, f"h{tag}r{rate}", CLUSTER_CHANNELS)
            bus_before = cluster.bus_stats()
            result = cluster_history_load(
                links, f"C1b {label} {rate}/s", port=port, prefix=prefix, path=Broker.path,
                connections=CLUSTER_STREAMS, channels=CLUSTER_CHANNELS, events=int(rate * seconds), rate=rate, size=64,
                warmup_ms=2000, drain_ms=3000, publish="broker", publish_port=port, publish_conns=CLUSTER_HISTORY_CONNS,
                format="flask", pids=broker.pid, redis_pids=",".join(map(str, cluster.pids)))
            bus = [{name: after[name] - first[name] for name in CLUSTER_BUS_STATS}
                   for first, after in zip(bus_before, cluster.bus_stats())]
            cpu = result["redis_cpu_window_seconds"]
            window = result["seconds"]
            events = max(result["published"] - result["publish_errors"], 1)
            scripts = [m["evalsha"]["calls"] + m["eval"]["calls"] for m in result["commands"]]
            script_usec = [m["evalsha"]["usec"] + m["eval"]["usec"] for m in result["commands"]]
            result |= {
                "prefix": prefix, "channel_ports": channel_ports,
                "channels_per_master": [channel_ports.count(p) for p in cluster.ports],
                "bus": bus,
                "bus_publish_received_per_event": sum(b["publish_received"] + b["publishshard_received"] for b in bus) / events,
                "redis_cpu_seconds": sum(cpu),
                "redis_cpu_us_per_event": sum(cpu) * 1e6 / events,
                "redis_cpu_us_per_event_net": max(sum(cpu) - sum(idle) * window, 0) * 1e6 / events,
                "redis_cpu_share": [c / sum(cpu) if sum(cpu) else 0 for c in cpu],
                "broker_cpu_us_per_event": result["server_cpu_percent"] / 100 * window * 1e6 / events,
                "script_calls": scripts,
                "script_calls_per_event": sum(scripts) / events,
                "script_calls_share": [s / sum(scripts) if sum(scripts) else 0 for s in scripts],
                "script_usec_per_event": sum(script_usec) / events,
                "events_stored": [m["xadd"]["calls"] for m in result["commands"]],
                "events_sent": {"publish": [m["publish"]["calls"] for m in result["commands"]],
                                "spublish": [m["spublish"]["calls"] for m in result["commands"]]},
                "script_calls_opening": sum(m["evalsha"]["calls"] + m["eval"]["calls"] for m in result["commands_opening"]),
                "state_reads": [m["hmget"]["calls"] for m in result["commands"]],
                "replay_reads": [m["xrange"]["calls"] for m in result["commands"]],
                "script_failed_calls": sum(m["evalsha"]["failed_calls"] + m["eval"]["failed_calls"] for m in result["commands"]),
            }
            out["loads"].append(result)
            log(f"  C1b {label} {rate}/s: reached {result['achieved_rate']:.0f}/s, lost {result['lost']}, "
                f"publish errors {result['publish_errors']}, bus messages per event {result['bus_publish_received_per_event']:.2f}, "
                f"Redis {result['redis_cpu_us_per_event']:.1f} µs/event, per master "
                + " / ".join(f"{c * 1000:.0f} ms" for c in cpu)
                + f", script calls per master {scripts} ({result['script_calls_per_event']:.3f} per event), "
                f"XADD per master {result['events_stored']}, HMGET (state reads) {result['state_reads']}, XRANGE "
                f"{result['replay_reads']}, failed script calls {result['script_failed_calls']}, PUBLISH {result['events_sent']['publish']}, "
                f"SPUBLISH {result['events_sent']['spublish']}, broker {result['broker_cpu_us_per_event']:.0f} µs/event, "
                f"p50 / p99 {result['p50_ms']} / {result['p99_ms']} ms")
        return out
    finally:
        for link in links:
            link.close()
        if broker:
            stop(broker)
        cluster.stop()


def cluster_history_bench() -> dict:
    """C1b: CLUSTER_HISTORY_ROUNDS rounds, each layout once per round in CLUSTER_HISTORY_CONFIGS order
    (per-channel, shared, per-channel, shared, ...), each run on a fresh cluster."""
    started = time.time()
    runs = []
    for round_index in range(CLUSTER_HISTORY_ROUNDS):
        for index, config in enumerate(CLUSTER_HISTORY_CONFIGS):
            try:
                run = cluster_history_run(config, f"{round_index}{index}")
            except Exception as error:   # one failed run is reported; the other rounds still run
                log(f"  C1b {config[0]} round {round_index + 1} failed: {error}")
                run = {"label": config[0], "history": config[1], "error": str(error), "loads": []}
            run["round"] = round_index + 1
            runs.append(run)
    return {"runs": runs, "rounds": CLUSTER_HISTORY_ROUNDS, "connections": CLUSTER_HISTORY_CONNS,
            "generated": time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), "seconds": round(time.time() - started)}


def spread(values: list[float], digits: int = 0, unit: str = "") -> str:
    """`median (min-max)` of values, the unit after the median; one value alone."""
    if not values:
        return "-"
    def show(value: float) -> str:
        return f"{value:,.{digits}f}"
    if len(values) == 1:
        return show(values[0]) + unit
    return f"{show(statistics.median(values))}{unit} ({show(min(values))}-{show(max(values))})"


def cluster_history_report(entry: dict, streams: int, channels: int, masters: int) -> list[str]:
    rounds = entry["rounds"]
    hist = "/".join(sorted({f"M{run['shared_slot_master'] + 1}" for run in entry["runs"] if "shared_slot_master" in run})) or "one master"
    lines = ["### C1b: our POST /publish, history per channel vs one shared slot\n",
             f"The broker's own publish path on the same set-up: {streams:,} streams on one node (release build, 2 event "
             f"loops, `--history 1000`, `--redis-probe-interval 0`), the same {channels} channels spread over the "
             f"{masters} masters as C1's \"all\", 64-byte events by `POST /publish` over {entry['connections']} keep-alive "
             "connections (the load tool's `--publish broker`, as in P1; the broker routes each publish to the channel's "
             "master itself). Broker URL `redis+cluster://M1,M2,M3` (history per channel, the default: each channel's "
             "history in its own slot, the script on that channel's master, `SPUBLISH` there) against "
             f"`redis+cluster://M1,M2,M3?history=shared` (all history in slot 10458 of `{{sse-broker}}`, on {hist} here, "
             "\"hist\"; the script `PUBLISH`es classically). "
             f"{rounds} rounds, the layouts interleaved (per channel, shared, per channel, ...), each run on a fresh "
             f"cluster and broker, {entry['seconds']} s in all. Redis CPU, shares and bus messages as in C1. Script "
             "calls: `INFO commandstats` `cmdstat_evalsha` + `cmdstat_eval` per master over the publish window (from "
             "the last sample before the first `XADD`, streams connected, to the end): the publish script (one `XADD` per "
             "event stored; one call can carry several events of one channel, as the broker batches a channel's "
             "publishes while a call for it is in flight) and the state script (one `HMGET` per call: the counter "
             "read behind a stream's start and behind vouching for an id).\n"]
    results: dict[tuple[str, float], list[dict]] = {}
    for run in entry["runs"]:
        for result in run["loads"]:
            results.setdefault((run["label"], result["rate"]), []).append(result | {"_run": run})
    lines += ["Medians over the rounds, range in brackets.\n",
              "| layout | events/s asked | reached | lost (each run) | bus messages per event | Redis CPU per event, "
              "all masters (net of idle) | share of Redis CPU M1 / M2 / M3 | script calls per event | share of script "
              "calls M1 / M2 / M3 | of which state reads (HMGET) per event | broker CPU per event | p50 ms | p99 ms |",
              "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for (label, rate), rows in sorted(results.items(), key=lambda item: (item[0][1], item[0][0] != CLUSTER_HISTORY_CONFIGS[0][0])):
        count = len(rows[0]["redis_cpu_share"])
        shares = " / ".join(f"{statistics.median([r['redis_cpu_share'][k] for r in rows]) * 100:.0f}%" for k in range(count))
        calls = " / ".join(f"{statistics.median([r['script_calls_share'][k] for r in rows]) * 100:.0f}%" for k in range(count))
        lost = ", ".join(str(r["lost"]) + (f" ({r['publish_errors']} errors)" if r["publish_errors"] else "") for r in rows)
        lines.append(
            f"| {label} | {rate:,.0f} | {spread([r['achieved_rate'] for r in rows], unit='/s')} | {lost} | "
            f"{spread([r['bus_publish_received_per_event'] for r in rows], 2)} | "
            f"{spread([r['redis_cpu_us_per_event'] for r in rows], 1, ' µs')} "
            f"({spread([r['redis_cpu_us_per_event_net'] for r in rows], 1)}) | {shares} | "
            f"{spread([r['script_calls_per_event'] for r in rows], 3)} | {calls} | "
            f"{spread([sum(r.get('state_reads', [])) / max(r['published'] - r['publish_errors'], 1) for r in rows], 3)} | "
            f"{spread([r['broker_cpu_us_per_event'] for r in rows], 0, ' µs')} | "
            f"{spread([r['p50_ms'] for r in rows], 1)} | {spread([r['p99_ms'] for r in rows], 1)} |")
    lines += ["", "Every run:\n",
              "| round | layout | events/s asked (reached) | lost | reordered | bus messages per event | Redis CPU per event "
              "(net) | per master: CPU ms (share) | script calls per master (per event) | XADD per master | state reads (HMGET) per master | PUBLISH / "
              "SPUBLISH per master | broker CPU per event | p50 / p99 ms |",
              "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- | ---: | --- |"]
    for run in entry["runs"]:
        if run.get("error"):
            lines.append(f"| {run['round']} | {run['label']} | failed: {run['error'][:200]} | | | | | | | | | | | |")
        for result in run["loads"]:
            cpu = result["redis_cpu_window_seconds"]
            subs = result.get("subscriptions_per_master", [])
            marks = []
            for k in range(len(cpu)):
                mark = " sub" if k < len(subs) and subs[k][0] else ""
                if run["history"] == "shared" and k == run.get("shared_slot_master"):
                    mark += " hist"
                marks.append(mark)
            per_master = " / ".join(f"{c * 1000:.0f} ({s * 100:.0f}%){m}" for c, s, m in zip(cpu, result["redis_cpu_share"], marks))
            errors = f", {result['publish_errors']} publish errors" if result["publish_errors"] else ""
            sent = " / ".join(f"{p}/{s}" for p, s in zip(result["events_sent"]["publish"], result["events_sent"]["spublish"]))
            lines.append(
                f"| {run['round']} | {run['label']} | {result['rate']:,.0f} ({result['achieved_rate']:,.0f}) | "
                f"{result['lost']}{errors}{f', {dups} dup' if (dups := result['duplicates']) else ''} | {result['reordered']} | {result['bus_publish_received_per_event']:.2f} | "
                f"{result['redis_cpu_us_per_event']:.1f} µs ({result['redis_cpu_us_per_event_net']:.1f}) | {per_master} | "
                f"{' / '.join(map(str, result['script_calls']))} ({result['script_calls_per_event']:.3f}) | "
                f"{' / '.join(map(str, result['events_stored']))} | {' / '.join(map(str, result.get('state_reads', [])))} | {sent} | {result['broker_cpu_us_per_event']:.0f} µs | "
                f"{result['p50_ms']} / {result['p99_ms']} |")
    lines.append("")
    per_channel, shared = (config[0] for config in CLUSTER_HISTORY_CONFIGS)

    def busiest(result: dict) -> float:
        return max(result["redis_cpu_window_seconds"]) * 1e6 / max(result["published"] - result["publish_errors"], 1)

    for rate, _ in CLUSTER_HISTORY_LOADS:
        mine, theirs = results.get((per_channel, rate), []), results.get((shared, rate), [])
        # paired by round: runs of one round are minutes apart on the same machine
        pairs = {r["_run"]["round"]: r for r in mine}
        ratios = [t["redis_cpu_us_per_event"] / pairs[t["_run"]["round"]]["redis_cpu_us_per_event"]
                  for t in theirs if t["_run"]["round"] in pairs and pairs[t["_run"]["round"]]["redis_cpu_us_per_event"]]
        if ratios:
            lines.append(f"- {rate:,.0f} events/s: Redis CPU per event, shared / per channel, each round: "
                         + ", ".join(f"{value:.2f}x" for value in ratios) + f" (median {statistics.median(ratios):.2f}x); "
                         f"busiest master's share of Redis CPU: per channel {spread([max(r['redis_cpu_share']) * 100 for r in mine], 0, '%')}, "
                         f"shared {spread([max(r['redis_cpu_share']) * 100 for r in theirs], 0, '%')}; the busiest master's "
                         f"CPU per event: per channel {spread([busiest(r) for r in mine], 1, ' µs')}, shared "
                         f"{spread([busiest(r) for r in theirs], 1, ' µs')}")
    opening = "; ".join(f"{label}: " + ", ".join(str(r["script_calls_opening"]) for r in rows)
                        for (label, rate), rows in sorted(results.items()) if rate == CLUSTER_HISTORY_LOADS[0][0])
    idle = "; ".join(f"round {run['round']} {run['label']}: " + " / ".join(f"{v * 100:.2f}%" for v in run["idle_cpu_per_second"])
                     for run in entry["runs"] if run.get("idle_cpu_per_second"))
    lines += [f"- Script calls while the {streams:,} streams opened (before the first publish, not counted above), "
              f"{CLUSTER_HISTORY_LOADS[0][0]:,} events/s load of each run: {opening}.",
              f"- Idle CPU of M1 / M2 / M3 before the load (% of a core): {idle}"]
    return lines


# ---- report -------------------------------------------------------------------------------------

def ratio(ours: float, theirs: float, higher_is_better: bool = True) -> str:
    if not ours or not theirs:
        return "n/a"
    value = ours / theirs if higher_is_better else theirs / ours
    return f"{value:.2f}x"


def paired_verdict(ratios: list[float], name: str, passes, passing: str) -> tuple[str, bool]:
    """The median of per-round ratios, their range and in how many rounds the target held; the
    target counts as met when it holds for the median."""
    if not ratios:
        return f"{name}: no round where both were lossless", False
    middle = statistics.median(ratios)
    return (f"{name} per round: median {middle:.2f}x, {min(ratios):.2f}-{max(ratios):.2f}x, "
            f"{passing} in {sum(1 for r in ratios if passes(r))} of {len(ratios)}", passes(middle))


def latency_cell(entry: dict | None) -> str:
    if not entry:
        return "n/a"
    run = entry["median"]
    if run["lost"]:
        return f"lossy: {run['lost']} of {run['expected']} lost"
    return f"{run['p50_ms']} / {run['p99_ms']} / {run['p999_ms']}"


def add_time_split(add, entry: dict, names: list[str]) -> None:
    """Where the time goes at 100 events/s: per event, when its first and its last client got it,
    and the server's CPU per delivery, from each server's median run."""
    runs = {name: entry[name]["median"] for name in names if name in entry and not entry[name]["median"]["lost"]}
    if not runs or any("first_receipt_p50_ms" not in run for run in runs.values()):
        return
    add("### Where the time goes at 100 events/s\n")
    add("Per event, when its first and its last client got it (p50 / p99 over the events of the run above), and the "
        "server's CPU per delivery. The first receipt is the way to the server's first write: none for the ceiling, "
        "which stamps each event as it writes it; for the broker and Nchan, the publish through Redis and their own "
        "hand-offs. From there to the last receipt is the fan-out to every client, on the cores the reader shares.\n")
    add("| server | first client p50 / p99 (ms) | last client p50 / p99 (ms) | server CPU per delivery |")
    add("| --- | --- | --- | ---: |")
    shown = {"trivial": "ceiling, 1 thread", "trivial x2": "ceiling, 2 threads"}
    for name, run in runs.items():
        deliveries_per_second = run["rate"] * run["connections"]
        add(f"| {shown.get(name, name)} | {run['first_receipt_p50_ms']} / {run['first_receipt_p99_ms']} | "
            f"{run['last_receipt_p50_ms']} / {run['last_receipt_p99_ms']} | "
            f"{run['server_cpu_percent'] * 10_000 / deliveries_per_second:.1f} µs |")
    add("")


def report(results: dict, started: float) -> str:
    s1r, s2r, s3r, s4r = results["s1"], results["s2"], results["s3"], results["s4"]
    ours = s1r["sse-broker"]
    peers = [name for name in ("Nchan", "Flask-SSE") if name in s1r]
    latency = {int(rate): value for rate, value in s1r["latency"].items()}
    lines = []
    add = lines.append
    add("# Benchmarks\n")
    generated = results.setdefault("generated", time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))
    elapsed = results.setdefault("elapsed_seconds", round(time.time() - started))
    add(f"Generated by `make bench` on {generated} in {elapsed} s.\n")
    add(f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), Linux {platform.release()}, "
        "servers and load tool on the same cores, loopback only. Broker: release build, history off (as the peers), "
        "2 event loops unless a scenario says otherwise. Nchan: Debian nginx + libnginx-mod-nchan with `nchan_redis_url`, "
        "2 workers. Flask-SSE 1.0.0 under gunicorn with 2 gevent workers. Load tool: `Benchmarks/loadgen/sse-load` "
        "(C, epoll), source addresses spread over 127.0.0.1-8. Figures vary run to run on a shared 2-core machine: "
        "read ratios.\n")

    # The default configuration (history on, POST /publish) first, the raw path beside it.
    if results.get("p1"):
        for line in p1_report(results["p1"]):
            add(line)
        add("")

    # ---- summary against the targets
    add("## Targets\n")
    add("| target | measured | met |")
    add("| --- | --- | --- |")
    nchan_best = s1r.get("Nchan", {}).get("best")
    if ours["best"] and nchan_best:
        value = ours["best"]["deliveries_per_second"] / nchan_best["deliveries_per_second"]
        add(f"| S1 lossless deliveries/s at least 3x Nchan's | {ours['best']['deliveries_per_second'] / 1e6:.2f}M vs "
            f"{nchan_best['deliveries_per_second'] / 1e6:.2f}M: {value:.1f}x | {'yes' if value >= 3 else 'no'} |")
    paired = {int(rate): value for rate, value in s1r["paired"].items()}
    for rate, entry in sorted(latency.items()):
        mine, theirs = entry.get("sse-broker"), entry.get("Nchan")
        if not mine or not theirs or theirs["median"]["lost"]:
            continue
        summary, met = paired_verdict(paired[rate]["Nchan / broker"], "Nchan / broker", lambda r: r > 1, "ours lower")
        add(f"| S1 p99 below Nchan's at {rate} events/s | medians of {len(mine['p99s'])} rounds "
            f"{mine['median']['p99_ms']} ms vs {theirs['median']['p99_ms']} ms; {summary} | {'yes' if met else 'no'} |")
    trivial = latency[100]["trivial"]["median"]["p99_ms"]
    mine100 = latency[100]["sse-broker"]["median"]["p99_ms"]
    summary, met = paired_verdict(paired[100]["broker / ceiling"], "broker / ceiling", lambda r: r <= 1.5, "within 1.5x")
    add(f"| S1 p99 at 100 events/s within 1.5x the trivial server's | medians {mine100} ms vs {trivial} ms; "
        f"{summary} | {'yes' if met else 'no'} |")
    if "trivial x2" in latency[100]:
        trivial2 = latency[100]["trivial x2"]["median"]["p99_ms"]
        add(f"| (for reference) the same against the ceiling writing from 2 threads | {mine100} ms vs {trivial2} ms: "
            f"{mine100 / trivial2:.2f}x | |")
    s2mine = s2r["sse-broker"]
    add(f"| S2 under 5 KB per idle connection at {s2mine['connections']:,}, no loss in the burst | "
        f"{s2mine['server_rss_bytes_per_connection'] / 1024:.1f} KB, {s2mine['lost']} lost | "
        f"{'yes' if s2mine['server_rss_bytes_per_connection'] < 5 * 1024 and not s2mine['lost'] else 'no'} |")
    one, two = s3r.get("1 node x 1 loop"), s3r.get("2 nodes x 1 loop")
    if one and two:
        grows = two["deliveries_per_second"] > one["deliveries_per_second"] and not two["lost"]
        add(f"| S3 throughput grows with nodes until the cores run out, no loss | 1 → 2 nodes: "
            f"{two['deliveries_per_second'] / max(one['deliveries_per_second'], 1):.2f}x | {'yes' if grows else 'no'} |")
    if "sse-broker" in s4r:
        r = s4r["sse-broker"]
        add(f"| S4 {r['channels']:,} channels x 5 clients, no loss | {r['lost']} lost, p99 {r['p99_ms']} ms | "
            f"{'yes' if not r['lost'] else 'no'} |")
    s5r = (results.get("s5") or {}).get("results", {})
    if "resume" in s5r.get("sse-broker", {}):
        r, run = s5r["sse-broker"]["resume"], s5r["sse-broker"]
        met = r["resumed"] == r["closed_connections"] == run["connections"] and not run["lost"] and not run["duplicates"]
        add(f"| S5 a node of {run['connections']:,} streams killed: all resume elsewhere, none lost | {r['resumed']:,} "
            f"resumed in {r['storm_seconds']:.2f} s, {run['lost']} lost, {run['duplicates']} duplicates | "
            f"{'yes' if met else 'no'} |")
    add("")

    # ---- S1 latency
    add("## S1: fan-out, one channel, 64-byte events\n")
    add(f"### Latency at rates the peers sustain ({ours['runs'][0]['connections'] if ours['runs'] else ''} clients)\n")
    add("p50 / p99 / p99.9 in ms, the run with the median p99 of interleaved rounds (ceilings, broker and peers one "
        "after another in each round, so each sees the same machine weather). The ceiling writes each event from one "
        "thread while the single-threaded reader has the other core to itself; written from two threads, as the "
        "broker's two event loops and Nchan's two workers write, the writers and the reader share two cores.\n")
    names = ["trivial", "trivial x2", "sse-broker", *peers]
    headers = {"trivial": "ceiling (sse-trivial, 1 thread)", "trivial x2": "ceiling, 2 writer threads"}
    add("| events/s | rounds | " + " | ".join(headers.get(n, n) for n in names)
        + " | broker vs ceiling (p99) | broker vs Nchan (p99) |")
    add("| ---: | ---: | " + " | ".join("---" for _ in names) + " | ---: | ---: |")
    for rate, entry in sorted(latency.items()):
        mine = entry["sse-broker"]["median"]["p99_ms"]
        ceiling = entry["trivial"]["median"]["p99_ms"]
        nchan_entry = entry.get("Nchan")
        versus = ratio(mine, nchan_entry["median"]["p99_ms"], higher_is_better=False) if nchan_entry and not nchan_entry["median"]["lost"] else "n/a"
        add(f"| {rate} | {len(entry['sse-broker']['p99s'])} | " + " | ".join(latency_cell(entry.get(n)) for n in names)
            + f" | {mine / ceiling if ceiling else 0:.2f}x | {versus} (Nchan's / ours) |")
    add("\nEvery round's p99 (ms), sorted:\n")
    for rate, entry in sorted(latency.items()):
        add(f"- {rate}/s: " + "; ".join(f"{n} {entry[n]['p99s']}" for n in names if n in entry))
    add("\nPer-round ratios of p99, sorted (each from runs of the same round, so the machine's drift over the "
        "minutes of the scenario cancels out):\n")
    for rate, pairs in sorted(paired.items()):
        add(f"- {rate}/s: " + "; ".join(f"{name} {values}" for name, values in pairs.items() if values))
    add("")
    add_time_split(add, latency[100], names)

    # ---- S1 throughput
    add("### Highest lossless rate\n")
    add("| server | achieved (requested) events/s | deliveries/s | p99 at that rate (ms) | server CPU |")
    add("| --- | ---: | ---: | ---: | ---: |")
    for name in ["sse-broker", *peers]:
        best = s1r[name]["best"]
        if best:
            add(f"| {name} | {best.get('achieved_rate', 0):.0f} ({best['rate']:.0f}) | {best['deliveries_per_second']:.0f} | "
                f"{best['p99_ms']} | {best['server_cpu_percent']:.0f}% |")
        else:
            add(f"| {name} | none lossless | 0 | n/a | n/a |")
    add("")
    for name in peers:
        theirs = s1r[name]["best"]
        if theirs and ours["best"]:
            add(f"- vs {name}: lossless deliveries/s {ratio(ours['best']['deliveries_per_second'], theirs['deliveries_per_second'])}")
        elif ours["best"]:
            add(f"- vs {name}: {name} lost events already at 100 events/s; the broker sustained "
                f"{ours['best']['rate']:.0f} events/s lossless")
    add("- 'Lossless' means every event reached every client before the end of the drain window (3 s after the last "
        "publish); a server that falls behind by more than that counts as losing events. The achieved rate is what the "
        "publisher managed: Nchan's HTTP publisher (one request per event, answered one by one) falls short of high "
        "requested rates, so compare deliveries/s.\n")
    add("Every step, in order (the search stops at the first loss):\n")
    add("| run | achieved events/s | lost | duplicates | deliveries/s | p50 / p99 (ms) |")
    add("| --- | ---: | ---: | ---: | ---: | --- |")
    for name in ["sse-broker", *peers]:
        for run in s1r[name]["runs"]:
            add(f"| {run['label']} | {run.get('achieved_rate', 0):.0f} | {run['lost']} | {run['duplicates']} | "
                f"{run['deliveries_per_second']:.0f} | {run['p50_ms']} / {run['p99_ms']} |")
    add("")

    # ---- S2
    add(f"## S2: idle scale, {s2mine['connections']:,} connections, then 100 events at 100/s\n")
    add("| server | memory per idle connection | lost in the burst | p50 / p99 (ms) | connect time (s) |")
    add("| --- | ---: | ---: | --- | ---: |")
    for name, result in s2r.items():
        cell = f"{result['p50_ms']} / {result['p99_ms']}" if result["received"] else "nothing received"
        add(f"| {name} ({result['connections']}) | {result['server_rss_bytes_per_connection'] / 1024:.1f} KB | "
            f"{result['lost']} of {result['expected']} | {cell} | {result['connect_seconds']} |")
    add("\nMemory is the servers' resident set (all processes) after connecting, less before, per connection, on fresh "
        "processes. Nchan's includes the pages of its shared-memory zone it touches; Flask-SSE's run uses at most 5,000 "
        "connections (each holds its own Redis connection, and Redis accepts 10,000 clients by default). The burst is "
        "1.5 million deliveries in one second, more than two shared cores write at 100 events/s one event at a time, "
        "so its latency is queueing: what matters here is that nothing is lost.\n")

    # ---- S3
    add("## S3: nodes on one Redis, clients spread over them\n")
    add("| nodes | connections | events/s | deliveries/s | lost | p50 / p99 (ms) | servers' CPU |")
    add("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for label, result in s3r.items():
        add(f"| {label} | {result['connections']} | {result['rate']:.0f} | {result['deliveries_per_second']:.0f} | "
            f"{result['lost']} | {result['p50_ms']} / {result['p99_ms']} | {result['server_cpu_percent']:.0f}% |")
    single = [s3r[label] for label in ("1 node x 1 loop", "2 nodes x 1 loop", "3 nodes x 1 loop") if label in s3r]
    if len(single) == 3:
        first, second, third = (result["deliveries_per_second"] for result in single)
        add(f"\nThe rate is past what one event loop carries: one node of one loop falls behind and loses what arrives "
            f"after the drain window. Two nodes deliver {second / max(first, 1):.2f}x what one does, three "
            f"{third / max(second, 1):.2f}x what two do: the second node brings the second core, the third only "
            "what the load tool and Redis leave of the same two cores. One node with two loops uses both cores "
            "the same way.\n")

    # ---- S4
    if s4r:
        first = next(iter(s4r.values()))
        add(f"## S4: many channels, {first['channels']:,} channels x 5 clients, events spread over the channels\n")
        add(f"{first['connections']:,} streams are more than one process may hold here (20,000 files), so each server "
            f"runs as {first.get('processes', 1)} processes (broker: nodes with one loop each behind the same Redis; Nchan: "
            "nginx workers with `reuseport`) and the load tool reads with as many processes.\n")
        add("| server | connections | events/s | deliveries/s | lost | p50 / p99 / p99.9 (ms) | connect time (s) |")
        add("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
        for name, result in s4r.items():
            if "error" in result:
                add(f"| {name} | failed: {result['error'].splitlines()[0][:160]} | | | | | |")
                continue
            add(f"| {name} | {result['connections']} | {result['rate']:.0f} | {result['deliveries_per_second']:.0f} | "
                f"{result['lost']} | {result['p50_ms']} / {result['p99_ms']} / {result['p999_ms']} | {result['connect_seconds']} |")
        add("")
    if results.get("s5"):
        for line in s5_report(results["s5"]):
            add(line)
        add("")
    if results.get("tls"):
        for line in tls_report(results["tls"]):
            add(line)
        add("")
    if results.get("s1tls"):
        for line in s1tls_report(results["s1tls"]):
            add(line)
        add("")
    if results.get("cluster"):
        for line in cluster_report(results["cluster"]):
            add(line)
        add("")
    add("## Commands\n")
    add("```sh\nmake bench                 # everything above (BENCH_QUICK=1 for a short run)\n"
        "BENCH_ONLY=tls make bench  # only the TLS row, printed\n"
        "BENCH_ONLY=p1 make bench   # only the publish paths (P1), printed\n"
        "BENCH_ONLY=s5 make bench   # only the reconnect storm (S5), printed\n"
        "BENCH_ONLY=s1tls make bench   # only S1 over plaintext, TLS and HTTP/2 (S1-TLS), printed\n"
        "BENCH_ONLY=cluster make bench # only C1 (Redis Cluster, classic vs sharded pub/sub) and C1b (POST /publish, "
        "history per channel vs shared), printed\n"
        "python3 Benchmarks/bench.py --report   # rewrite this file from .build/bench/results.json\n"
        ".build/bench/sse-load --help   # the load tool (--processes for runs past one process's files)\n"
        "```\n")
    return "\n".join(lines)


def report_only() -> int:
    """Rewrites BENCHMARKS.md from the last run's results (`bench.py --report`)."""
    results = json.loads((ROOT / ".build" / "bench" / "results.json").read_text())
    text = report(results, time.time())
    (ROOT / "BENCHMARKS.md").write_text(text + "\n")
    print(text)
    return 0


def main() -> int:
    if "--report" in sys.argv:
        return report_only()
    parts = {"p1": (lambda: p1(Redis()), p1_report), "tls": (lambda: tls_row(Redis(tls=True)), tls_report),
             "s5": (lambda: s5(Redis()), s5_report), "s1tls": (lambda: s1tls(Redis()), s1tls_report),
             "cluster": (cluster_bench, cluster_report)}
    if ONLY in parts:
        scenario, render = parts[ONLY]
        try:
            entry = scenario()
        finally:
            for process in STARTED:
                stop(process)
        (ROOT / ".build" / "bench" / f"results-{ONLY}.json").write_text(json.dumps(entry, indent=1, default=str))
        print("\n".join(render(entry)))
        return 0
    started = time.time()
    redis = Redis(tls=True)
    results = {}
    peers = []
    try:
        log("P1: publish paths")
        results["p1"] = p1(redis)
        log("S1: fan-out")
        servers = []
        broker = Broker(redis)
        servers.append(broker)
        for factory in (nchan, flask_sse):
            try:
                peers.append(factory(redis))
            except Exception as error:  # a peer that cannot start is reported, not fatal
                log(f"peer failed to start: {error}")
        results["s1"] = s1(redis, servers + peers)
        log("S2: idle scale")
        # Fresh processes: after S1 a server's heap holds freed memory that new connections would
        # reuse, which would understate what a connection costs.
        idle = 3000 if QUICK else 15000
        broker.stop()
        fresh = Broker(redis)
        results["s2"] = {"sse-broker": s2(redis, fresh, idle)}
        fresh.stop()
        for index, peer in enumerate(list(peers)):
            peer.stop()
            peers[index] = (nchan if peer.name == "Nchan" else flask_sse)(redis)
            try:
                # Flask-SSE holds a Redis connection per client: Redis's default limit is 10,000 clients.
                results["s2"][peer.name] = s2(redis, peers[index], idle if peer.name == "Nchan" else min(idle, 5000))
            except RuntimeError as error:
                log(f"  {peer.name} S2 failed: {error}")
        for peer in peers:
            peer.stop()
        peers = []
        log("S4: many channels")
        results["s4"] = s4(redis)
        log("S3: nodes")
        results["s3"] = s3(redis)
        log("S5: reconnect storm")
        results["s5"] = s5(redis)
        log("TLS: S1 over a TLS Redis link")
        results["tls"] = tls_row(redis)
        log("S1-TLS: S1 over plaintext HTTP/1.1, TLS and HTTP/2")
        results["s1tls"] = s1tls(redis)
        log("C1: Redis Cluster, classic PUBLISH vs sharded SPUBLISH (then C1b: POST /publish, history per channel vs shared)")
        try:
            results["cluster"] = cluster_bench()
        except Exception as error:   # reported, not fatal: the other scenarios' results still get written
            log(f"C1 failed: {error}")
    finally:
        for peer in peers:
            peer.stop()
        for process in STARTED:
            stop(process)
    text = report(results, started)
    (ROOT / "BENCHMARKS.md").write_text(text + "\n")
    (ROOT / ".build" / "bench" / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
