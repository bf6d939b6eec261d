"""What the dashboard adds to the API: bulk triage, and analytics that a page can keep current from
events alone (sums and counts, SLA by severity and customer, the deadline watch list, an exact seq)."""

import json
from datetime import timedelta
from uuid import uuid4

import pytest
from django.utils import timezone

from tests import factories
from threats import analytics, api, services
from threats.choices import Severity
from threats.models import Threat, ThreatEvent

pytestmark = pytest.mark.django_db


def bulk(client, body):
    return client.post("/api/threats/bulk", json.dumps(body), content_type="application/json")


def made(customer, count, minutes_ago=0, **fields):
    return [factories.make_threat(customer=customer, analyse=False,
                                  received_at=timezone.now() - timedelta(minutes=minutes_ago), **fields)
            for _ in range(count)]


def with_severity(threats, severity):
    Threat.objects.filter(pk__in=[t.pk for t in threats]).update(severity=severity)
    return threats


# --- POST /api/threats/bulk -------------------------------------------------------------------------


def test_it_acknowledges_many_threats_with_one_event_each(alice_client, customer):
    threats = made(customer, 3)
    before = services.latest_seq()  # seq is a global counter, not the row count (PostgreSQL sequences survive rollbacks)

    response = bulk(alice_client, {"ids": [str(t.pk) for t in threats], "status": "acknowledged"})

    assert response.status_code == 200, response.content
    assert sorted(response.json()["updated"]) == sorted(str(t.pk) for t in threats)
    assert response.json()["failed"] == []
    assert set(Threat.objects.values_list("status", flat=True)) == {"acknowledged"}
    assert all(Threat.objects.values_list("acknowledged_at", flat=True))
    events = ThreatEvent.objects.filter(seq__gt=before)
    assert [e.type for e in events] == ["threat.updated"] * 3
    assert {e.actor_label for e in events} == {"alice"}
    assert {e.payload["changes"]["status"]["to"] for e in events} == {"acknowledged"}


def test_it_closes_many_threats_with_a_disposition_and_reason(alice_client, customer):
    threats = made(customer, 2)

    response = bulk(alice_client, {"ids": [str(t.pk) for t in threats], "status": "closed",
                                   "disposition": "false_positive", "reason": "Scanner of the red team"})

    assert response.status_code == 200
    for threat in Threat.objects.all():
        assert (threat.status, threat.disposition, threat.disposition_reason) == (
            "closed", "false_positive", "Scanner of the red team")
        assert threat.closed_at and threat.closed_by_kind == "human" and threat.closed_by.username == "alice"


def test_it_assigns_many_threats_and_unassigns_them(alice_client, bob, customer):
    threats = made(customer, 2)
    ids = [str(t.pk) for t in threats]

    assert bulk(alice_client, {"ids": ids, "assignee": "bob"}).status_code == 200
    assert set(Threat.objects.values_list("assignee__username", flat=True)) == {"bob"}
    assert bulk(alice_client, {"ids": ids, "assignee": None}).status_code == 200
    assert set(Threat.objects.values_list("assignee", flat=True)) == {None}


def test_it_lists_the_threats_it_could_not_change_and_changes_the_rest(alice_client, customer):
    present = made(customer, 1)[0]
    missing = str(uuid4())

    response = bulk(alice_client, {"ids": [missing, str(present.pk), str(present.pk)], "assignee": "nobody-here"})

    assert response.status_code == 200
    body = response.json()
    assert body["updated"] == []
    assert [f["id"] for f in body["failed"]] == [missing, str(present.pk)]  # duplicates are tried once
    assert body["failed"][0]["detail"] == "Threat not found."
    assert body["failed"][1]["field"] == "assignee"


@pytest.mark.parametrize("body, field", [
    ({"status": "closed", "reason": "x"}, "disposition"),
    ({"status": "closed", "disposition": "false_positive"}, "reason"),
    ({"status": "closed", "disposition": "false_positive", "reason": "   "}, "reason"),
    ({"status": "done"}, "status"),
    ({"status": "closed", "disposition": "maybe", "reason": "x"}, "disposition"),
    ({}, "body"),
])
def test_it_refuses_a_bulk_change_that_would_fail_for_every_threat(alice_client, customer, body, field):
    threat = made(customer, 1)[0]

    response = bulk(alice_client, {"ids": [str(threat.pk)], **body})

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert Threat.objects.get(pk=threat.pk).status == "new"


@pytest.mark.parametrize("ids", [[], ["not-a-uuid"], [str(uuid4()) for _ in range(api.BULK_LIMIT + 1)]])
def test_it_validates_the_id_list(alice_client, ids):
    response = bulk(alice_client, {"ids": ids, "status": "acknowledged"})

    assert response.status_code == 422
    assert response.json()["detail"]


def test_it_refuses_bulk_triage_to_the_outsider_and_the_anonymous(client, charlie_client, customer):
    threat = made(customer, 1)[0]
    body = {"ids": [str(threat.pk)], "status": "acknowledged"}

    assert bulk(charlie_client, body).status_code == 403
    client.logout()
    assert bulk(client, body).status_code == 401
    assert Threat.objects.get(pk=threat.pk).status == "new"


# --- GET /api/analytics: what a live dashboard needs ---------------------------------------------------


def test_it_reports_sums_and_counts_for_running_means(alice_client, customer):
    threats = made(customer, 3)
    for threat, ms in zip(threats[:2], (10, 31)):
        Threat.objects.filter(pk=threat.pk).update(processing_ms=ms)

    body = alice_client.get("/api/analytics").json()

    assert body["analyzed_count"] == 2
    assert body["processing_ms_sum"] == 41
    assert body["customer_slugs"] == [customer.slug]


def test_it_reports_mtta_mttr_and_sla_by_severity_and_customer(alice_client, alice, customer):
    other = factories.make_customer(name="Other Co")
    fast, slow = with_severity(made(customer, 2, minutes_ago=120), Severity.HIGH)  # 30 min SLA
    theirs = with_severity(made(other, 1, minutes_ago=120), Severity.LOW)[0]  # 240 min SLA
    for threat, minutes in ((fast, 10), (slow, 50), (theirs, 70)):
        services.triage(alice, threat.pk, status="acknowledged")
        Threat.objects.filter(pk=threat.pk).update(acknowledged_at=threat.received_at + timedelta(minutes=minutes))
    services.triage(alice, fast.pk, status="resolved", disposition="true_positive", reason="Blocked")
    Threat.objects.filter(pk=fast.pk).update(closed_at=fast.received_at + timedelta(minutes=90))

    sla = alice_client.get("/api/analytics").json()["sla"]

    high = sla["by_severity"]["HIGH"]
    assert (high["acknowledged"], high["mtta_seconds"], high["within_sla"]) == (2, 1800.0, 1)
    assert (high["closed"], high["mttr_seconds"]) == (1, 5400.0)
    assert sla["by_severity"]["LOW"]["within_sla"] == 1
    assert sla["by_severity"]["CRITICAL"] == {"acknowledged": 0, "mtta_seconds": None, "closed": 0,
                                              "mttr_seconds": None, "within_sla": 0, "breached_open": 0}
    assert sla["by_customer"][customer.slug]["name"] == customer.name
    assert sla["by_customer"][customer.slug]["mtta_seconds"] == 1800.0
    assert sla["by_customer"]["other-co"]["mtta_seconds"] == 4200.0
    assert (sla["acknowledged"], sla["within_sla"], sla["closed"]) == (3, 2, 1)
    assert sla["minutes"] == {"LOW": 240, "MEDIUM": 60, "HIGH": 30, "CRITICAL": 15}


def test_it_counts_open_unacknowledged_threats_past_their_deadline_as_breached(alice_client, alice, customer):
    late = with_severity(made(customer, 2, minutes_ago=20), Severity.CRITICAL)  # 15 min SLA
    with_severity(made(customer, 1, minutes_ago=20), Severity.HIGH)  # 30 min SLA: not yet
    services.triage(alice, late[1].pk, status="closed", disposition="duplicate", reason="Same as the other")

    body = alice_client.get("/api/analytics").json()

    assert body["sla"]["breached_open"] == 1
    assert body["sla"]["by_severity"]["CRITICAL"]["breached_open"] == 1
    assert body["sla"]["by_customer"][customer.slug]["breached_open"] == 1


def test_it_lists_the_coming_deadlines_soonest_first(alice_client, customer):
    high = with_severity(made(customer, 1, minutes_ago=20), Severity.HIGH)[0]  # due in 10 min
    critical = with_severity(made(customer, 1, minutes_ago=10), Severity.CRITICAL)[0]  # due in 5 min
    with_severity(made(customer, 1, minutes_ago=40), Severity.HIGH)  # already breached: not watched
    made(customer, 1)  # not analysed: no deadline yet

    sla = alice_client.get("/api/analytics").json()["sla"]

    assert [(w[0], w[1], w[2]) for w in sla["watch"]] == [
        (str(critical.pk), "CRITICAL", customer.slug), (str(high.pk), "HIGH", customer.slug)]
    assert sla["watch"][0][3] == (critical.received_at + timedelta(minutes=15)).isoformat()
    assert sla["watch_until"] is None


def test_it_cuts_the_watch_list_at_a_horizon_when_there_are_too_many(alice_client, customer, monkeypatch):
    monkeypatch.setattr(analytics, "SLA_WATCH_LIMIT", 2)
    threats = [with_severity(made(customer, 1, minutes_ago=m), Severity.HIGH)[0] for m in (5, 6, 7)]

    sla = alice_client.get("/api/analytics").json()["sla"]

    assert [w[0] for w in sla["watch"]] == [str(threats[2].pk), str(threats[1].pk)]
    assert sla["watch_until"] == (threats[1].received_at + timedelta(minutes=30)).isoformat()


@pytest.mark.parametrize("watch_limit", [2, 500])
def test_the_sla_figures_are_the_same_read_in_one_query_or_per_severity(alice, alice_client, customer, monkeypatch,
                                                                         watch_limit):
    """Pending threats inside their deadline are usually read in one query; past
    SLA_PENDING_IN_ONE_QUERY they are counted in the database and listed per severity. Both give
    the same breaches, watch list and horizon."""
    monkeypatch.setattr(analytics, "SLA_WATCH_LIMIT", watch_limit)
    other = factories.make_customer()
    for minutes, severity, owner in [(5, Severity.HIGH, customer), (6, Severity.HIGH, other),
                                     (7, Severity.HIGH, customer), (20, Severity.CRITICAL, customer),
                                     (10, Severity.CRITICAL, other), (50, Severity.MEDIUM, customer),
                                     (200, Severity.LOW, other), (300, Severity.LOW, customer)]:
        with_severity(made(owner, 1, minutes_ago=minutes), severity)
    acknowledged = with_severity(made(customer, 1, minutes_ago=3), Severity.HIGH)[0]
    services.triage(alice, acknowledged.pk, status="acknowledged")
    now = timezone.now()

    one_query = analytics.compute_analytics(Threat.objects.order_by(), now)
    monkeypatch.setattr(analytics, "SLA_PENDING_IN_ONE_QUERY", 1)
    per_severity = analytics.compute_analytics(Threat.objects.order_by(), now)

    assert one_query == per_severity
    watch = one_query["sla"]["watch"]
    assert len(watch) == (2 if watch_limit == 2 else 6)  # the acknowledged and the breached ones are not watched
    assert [item[3] for item in watch] == sorted(item[3] for item in watch)
    assert one_query["sla"]["breached_open"] == 2  # CRITICAL 20 min ago (15 min SLA), LOW 300 min ago (240)
    assert (one_query["sla"]["watch_until"] is None) == (watch_limit == 500)


def test_it_reads_the_analytics_again_when_an_event_lands_while_computing(alice_client, customer, monkeypatch):
    made(customer, 1)
    compute = analytics.compute_analytics
    calls = []

    def one_event_during_the_first_read(*args):
        calls.append(1)
        if len(calls) == 1:
            made(customer, 1)  # lands between reading the seq and reading the aggregates
        return compute(*args)

    monkeypatch.setattr(analytics, "compute_analytics", one_event_during_the_first_read)

    body = alice_client.get("/api/analytics").json()

    assert len(calls) == 2
    assert body["total_threats"] == 2
    assert body["latest_seq"] == services.latest_seq()
    assert body["exact"] is True
