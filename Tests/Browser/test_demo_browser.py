"""The demo in a real browser, through nginx, across a node failure."""
import json
import os
import signal
import time
import urllib.request
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]


def wait(browser, condition, timeout=20, message=""):
    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(lambda driver: condition(), message)


def text_of(browser, element_id):
    return browser.find_element(By.ID, element_id).text


def board_items(browser):
    """(data-id, text) of every message the page shows, in order."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#board-messages li'))"
        ".map(li => [li.dataset.id, li.querySelector('.text').textContent]);"
    )


def post(port, channel, data, key):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/publish?channel={channel}",
        data=json.dumps({"data": data, "type": "message"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def test_demo_through_nginx_survives_a_node_kill(cluster, browser):
    browser.get(cluster.url)
    wait(browser, lambda: text_of(browser, "board-state") == "open" and text_of(browser, "board-node") != "?", message="board stream")
    for panel in ("clock", "task", "status"):
        wait(browser, lambda: text_of(browser, f"{panel}-state") == "open", message=f"{panel} stream")
    wait(browser, lambda: ":" in text_of(browser, "clock-time"), message="clock ticking")

    # A raw Redis PUBLISH and the page's own form both reach the page.
    cluster.redis_cli("PUBLISH", "demo.board", "hello from redis-cli")
    wait(browser, lambda: any(text == "hello from redis-cli" for _, text in board_items(browser)), message="raw publish")
    # Through nginx (X-Forwarded-For) nothing publishes openly: the page sends the cluster's key.
    browser.find_element(By.ID, "publish-key").send_keys(cluster.publish_key)
    browser.find_element(By.ID, "board-name").send_keys("tester")
    browser.find_element(By.ID, "board-text").send_keys("hello from the form")
    browser.find_element(By.ID, "board-send").click()
    wait(browser, lambda: any(text == "hello from the form" for _, text in board_items(browser)), message="form publish")

    # Kill the node serving the board stream; publish through a surviving node while the page reconnects.
    victim = text_of(browser, "board-node")
    os.kill(cluster.node_pid(victim), signal.SIGKILL)
    survivor = next(name for name in ("node1", "node2", "node3") if name != victim)
    missed = [f"while {victim} was down #{index}" for index in range(5)]
    for text in missed:
        post(cluster.node_port(survivor), "demo.board", {"name": "test", "text": text}, cluster.publish_key)
    wait(browser, lambda: text_of(browser, "board-node") not in ("?", victim) and text_of(browser, "board-state") == "open",
         timeout=30, message="reconnect to another node")
    wait(browser, lambda: all(any(text == wanted for _, text in board_items(browser)) for wanted in missed),
         timeout=30, message="events published in between")
    after = "after the reconnect"
    post(cluster.node_port(survivor), "demo.board", {"name": "test", "text": after}, cluster.publish_key)
    wait(browser, lambda: any(text == after for _, text in board_items(browser)), message="live after resume")

    items = board_items(browser)
    texts = [text for _, text in items]
    assert texts == ["hello from redis-cli", "hello from the form", *missed, after], texts
    ids = [item_id for item_id, _ in items if item_id]
    assert len(ids) == len(set(ids)), f"an event arrived twice: {ids}"

    # Task and status panels work too.
    browser.find_element(By.ID, "task-start").click()
    wait(browser, lambda: browser.find_element(By.ID, "task-progress").get_attribute("value") == "100", timeout=20, message="task done")
    wait(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, "#status-table tr[data-node]")) >= 2, message="status rows")

    screenshot = os.environ.get("SSE_SCREENSHOT", "")
    if screenshot:
        browser.save_screenshot(screenshot)
