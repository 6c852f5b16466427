#!/usr/bin/env python3
"""Fault soak for sse-broker: real nodes on a real Redis with AOF, EventSource-like clients,
publishing throughout, and faults injected in turn. Python 3 standard library only.

Verdict: every client gets every acknowledged event of its channels (published after its
subscription was seen to work: its first event on that channel) exactly once, in order, and no
`history-gap` notice (Redis runs with `appendfsync always`, so it never loses data).
Exit status 0 when that holds, 1 when it does not, 2 when the harness itself could not run.

Everything runs on 127.0.0.1 in a temp dir of its own; only processes this script started are
signalled, by pid. Usage: python3 Tests/Soak/soak.py --seconds 300 [--broker PATH] [--help]
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import time

START = time.monotonic()


def now():
    return time.monotonic() - START


def log(message):
    print(f"[{now():7.2f}] {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_id(text):
    """A history position `EPOCH-SEQUENCE` as a tuple for ordering, or None for any other id."""
    parts = text.split("-")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return (int(parts[0]), int(parts[1]))


class HarnessError(Exception):
    pass


async def within(seconds, awaitable):
    """`awaitable` with a deadline (asyncio.TimeoutError past it). Uses `asyncio.timeout`, which
    runs the awaitable in the calling task: Python 3.11's `wait_for` wraps it in a task of its own,
    and a stream task cancelled at teardown was once seen waiting on that inner task for good."""
    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


# ---------------------------------------------------------------- processes


class Proc:
    """One child process (redis-server or a broker node), restartable on the same port."""

    def __init__(self, name, argv, log_path):
        self.name, self.argv, self.log_path = name, argv, log_path
        self.proc = None
        self.stopped = False  # SIGSTOPped by us

    async def start(self):
        out = open(self.log_path, "ab")
        out.write(f"\n==== {self.name} started at t={now():.2f} ====\n".encode())
        out.flush()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        out.close()
        self.stopped = False

    @property
    def running(self):
        return self.proc is not None and self.proc.returncode is None

    def signal(self, sig):
        if self.running:
            os.kill(self.proc.pid, sig)

    async def wait_exit(self, timeout):
        if self.proc is None:
            return None
        try:
            return await within(timeout, self.proc.wait())
        except asyncio.TimeoutError:
            self.signal(signal.SIGKILL)
            await self.proc.wait()
            raise HarnessError(f"{self.name} (pid {self.proc.pid}) did not exit within {timeout} s; killed")

    async def kill(self):
        if self.running:
            if self.stopped:
                self.signal(signal.SIGCONT)
            self.signal(signal.SIGKILL)
            await self.proc.wait()


async def http_request(port, method, target, body=b"", headers=(), timeout=5.0):
    """One request over a fresh connection (`Connection: close`); returns (status, body bytes)."""

    async def run():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            head = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
            head += list(headers)
            if body or method == "POST":
                head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
            data = await reader.read(-1)
        finally:
            writer.close()
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            raise ConnectionError("no response head")
        lines = data[:head_end].split(b"\r\n")
        status = int(lines[0].split()[1])
        rest = data[head_end + 4:]
        if any(l.lower().startswith(b"transfer-encoding:") and b"chunked" in l.lower() for l in lines[1:]):
            rest = dechunk_all(rest)
        return status, rest

    return await within(timeout, run())


def dechunk_all(data):
    out = bytearray()
    while True:
        line_end = data.find(b"\r\n")
        if line_end < 0:
            return bytes(out)
        size = int(data[:line_end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[line_end + 2:line_end + 2 + size]
        data = data[line_end + 4 + size:]


class Cluster:
    """Redis with AOF and N broker nodes, each on its own fixed loopback port."""

    def __init__(self, args, directory):
        self.args, self.dir = args, directory
        self.redis_port = free_port()
        redis_dir = os.path.join(directory, "redis")
        os.makedirs(redis_dir)
        self.redis = Proc("redis", [
            "redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", redis_dir,
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
            "--loglevel", "notice", "--enable-debug-command", "local"], os.path.join(directory, "redis.log"))
        self.nodes = []
        for i in range(args.nodes):
            port = free_port()
            argv = [args.broker, "--host", "127.0.0.1", "--port", str(port),
                    "--redis-url", f"redis://127.0.0.1:{self.redis_port}/0",
                    "--heartbeat", str(args.heartbeat), "--retry-ms", str(args.retry_ms),
                    "--drain-timeout", str(args.drain_timeout), "--log-level", args.log_level,
                    "--node-name", f"node{i}"] + args.broker_arg
            node = Proc(f"node{i}", argv, os.path.join(directory, f"node{i}.log"))
            node.port = port
            node.down = True  # killed/terminated by us and not yet listening again
            node.streams = 0  # clients' streams open or opening to it
            self.nodes.append(node)

    def all_procs(self):
        return [self.redis] + self.nodes

    async def redis_cli(self, *words, timeout=5.0):
        proc = await asyncio.create_subprocess_exec(
            "redis-cli", "-p", str(self.redis_port), *words,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await within(timeout, proc.communicate())
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise HarnessError(f"redis-cli {' '.join(words)} timed out")
        return out.decode(errors="replace").strip()

    async def start_redis(self):
        await self.redis.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not self.redis.running:
                raise HarnessError(f"redis-server exited; see {self.redis.log_path}")
            try:
                if await self.redis_cli("PING", timeout=2) == "PONG":
                    return
            except HarnessError:
                pass
            await asyncio.sleep(0.05)
        raise HarnessError("redis-server did not answer PING within 30 s")

    async def add_ballast(self, keys):
        """Keys of no interest to the broker, baked into the AOF's base file, so every restart spends
        a while answering -LOADING (about 0.85 s for 500,000 keys here)."""
        if keys <= 0:
            return
        await self.redis_cli("DEBUG", "POPULATE", str(keys), "soak:ballast", "64", timeout=60)
        await self.redis_cli("BGREWRITEAOF")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = await self.redis_cli("INFO", "persistence")
            if "aof_rewrite_in_progress:0" in info and "aof_rewrite_scheduled:0" in info:
                return
            await asyncio.sleep(0.1)
        raise HarnessError("BGREWRITEAOF of the ballast did not finish within 60 s")

    async def start_node(self, node):
        await node.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not node.running:
                raise HarnessError(f"{node.name} exited with {node.proc.returncode}; see {node.log_path}")
            try:
                status, _ = await http_request(node.port, "GET", "/healthz", timeout=1)
                if status == 200:
                    node.down = False
                    return
            except (OSError, asyncio.TimeoutError, ValueError, IndexError):
                pass
            await asyncio.sleep(0.05)
        raise HarnessError(f"{node.name} did not answer /healthz within 30 s")

    async def wait_ready(self, timeout=30):
        """Every node answers /readyz 200 (its Redis subscription is up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = 0
            for node in self.nodes:
                try:
                    status, _ = await http_request(node.port, "GET", "/readyz", timeout=1)
                    ok += status == 200
                except (OSError, asyncio.TimeoutError, ValueError, IndexError):
                    pass
            if ok == len(self.nodes):
                return True
            await asyncio.sleep(0.2)
        return False

    def live_nodes(self):
        """Nodes a load balancer would send a new connection to: running, listening, not stopped."""
        return [n for n in self.nodes if n.running and not n.down and not n.stopped]

    async def shutdown(self):
        for proc in self.all_procs():
            try:
                await proc.kill()
            except ProcessLookupError:
                pass


# ---------------------------------------------------------------- clients


class SSEParser:
    """The WHATWG event-stream interpretation: lines split on CR, LF or CRLF; fields data, event,
    id (ignored when it contains NUL), retry (ASCII digits only); comments ignored; an event is
    dispatched on a blank line, and not at all when its data buffer is empty."""

    def __init__(self, on_event, on_retry):
        self.on_event, self.on_retry = on_event, on_retry
        self.buffer = b""
        self.first = True
        self.pending_cr = False
        self.last_event_id = ""  # owned by the EventSource; the client seeds and reads it
        self.reset()

    def reset(self):
        self.data, self.type, self.id_buffer = [], "", self.last_event_id

    def new_stream(self, last_event_id):
        self.buffer, self.first, self.pending_cr = b"", True, False
        self.last_event_id = last_event_id
        self.reset()

    def feed(self, chunk):
        if self.pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self.pending_cr = False
        data = self.buffer + chunk
        start = 0
        i = 0
        n = len(data)
        while i < n:
            c = data[i]
            if c == 0x0A or c == 0x0D:
                self.line(data[start:i])
                if c == 0x0D:
                    if i + 1 < n:
                        if data[i + 1] == 0x0A:
                            i += 1
                    else:
                        self.pending_cr = True
                i += 1
                start = i
            else:
                i += 1
        self.buffer = data[start:]

    def line(self, raw):
        if self.first:
            self.first = False
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
        text = raw.decode("utf-8", errors="replace")
        if text == "":
            self.dispatch()
            return
        if text.startswith(":"):
            return
        field, sep, value = text.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self.data.append(value)
        elif field == "event":
            self.type = value
        elif field == "id":
            if "\0" not in value:
                self.id_buffer = value
        elif field == "retry":
            if value.isascii() and value.isdigit():
                self.on_retry(int(value))

    def dispatch(self):
        self.last_event_id = self.id_buffer
        if not self.data:
            self.data, self.type = [], ""
            return
        data = "\n".join(self.data)
        event_type = self.type or "message"
        self.data, self.type = [], ""
        self.on_event(event_type, data, self.last_event_id)


class Client:
    """An EventSource: one stream at a time; on its end or failure, waits the reconnection time and
    reconnects to a random live node with `Last-Event-ID`."""

    def __init__(self, soak, index, channels):
        self.soak, self.index, self.channels = soak, index, channels
        self.name = f"client{index}"
        self.retry_ms = soak.args.retry_ms
        self.parser = SSEParser(self.on_event, self.on_retry)
        self.received = {}  # token -> count
        self.log = []  # (token, id tuple or None, time, node)
        self.first_id = {}  # channel -> id tuple of the first event received on it
        self.last_pos = None
        self.out_of_order = []
        self.gaps = []
        self.foreign = []
        self.connections = []  # [node, start, end, reason, last_event_id_sent]
        self.reconnects = 0
        self.node = None
        self.connected = False
        self.writer = None

    def on_retry(self, ms):
        self.retry_ms = ms

    def on_event(self, event_type, data, last_event_id):
        t = now()
        if event_type == "history-gap":
            self.gaps.append((t, self.node, data, self.soak.last_fault(t)))
            log(f"{self.name}: history-gap from {self.node}: {data}")
            return
        try:
            body = json.loads(data)
            token = (body["ch"], body["n"])
        except (ValueError, KeyError, TypeError):
            self.foreign.append((t, self.node, event_type, data))
            return
        if event_type != "soak" or token[0] not in self.channels:
            self.foreign.append((t, self.node, event_type, data))
            return
        pos = parse_id(last_event_id)
        self.received[token] = self.received.get(token, 0) + 1
        self.log.append((token, pos, t, f"{self.node} (stream #{len(self.connections)})"))
        if pos is not None:
            if self.last_pos is not None and pos <= self.last_pos:
                self.out_of_order.append((t, self.node, token, last_event_id, self.last_pos))
            self.last_pos = pos if self.last_pos is None else max(pos, self.last_pos)
            self.first_id.setdefault(token[0], pos)

    def target(self):
        query = "&".join(f"channel={c}" for c in self.channels)
        return f"/stream?{query}"

    async def run(self):
        args = self.soak.args
        first = True
        while not self.soak.stopping:
            if not first:
                self.reconnects += 1
                await asyncio.sleep(self.retry_ms / 1000 * (0.75 + 0.5 * self.soak.rng.random()))
            first = False
            live = self.soak.cluster.live_nodes()
            while not live and not self.soak.stopping:
                await asyncio.sleep(0.1)
                live = self.soak.cluster.live_nodes()
            if not live:
                return
            # as the README's nginx (least_conn): the live node with the fewest streams, ties at random
            fewest = min(n.streams for n in live)
            node = self.soak.rng.choice([n for n in live if n.streams == fewest])
            node.streams += 1
            self.node = node.name
            sent_id = self.parser.last_event_id
            record = [node.name, now(), None, None, sent_id]
            self.connections.append(record)
            try:
                record[3] = await self.stream(node.port, sent_id, args)
            except (OSError, asyncio.TimeoutError, ValueError, IndexError) as error:
                record[3] = f"error: {type(error).__name__} {error}"
            except asyncio.CancelledError:
                record[3] = "cancelled"
                raise
            finally:
                record[2] = now()
                self.connected = False
                node.streams -= 1

    async def stream(self, port, last_event_id, args):
        reader, writer = await within(args.connect_timeout, asyncio.open_connection("127.0.0.1", port))
        self.writer = writer
        try:
            head = [f"GET {self.target()} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream",
                    "Cache-Control: no-cache"]
            if last_event_id and not args.no_last_event_id:
                head.append(f"Last-Event-ID: {last_event_id}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
            await writer.drain()
            raw_head = await within(args.connect_timeout, reader.readuntil(b"\r\n\r\n"))
            lines = raw_head[:-4].split(b"\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                key, _, value = line.partition(b":")
                headers[key.strip().lower()] = value.strip().lower()
            if status != 200:
                return f"status {status}"
            if not headers.get(b"content-type", b"").startswith(b"text/event-stream"):
                return f"content-type {headers.get(b'content-type')}"
            chunked = b"chunked" in headers.get(b"transfer-encoding", b"")
            self.parser.new_stream(last_event_id)
            self.connected = True
            idle = args.idle_timeout
            while True:
                if chunked:
                    size_line = await within(idle, reader.readuntil(b"\r\n"))
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        return "end of stream (last chunk)"
                    chunk = await within(idle, reader.readexactly(size + 2))
                    self.parser.feed(chunk[:-2])
                else:
                    chunk = await within(idle, reader.read(65536))
                    if not chunk:
                        return "end of stream (close)"
                    self.parser.feed(chunk)
        except asyncio.IncompleteReadError:
            return "connection closed mid-chunk"
        except asyncio.TimeoutError:
            if self.connected:
                self.soak.stalls.append((now(), self.name, self.node, self.soak.last_fault(now())))
                return f"silent for {args.idle_timeout} s"
            raise
        finally:
            writer.close()


# ---------------------------------------------------------------- publishing and faults


class Soak:
    def __init__(self, args, directory):
        self.args, self.dir = args, directory
        self.rng = random.Random(args.seed)
        self.cluster = Cluster(args, directory)
        self.channels = [f"soak{i}" for i in range(args.channels)]
        self.clients = []
        for i in range(args.clients):
            # about a third of the clients take two or three channels in one stream
            count = 1 if i % 3 else 2 + (i // 3) % 2
            chosen = self.rng.sample(self.channels, min(count, len(self.channels)))
            self.clients.append(Client(self, i, chosen))
        self.counter = {c: 0 for c in self.channels}
        self.acked = []  # (token, id tuple, ack time, node)
        self.publish_failures = {}
        self.unacked_tokens = set()
        self.faults = []  # (start time, kind, detail)
        self.fault_counts = {}
        self.stalls = []
        self.stopping = False
        self.publishing = True
        self.in_flight = 0

    def fault_before(self, t):
        before = [f for f in self.faults if f[0] <= t]
        return before[-1] if before else None

    def last_fault(self, t):
        fault = self.fault_before(t)
        return f"{fault[1]} at t={fault[0]:.1f} ({fault[2]})" if fault else "none (before faults)"

    async def publish_one(self, channel):
        self.counter[channel] += 1
        token = (channel, self.counter[channel])
        live = self.cluster.live_nodes()
        if not live:
            self.publish_failures["no live node"] = self.publish_failures.get("no live node", 0) + 1
            return False
        node = self.rng.choice(live)
        body = json.dumps({"data": {"ch": channel, "n": token[1]}, "type": "soak"}).encode()
        try:
            status, reply = await http_request(node.port, "POST", f"/publish?channel={channel}", body,
                                               timeout=self.args.publish_timeout)
            if status == 200:
                event_id = json.loads(reply)["id"]
                pos = parse_id(event_id)
                if pos is None:
                    raise ValueError(f"id {event_id!r} is not a position")
                self.acked.append((token, pos, now(), node.name))
                return True
            reason = f"status {status}"
        except asyncio.TimeoutError:
            reason = "timeout"
        except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
            reason = type(error).__name__
        self.unacked_tokens.add(token)
        self.publish_failures[reason] = self.publish_failures.get(reason, 0) + 1
        return False

    async def publish_until_acked(self, channel):
        try:
            delay = 0.1
            for _ in range(100):
                if await self.publish_one(channel) or not self.publishing:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        finally:
            self.in_flight -= 1

    async def publisher(self):
        interval = 1.0 / self.args.rate
        next_at = time.monotonic()
        tasks = set()
        i = 0
        while self.publishing:
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1:
                next_at = time.monotonic()  # fell behind (a slow machine): do not burst
            if self.in_flight >= self.args.max_in_flight:
                self.publish_failures["skipped (in flight)"] = self.publish_failures.get("skipped (in flight)", 0) + 1
                continue
            self.in_flight += 1
            channel = self.channels[i % len(self.channels)]
            i += 1
            task = asyncio.ensure_future(self.publish_until_acked(channel))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=self.args.publish_timeout * 3)

    FAULT_KINDS = ["node-kill", "node-term", "node-stop", "redis-restart", "redis-stop", "pubsub-kill"]

    def load(self):
        """Connected clients per node."""
        load = {n.name: 0 for n in self.cluster.nodes}
        for client in self.clients:
            if client.connected:
                load[client.node] = load.get(client.node, 0) + 1
        return load

    async def inject(self, kind, round_index):
        c = self.cluster
        args = self.args
        load = self.load()
        log("clients per node: " + ", ".join(f"{k} {v}" for k, v in load.items()))
        if kind.startswith("node-"):
            # the node serving the most streams, so every node fault hits clients
            most = max(load.values())
            node = self.rng.choice([n for n in c.nodes if load[n.name] == most])
            detail = f"{node.name} (serving {most} of {len(self.clients)} clients)"
            self.faults.append((now(), kind, detail))
            log(f"fault {kind} {detail}")
            if kind == "node-kill":
                node.down = True
                node.signal(signal.SIGKILL)
                await node.wait_exit(10)
                await asyncio.sleep(args.down_seconds)
                await c.start_node(node)
            elif kind == "node-term":
                node.down = True
                node.signal(signal.SIGTERM)
                code = await node.wait_exit(args.drain_timeout + 10)
                if code != 0:
                    self.harness_notes.append(f"{node.name} exited {code} after SIGTERM at t={now():.1f}")
                await asyncio.sleep(args.down_seconds)
                await c.start_node(node)
            else:
                node.stopped = True
                node.signal(signal.SIGSTOP)
                await asyncio.sleep(args.stop_seconds)
                node.signal(signal.SIGCONT)
                node.stopped = False
        elif kind == "redis-restart":
            how = "SHUTDOWN" if round_index % 2 == 0 else "SIGTERM"
            self.faults.append((now(), kind, how))
            log(f"fault {kind} by {how}")
            if how == "SHUTDOWN":
                try:
                    await c.redis_cli("SHUTDOWN", timeout=10)
                except HarnessError:
                    pass
            else:
                c.redis.signal(signal.SIGTERM)
            await c.redis.wait_exit(20)
            await asyncio.sleep(args.down_seconds)
            await c.start_redis()
        elif kind == "redis-stop":
            # alternate a short pause with one past the nodes' 10 s PING liveness check
            seconds = args.stop_seconds if round_index % 2 == 0 else args.long_stop_seconds
            self.faults.append((now(), kind, f"{seconds} s"))
            log(f"fault {kind} for {seconds} s")
            c.redis.stopped = True
            c.redis.signal(signal.SIGSTOP)
            await asyncio.sleep(seconds)
            c.redis.signal(signal.SIGCONT)
            c.redis.stopped = False
        elif kind == "pubsub-kill":
            reply = await c.redis_cli("CLIENT", "KILL", "TYPE", "pubsub")
            self.faults.append((now(), kind, f"killed {reply}"))
            log(f"fault {kind}: {reply}")
        self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1

    async def run(self):
        args = self.args
        self.harness_notes = []
        c = self.cluster
        log(f"temp dir {self.dir}; redis on {c.redis_port}; nodes on " + ", ".join(str(n.port) for n in c.nodes))
        await c.start_redis()
        await c.add_ballast(args.redis_ballast_keys)
        for node in c.nodes:
            await c.start_node(node)
        if not await c.wait_ready():
            raise HarnessError("nodes not ready (/readyz) within 30 s")
        client_tasks = [asyncio.ensure_future(cl.run()) for cl in self.clients]
        publisher = asyncio.ensure_future(self.publisher())
        # warm-up: every client has had an event on each of its channels
        deadline = time.monotonic() + 30
        while any(len(cl.first_id) < len(cl.channels) for cl in self.clients):
            if time.monotonic() > deadline:
                missing = [cl.name for cl in self.clients if len(cl.first_id) < len(cl.channels)]
                raise HarnessError(f"warm-up: clients without an event on each channel after 30 s: {missing}")
            await asyncio.sleep(0.1)
        log(f"warm-up done: every client has an event on each of its channels")
        fault_start = now()
        end_faults = fault_start + args.seconds
        kinds = self.FAULT_KINDS
        round_index = 0
        k = 0
        while True:
            kind = kinds[k % len(kinds)]
            if k and k % len(kinds) == 0:
                round_index += 1
            if now() > end_faults and k >= len(kinds):
                break
            await self.inject(kind, round_index)
            k += 1
            # recovery: every node up and subscribed, then a quiet stretch
            if not await c.wait_ready(timeout=30):
                self.harness_notes.append(f"nodes not all ready 30 s after {kind} at t={now():.1f}")
            await asyncio.sleep(args.recovery_seconds)
        log(f"faults done ({k}); publishing stops, settling")
        self.publishing = False
        await publisher
        await self.settle()
        self.stopping = True
        for client in self.clients:
            if client.writer is not None:
                client.writer.transport.abort()
        for task in client_tasks:
            task.cancel()
        _, stuck = await asyncio.wait(client_tasks, timeout=10)
        if stuck:
            print(f"soak: {len(stuck)} client task(s) did not end within 10 s of the end (harness)", file=sys.stderr)
        return self.verdict(fault_start)

    def expected_for(self, client):
        by_channel = {}
        for token, pos, _, _ in self.acked:
            start = client.first_id.get(token[0])
            if token[0] in client.channels and start is not None and pos > start:
                by_channel.setdefault(token[0], []).append((pos, token))
        return by_channel

    async def settle(self):
        deadline = time.monotonic() + self.args.settle_seconds
        while time.monotonic() < deadline:
            missing = 0
            for client in self.clients:
                for events in self.expected_for(client).values():
                    missing += sum(1 for _, token in events if token not in client.received)
            if missing == 0:
                return
            await asyncio.sleep(0.5)

    def verdict(self, fault_start):
        args = self.args
        expected = received = duplicates = losses = 0
        out_of_order = sum(len(cl.out_of_order) for cl in self.clients)
        channel_order = 0
        lost_detail, dup_detail, order_detail = [], [], []
        acked_time = {token: (t, node, pos) for token, pos, t, node in self.acked}
        for client in self.clients:
            by_channel = self.expected_for(client)
            for channel, events in by_channel.items():
                events.sort()
                expected += len(events)
                for pos, token in events:
                    count = client.received.get(token, 0)
                    received += min(count, 1)
                    if count == 0:
                        losses += 1
                        lost_detail.append((client, token, pos))
                # order per channel, as received, among acknowledged events
                seen = [p for token, p, _, _ in client.log if token[0] == channel and token in acked_time]
                channel_order += sum(1 for a, b in zip(seen, seen[1:]) if b <= a)
            for token, count in client.received.items():
                if count > 1:
                    duplicates += count - 1
                    dup_detail.append((client, token, count))
        gaps = [(cl, g) for cl in self.clients for g in cl.gaps]
        reasons = {}
        for _, (_, _, data, _) in gaps:
            try:
                for channel, reason in json.loads(data).get("channels", {}).items():
                    reasons[reason] = reasons.get(reason, 0) + 1
            except (ValueError, AttributeError):
                reasons["unparsable"] = reasons.get("unparsable", 0) + 1
        foreign = sum(len(cl.foreign) for cl in self.clients)
        duration = now()
        print()
        print("==== soak figures ====")
        print(f"duration            {duration:.0f} s ({duration - fault_start:.0f} s of faults and settling); "
              f"{args.nodes} nodes, {args.clients} clients, {args.channels} channels, {args.rate}/s target")
        print("faults injected     " + ", ".join(f"{k} {v}" for k, v in self.fault_counts.items())
              + f" (total {sum(self.fault_counts.values())})")
        print(f"publishes acked     {len(self.acked)}; not acknowledged (retried as new events): "
              + (", ".join(f"{k} {v}" for k, v in sorted(self.publish_failures.items())) or "none"))
        delivered_unacked = sum(1 for token in self.unacked_tokens if any(token in cl.received for cl in self.clients))
        print(f"deliveries          expected {expected}, received {received}; "
              f"unacknowledged publishes that still reached clients: {delivered_unacked}")
        print(f"losses              {losses}")
        print(f"duplicates          {duplicates}")
        print(f"out of order        {out_of_order} (ids not increasing on a client), {channel_order} within a channel")
        print(f"history-gap notices {len(gaps)}" + (f" ({', '.join(f'{k} {v}' for k, v in reasons.items())})" if gaps else ""))
        print(f"foreign events      {foreign}")
        print(f"reconnects          {sum(cl.reconnects for cl in self.clients)}; streams silent past "
              f"{args.idle_timeout} s on a running node: {len(self.stalls)}")
        blame = {}
        for label, times in (("lost", [acked_time[token][0] for _, token, _ in lost_detail]),
                             ("duplicate", [t for cl, token, _ in dup_detail for t in [e[2] for e in cl.log if e[0] == token][1:]]),
                             ("out of order", [o[0] for cl in self.clients for o in cl.out_of_order]),
                             ("history-gap", [g[0] for _, g in gaps])):
            for t in times:
                fault = self.fault_before(t)
                key = fault[1] if fault else "no fault yet"
                blame.setdefault(key, {}).setdefault(label, 0)
                blame[key][label] += 1
        for kind, counts in blame.items():
            print(f"after {kind:13s} " + ", ".join(f"{label} {n}" for label, n in counts.items()))
        for note in self.harness_notes:
            print(f"note                {note}")
        failed = bool(losses or duplicates or out_of_order or channel_order or gaps or foreign or self.harness_notes)

        def connection_at(client, t):
            for node, start, end, reason, sent in client.connections:
                if start <= t and (end is None or t <= end):
                    return f"on {node} since t={start:.1f} (sent Last-Event-ID {sent or '-'})"
            return "not connected"

        def show(title, rows, render):
            if rows:
                print(f"-- {title} ({len(rows)}; first {min(len(rows), args.detail)}):")
                for row in rows[:args.detail]:
                    print("   " + render(row))

        def lost(row):
            client, token, pos = row
            t, node, _ = acked_time[token]
            nxt = next((f"{tok} id {p} at t={tt:.1f} from {n}" for tok, p, tt, n in client.log if p and p > pos), "none")
            return (f"{client.name} {client.channels} lost {token[0]}#{token[1]} id {pos[0]}-{pos[1]}, acked t={t:.1f} "
                    f"by {node}; last fault {self.last_fault(t)}; client {connection_at(client, t)}; next received: {nxt}")

        lost_detail.sort(key=lambda row: acked_time[row[1]][0])
        gaps.sort(key=lambda row: row[1][0])
        show("lost", lost_detail, lost)
        show("duplicates", dup_detail, lambda r: f"{r[0].name} got {r[1]} {r[2]} times: " + ", ".join(
            f"t={t:.1f} from {n}" for tok, _, t, n in r[0].log if tok == r[1]))
        show("out of order", [(cl, o) for cl in self.clients for o in cl.out_of_order],
             lambda r: f"{r[0].name} at t={r[1][0]:.1f} from {r[1][1]}: {r[1][2]} id {r[1][3]} after {r[1][4]}")
        show("history-gap", gaps, lambda r: f"{r[0].name} at t={r[1][0]:.1f} from {r[1][1]}: {r[1][2]}; last fault {r[1][3]}")
        show("foreign", [(cl, f) for cl in self.clients for f in cl.foreign],
             lambda r: f"{r[0].name} at t={r[1][0]:.1f} from {r[1][1]}: event {r[1][2]!r} data {r[1][3][:200]!r}")
        show("silent streams", self.stalls, lambda r: f"{r[1]} on {r[2]} at t={r[0]:.1f}; last fault {r[3]}")
        print("faults: " + "; ".join(f"t={t:.1f} {k} {d}" for t, k, d in self.faults))
        print(f"logs: {self.dir}")
        print("VERDICT: " + ("FAIL" if failed else "PASS"))
        return 1 if failed else 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_broker = os.path.join(here, "..", "..", ".build", "debug", "sse-broker")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 300)),
                   help="how long faults go on (at least one round of every kind); env SOAK_SECONDS")
    p.add_argument("--broker", default=os.environ.get("SOAK_BROKER", default_broker))
    p.add_argument("--broker-arg", action="append", default=[], help="extra flag for every node (repeatable)")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--clients", type=int, default=30)
    p.add_argument("--channels", type=int, default=6)
    p.add_argument("--rate", type=float, default=100, help="publishes per second, all channels")
    p.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", 1)))
    p.add_argument("--heartbeat", type=float, default=1)
    p.add_argument("--retry-ms", type=int, default=300)
    p.add_argument("--drain-timeout", type=float, default=5)
    p.add_argument("--log-level", default="info")
    p.add_argument("--redis-ballast-keys", type=int, default=500000,
                   help="keys put into Redis first, so each restart answers -LOADING for a while")
    p.add_argument("--down-seconds", type=float, default=1, help="a killed node or Redis stays down this long")
    p.add_argument("--stop-seconds", type=float, default=3, help="SIGSTOP length")
    p.add_argument("--long-stop-seconds", type=float, default=12, help="every other Redis SIGSTOP")
    p.add_argument("--recovery-seconds", type=float, default=3, help="quiet time after each fault")
    p.add_argument("--settle-seconds", type=float, default=20)
    p.add_argument("--publish-timeout", type=float, default=5)
    p.add_argument("--connect-timeout", type=float, default=5)
    p.add_argument("--idle-timeout", type=float, default=30, help="a stream silent this long is counted and reopened")
    p.add_argument("--max-in-flight", type=int, default=200)
    p.add_argument("--detail", type=int, default=20, help="rows of detail per kind of failure")
    p.add_argument("--no-last-event-id", action="store_true",
                   help="clients reconnect without Last-Event-ID (shows that the verdict catches lost resumes)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir even when the soak passes")
    args = p.parse_args()
    args.broker = os.path.abspath(args.broker)
    if not os.access(args.broker, os.X_OK):
        print(f"soak: no broker executable at {args.broker} (swift build first)", file=sys.stderr)
        return 2
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            print(f"soak: {tool} not found", file=sys.stderr)
            return 2
    sys.stdout.reconfigure(line_buffering=True)
    directory = tempfile.mkdtemp(prefix="sse-soak-")
    soak = Soak(args, directory)

    async def guarded():
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            return await soak.run()
        except HarnessError as error:
            print(f"soak: harness error: {error}; logs in {directory}", file=sys.stderr)
            return 2
        except asyncio.CancelledError:
            print(f"soak: interrupted; logs in {directory}", file=sys.stderr)
            return 2
        finally:
            await soak.cluster.shutdown()

    code = asyncio.run(guarded())
    if code == 0 and not args.keep:
        shutil.rmtree(directory, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
