"""The Django admin at 1440 px in a real browser (issue 23 item 6): every column of the threat list is
visible beside the filter sidebar, and the change page shows the verdict as tables. Saves the
change page to docs/screenshots/admin-threat.png."""

import time

from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, TIMEOUT_MS, api_get, api_send

CHANGELIST = "/admin/threats/threat/"


def test_the_threat_list_columns_are_all_visible_beside_the_filters_at_1440_px(browsers, server):
    page = browsers.page()
    api_send(page, "POST", "/api/threats/trigger", {"scenario": "critical_threat"})
    page.goto(server.base_url + CHANGELIST)

    expect(page.locator("#result_list tbody tr").first).to_be_visible()
    layout = page.evaluate("""() => {
        const results = document.querySelector('#changelist .results');
        const filters = document.querySelector('#changelist-filter').getBoundingClientRect();
        const headers = [...document.querySelectorAll('#result_list thead th')].map(th => th.getBoundingClientRect());
        return {scrolls: results.scrollWidth > results.clientWidth, filtersLeft: filters.left,
                rightmost: Math.max(...headers.map(r => r.right)), page: document.documentElement.scrollWidth,
                viewport: window.innerWidth};
    }""")
    assert not layout["scrolls"], layout  # no column scrolled out of sight
    assert layout["rightmost"] <= layout["filtersLeft"], layout  # none under the sidebar
    assert layout["page"] <= layout["viewport"], layout


def test_the_threat_change_page_shows_the_verdict_as_tables(browsers, server):
    page = browsers.page()
    threat_id = api_send(page, "POST", "/api/threats/trigger", {"scenario": "critical_threat"})["data"]["id"]
    _wait_until_analysed(page, threat_id)
    page.goto(f"{server.base_url}{CHANGELIST}{threat_id}/change/")

    for field in ("risk_factors", "mitre", "response_plan", "timeline"):
        expect(page.locator(f".field-{field} table.json-table").first).to_be_visible()
    expect(page.locator(".field-mitre")).to_contain_text("T1")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # From the triage form down through the verdict, ATT&CK and the response plan.
    end = page.evaluate("() => document.querySelector('.field-response_plan').getBoundingClientRect().bottom")
    page.screenshot(path=str(SCREENSHOTS / "admin-threat.png"), full_page=True,
                    clip={"x": 0, "y": 0, "width": 1440, "height": end + 20})


def _wait_until_analysed(page, threat_id):
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while api_get(page, f"/api/threats/{threat_id}")["analysis_status"] != "completed":
        assert time.monotonic() < deadline, "the analysis did not finish"
        time.sleep(0.1)
