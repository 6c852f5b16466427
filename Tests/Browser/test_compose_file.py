"""docker-compose.yml: validated by `docker compose config` when the compose plugin is present,
and structurally (PyYAML) always, since no Docker engine runs on the CI machine."""
import os
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_topology():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "node1", "node2", "node3", "nginx"}
    for name in ("node1", "node2", "node3"):
        node = services[name]
        assert node["build"] == "."
        assert node["environment"]["REDIS_URL"] == "${SSE_REDIS_URL:-redis://redis:6379/0}"
        for option in ("SSE_REDIS_TLS_CA", "SSE_REDIS_TLS_CERT", "SSE_REDIS_TLS_KEY", "SSE_REDIS_SENTINEL_PASSWORD"):
            assert node["environment"][option] == "${%s:-}" % option
        assert node["environment"]["SSE_NODE_NAME"] == name
        # Port 8080 listens on every interface: publishing needs the key, never open.
        assert "SSE_ALLOW_OPEN_PUBLISH" not in node["environment"]
        assert node["environment"]["SSE_PUBLISH_KEY"].startswith("${SSE_PUBLISH_KEY:?")
    assert services["nginx"]["ports"] == ["8080:8080"]
    mount = services["nginx"]["volumes"][0].split(":")
    assert (ROOT / mount[0]).is_file()
    conf = (ROOT / "deploy/nginx-sse.conf").read_text()
    for directive in ("proxy_http_version 1.1;", "proxy_buffering off;", "proxy_read_timeout 1h;", "listen 8080;"):
        assert directive in conf
    for name in ("node1", "node2", "node3"):
        assert f"server {name}:5000" in conf
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM swift:" in dockerfile and "AS build" in dockerfile and "libhiredis" in dockerfile


def test_docker_compose_config_when_available():
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        return  # no compose plugin here: the structural test above stands in for it
    env = dict(os.environ, SSE_PUBLISH_KEY="compose-config-check")
    subprocess.run([docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], check=True, env=env)


def test_compose_sentinel_override():
    """deploy/compose.sentinel.yml: the nodes reach Redis through the sentinels it defines."""
    base = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    override = yaml.safe_load((ROOT / "deploy/compose.sentinel.yml").read_text())["services"]
    sentinels = {name for name in override if name.startswith("sentinel")}
    assert len(sentinels) == 3
    for name in sentinels:
        script = override[name]["command"][-1]
        assert "sentinel monitor mymaster redis 6379 2" in script and "--sentinel" in script
    assert "--replicaof" in override["redis-replica"]["command"]
    for name in ("node1", "node2", "node3"):
        assert name in base
        url = override[name]["environment"]["REDIS_URL"]
        assert url.startswith("redis+sentinel://") and url.endswith("/mymaster/0")
        hosts = {part.split(":")[0] for part in url.removeprefix("redis+sentinel://").split("/")[0].split(",")}
        assert hosts == sentinels
