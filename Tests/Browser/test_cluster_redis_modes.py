"""`make cluster` with each kind of Redis (scripts/cluster.sh REDIS_MODE): the same Redis options reach
every node, and a stream through nginx receives what is published through nginx (on a Redis Cluster: by
the publish script on the channel's shard, history per channel). With Sentinel the topology also
survives a `SENTINEL FAILOVER`: events published after it still arrive."""
import http.client
import json
import queue
import subprocess
import threading
import time

import pytest

from conftest import Cluster, free_port


class Stream:
    """A stream through nginx; a thread reads its event data into a queue."""

    def __init__(self, cluster: Cluster, channel: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", cluster.lb_port, timeout=120)
        self.connection.request("GET", f"/stream?channel={channel}", headers={"Accept": "text/event-stream"})
        response = self.connection.getresponse()
        assert response.status == 200, response.read()
        self.messages: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(response,), daemon=True).start()

    def _read(self, response) -> None:
        try:
            for raw in response.fp:
                line = raw.decode()
                if line.startswith("data:"):
                    data = json.loads(line[len("data:"):])
                    if isinstance(data, dict) and "message" in data:
                        self.messages.put(data["message"])
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        self.connection.close()


def publish(cluster: Cluster, channel: str, message: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", cluster.lb_port, timeout=15)
    body = json.dumps({"data": {"message": message}})
    connection.request(
        "POST",
        f"/publish?channel={channel}",
        body=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {cluster.publish_key}"},
    )
    response = connection.getresponse()
    text = response.read()
    assert response.status == 200, text


def publish_until_received(cluster: Cluster, stream: Stream, channel: str, prefix: str, seconds: float) -> float:
    """Publishes `prefix N` once a second until the stream shows one of them; returns how long it took.
    (While Redis fails over a publish may fail or land on the old master: the next one is tried.)"""
    start = time.monotonic()
    attempt = 0
    while time.monotonic() - start < seconds:
        attempt += 1
        try:
            publish(cluster, channel, f"{prefix} {attempt}")
        except (AssertionError, OSError):
            pass
        wait_until = time.monotonic() + 1
        while (left := wait_until - time.monotonic()) > 0:
            try:
                if stream.messages.get(timeout=left).startswith(prefix):
                    return time.monotonic() - start
            except queue.Empty:
                break
    raise AssertionError(f"nothing published as '{prefix} N' arrived within {seconds} s")


def free_cluster_ports(count: int) -> list:
    """Ports free together with their cluster bus ports (port + 10000), all below 55535."""
    import random
    import socket

    chosen: list = []
    while len(chosen) < count:
        port = random.randint(20000, 45000)
        if port in chosen:
            continue
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        chosen.append(port)
    return chosen


@pytest.mark.parametrize("mode", ["tls", "sentinel", "cluster"])
def test_cluster_reaches_redis_in_every_mode(mode):
    cluster = Cluster()
    cluster.env["REDIS_MODE"] = mode
    cluster.env["CLUSTER_PORTS"] = " ".join(map(str, free_cluster_ports(6)))
    sentinel_ports = [free_port() for _ in range(3)]
    cluster.env["SENTINEL_PORTS"] = " ".join(map(str, sentinel_ports))
    cluster.env["REDIS_REPLICA_PORT"] = str(free_port())
    try:
        cluster.up()
        log = (cluster.dir / "node1.log").read_text()
        expected = {"tls": "rediss://127.0.0.1", "sentinel": "redis+sentinel://127.0.0.1", "cluster": "redis+cluster://127.0.0.1"}[mode]
        stream = Stream(cluster, "modes")
        publish_until_received(cluster, stream, "modes", "first", 20)
        for name in ("node1", "node2", "node3"):
            assert expected in (cluster.dir / f"{name}.log").read_text(), log
        if mode == "sentinel":
            sentinel = ["redis-cli", "-p", str(sentinel_ports[0])]
            deadline = time.monotonic() + 30
            while "ip" not in subprocess.run(sentinel + ["SENTINEL", "replicas", "mymaster"], capture_output=True, text=True).stdout:
                assert time.monotonic() < deadline, "the sentinels never found the replica"
                time.sleep(0.5)
            reply = subprocess.run(sentinel + ["SENTINEL", "FAILOVER", "mymaster"], capture_output=True, text=True).stdout
            assert "OK" in reply, reply
            deadline = time.monotonic() + 30
            while str(cluster.redis_port) in subprocess.run(
                sentinel + ["SENTINEL", "get-master-addr-by-name", "mymaster"], capture_output=True, text=True
            ).stdout:
                assert time.monotonic() < deadline, "the sentinels never named a new master"
                time.sleep(0.1)
            taken = publish_until_received(cluster, stream, "modes", "after failover", 30)
            print(f"sentinel failover through make cluster: delivered again after {taken:.2f} s")
        stream.close()
    finally:
        cluster.down()
