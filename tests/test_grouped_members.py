"""A grouped member shows its group head's verdict, marked as inherited, links to the head and the
group, and filters with it (issue 23 item 1). Real ingestion builds the group: tests/fixtures'
scanner (203.0.113.66) sweeping five of Acme's hosts is one group, its head analysed once. The
head's row is the one truth: its severity is read, never copied into the members."""

import json
from pathlib import Path

import pytest
from django.test import TestCase

from tests import factories
from threats import ingest
from threats.choices import AnalysisStatus, Severity
from threats.models import Threat, ThreatGroup
from threats.serializers import threat_summary

pytestmark = pytest.mark.django_db
SCAN = Path(__file__).parent / "fixtures" / "alerts" / "suricata_scan.ndjson"
SCANNER = "203.0.113.66"


@pytest.fixture
def scan(settings, alice):
    """The scanner's group with its head made CRITICAL 99 (as an analysis could have decided)."""
    acme = factories.make_customer(name="Acme Corp", slug="acme-corp")
    factories.make_customer(name="Globex", slug="globex")
    settings.INGEST_HOST_CUSTOMERS = "sensor-acme-*=acme-corp,sensor-globex-*=globex"
    with TestCase.captureOnCommitCallbacks(execute=True):
        ingest.ingest("suricata", ingest.decode_body(SCAN.read_bytes(), "application/x-ndjson"), actor_label="test")
    group = ThreatGroup.objects.get(customer=acme, key=f"scan|{SCANNER}")
    Threat.objects.filter(pk=group.head_id).update(severity=Severity.CRITICAL, risk_score=99)
    members = Threat.objects.filter(group=group, analysis_status=AnalysisStatus.GROUPED)
    assert members.count() == 14
    return group, members.first()


def items(client, **params):
    response = client.get("/api/threats", {"limit": 100, **params})
    assert response.status_code == 200, response.content
    return {item["id"]: item for item in response.json()["items"]}


def test_a_member_carries_its_heads_verdict_marked_as_inherited(alice_client, scan):
    group, member = scan
    item = items(alice_client)[str(member.pk)]
    assert (item["severity"], item["risk_score"], item["analysis_status"]) == (None, None, "grouped")
    assert item["group_id"] == group.pk
    assert item["group_head"] == {"id": str(group.head_id), "severity": "CRITICAL", "risk_score": 99,
                                  "analysis_status": "completed"}
    assert items(alice_client)[str(group.head_id)]["group_head"] is None  # the head's verdict is its own
    detail = alice_client.get(f"/api/threats/{member.pk}").json()
    assert detail["group_head"]["severity"] == "CRITICAL" and detail["group_id"] == group.pk


def test_the_list_item_equals_the_event_summary_for_a_member(alice_client, scan):
    _group, member = scan
    member = Threat.objects.select_related("customer", "assignee", "group__head").get(pk=member.pk)
    listed, summary = items(alice_client)[str(member.pk)], json.loads(json.dumps(threat_summary(member), default=str))
    times = ("occurred_at", "received_at")  # the same moments, written by two encoders
    assert {k: v for k, v in listed.items() if k not in times} == {k: v for k, v in summary.items() if k not in times}


def test_the_heads_row_stays_the_truth(alice_client, scan):
    group, member = scan
    Threat.objects.filter(pk=group.head_id).update(severity=Severity.LOW, risk_score=12)
    assert items(alice_client)[str(member.pk)]["group_head"]["severity"] == "LOW"
    assert Threat.objects.get(pk=member.pk).severity == ""  # nothing was copied into the member


@pytest.mark.parametrize("severity", ["CRITICAL", "critical"])
def test_severity_filter_finds_the_members_of_a_group_with_that_verdict(alice_client, scan, severity):
    group, member = scan
    found = items(alice_client, severity=severity)
    assert str(member.pk) in found and str(group.head_id) in found
    assert set(found) == {str(pk) for pk in Threat.objects.filter(group=group).values_list("pk", flat=True)}


def test_severity_filter_leaves_out_members_of_a_group_with_another_verdict(alice_client, scan):
    _group, member = scan
    assert str(member.pk) not in items(alice_client, severity="LOW")


def test_the_group_filter_lists_the_head_and_its_members(alice_client, scan):
    group, _member = scan
    found = items(alice_client, group=group.pk)
    assert len(found) == 15 and str(group.head_id) in found


def test_the_member_page_shows_the_inherited_verdict_and_links_to_head_and_group(alice_client, scan):
    group, member = scan
    html = alice_client.get(f"/threats/{member.pk}/").content.decode()
    assert '<span class="sev sev-critical">CRITICAL</span> <span class="inherited"' in html
    assert "99/100 · the group head's verdict" in html
    assert f'id="group-head" href="/threats/{group.head_id}/"' in html
    assert f'href="/threats/?group={group.pk}"' in html and "15 alerts" in html
    assert "Not analysed on its own" in html and "Waiting for this agent&#x27;s report" not in html
    assert 'id="sla-inherited"' in html
    assert f'data-head-id="{group.head_id}"' in html


def test_the_heads_page_says_it_is_the_head(alice_client, scan):
    group, _member = scan
    html = alice_client.get(f"/threats/{group.head_id}/").content.decode()
    assert "this alert is its head" in html and 'class="inherited"' not in html


def test_the_list_page_filters_and_marks_members(alice_client, scan):
    group, member = scan
    html = alice_client.get("/threats/", {"severity": "critical", "group": group.pk}).content.decode()
    row = html[html.index(f'data-id="{member.pk}"'):]
    row = row[:row.index("</tr>")]
    assert '<span class="sev sev-critical">CRITICAL</span> <span class="inherited"' in row
    assert '<td class="num">99</td>' in row
    assert "alert group #" in html
