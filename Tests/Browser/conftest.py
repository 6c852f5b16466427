"""A throwaway cluster (redis, three sse-broker nodes, nginx) on free loopback ports, and a
headless Chromium driven through WebDriver. Everything started here is stopped by pid."""
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sse-cluster-"))
        self.redis_port = free_port()
        self.node_ports = [free_port() for _ in range(3)]
        self.lb_port = free_port()
        self.lb_tls_port = free_port()
        self.env = dict(
            os.environ,
            CLUSTER_DIR=str(self.dir),
            REDIS_PORT=str(self.redis_port),
            NODE_PORTS=" ".join(map(str, self.node_ports)),
            LB_PORT=str(self.lb_port),
            LB_TLS_PORT=str(self.lb_tls_port),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}/"

    @property
    def tls_url(self) -> str:
        """nginx's HTTPS + HTTP/2 front (certificate for localhost, CA in CLUSTER_DIR/tls/ca.crt)."""
        return f"https://localhost:{self.lb_tls_port}/"

    def up(self) -> None:
        subprocess.run([str(ROOT / "scripts/cluster.sh"), "up"], env=self.env, check=True, timeout=120)

    def down(self) -> None:
        subprocess.run([str(ROOT / "scripts/cluster.sh"), "down"], env=self.env, check=False, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def publish_key(self) -> str:
        """The nodes' publish key (scripts/cluster.sh makes one)."""
        return (self.dir / "publish-key").read_text()

    def node_pid(self, name: str) -> int:
        return int((self.dir / f"{name}.pid").read_text())

    def node_port(self, name: str) -> int:
        return self.node_ports[int(name.removeprefix("node")) - 1]

    def redis_cli(self, *args: str) -> str:
        return subprocess.run(
            ["redis-cli", "-p", str(self.redis_port), *args], check=True, capture_output=True, text=True, timeout=10
        ).stdout


@pytest.fixture
def cluster():
    cluster = Cluster()
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


def start_browser(*flags: str, page_load_strategy: str = "normal"):
    """Headless Chromium under chromedriver, with extra command-line `flags`; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "chromium and chromium-driver are required (make test installs them)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    options.page_load_strategy = page_load_strategy
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000", *flags):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=options)


@pytest.fixture
def browser():
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()
