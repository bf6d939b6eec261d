"""Reconnecting in a real browser: the server goes away (Daphne restarted on the same port, or the
browser goes offline), events happen meanwhile, and the page resumes from its last seq: it shows
exactly the events it missed, once each, in order, then keeps streaming. These tests restart their
own server, so they do not disturb the shared one."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    TEAMMATE,
    activity_seqs,
    api_send,
    browsers_for,
    row,
    start_server,
    stop_server,
)

RECONNECT_TIMEOUT_MS = 30_000  # the page retries with jittered backoff capped at 10 s


@pytest.fixture(scope="module")
def own_server(request):
    running, failed_before = start_server(request)
    try:
        yield running
    finally:
        stop_server(request, running, failed_before)


@pytest.fixture
def pages(chromium, own_server):
    with browsers_for(chromium, own_server) as opened:
        yield opened


def event_seqs(frames):
    return [f["seq"] for f in frames if isinstance(f.get("seq"), int) and f.get("threat")]


def assert_once_each_in_order(seqs):
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs


def wait_for_newest(page, seq):
    expect(page.locator("#activity li").first).to_have_attribute("data-seq", str(seq), timeout=RECONNECT_TIMEOUT_MS)


def test_after_the_server_restarts_the_page_shows_each_missed_event_once_in_order(pages, own_server):
    page = pages.page()
    pages.expect_console("WebSocket connection to")  # refused while Daphne is down: expected
    first = api_send(page, "POST", "/api/threats/trigger", {"threat_type": "bot_traffic"})["data"]["id"]
    expect(row(page, first).locator("td").last).to_have_text("Completed")
    before = activity_seqs(page)[0]
    badge = page.locator("#connection")

    def while_down():
        expect(badge).not_to_have_attribute("data-state", "connected")
        return own_server.manage("generate_threats", "--count", "3", "--type", "geo_anomaly")

    output = own_server.restart(while_down)

    expect(badge).to_have_attribute("data-state", "connected", timeout=RECONNECT_TIMEOUT_MS)
    wait_for_newest(page, before + 6)  # 3 created + 3 analysed, made while the page had no socket
    shown = activity_seqs(page)
    assert shown[:7] == list(range(before + 6, before - 1, -1))
    assert len(shown) == len(set(shown))
    titles = re.findall(r"geo_anomaly\s+\S.*?\s{2,}(.+)$", output, re.MULTILINE)
    assert len(titles) == 3
    feed = page.locator("#feed").inner_text()
    for title in titles:
        assert title.strip() in feed

    later = api_send(page, "POST", "/api/threats/trigger", {"scenario": "bot_attack"})["data"]["id"]

    expect(row(page, later).locator("td").last).to_have_text("Completed")
    wait_for_newest(page, before + 8)
    seqs = event_seqs(pages.frames[page])
    assert_once_each_in_order(seqs)
    assert seqs[-8:] == list(range(before + 1, before + 9))


def test_after_the_browser_was_offline_the_page_catches_up_once_in_order(pages, own_server):
    page = pages.page()
    teammate = pages.page(TEAMMATE)
    pages.expect_console("WebSocket connection to")
    before = int(page.locator("#dashboard").get_attribute("data-seq"))

    page.context.set_offline(True)
    expect(page.locator("#connection")).to_have_attribute("data-state", "offline")
    made = [api_send(teammate, "POST", "/api/threats/trigger", {"threat_type": kind})["data"]["id"]
            for kind in ("proxy_network", "rate_limit_breach")]
    for threat_id in made:
        expect(row(teammate, threat_id).locator("td").last).to_have_text("Completed")
    newest = activity_seqs(teammate)[0]
    page.context.set_offline(False)

    expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=RECONNECT_TIMEOUT_MS)
    wait_for_newest(page, newest)
    shown = activity_seqs(page)
    assert shown == sorted(set(shown), reverse=True)
    assert [s for s in shown if s > before] == list(range(newest, before, -1))
    for threat_id in made:
        expect(row(page, threat_id).locator("td").last).to_have_text("Completed")
    assert_once_each_in_order(event_seqs(pages.frames[page]))
