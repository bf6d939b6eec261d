"""Export of a threat and a campaign as JSON and Markdown (issue 21 item 4; docs/handoff.md)."""

import pytest
from django.utils import timezone

from tests import factories
from threats import services
from threats.models import Campaign, Threat, UserAccess

HOSTILE = "<script>alert(1)</script> [click](javascript:alert(1)) ![x](http://evil/x.png) # head"


@pytest.fixture
def hostile_threat(customer, alice):
    threat = factories.make_threat(customer=customer, title=HOSTILE,
                                   observables={"src_ip": "192.0.2.10", "user": HOSTILE, "host": "web-01"})
    services.add_note(alice, threat.pk, "first line\n<img src=x onerror=alert(1)>\n](javascript:alert(2))")
    return Threat.objects.get(pk=threat.pk)


def _campaign(customer, *threats):
    now = timezone.now()
    campaign = Campaign.objects.create(customer=customer, key="user:" + HOSTILE[:40], title=HOSTILE[:100],
                                       first_seen=now, last_seen=now, threat_count=len(threats))
    Threat.objects.filter(pk__in=[t.pk for t in threats]).update(campaign=campaign)
    return campaign


def _assert_inert(markdown):
    """No raw HTML and no link or image syntax made of alert text survives."""
    assert "<script" not in markdown and "<img" not in markdown
    assert "](javascript" not in markdown and "](http" not in markdown


def test_a_threat_exports_as_json_with_verdict_triage_raw_and_notes(alice_client, hostile_threat):
    answer = alice_client.get(f"/api/threats/{hostile_threat.pk}/export?format=json")
    assert answer.status_code == 200
    body = answer.json()
    assert body["schema"] == "soc.export/1" and body["kind"] == "threat"
    threat = body["threat"]
    assert threat["id"] == str(hostile_threat.pk) and threat["title"] == HOSTILE
    assert threat["severity"] == hostile_threat.severity and threat["risk_score"] == hostile_threat.risk_score
    assert threat["mitre"]["techniques"][0]["technique_id"] == hostile_threat.mitre["techniques"][0]["technique_id"]
    assert threat["response_plan"] == hostile_threat.response_plan and threat["timeline"]
    assert threat["raw"] == hostile_threat.raw and threat["notes"][0]["author"] == "alice"


def test_json_is_the_default_format(alice_client, threat):
    assert alice_client.get(f"/api/threats/{threat.pk}/export").json()["kind"] == "threat"


def test_the_markdown_summary_names_verdict_severity_risk_techniques_plan_timeline_and_notes(alice_client, hostile_threat):
    answer = alice_client.get(f"/api/threats/{hostile_threat.pk}/export?format=markdown")
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/markdown")
    text = answer.content.decode()
    technique = hostile_threat.mitre["techniques"][0]["technique_id"]
    for expected in ("**Verdict:**", f"**Severity:** {hostile_threat.severity}", f"**Risk:** {hostile_threat.risk_score}/100",
                     "## Review reasons", "## ATT&amp;CK techniques", technique.replace(".", "\\."), "## Observables",
                     "## Response plan", "rate\\_limit", "## Timeline", "Severity decided", "## Analyst notes", "first line"):
        assert expected in text, expected


def test_alert_text_is_escaped_in_markdown(alice_client, hostile_threat):
    text = alice_client.get(f"/api/threats/{hostile_threat.pk}/export?format=markdown").content.decode()
    _assert_inert(text)
    assert "&lt;script&gt;alert\\(1\\)&lt;\\/script&gt;" in text
    assert "\\[click\\]\\(javascript\\:alert\\(1\\)\\)" in text


def test_rendered_markdown_has_no_html_or_javascript_link_from_the_alert(alice_client, hostile_threat, customer):
    markdown_it = pytest.importorskip("markdown_it")
    campaign = _campaign(customer, hostile_threat)
    for url in (f"/api/threats/{hostile_threat.pk}/export?format=markdown",
                f"/api/campaigns/{campaign.pk}/export?format=markdown"):
        html = markdown_it.MarkdownIt("commonmark", {"html": True}).render(alice_client.get(url).content.decode())
        assert "<script" not in html and "<img" not in html and "<a " not in html, url
        assert 'href="javascript' not in html and 'src="http' not in html, url


def test_a_campaign_exports_its_threats_in_both_formats(alice_client, customer):
    first, second = factories.make_threat(customer=customer), factories.make_threat(customer=customer, title="Second")
    campaign = _campaign(customer, first, second)
    body = alice_client.get(f"/api/campaigns/{campaign.pk}/export?format=json").json()
    assert body["kind"] == "campaign" and body["campaign"]["id"] == campaign.pk
    assert [t["id"] for t in body["threats"]] == [str(first.pk), str(second.pk)]
    text = alice_client.get(f"/api/campaigns/{campaign.pk}/export?format=markdown").content.decode()
    assert text.startswith("# Campaign: ") and text.count("## Incident: ") == 2
    assert "attack stories" in text
    _assert_inert(text)


def test_an_unknown_format_is_a_400_naming_it(alice_client, threat):
    answer = alice_client.get(f"/api/threats/{threat.pk}/export?format=pdf")
    assert answer.status_code == 400 and "format" in str(answer.json())


def test_a_scoped_user_gets_404_for_another_customers_threat_and_campaign(client, alice, customer):
    other = factories.make_customer()
    foreign = factories.make_threat(customer=other)
    campaign = _campaign(other, foreign)
    UserAccess.objects.create(user=alice).customers.set([customer])
    client.force_login(alice)
    for url in (f"/api/threats/{foreign.pk}/export", f"/api/threats/{foreign.pk}/export?format=markdown",
                f"/api/campaigns/{campaign.pk}/export", f"/api/campaigns/{campaign.pk}/export?format=markdown"):
        answer = client.get(url)
        assert answer.status_code == 404 and answer.json()["detail"].endswith("not found."), url
    own = factories.make_threat(customer=customer)
    assert client.get(f"/api/threats/{own.pk}/export").status_code == 200


def test_the_outsider_and_anonymous_are_refused(client, charlie_client, threat):
    assert charlie_client.get(f"/api/threats/{threat.pk}/export").status_code == 403
    client.logout()
    assert client.get(f"/api/threats/{threat.pk}/export?format=markdown").status_code == 401


def test_the_export_endpoints_are_in_the_openapi_document(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    assert "/api/threats/{threat_id}/export" in paths and "/api/campaigns/{campaign_id}/export" in paths


def test_the_detail_page_links_the_exports(alice_client, threat):
    page = alice_client.get(f"/threats/{threat.pk}/").content.decode()
    assert f"/api/threats/{threat.pk}/export?format=markdown" in page
    assert f"/api/threats/{threat.pk}/export?format=json" in page
