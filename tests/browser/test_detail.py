"""The threat detail page in a real browser: the analysis arriving while the page is open, and the
evidence links that take an analyst to the historical threats an agent cited."""

from playwright.sync_api import expect

from tests.browser.conftest import api_get, api_send, wait_connected

CREATE_QUEUED = """
from unittest import mock
from django.utils import timezone
from threats import services
customer = services.customer_for_name("Global Finance")
with mock.patch("agents.tasks._submit"):  # stored and queued; nobody analyses it yet
    threat = services.do_create_threat(customer=customer, threat_type="geo_anomaly", title="Login from two continents",
        occurred_at=timezone.now(), actor=services.SYSTEM,
        observables={"src_ip": "203.0.113.9", "user": "j.doe", "country": "NG"})
print(threat.pk)
"""
ANALYSE = "from agents import coordinator; coordinator.analyze({id!r})"


def test_the_analysis_appears_on_an_open_detail_page_without_a_reload(browsers, server):
    threat_id = server.manage("shell", "-c", CREATE_QUEUED).strip().splitlines()[-1]
    page = browsers.page(path=f"/threats/{threat_id}/")
    expect(page.locator("#analysis-status")).to_have_text("Queued")
    expect(page.locator(".agent .agent-state")).to_have_count(5)
    for state in page.locator(".agent .agent-state").all_inner_texts():
        assert state == "queued…"
    page.evaluate("() => { window.__sameDocument = true; }")

    server.manage("shell", "-c", ANALYSE.format(id=threat_id))  # another process: no push of its own
    api_send(page, "POST", "/api/threats/trigger", {})  # the next live event brings the page up to date

    expect(page.locator("#analysis-status")).to_have_text("Completed")
    expect(page.locator(".agent .agent-state.state-succeeded")).to_have_count(5)
    stored = api_get(page, f"/api/threats/{threat_id}")
    expect(page.locator("#facts h1 .sev")).to_have_text(stored["severity"])
    expect(page.locator("#facts")).to_contain_text(f"{stored['risk_score']}/100")
    expect(page.locator("#sla-clock")).to_contain_text("left to acknowledge")
    expect(page.locator("#history li")).to_have_count(2)
    assert page.evaluate("() => window.__sameDocument") is True


def test_an_agents_evidence_links_to_the_historical_threat_it_cited(browsers, server):
    page = browsers.page()
    earlier = api_send(page, "POST", "/api/threats/trigger", {"scenario": "bot_attack"})["data"]["id"]
    closed = api_send(page, "PATCH", f"/api/threats/{earlier}",
                      {"status": "closed", "disposition": "false_positive", "reason": "Customer's load test"})
    assert closed["status"] == 200
    later = api_send(page, "POST", "/api/threats/trigger", {"scenario": "bot_attack"})["data"]["id"]
    page.goto(f"{server.base_url}/threats/{later}/")
    wait_connected(page)
    expect(page.locator("#analysis-status")).to_have_text("Completed")

    link = page.locator(f'.agent[data-kind="historical"] a.ref[href="/threats/{earlier}/"]').first
    expect(link).to_contain_text("(false positive)")
    link.click()

    page.wait_for_url(f"**/threats/{earlier}/")
    expect(page.locator('#triage-summary [data-field="disposition"]')).to_have_text("False positive")
