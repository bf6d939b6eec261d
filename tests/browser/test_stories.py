"""Attack stories in a real browser (issue 21 item 3, docs/stories.md): three alerts on one host,
stored through the same service that stores the agents' verdicts, reach initial access, execution and
exfiltration; the last alert's detail page shows its host's story as a timeline with the tactic chips
in ATT&CK order and the flag badge; the story page and the stories list (from the nav) show it too.
An alert title carrying markup stays text."""

import json

from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, api_get, api_send

HOST = "web-07.shop.example"
XSS_TITLE = '<img src=x onerror="window.__xss=1"> PowerShell download cradle'
# (title, minutes after the first, tactic id, tactic name, severity)
ALERTS = [
    ("Phishing link opened from a supplier mail", 0, "TA0001", "Initial Access", "MEDIUM"),
    (XSS_TITLE, 12, "TA0002", "Execution", "HIGH"),
    ("4.2 GB uploaded to a file-sharing site", 47, "TA0010", "Exfiltration", "MEDIUM"),
]

ANALYSE = """
import json
from datetime import timedelta
from django.utils import timezone
from threats import services
from threats.models import Customer

class Verdict:
    def __init__(self, severity, tactic_id, tactic_name, call="likely_real_threat"):
        self.fields = {{"severity": severity, "risk_score": 60, "false_positive": {{"recommendation": call}},
                       "mitre": {{"tactics": [{{"id": tactic_id, "name": tactic_name, "techniques": []}}]}}}}
        self.agent_runs = [{{"kind": "priority", "status": "completed"}}]
    def threat_fields(self):
        return self.fields

start = timezone.now() - timedelta(hours=2)
made = []
for title, minutes, tactic_id, tactic_name, severity, *call in json.loads({rows!r}):
    threat = services.do_create_threat(
        customer=Customer.objects.get(slug="retailmax"), threat_type="device_compromise", title=title,
        occurred_at=start + timedelta(minutes=minutes), actor=services.SYSTEM, observables={{"host": "{host}"}})
    services.do_record_analyses([(threat, Verdict(severity, tactic_id, tactic_name, *call))])
    made.append(str(threat.pk))
print(json.dumps(made))
"""


def analysed_alerts(server, alerts=ALERTS, host=HOST):
    script = ANALYSE.format(rows=json.dumps(alerts), host=host)
    return json.loads(server.manage("shell", "-c", script).strip().splitlines()[-1])


def test_three_alerts_on_one_host_read_as_one_flagged_story(browsers, server):
    ids = analysed_alerts(server)
    page = browsers.page(path=f"/threats/{ids[2]}/")
    card = page.locator("section.story").filter(has_text=HOST)
    expect(card.locator(".badge-flagged")).to_be_visible()
    chips = card.locator("ol.kill-chain .tactic-id")
    expect(chips).to_have_text(["TA0001", "TA0002", "TA0010"])
    moments = card.locator("ol.story-timeline li.moment")
    expect(moments).to_have_count(3)
    assert moments.evaluate_all("items => items.map(li => li.dataset.threatId)") == ids
    expect(moments.nth(1)).to_contain_text(XSS_TITLE)  # the markup is shown as text
    assert page.evaluate("window.__xss") is None

    # Each chip links the alert that reached the tactic; the story page tells the same story.
    hrefs = card.locator("ol.kill-chain a.tactic").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs == [f"/threats/{threat_id}/" for threat_id in ids]
    story_id = api_get(page, f"/api/threats/{ids[2]}")["stories"][0]
    story = api_get(page, f"/api/stories/{story_id}")
    assert (story["severity"], story["severity_reason"], story["flagged_threat"]) == ("CRITICAL", "3 tactics", ids[1])
    card.get_by_role("link", name="story page").click()
    page.wait_for_url(f"**/stories/{story_id}/")
    expect(page.locator("ol.kill-chain .tactic-id")).to_have_text(["TA0001", "TA0002", "TA0010"])
    expect(page.locator("ol.story-timeline a")).to_have_count(3)
    assert page.evaluate("window.__xss") is None
    page.screenshot(path=str(SCREENSHOTS / "story.png"), full_page=True)

    # The stories list, from the nav: the story with its badge, the chips in order.
    page.locator("header nav").get_by_role("link", name="Stories", exact=True).click()
    row = page.locator("tr.story-row").filter(has_text=HOST)
    expect(row.locator(".badge-flagged")).to_be_visible()
    expect(row.locator(".tactic")).to_have_text(["Initial Access", "Execution", "Exfiltration"])
    row.get_by_role("link").first.click()
    page.wait_for_url(f"**/stories/{story_id}/")

    # Its alerts in the threat list, for bulk triage: the three, live.
    page.get_by_role("link", name="its alerts in the threat list").click()
    page.wait_for_url(f"**/threats/?story={story_id}")
    expect(page.locator("#rows tr.threat-row")).to_have_count(3)
    assert page.evaluate("window.__xss") is None


def test_confirming_an_alert_the_agents_dismissed_flags_its_story_live(browsers, server):
    """The agents called the second alert a false positive, so the host's story stayed unflagged; an
    analyst closing it as a true positive takes the story to execution: a notice on the open page,
    and the story page drawn before says it changed."""
    host = "pos-12.shop.example"
    ids = analysed_alerts(server, [("Macro document opened", 0, "TA0001", "Initial Access", "MEDIUM"),
                                   ("Script host started from Office", 5, "TA0002", "Execution", "HIGH",
                                    "likely_false_positive")], host)
    page = browsers.page(path=f"/threats/{ids[0]}/")
    story_id = api_get(page, f"/api/threats/{ids[0]}")["stories"][0]
    assert api_get(page, f"/api/stories/{story_id}")["flagged_at"] is None
    page.goto(f"{server.base_url}/stories/{story_id}/")
    page.wait_for_selector("#connection[data-state=connected]")
    expect(page.locator("#story-stale")).to_be_hidden()
    answer = api_send(page, "PATCH", f"/api/threats/{ids[1]}",
                      {"status": "closed", "disposition": "true_positive", "reason": "it ran"})
    assert (answer["status"], answer["data"]["status"]) == (200, "closed")
    notice = page.locator("#notices .notice-story")
    expect(notice).to_contain_text(f"Attack story flagged: HIGH host {host}")
    expect(notice).to_contain_text("Initial Access → Execution")
    expect(page.locator("#story-stale")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "story-flagged-notice.png"))
    notice.get_by_role("link", name="Open story").click()
    page.wait_for_url(f"**/stories/{story_id}/")
    expect(page.locator(".badge-flagged")).to_be_visible()
