"""Pivots in a real browser (issue 23 item 2): from a threat's page, its source address leads to
every threat with that address; the list shows the pivot as a chip and takes a new alert from that
address live, as the server would list it; the search box finds the address too."""

import json

from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, api_get, wait_connected

ADDRESS = "198.51.100.231"  # in no demo scenario (TEST-NET-2)


def _ingest(page, server, title):
    """POST one generic alert from ADDRESS with an ingest key, as a log shipper would."""
    raw = server.manage("shell", "-c", "from threats import apikeys; print(apikeys.issue('pivot test', ['ingest'])[1])")
    alert = {"title": title, "occurred_at": "2026-12-07T06:00:00Z", "customer": "retailmax", "severity": "medium",
             "observables": {"src_ip": ADDRESS, "user": "pivot.user"}}
    answer = page.request.post(f"{server.base_url}/api/ingest/generic", data=json.dumps([alert]),
                               headers={"X-API-Key": raw.split()[-1], "Content-Type": "application/json"})
    assert answer.status == 202, answer.text()
    return answer.json()["items"][0]["id"]


def test_an_address_on_a_threat_leads_to_every_threat_with_it_live(browsers, server):
    page = browsers.page(path="/threats/")
    first = _ingest(page, server, "Pivot test: first alert from the address")
    page.goto(f"{server.base_url}/threats/{first}/")
    wait_connected(page)

    page.click(f'a.pivot:has-text("{ADDRESS}")')
    page.wait_for_url(f"**/threats/?ip={ADDRESS}")
    wait_connected(page)
    expect(page.locator(".pivot-chip")).to_contain_text(f"ip {ADDRESS}")
    expect(page.locator(f'#rows tr.threat-row[data-id="{first}"]')).to_be_visible()
    assert page.locator("#rows tr.threat-row").count() == 1  # only the threat with the address

    second = _ingest(page, server, "Pivot test: second alert from the address")  # arrives while the list is open
    expect(page.locator(f'#rows tr.threat-row[data-id="{second}"]')).to_be_visible()
    listed = {item["id"] for item in api_get(page, f"/api/threats?ip={ADDRESS}&limit=100")["items"]}
    shown = set(page.locator("#rows tr.threat-row").evaluate_all("els => els.map(e => e.dataset.id)"))
    assert shown == listed == {first, second}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "pivot.png"))

    page.click(".pivot-chip a")  # the chip's ×: the pivot is gone, the other filters stay
    page.wait_for_url(f"{server.base_url}/threats/")
    page.fill("input[name=q]", ADDRESS)
    page.click("#filters button[type=submit]")
    wait_connected(page)
    shown = set(page.locator("#rows tr.threat-row").evaluate_all("els => els.map(e => e.dataset.id)"))
    assert shown == {first, second}
