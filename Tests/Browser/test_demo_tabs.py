"""The demo page in several tabs of one real browser (issue 19): over HTTP/1.1 Chromium holds at most
six connections per host and every EventSource keeps one for good.

- The page's default mode opens ONE multi-channel stream, so three tabs work over HTTP/1.1 and over
  the node's own HTTPS (HTTP/2), each panel of each tab receiving its channel's events.
- The old mode, one EventSource per panel (`?streams=per-panel`), shows the limit over HTTP/1.1: the
  second tab gets two of its four streams, the third tab's page does not even load. Over HTTP/2 the
  same three tabs share one connection and all twelve streams open.
- nginx's HTTPS + HTTP/2 front of `make cluster` (scripts/cluster.sh, LB_TLS_PORT) lifts it the same way.

One redis-server and two nodes (plain HTTP, and HTTPS with a certificate from scripts/dev-cert.sh in a
temporary directory) on free loopback ports, stopped by pid. Every wait is bounded. BROKER names another
sse-broker binary (default .build/debug/sse-broker, as scripts/cluster.sh)."""
import base64
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ROOT, free_port, start_browser

BROKER = Path(os.environ.get("BROKER", ROOT / ".build/debug/sse-broker"))
PANELS = ("clock", "board", "task", "status")
WAIT = 20  # seconds any one observable change may take


def wait(condition, message, timeout=WAIT):
    """Polls `condition` (no arguments) until it is truthy; returns its value."""
    return WebDriverWait(None, timeout, poll_frequency=0.1).until(lambda _: condition(), message)


def wait_for_port(port: int, process: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{name} exited with status {process.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{name} did not listen on {port} within 30 s")


def spki_hash(certificate: Path) -> str:
    """base64 SHA-256 of a certificate's public key: Chromium's --ignore-certificate-errors-spki-list
    then accepts that one certificate (the test's own CA is in no trust store of the browser)."""
    pem = subprocess.run(["openssl", "x509", "-in", str(certificate), "-pubkey", "-noout"],
                         check=True, capture_output=True, timeout=10).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pem,
                         check=True, capture_output=True, timeout=10).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class Brokers:
    """redis-server, a plain node and a TLS node (HTTPS, ALPN h2 then http/1.1) on one Redis."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sse-tabs-"))
        self.redis_port = free_port()
        self.http_port = free_port()
        self.https_port = free_port()
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        assert BROKER.exists(), f"{BROKER} is missing: swift build --product sse-broker"
        help_text = subprocess.run([str(BROKER), "--help"], capture_output=True, text=True, timeout=30).stdout
        assert "--tls-cert" in help_text, "sse-broker has no --tls-cert option (TLS and HTTP/2 on the node)"
        tls = self.dir / "tls"
        subprocess.run([str(ROOT / "scripts/dev-cert.sh")], env=dict(os.environ, TLS_DIR=str(tls)),
                       check=True, capture_output=True, timeout=60)
        self.ca = tls / "ca.pem"
        self.certificate = tls / "localhost.pem"
        self.redis = self._spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                           "--save", "", "--appendonly", "no"])
        wait_for_port(self.redis_port, self.redis, "redis-server")
        common = ["--host", "127.0.0.1", "--redis-url", f"redis://127.0.0.1:{self.redis_port}/0", "--demo"]
        self.http = self._spawn("plain", [str(BROKER), *common, "--port", str(self.http_port), "--node-name", "plain"])
        self.https = self._spawn("tls", [str(BROKER), *common, "--port", str(self.https_port), "--node-name", "tls",
                                         "--tls-cert", str(tls / "localhost.pem"), "--tls-key", str(tls / "localhost-key.pem")])
        wait_for_port(self.http_port, self.http, "plain node")
        wait_for_port(self.https_port, self.https, "TLS node")
        # The TLS node's certificate verifies against the CA for the name localhost.
        context = ssl.create_default_context(cafile=str(self.ca))
        with urllib.request.urlopen(f"https://localhost:{self.https_port}/healthz", context=context, timeout=10) as response:
            assert json.load(response) == {"status": "ok"}

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "wb")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, scheme: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/" if scheme == "http" else f"https://localhost:{self.https_port}/"

    def node(self, scheme: str) -> str:
        return "plain" if scheme == "http" else "tls"

    def redis_cli(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(self.redis_port), *args], check=True,
                              capture_output=True, text=True, timeout=10).stdout

    def open_streams(self, scheme: str) -> int:
        """sse_connected_clients of the node behind `scheme`."""
        context = ssl.create_default_context(cafile=str(self.ca)) if scheme == "https" else None
        with urllib.request.urlopen(self.url(scheme) + "metrics", context=context, timeout=10) as response:
            text = response.read().decode()
        match = re.search(r"^sse_connected_clients(?:\{[^}]*\})? (\d+(?:\.\d+)?)$", text, re.M)
        assert match, "no sse_connected_clients in /metrics"
        return int(float(match.group(1)))


@pytest.fixture(scope="module")
def brokers():
    brokers = Brokers()
    try:
        brokers.start()
        yield brokers
    finally:
        brokers.stop()


def tls_browser(*certificates: Path, page_load_strategy: str = "normal"):
    spki = ",".join(spki_hash(certificate) for certificate in certificates)
    # Background tabs keep their timers and rendering as a foreground one would.
    return start_browser(f"--ignore-certificate-errors-spki-list={spki}", "--disable-background-timer-throttling",
                         "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
                         page_load_strategy=page_load_strategy)


STATES = "var s = document.getElementById('clock-state'); if (!s) return null; " \
         "return ['clock', 'board', 'task', 'status'].map(p => document.getElementById(p + '-state').textContent);"


def panel_states(driver, handle):
    """The four panels' stream states in tab `handle`, or None while its page has not loaded."""
    driver.switch_to.window(handle)
    try:
        return driver.execute_script(STATES)
    except WebDriverException:
        return None


def in_tab(driver, handle, script, *args):
    driver.switch_to.window(handle)
    return driver.execute_script(script, *args)


def open_tab(driver, url, first=False):
    if not first:
        driver.switch_to.new_window("tab")
    driver.get(url)
    return driver.current_window_handle


def board_texts(driver, handle):
    return in_tab(driver, handle, "return Array.from(document.querySelectorAll('#board-messages li .text')).map(e => e.textContent);")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_one_stream_per_page_serves_every_panel_in_three_tabs(brokers, scheme):
    driver = tls_browser(brokers.certificate)
    try:
        before = brokers.open_streams(scheme)
        tabs = [open_tab(driver, brokers.url(scheme), first=index == 0) for index in range(3)]
        for tab in tabs:
            wait(lambda: panel_states(driver, tab) == ["open"] * 4, f"{scheme}: every panel of a tab opens its stream")
            assert in_tab(driver, tab, "return document.getElementById('protocol').textContent") == \
                ("http/1.1" if scheme == "http" else "h2")
            wait(lambda: all(in_tab(driver, tab, f"return document.getElementById('{p}-node').textContent") == brokers.node(scheme)
                             for p in PANELS), "node name on every panel")
        # One stream per page: three tabs, three streams on the node.
        wait(lambda: brokers.open_streams(scheme) - before == 3, "one stream per tab on the node")

        message = f"hello every tab over {scheme}"
        brokers.redis_cli("PUBLISH", "demo.board", message)
        in_tab(driver, tabs[-1], "document.getElementById('task-start').click();")
        for tab in tabs:
            wait(lambda: message in board_texts(driver, tab), "board: the raw PUBLISH reaches every tab")
            wait(lambda: ":" in in_tab(driver, tab, "return document.getElementById('clock-time').textContent"), "clock ticks")
            wait(lambda: int(in_tab(driver, tab, "return document.getElementById('task-progress').value")) > 0
                 and "task " in in_tab(driver, tab, "return document.getElementById('task-text').textContent"), "task progress")
            wait(lambda: in_tab(driver, tab, "return document.querySelectorAll('#status-rows tr[data-node]').length") >= 1,
                 "status rows")
        # Nothing went to the wrong panel: the board shows the board's one message only.
        assert board_texts(driver, tabs[0]) == [message]
    finally:
        driver.quit()


def page_title(driver, handle):
    """The title of tab `handle` from the browser's target list (a WebDriver script in a tab whose
    page is still waiting for a connection would wait with it); window handles are target ids."""
    targets = driver.execute_cdp_cmd("Target.getTargets", {})["targetInfos"]
    return next(target["title"] for target in targets if target["targetId"] == handle)


def per_panel_tabs_over_h2(driver, base_url, redis_cli, via, streams_counted=None):
    """Opens `base_url?streams=per-panel` in three tabs (the first in the current one): over HTTP/2
    every panel of every tab opens, and a board event reaches each tab."""
    url = base_url + "?streams=per-panel"
    tabs = [open_tab(driver, url, first=index == 0) for index in range(3)]
    for tab in tabs:
        wait(lambda: panel_states(driver, tab) == ["open"] * 4, f"through {via} over HTTP/2: every panel of every tab opens")
        assert in_tab(driver, tab, "return document.getElementById('protocol').textContent") == "h2"
    if streams_counted is not None:
        wait(streams_counted, f"through {via}: twelve streams on the node")
    message = f"per-panel through {via}"
    redis_cli("PUBLISH", "demo.board", message)
    for tab in tabs:
        wait(lambda: message in board_texts(driver, tab), f"through {via}: the board event in every tab")


def test_per_panel_streams_stall_over_http1_and_all_open_over_http2(brokers):
    # page_load_strategy none: driver.get returns at once, so a tab whose page cannot load does not block.
    driver = tls_browser(brokers.certificate, page_load_strategy="none")
    try:
        url = brokers.url("http") + "?streams=per-panel"
        first = open_tab(driver, url, first=True)
        wait(lambda: panel_states(driver, first) == ["open"] * 4, "HTTP/1.1 tab 1: its four streams open")
        second = open_tab(driver, url)
        wait(lambda: (panel_states(driver, second) or []).count("open") == 2, "HTTP/1.1 tab 2: two more streams open")
        third = open_tab(driver, url)
        time.sleep(3)
        # Six connections to the host, all held: tab 2 keeps two panels at "connecting", tab 3 never loads.
        assert panel_states(driver, first) == ["open"] * 4
        states = panel_states(driver, second)
        assert sorted(states) == ["connecting", "connecting", "open", "open"], states
        assert page_title(driver, first) == "sse-broker demo"
        assert page_title(driver, third) != "sse-broker demo", "HTTP/1.1 tab 3 loaded although six streams hold every connection"
        assert brokers.open_streams("http") == 6

        # The same page over the node's HTTPS: HTTP/2 carries every stream of every tab on one connection.
        for handle in (third, second):
            driver.switch_to.window(handle)
            driver.close()
        driver.switch_to.window(first)
        per_panel_tabs_over_h2(driver, brokers.url("https"), brokers.redis_cli, "the node's own TLS",
                               lambda: brokers.open_streams("https") == 12)
    finally:
        driver.quit()


def test_nginx_tls_front_lifts_the_limit(cluster):
    """scripts/cluster.sh's HTTPS + HTTP/2 port: per-panel streams in three tabs all open through nginx."""
    driver = tls_browser(cluster.dir / "tls/server.crt")
    try:
        per_panel_tabs_over_h2(driver, cluster.tls_url, cluster.redis_cli, "nginx")
    finally:
        driver.quit()
