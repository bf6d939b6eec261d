"""My queue (issue 21 item 1, docs/queue.md): open threats ordered by risk × urgency from the SLA time
left × customer tier, each with its reason; the API pages it and keeps tenants apart."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests import factories
from threats import queue
from threats.choices import AnalysisStatus, Severity, Status
from threats.models import Threat, ThreatGroup, UserAccess

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def verdict(threat, severity, risk, minutes_ago, **fields):
    """Give a stored threat a verdict and an age (as an analysis `minutes_ago` would have left it)."""
    Threat.objects.filter(pk=threat.pk).update(
        severity=severity, risk_score=risk, analysis_status=AnalysisStatus.COMPLETED,
        received_at=timezone.now() - timedelta(minutes=minutes_ago), **fields)
    threat.refresh_from_db()
    return threat


def stored(customer, severity, risk, minutes_ago, **fields):
    return verdict(factories.make_threat(customer=customer, analyse=False), severity, risk, minutes_ago, **fields)


def queue_items(client, **params):
    response = client.get("/api/queue", params)
    assert response.status_code == 200, response.content
    return response.json()["items"]


# --- The formula ------------------------------------------------------------------------------------


def test_the_reason_names_severity_risk_time_left_and_tier():
    ranking = queue.rank(severity="HIGH", risk_score=72, received_at=NOW - timedelta(minutes=18),
                         acknowledged_at=None, tier="enterprise", now=NOW)
    assert ranking.reason == "HIGH, risk 72, 12 min left of 30, enterprise customer"
    assert ranking.urgency == pytest.approx(1 + 3 * 18 / 30)
    assert ranking.priority == pytest.approx(72 * (1 + 3 * 18 / 30) * 1.5)
    assert ranking.sla_due == NOW + timedelta(minutes=12)


def test_urgency_rises_towards_the_breach_and_stops_rising_after_it():
    def urgency(minutes_ago):
        return queue.rank(severity="CRITICAL", risk_score=90, received_at=NOW - timedelta(minutes=minutes_ago),
                          acknowledged_at=None, tier="business", now=NOW).urgency

    assert urgency(0) == pytest.approx(1.0)
    assert urgency(0) < urgency(5) < urgency(10) < urgency(15)
    assert urgency(15) == urgency(60) == pytest.approx(4.0)


def test_a_breached_threat_says_how_long_ago():
    ranking = queue.rank(severity="MEDIUM", risk_score=40, received_at=NOW - timedelta(minutes=75),
                         acknowledged_at=None, tier="starter", now=NOW)
    assert ranking.reason == "MEDIUM, risk 40, SLA breached 15 min ago (60 min), starter customer"


def test_an_acknowledged_threat_has_no_running_clock():
    ranking = queue.rank(severity="HIGH", risk_score=72, received_at=NOW - timedelta(minutes=29),
                         acknowledged_at=NOW - timedelta(minutes=20), tier="business", now=NOW)
    assert (ranking.urgency, ranking.sla_due) == (1.0, None)
    assert ranking.reason == "HIGH, risk 72, acknowledged, business customer"


def test_an_unanalysed_threat_counts_as_middling_risk_not_as_harmless():
    ranking = queue.rank(severity="", risk_score=None, received_at=NOW, acknowledged_at=None, tier="business", now=NOW)
    assert ranking.risk == queue.UNKNOWN_RISK
    assert ranking.reason == "not analysed yet (risk taken as 50), no SLA clock, business customer"


def test_the_database_ranks_exactly_as_the_formula(customer):
    enterprise = factories.make_customer(tier="enterprise")
    threats = [stored(customer, "LOW", 20, 250), stored(customer, "CRITICAL", 95, 1), stored(enterprise, "HIGH", 72, 18),
               stored(customer, "MEDIUM", 60, 30, acknowledged_at=timezone.now())]
    now = timezone.now()
    found = list(queue.ranked(Threat.objects.filter(pk__in=[t.pk for t in threats]), now))
    expected = [queue.rank(severity=t.severity, risk_score=t.risk_score, received_at=t.received_at,
                           acknowledged_at=t.acknowledged_at, tier=t.customer.tier, now=now).priority for t in found]
    # SQLite reads times through julianday(): exact to about a millisecond, a 1e-6 relative error here.
    assert [t.priority for t in found] == pytest.approx(expected, rel=1e-5)
    assert expected == sorted(expected, reverse=True)


# --- GET /api/queue -----------------------------------------------------------------------------------


def test_the_queue_puts_the_threat_nearest_its_breach_above_a_fresher_graver_one(alice_client, customer):
    fresh = stored(customer, "CRITICAL", 90, 0)
    nearly_late = stored(customer, "HIGH", 80, 27)
    quiet = stored(customer, "LOW", 30, 5)
    items = queue_items(alice_client)
    assert [i["id"] for i in items] == [str(nearly_late.pk), str(fresh.pk), str(quiet.pk)]
    assert items[0]["reason"].startswith("HIGH, risk 80, 2 min left of 30, ")
    assert items[0]["sla_due"] is not None and items[0]["priority"] > items[1]["priority"]


def test_the_tier_breaks_an_otherwise_equal_tie(alice_client):
    starter, enterprise = factories.make_customer(tier="starter"), factories.make_customer(tier="enterprise")
    small, big = stored(starter, "HIGH", 70, 10), stored(enterprise, "HIGH", 70, 10)
    items = queue_items(alice_client)
    assert [i["id"] for i in items] == [str(big.pk), str(small.pk)]
    assert items[0]["reason"].endswith("enterprise customer") and items[0]["tier_weight"] == 1.5


def test_closed_and_resolved_threats_leave_the_queue(alice_client, customer):
    kept = stored(customer, "HIGH", 70, 10, status=Status.INVESTIGATING)
    stored(customer, "CRITICAL", 99, 10, status=Status.CLOSED, disposition="true_positive")
    stored(customer, "CRITICAL", 99, 10, status=Status.RESOLVED, disposition="true_positive")
    assert [i["id"] for i in queue_items(alice_client)] == [str(kept.pk)]


def test_a_grouped_member_ranks_with_its_heads_verdict(alice_client, customer):
    head = stored(customer, "HIGH", 88, 3)
    group = ThreatGroup.objects.create(customer=customer, key="rule|host", title="repeats", head=head,
                                       first_seen=head.received_at, last_seen=head.received_at)
    member = factories.make_threat(customer=customer, analyse=False)
    Threat.objects.filter(pk=member.pk).update(analysis_status=AnalysisStatus.GROUPED, group=group)
    items = {i["id"]: i for i in queue_items(alice_client)}
    assert items[str(member.pk)]["risk"] == 88
    assert items[str(member.pk)]["group_head"]["severity"] == Severity.HIGH
    assert items[str(member.pk)]["reason"] == "HIGH, risk 88 (its group head's), no SLA clock, business customer"


def test_pages_walk_the_whole_queue_once_in_order(alice_client, customer):
    for minutes in range(7):
        stored(customer, "MEDIUM", 40 + minutes, minutes)
    whole = [i["id"] for i in queue_items(alice_client, limit=100)]
    walked, cursor = [], None
    while True:
        page = alice_client.get("/api/queue", {"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        walked += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert walked == whole and len(whole) == 7


def _cursor(*parts):
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode()


BAD_CURSORS = [_cursor("2026-12-07T10:00:00+00:00", value, "2026-12-07T09:00:00+00:00", "3" * 32)
               for value in (float("nan"), float("inf"), -1, True, "high")]


@pytest.mark.parametrize("params, field", [
    ({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"cursor": "not-a-cursor"}, "cursor"),
    ({"severity": "HIGH"}, "severity"), *(({"cursor": cursor}, "cursor") for cursor in BAD_CURSORS),
])
def test_a_bad_parameter_is_400_naming_it(alice_client, params, field):
    response = alice_client.get("/api/queue", params)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_a_user_of_customer_a_never_sees_customer_bs_threats(client, alice, bob):
    acme, globex = factories.make_customer(name="Acme"), factories.make_customer(name="Globex", tier="enterprise")
    own = stored(acme, "LOW", 10, 1)
    stored(globex, "CRITICAL", 99, 14)
    UserAccess.objects.create(user=alice).customers.set([acme])
    client.force_login(alice)
    assert [i["id"] for i in queue_items(client)] == [str(own.pk)]
    assert queue_items(client, customer=globex.slug) == []


def test_a_cursor_far_past_every_priority_is_an_empty_page_not_an_error(alice_client, customer):
    stored(customer, "HIGH", 70, 300)
    cursor = _cursor("2026-12-07T10:00:00+00:00", 1e308, "2026-12-07T09:00:00+00:00", "3" * 32)
    response = alice_client.get("/api/queue", {"cursor": cursor})
    assert response.status_code == 200
    assert [i["risk"] for i in response.json()["items"]] == [70]


def test_the_outsider_without_a_role_is_refused(charlie_client, customer):
    stored(customer, "HIGH", 70, 10)
    assert charlie_client.get("/api/queue").status_code == 403


def test_the_queue_is_documented_in_openapi(client):
    schema = client.get("/api/openapi.json").json()
    operation = schema["paths"]["/api/queue"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"customer", "assignee", "limit", "cursor"}
    assert "QueueItem" in schema["components"]["schemas"]


def test_the_page_read_in_parts_equals_ranking_every_open_threat(client, alice):
    """The parts (clock running, unrated, and per customer by risk, acknowledged or not) cover the
    queue exactly once and merge into the same order as ranking all open threats at once."""
    import random

    rng = random.Random(21)
    customers = [factories.make_customer(tier=tier) for tier in ("starter", "business", "enterprise", "business")]
    head = stored(customers[0], "HIGH", 91, 200)
    group = ThreatGroup.objects.create(customer=customers[0], key="k", title="t", head=head,
                                       first_seen=head.received_at, last_seen=head.received_at)
    for n in range(60):
        threat = factories.make_threat(customer=rng.choice(customers), analyse=False)
        minutes = rng.choice([0, 3, 14, 29, 59, 200, 5000])
        fields = dict(severity=rng.choice(["LOW", "MEDIUM", "HIGH", "CRITICAL", ""]),
                      risk_score=rng.choice([None, 10, 40, 40, 72, 95]), analysis_status=AnalysisStatus.COMPLETED,
                      received_at=timezone.now() - timedelta(minutes=minutes),
                      status=rng.choice([Status.NEW, Status.NEW, Status.INVESTIGATING, Status.CLOSED]))
        if fields["status"] != Status.NEW and rng.random() < 0.8:
            fields["acknowledged_at"] = fields["received_at"] + timedelta(minutes=1)
        if n % 9 == 0 and threat.customer_id == customers[0].pk:
            fields.update(analysis_status=AnalysisStatus.GROUPED, group=group, severity="", risk_score=None)
        Threat.objects.filter(pk=threat.pk).update(**fields)
    UserAccess.objects.create(user=alice).customers.set(customers[:2])
    for who in (None, alice):
        client.force_login(who or _superuser())
        walked, cursor = [], None
        while True:
            page = client.get("/api/queue", {"limit": 7, **({"cursor": cursor} if cursor else {})}).json()
            walked += [i["id"] for i in page["items"]]
            cursor = page["next_cursor"]
            ranked_at = page["ranked_at"]
            if not cursor:
                break
        visible = Threat.objects.filter(customer__in=customers if who is None else customers[:2])
        expected = [str(pk) for pk in queue.ranked(queue.open_threats(visible), _moment(ranked_at))
                    .values_list("pk", flat=True)]
        assert walked == expected


def _superuser():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("root", password="root")


def _moment(text):
    from threats.serializers import utc_moment

    return utc_moment(text)


def test_the_migration_builds_the_indexes_the_parts_filter_with():
    import importlib

    migration = importlib.import_module("threats.migrations.0018_queue_indexes")
    model = {index.name: index.deconstruct() for index in Threat._meta.indexes}
    assert all(model[index.name] == index.deconstruct() for index in migration.INDEXES)
    assert {i.name: i.condition for i in migration.INDEXES} == {
        "threat_queue_unacknowledged": queue.RATED_UNACKNOWLEDGED, "threat_queue_acknowledged": queue.RATED_ACKNOWLEDGED,
        "threat_queue_unrated": queue.UNRATED}
