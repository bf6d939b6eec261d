"""Triage in a real browser: one analyst acknowledges, closes with a disposition, writes notes and
runs bulk actions; a second analyst, in another browser context, sees every change arrive live.
The database state is read back through the API."""

from playwright.sync_api import expect

from tests.browser.conftest import (
    SCREENSHOTS,
    TEAMMATE,
    api_get,
    api_send,
    metric,
    row,
    settle,
    trigger_from_button,
    wait_connected,
)
from tests.integration.server import USERNAME

XSS_NOTE = '<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> looks like a scanner'


def analysed_threat(page, selector):
    threat_id = trigger_from_button(page, selector)
    expect(row(page, threat_id).locator("td").last).to_have_text("Completed")
    return threat_id


def open_detail(page, server, threat_id):
    page.goto(f"{server.base_url}/threats/{threat_id}/")
    wait_connected(page)


def test_closing_with_a_disposition_reaches_another_analysts_screens_live(browsers, server):
    alice = browsers.page()
    threat_id = analysed_threat(alice, 'button[data-scenario="critical_threat"]')
    bob_detail = browsers.page(TEAMMATE, path=f"/threats/{threat_id}/")
    bob_overview = browsers.page(TEAMMATE)
    open_detail(alice, server, threat_id)

    alice.click('[data-action="acknowledge"]')

    status = bob_detail.locator('#triage-summary [data-field="status"]')
    expect(status).to_have_text("Acknowledged")
    expect(bob_detail.locator('#triage-summary [data-field="assignee"]')).to_have_text(f"assigned to {USERNAME}")
    expect(bob_detail.locator("#sla-clock")).to_contain_text("Met: acknowledged after")
    expect(bob_detail.locator('[data-action="acknowledge"]')).to_be_disabled()
    expect(row(bob_overview, threat_id).locator("td").nth(6)).to_have_text("Acknowledged review")
    alice.set_viewport_size({"width": 1440, "height": 1400})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    alice.screenshot(path=str(SCREENSHOTS / "detail.png"))

    alice.select_option('#close-form select[name="disposition"]', "true_positive")
    alice.fill('#close-form textarea[name="reason"]', "   ")
    alice.click('#close-form button[type="submit"]')
    expect(alice.locator("#close-message")).to_have_text("Closing a threat needs a reason.")
    assert api_get(alice, f"/api/threats/{threat_id}")["status"] == "acknowledged"

    alice.fill('#close-form textarea[name="reason"]', "Contained: host isolated, C2 blocked")
    alice.click('#close-form button[type="submit"]')

    expect(status).to_have_text("Closed")
    expect(bob_detail.locator('#triage-summary [data-field="disposition"]')).to_have_text("True positive")
    sentence = "status: Acknowledged → Closed; disposition: – → True positive; reason: Contained: host isolated, C2 blocked"
    expect(bob_detail.locator("#history li").last).to_contain_text(sentence)
    expect(bob_overview.locator("#activity li").first).to_contain_text(sentence)
    expect(row(bob_overview, threat_id).locator("td").nth(6)).to_have_text("Closed review")
    stored = api_get(alice, f"/api/threats/{threat_id}")
    assert (stored["status"], stored["disposition"], stored["disposition_reason"], stored["assignee"]) == (
        "closed", "true_positive", "Contained: host isolated, C2 blocked", USERNAME)
    assert stored["acknowledged_at"] and stored["closed_at"] and stored["closed_by_kind"] == "human"
    events = [e for e in api_get(alice, "/api/events?after=0&limit=1000")["events"] if e["threat"]["id"] == threat_id]
    assert [(e["type"], e["actor"]) for e in events] == [
        ("threat.created", USERNAME), ("threat.analyzed", "coordinator"),
        ("threat.updated", USERNAME), ("threat.updated", USERNAME)]
    settle(bob_overview)
    fresh = browsers.page(TEAMMATE)
    for key in ("mtta", "mttr", "within_sla", "open:CRITICAL", "requires_review", "breached_open"):
        assert metric(bob_overview, key) == metric(fresh, key), key


def test_a_note_appears_on_another_analysts_screen_as_text(browsers, server):
    alice = browsers.page()
    threat_id = analysed_threat(alice, 'button[data-threat-type="proxy_network"]')
    bob = browsers.page(TEAMMATE, path=f"/threats/{threat_id}/")
    open_detail(alice, server, threat_id)

    alice.fill("#note-body", XSS_NOTE)
    alice.click('#note-form button[type="submit"]')

    note = bob.locator("#notes-list li").last
    expect(note).to_contain_text(XSS_NOTE)
    expect(note.locator("strong")).to_have_text(USERNAME)
    expect(bob.locator("#history li").last).to_contain_text("added a note")
    assert bob.locator("#notes-list img").count() == 0
    assert bob.evaluate("() => window.__xss") is None
    expect(alice.locator("#note-body")).to_have_value("")
    assert api_get(bob, f"/api/threats/{threat_id}")["notes"][-1]["body"] == XSS_NOTE


def test_bulk_actions_change_every_selected_threat_and_others_see_it(browsers, server):
    alice = browsers.page()
    ids = [analysed_threat(alice, 'button[data-threat-type="bot_traffic"]') for _ in range(3)]
    alice.goto(f"{server.base_url}/threats/")
    wait_connected(alice)
    bob = browsers.page(TEAMMATE, path="/threats/")
    for threat_id in ids:
        row(alice, threat_id, "#rows").locator("input.select").check()
    expect(alice.locator("#bulk-count")).to_have_text("3 selected")

    alice.click('[data-bulk="assign-me"]')
    expect(alice.locator("#bulk-status-line")).to_have_text("Updated 3.")
    for threat_id in ids:
        expect(row(bob, threat_id, "#rows").locator("td").nth(8)).to_have_text(USERNAME)

    alice.click('[data-bulk="close"]')  # no disposition yet: refused for all, nothing changes
    expect(alice.locator("#bulk-status-line")).to_have_text("Refused: Closing a threat needs a disposition.")
    alice.select_option("#bulk-disposition", "false_positive")
    alice.fill("#bulk-reason", "Load test by the customer")
    alice.click('[data-bulk="close"]')

    expect(alice.locator("#bulk-status-line")).to_have_text("Updated 3.")
    for threat_id in ids:
        expect(row(bob, threat_id, "#rows").locator("td").nth(7)).to_contain_text("Closed")
        expect(row(alice, threat_id, "#rows").locator("input.select")).to_be_checked()  # selection survives updates
        stored = api_get(bob, f"/api/threats/{threat_id}")
        assert (stored["status"], stored["disposition"], stored["assignee"]) == ("closed", "false_positive", USERNAME)


def test_a_filtered_list_takes_in_only_new_threats_that_match(browsers, server):
    page = browsers.page(path="/threats/?threat_type=geo_anomaly")

    other = api_send(page, "POST", "/api/threats/trigger", {"threat_type": "bot_traffic"})["data"]["id"]
    wanted = api_send(page, "POST", "/api/threats/trigger", {"threat_type": "geo_anomaly"})["data"]["id"]

    expect(row(page, wanted, "#rows")).to_be_visible()
    expect(page.locator("#rows tr.threat-row").first).to_have_attribute("data-id", wanted)
    assert row(page, other, "#rows").count() == 0
    for type_cell in page.locator("#rows tr.threat-row td:nth-child(4)").all_inner_texts():
        assert type_cell == "Geo anomaly"

    page.select_option('#filters select[name="severity"]', "HIGH")
    page.click('#filters button[type="submit"]')
    page.wait_for_url("**severity=HIGH**")
    for severity in page.locator("#rows tr.threat-row .sev").all_inner_texts():
        assert severity == "HIGH"
