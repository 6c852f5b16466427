#!/usr/bin/env python3
"""`make bench`: the scenarios of the performance issue, run against sse-broker, Nchan (Redis-backed)
and Flask-SSE 1.0.0 (gunicorn + gevent) with the same load tool (loadgen/sse-load.c), plus the
tool's own ceiling (loadgen/sse-trivial.c). Prints a table and writes BENCHMARKS.md.

Everything runs on loopback; every process started here is stopped by pid. Figures on a 2-core
machine shared by servers and load tool: read the ratios, not the absolute numbers.
"""
import atexit
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".build" / "bench"
BROKER = ROOT / ".build" / "release" / "sse-broker"
HEARTBEAT = os.environ.get("BENCH_HEARTBEAT", "15")
QUICK = os.environ.get("BENCH_QUICK") == "1"
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
        args += ["--" + key.replace("_", "-"), str(value)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"{label}: sse-load failed: {result.stderr.strip()[-400:]}")
    return json.loads(result.stdout)


# ---- servers under test -------------------------------------------------------------------

class Redis:
    def __init__(self) -> None:
        self.port = free_port()
        self.process = start(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(WORK)])
        wait_port(self.port)

    def flush(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "FLUSHALL"], capture_output=True, check=True)


class Broker:
    """One or more sse-broker nodes."""
    name = "sse-broker"
    path = "/stream?channel=%s%d"
    publish = {"publish": "redis", "format": "flask"}

    def __init__(self, redis: Redis, nodes: int = 1) -> None:
        self.redis = redis
        self.ports = [free_port() for _ in range(nodes)]
        threads = "1" if nodes > 1 else "2"
        self.processes = [
            start([str(BROKER), "--port", str(port), "--redis-url", f"redis://127.0.0.1:{redis.port}/0", "--history", "0",
                   "--heartbeat", HEARTBEAT, "--log-level", "error", "--threads", threads, "--client-buffer", str(4 << 20)])
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

    def __init__(self, script: str, name: str, redis: Redis, path: str, publish: dict) -> None:
        self.name, self.path, self.publish, self.redis = name, path, publish, redis
        self.port = free_port()
        self.dir = WORK / script
        self.dir.mkdir(exist_ok=True)
        self.env = dict(os.environ, PEER_DIR=str(self.dir), PORT=str(self.port), REDIS_PORT=str(redis.port), WORKERS="2")
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


def nchan(redis: Redis) -> Peer:
    return Peer("nchan", "Nchan", redis, "/sub/%s%d", {"publish": "http"})


def flask_sse(redis: Redis) -> Peer:
    # Flask-SSE subscribes only once its response starts: wait until Redis shows every subscriber.
    return Peer("flask_sse", "Flask-SSE", redis, "/stream?channel=%s%d",
                {"publish": "redis", "format": "flask", "wait_numsub_per_channel": True})


# ---- scenarios --------------------------------------------------------------------------------

def trivial_run(connections: int, events: int, rate: float, size: int = 64) -> dict:
    port = free_port()
    server = start([str(BIN / "sse-trivial"), "--port", str(port), "--expect", str(connections), "--events", str(events),
                    "--rate", str(rate), "--size", str(size), "--warmup-ms", "1500"])
    wait_port(port)
    try:
        return load("trivial", port=port, path="/s%s%d", connections=connections, events=events, rate=rate, size=size,
                    publish="none", warmup_ms=300, drain_ms=2000, pids=str(server.pid))
    finally:
        stop(server)


def max_lossless(server, connections: int, rates: list[float], seconds: float) -> tuple[dict | None, list[dict]]:
    """The highest rate in `rates` with zero loss, trying in order and stopping at the first loss."""
    best, runs = None, []
    for rate in rates:
        result = load(f"{server.name} {rate:.0f}/s", port=getattr(server, "port", None) or server.ports[0],
                      connections=connections, events=int(rate * seconds), rate=rate, size=64, warmup_ms=1000,
                      drain_ms=3000, **server.options())
        runs.append(result)
        log(f"  {server.name} S1 {rate:.0f}/s: lost {result['lost']}, dup {result['duplicates']}, "
            f"{result['deliveries_per_second']:.0f} deliveries/s, p99 {result['p99_ms']} ms")
        if result["lost"] or result["duplicates"] or result["closed_connections"]:
            break
        best = result
        if result.get("achieved_rate", rate) < 0.9 * rate:
            log(f"  {server.name}: publishing reached only {result['achieved_rate']:.0f}/s; stopping the search")
            break
    return best, runs


def median_run(runs: list[dict]) -> dict:
    """The run with the median p99: one sample on a shared 2-core machine is noise."""
    return sorted(runs, key=lambda run: run["p99_ms"])[len(runs) // 2]


def s1(redis: Redis, servers: list) -> dict:
    connections = 300 if QUICK else 1000
    rates = [100, 1000, 3000, 10000] if QUICK else [100, 1000, 2000, 5000, 10000, 20000, 40000]
    repeats = 1 if QUICK else 3
    out = {"trivial_100": median_run([trivial_run(connections, 500, 100) for _ in range(repeats)])}
    log(f"  trivial 100/s: p99 {out['trivial_100']['p99_ms']} ms (median of {repeats})")
    for server in servers:
        redis.flush()
        out[server.name] = {}
        at100 = median_run([
            load(f"{server.name} 100/s", port=getattr(server, "port", None) or server.ports[0], connections=connections,
                 events=500, rate=100, size=64, warmup_ms=1000, drain_ms=3000, **server.options())
            for _ in range(repeats if server.name == "sse-broker" else 1)
        ])
        out[server.name]["at100"] = at100
        log(f"  {server.name} 100/s: p99 {at100['p99_ms']} ms, lost {at100['lost']}")
        best, runs = max_lossless(server, connections, rates, 2.0 if QUICK else 3.0)
        out[server.name]["best"] = best
        out[server.name]["runs"] = runs
    return out


def s2(redis: Redis, server, connections: int) -> dict:
    redis.flush()
    result = load(f"{server.name} idle", port=getattr(server, "port", None) or server.ports[0], connections=connections,
                  events=100, rate=100, size=64, warmup_ms=3000, drain_ms=5000, **server.options())
    log(f"  {server.name} S2: {result['server_rss_bytes_per_connection']:.0f} B/conn, lost {result['lost']}, p99 {result['p99_ms']} ms")
    return result


def s3(redis: Redis) -> dict:
    connections = 600 if QUICK else 1500
    rate = 2000 if QUICK else 5000
    out = {}
    for nodes in (1, 3):
        broker = Broker(redis, nodes=nodes)
        try:
            result = load(f"sse-broker x{nodes}", ports=broker.ports, connections=connections, events=int(rate * 3), rate=rate,
                          size=64, warmup_ms=1500, drain_ms=4000, **broker.options())
        finally:
            broker.stop()
        log(f"  {nodes} node(s): {result['deliveries_per_second']:.0f} deliveries/s, lost {result['lost']}, p99 {result['p99_ms']} ms")
        out[nodes] = result
    return out


def s4(redis: Redis, servers: list) -> dict:
    # 10,000 channels x 5 clients needs 50,000 sockets; one process here may hold 20,000 files,
    # so the scenario keeps its shape (5 clients a channel, events spread over all channels)
    # at the largest size that fits: 3,000 channels x 5 = 15,000 connections.
    channels = 600 if QUICK else 3000
    out = {}
    for server in servers:
        redis.flush()
        result = load(f"{server.name} channels", port=getattr(server, "port", None) or server.ports[0],
                      connections=channels * 5, channels=channels, events=channels * 4, rate=2000, size=64,
                      warmup_ms=3000, drain_ms=5000, **server.options())
        log(f"  {server.name} S4: {result['deliveries_per_second']:.0f} deliveries/s, lost {result['lost']}, p99 {result['p99_ms']} ms")
        out[server.name] = result
    return out


# ---- report -------------------------------------------------------------------------------------

def ratio(ours: float, theirs: float, higher_is_better: bool = True) -> str:
    if not ours or not theirs:
        return "n/a"
    value = ours / theirs if higher_is_better else theirs / ours
    return f"{value:.2f}x"


def report(results: dict, started: float) -> str:
    s1r = results["s1"]
    ours = s1r["sse-broker"]
    peers = [name for name in ("Nchan", "Flask-SSE") if name in s1r]
    lines = []
    add = lines.append
    add("# Benchmarks\n")
    add(f"Generated by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in {time.time() - started:.0f} s.\n")
    add(f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), Linux {platform.release()}, "
        f"servers and load tool on the same cores, loopback only. Broker: release build, history off (as the peers), "
        f"2 event loops. Nchan: Debian nginx + libnginx-mod-nchan with `nchan_redis_url`, 2 workers. "
        f"Flask-SSE 1.0.0 under gunicorn with 2 gevent workers. Load tool: `Benchmarks/loadgen/sse-load` (C, epoll), "
        f"source addresses spread over 127.0.0.1-8. Figures vary run to run on a shared 2-core machine: read ratios.\n")
    add("## S1: fan-out, one channel, 64-byte events\n")
    add("| server | highest lossless rate, achieved (requested) events/s | deliveries/s | p99 at that rate (ms) | p50 / p99 / p99.9 at 100 events/s (ms) | server CPU at best rate |")
    add("| --- | ---: | ---: | ---: | --- | ---: |")
    triv = s1r["trivial_100"]
    add(f"| ceiling (sse-trivial) | n/a | n/a | n/a | {triv['p50_ms']} / {triv['p99_ms']} / {triv['p999_ms']} | n/a |")
    for name in ["sse-broker", *peers]:
        entry = s1r[name]
        best, at100 = entry["best"], entry["at100"]
        latency = (f"{at100['p50_ms']} / {at100['p99_ms']} / {at100['p999_ms']}" if not at100["lost"]
                   else f"lossy: {at100['lost']} of {at100['expected']} lost")
        achieved = f"{best.get('achieved_rate', 0):.0f} ({best['rate']:.0f})" if best else "none lossless"
        add(f"| {name} | {achieved} | {best['deliveries_per_second'] if best else 0:.0f} | "
            f"{best['p99_ms'] if best else 'n/a'} | {latency} | {best['server_cpu_percent'] if best else 0:.0f}% |")
    add("")
    for name in peers:
        theirs = s1r[name]
        if not theirs["best"]:
            add(f"- vs {name}: {name} lost events already at {theirs['runs'][0]['rate']:.0f} events/s to {ours['at100']['connections']} clients; "
                f"the broker sustained {ours['best']['rate']:.0f} events/s lossless" if ours["best"] else "")
            continue
        ours_p99, their_p99 = ours["at100"]["p99_ms"], theirs["at100"]["p99_ms"]
        add(f"- vs {name}: lossless deliveries/s {ratio(ours['best']['deliveries_per_second'] if ours['best'] else 0, theirs['best']['deliveries_per_second'])}; "
            f"p99 at 100 events/s {ours_p99} ms vs {their_p99} ms ({'lower' if ours_p99 < their_p99 else 'higher'} by "
            f"{abs(their_p99 - ours_p99):.2f} ms)")
    add(f"- p99 at 100 events/s vs the ceiling: {ours['at100']['p99_ms']} ms vs {triv['p99_ms']} ms "
        f"({ours['at100']['p99_ms'] / triv['p99_ms'] if triv['p99_ms'] else 0:.2f}x the trivial server's; median of three runs each)")
    add("- 'Lossless' means every event reached every client before the end of the drain window (3 s after the last "
        "publish); a server that falls behind by more than that counts as losing events. The achieved rate is what the "
        "publisher managed: Nchan's HTTP publisher (one request per event, answered one by one) falls short of high "
        "requested rates, so compare deliveries/s.\n")
    add("Every S1 step, in order (the search stops at the first loss):\n")
    add("| run | achieved events/s | lost | duplicates | deliveries/s | p50 / p99 (ms) |")
    add("| --- | ---: | ---: | ---: | ---: | --- |")
    for name in ["sse-broker", *peers]:
        for run in s1r[name]["runs"]:
            add(f"| {run['label']} | {run.get('achieved_rate', 0):.0f} | {run['lost']} | {run['duplicates']} | "
                f"{run['deliveries_per_second']:.0f} | {run['p50_ms']} / {run['p99_ms']} |")
    add("")
    s2r = results["s2"]
    add(f"## S2: idle scale, {s2r['sse-broker']['connections']} connections, then 100 events at 100/s\n")
    add("| server | memory per idle connection | lost in the burst | p50 / p99 (ms) | connect time (s) |")
    add("| --- | ---: | ---: | --- | ---: |")
    for name, result in s2r.items():
        latency = f"{result['p50_ms']} / {result['p99_ms']}" if result["received"] else "nothing received"
        add(f"| {name} ({result['connections']}) | {result['server_rss_bytes_per_connection'] / 1024:.1f} KB | {result['lost']} of {result['expected']} | "
            f"{latency} | {result['connect_seconds']} |")
    add("\nMemory is the servers' resident set (all processes) after connecting, less before, per connection. Nchan's includes "
        "the pages of its shared-memory zone it touches; Flask-SSE's run uses at most 5,000 connections (each holds its own "
        "Redis connection, and Redis accepts 10,000 clients by default).")
    ours_memory = s2r["sse-broker"]["server_rss_bytes_per_connection"] / 1024
    for name, result in s2r.items():
        if name != "sse-broker":
            add(f"\n- memory per idle connection: sse-broker {ours_memory:.1f} KB, {name} "
                f"{result['server_rss_bytes_per_connection'] / 1024:.1f} KB")
    add("")
    s3r = results["s3"]
    add("## S3: nodes on one Redis, clients spread over them\n")
    add("| nodes | connections | events/s | deliveries/s | lost | p50 / p99 (ms) | servers' CPU |")
    add("| ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for nodes, result in s3r.items():
        add(f"| {nodes} | {result['connections']} | {result['rate']:.0f} | {result['deliveries_per_second']:.0f} | {result['lost']} | {result['p50_ms']} / {result['p99_ms']} | {result['server_cpu_percent']:.0f}% |")
    one, three = s3r.get(1), s3r.get(3)
    if one and three:
        add(f"\nThree nodes deliver {three['deliveries_per_second'] / max(one['deliveries_per_second'], 1):.2f}x what one node does "
            f"({'no loss' if not three['lost'] else str(three['lost']) + ' lost'} with three, "
            f"{'no loss' if not one['lost'] else str(one['lost']) + ' lost'} with one). Each node runs one event loop here; "
            "the machine's 2 cores, shared with the load tool and Redis, are the limit.\n")
    s4r = results["s4"]
    first = next(iter(s4r.values()))
    add(f"## S4: many channels, {first['channels']} channels x 5 clients, events spread over the channels\n")
    add("10,000 channels x 5 clients would need 50,000 sockets, past this machine's 20,000-file limit per process; the "
        "scenario keeps its shape at the largest size that fits.\n")
    add("| server | connections | events/s | deliveries/s | lost | p50 / p99 (ms) |")
    add("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, result in s4r.items():
        add(f"| {name} | {result['connections']} | {result['rate']:.0f} | {result['deliveries_per_second']:.0f} | {result['lost']} | {result['p50_ms']} / {result['p99_ms']} |")
    add("\n## Commands\n")
    add("```sh\nmake bench                 # everything above (BENCH_QUICK=1 for a short run)\n"
        "Benchmarks/loadgen/sse-load --help   # the load tool; sse-trivial is its ceiling\n```\n")
    return "\n".join(lines)


def report_only() -> int:
    """Rewrites BENCHMARKS.md from the last run's results (`bench.py --report`)."""
    results = json.loads((ROOT / ".build" / "bench" / "results.json").read_text())
    results["s3"] = {int(nodes): value for nodes, value in results["s3"].items()}
    text = report(results, time.time())
    (ROOT / "BENCHMARKS.md").write_text(text + "\n")
    print(text)
    return 0


def main() -> int:
    if "--report" in sys.argv:
        return report_only()
    started = time.time()
    redis = Redis()
    results = {}
    peers = []
    try:
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
        broker = Broker(redis)
        for index, peer in enumerate(list(peers)):
            peer.stop()
            peers[index] = (nchan if peer.name == "Nchan" else flask_sse)(redis)
            try:
                # Flask-SSE holds a Redis connection per client: Redis's default limit is 10,000 clients.
                results["s2"][peer.name] = s2(redis, peers[index], idle if peer.name == "Nchan" else min(idle, 5000))
            except RuntimeError as error:
                log(f"  {peer.name} S2 failed: {error}")
        log("S4: many channels")
        results["s4"] = s4(redis, [broker] + [peer for peer in peers if peer.name == "Nchan"])
        broker.stop()
        for peer in peers:
            peer.stop()
        peers = []
        log("S3: nodes")
        results["s3"] = s3(redis)
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
