"""Suppressions in a real browser (issue 21 item 2): from a closed false positive's page an analyst
proposes "Suppress similar…", the preview's numbers by severity equal a direct count in the
database, the true positive it would hide is listed with a warning and needs the second
confirmation, and the saved suppression is on the suppressions page (and revoked from there)."""

import json
import uuid

from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, api_get
from tests.integration.server import USERNAME

RULE = f"rule:browser-{uuid.uuid4().hex[:8]}"
TP_TITLE = '<img src=x onerror="window.__xss=1"> exfiltration that was real'
# (title, severity, disposition, src_ip, days ago): the first is the closed false positive.
THREATS = [
    ("Scanner probe we closed", "LOW", "false_positive", "203.0.113.7", 1),
    ("Scanner probe 2", "HIGH", "", "203.0.113.7", 2),
    ("Scanner probe 3", "HIGH", "", "203.0.113.7", 3),
    ("Scanner probe 4", "", "", "203.0.113.7", 4),
    (TP_TITLE, "CRITICAL", "true_positive", "203.0.113.7", 5),
    ("Another source", "MEDIUM", "", "198.51.100.9", 1),
    ("Too old to count", "HIGH", "", "203.0.113.7", 45),
]

CREATE = """
import json
from datetime import timedelta
from django.utils import timezone
from threats.models import Customer, Threat
made = []
for title, severity, disposition, ip, days in json.loads({rows!r}):
    closed = dict(status="closed", closed_at=timezone.now(), closed_by_kind="human",
                  disposition_reason="Our own scanner") if disposition else {{}}
    made.append(str(Threat.objects.create(
        title=title, customer=Customer.objects.get(slug="retailmax"), threat_type="bot_traffic", severity=severity,
        analysis_status="completed", occurred_at=timezone.now(), rule={rule!r}, disposition=disposition,
        observables={{"src_ip": ip, "host": "scan-01"}}, received_at=timezone.now() - timedelta(days=days),
        **closed).pk))
print(json.dumps(made))
"""

COUNT = """
import json
from datetime import timedelta
from django.utils import timezone
from threats.models import Threat
found = Threat.objects.filter(customer__slug="retailmax", rule={rule!r}, observables__src_ip="203.0.113.7",
                              observables__host="scan-01", received_at__gte=timezone.now() - timedelta(days=30))
print(json.dumps({{s or "UNRATED": found.filter(severity=s).count() for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "")}}))
"""


def run(server, script):
    return json.loads(server.manage("shell", "-c", script).strip().splitlines()[-1])


def test_a_suppression_is_proposed_previewed_confirmed_and_saved_from_a_closed_false_positive(browsers, server):
    made = run(server, CREATE.format(rows=json.dumps(THREATS), rule=RULE))
    page = browsers.page(path=f"/threats/{made[0]}/")
    form = page.locator("#suppress-form")
    expect(form).to_be_visible()
    expect(form.locator('input[name="entity"][value="src_ip"]')).to_be_checked()
    expect(form.locator('input[name="entity"][value="host"]')).to_be_checked()
    expect(form.locator('textarea[name="reason"]')).to_have_value("Our own scanner")

    page.click("#suppress-preview")
    expect(page.locator("#suppress-result")).to_be_visible()
    direct = run(server, COUNT.format(rule=RULE))
    shown = {level: int(page.locator(f'#suppress-by-severity td[data-severity="{level}"]').inner_text())
             for level in direct}
    assert shown == direct == {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 0, "LOW": 1, "UNRATED": 1}
    expect(page.locator("#suppress-total")).to_have_attribute("data-total", str(sum(direct.values())))

    warning = page.locator("#suppress-tp")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("it would have hidden 1 threat closed as true positive")
    expect(warning.locator("li a")).to_have_text(TP_TITLE)  # as text, never markup
    expect(warning.locator("li a")).to_have_attribute("href", f"/threats/{made[4]}/")
    assert page.evaluate("window.__xss") is None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#suppress").screenshot(path=str(SCREENSHOTS / "suppression-preview.png"))

    page.click("#suppress-save")  # not confirmed yet: refused on the page, nothing saved
    expect(page.locator("#suppress-message")).to_have_text("Confirm the true positives it would hide first.")
    assert [s for s in api_get(page, "/api/suppressions")["items"] if s["rule"] == RULE] == []

    page.check("#suppress-confirm")
    with page.expect_response(lambda r: r.url.endswith("/api/suppressions") and r.request.method == "POST") as answer:
        page.click("#suppress-save")
    assert answer.value.status == 201
    saved = answer.value.json()
    expect(page.locator("#suppress-message")).to_contain_text(f"Saved suppression #{saved['id']}")
    assert (saved["src_ip"], saved["host"], saved["created_from"], saved["state"]) == (
        "203.0.113.7", "scan-01", made[0], "active")

    listing = browsers.page(path="/suppressions/")
    row = listing.locator(f'#suppression-rows tr[data-id="{saved["id"]}"]')
    expect(row).to_contain_text(RULE)
    expect(row.locator("td.state")).to_have_text("active")
    listing.screenshot(path=str(SCREENSHOTS / "suppressions.png"))
    row.locator("[data-revoke]").click()
    expect(row.locator("td.state")).to_have_text("revoked by " + USERNAME)
    assert api_get(listing, f"/api/suppressions/{saved['id']}")["state"] == "revoked"


def test_changing_what_it_matches_hides_the_old_numbers_until_previewed_again(browsers, server):
    made = run(server, CREATE.format(rows=json.dumps(THREATS[:2]), rule=RULE + "-b"))
    page = browsers.page(path=f"/threats/{made[0]}/")
    page.click("#suppress-preview")
    expect(page.locator("#suppress-total")).to_have_attribute("data-total", "2")
    page.uncheck('#suppress-form input[name="entity"][value="host"]')
    expect(page.locator("#suppress-result")).to_be_hidden()
    page.click("#suppress-preview")
    expect(page.locator("#suppress-total")).to_have_attribute("data-total", "2")
    expect(page.locator("#suppress-tp")).to_be_hidden()


def test_closing_a_threat_as_false_positive_brings_the_form_in_without_a_reload(browsers, server):
    made = run(server, CREATE.format(rows=json.dumps([("Open probe", "LOW", "", "203.0.113.7", 1),
                                                      ("Older probe", "HIGH", "", "203.0.113.7", 2)]),
                                     rule=RULE + "-c"))
    page = browsers.page(path=f"/threats/{made[0]}/")
    expect(page.locator("#suppress-form")).to_have_count(0)
    page.select_option('#close-form select[name="disposition"]', "false_positive")
    page.fill('#close-form textarea[name="reason"]', "Our own scanner again")
    page.click('#close-form button[type="submit"]')
    expect(page.locator("#suppress-form")).to_be_visible()
    page.click("#suppress-preview")
    expect(page.locator("#suppress-total")).to_have_attribute("data-total", "2")
    expect(page.locator('#suppress-by-severity td[data-severity="HIGH"]')).to_have_text("1")
