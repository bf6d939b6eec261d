"""Two analysts close one threat at once (issue 23 item 3): the second save is refused, the losing
page says in words who changed what next to its form and shows their change; sending again is
a deliberate overwrite. The stored state is read back through the API."""

from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, TEAMMATE, api_get
from tests.browser.test_triage import analysed_threat, open_detail
from tests.integration.server import USERNAME


def close(page, disposition, reason):
    page.select_option('#close-form select[name="disposition"]', disposition)
    page.fill('#close-form textarea[name="reason"]', reason)
    page.click('#close-form button[type="submit"]')


def test_the_second_analyst_closing_a_threat_is_told_and_shown_the_first_ones_change(browsers, server):
    alice = browsers.page()
    threat_id = analysed_threat(alice, 'button[data-threat-type="geo_anomaly"]')
    open_detail(alice, server, threat_id)
    bob = browsers.page(TEAMMATE, path=f"/threats/{threat_id}/")
    version = api_get(alice, f"/api/threats/{threat_id}")["version"]

    close(alice, "true_positive", "Impossible travel confirmed with the user")
    expect(alice.locator("#close-message")).to_have_text("Saved.")
    expect(alice.locator("#close-message")).to_have_class("form-result ok")
    close(bob, "false_positive", "VPN exit node")

    message = bob.locator("#close-message")
    expect(message).to_contain_text(f"Not saved: {USERNAME} changed it (status: New → Closed; "
                                    "disposition: – → True positive; reason: Impossible travel confirmed with the user)")
    expect(message).to_have_class("form-result error")
    expect(bob.locator('#triage-summary [data-field="disposition"]')).to_have_text("True positive")
    expect(bob.locator('#close-form textarea[name="reason"]')).to_have_value("VPN exit node")  # bob's words kept
    stored = api_get(bob, f"/api/threats/{threat_id}")
    assert (stored["disposition"], stored["disposition_reason"], stored["version"]) == (
        "true_positive", "Impossible travel confirmed with the user", version + 1)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    bob.locator("#triage").screenshot(path=str(SCREENSHOTS / "triage-conflict.png"))

    bob.click('#close-form button[type="submit"]')  # having seen alice's verdict, bob insists

    expect(message).to_have_text("Saved.")
    expect(alice.locator('#triage-summary [data-field="disposition"]')).to_have_text("False positive")
    stored = api_get(alice, f"/api/threats/{threat_id}")
    assert (stored["disposition"], stored["version"]) == ("false_positive", version + 2)
