"""A grouped member in a real browser (issue 23 item 1): imported alerts that group (a scanner
sweeping hosts), then the member's page shows its group head's verdict marked as inherited, leads
to the head and to the group's list, and the severity filter finds it. Its own server: the import
adds alerts the other browser tests do not expect."""

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, api_get, browsers_for, start_server, stop_server, wait_connected

SCAN = Path(__file__).resolve().parents[1] / "fixtures" / "alerts" / "suricata_scan.ndjson"


@pytest.fixture(scope="module")
def grouped_server(request, tmp_path_factory):
    running, failed_before = start_server(request)
    alerts = tmp_path_factory.mktemp("alerts") / "scan.ndjson"
    shutil.copy(SCAN, alerts)
    running.manage("import_alerts", str(alerts), "--format", "suricata", "--customer", "retailmax")
    try:
        yield running
    finally:
        stop_server(request, running, failed_before)


def test_a_member_shows_its_heads_verdict_and_leads_to_the_head_and_the_group(chromium, grouped_server):
    with browsers_for(chromium, grouped_server) as browsers:
        page = browsers.page()
        items = api_get(page, "/api/threats?limit=100")["items"]
        member = next(i for i in items if i["group_head"] and i["analysis_status"] == "grouped")
        head_id = member["group_head"]["id"]
        page.goto(f"{grouped_server.base_url}/threats/{member['id']}/")
        wait_connected(page)
        page.wait_for_function(  # the head's analysis runs in the server's own thread after the import
            "id => fetch('/api/threats/' + id).then(r => r.json()).then(t => t.analysis_status === 'completed')",
            arg=head_id)
        head = api_get(page, f"/api/threats/{head_id}")
        page.reload()

        expect(page.locator("#facts h1 .sev")).to_have_text(head["severity"])
        expect(page.locator("#facts h1 .inherited")).to_have_text("inherited")
        expect(page.locator("#inherited-analysis")).to_contain_text("Not analysed on its own")
        assert page.locator("article.agent").count() == 0  # no "waiting for this agent" cards
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#facts").screenshot(path=str(SCREENSHOTS / "grouped-member.png"))

        page.click("#group-head")
        page.wait_for_url(f"**/threats/{head_id}/")
        expect(page.locator("#group")).to_contain_text("this alert is its head")
        page.go_back()

        page.click("#group a")
        page.wait_for_url("**/threats/?group=*")
        wait_connected(page)
        rows = page.locator("#rows tr.threat-row")
        expect(rows.first).to_be_visible()
        ids = rows.evaluate_all("els => els.map(e => e.dataset.id)")
        assert member["id"] in ids and head_id in ids
        marked = page.locator("#rows tr.threat-row .inherited").count()
        assert marked == len(ids) - 1  # every member, not the head

        page.goto(f"{grouped_server.base_url}/threats/?severity={head['severity'].lower()}")
        wait_connected(page)
        expect(page.locator(f'#rows tr.threat-row[data-id="{member["id"]}"] .inherited')).to_have_text("group")
