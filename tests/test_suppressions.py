"""Suppressions (issue 21 item 2, docs/suppressions.md): matching at ingest, the preview's exact
numbers, the confirmation rules, expiry, audit, and tenants kept apart."""

import json
import logging
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import TestCase
from django.utils import timezone

from suppressions import services
from suppressions.models import Suppression
from suppressions.tasks import expire
from tests import factories
from threats import ingest
from threats.choices import AnalysisStatus
from threats.models import Threat, UserAccess

pytestmark = pytest.mark.django_db
RULE = "rule:scanner-probe"


def alert(ref, src_ip="203.0.113.7", rule="scanner-probe", user="j.doe", host="web-1", **extra):
    return {"id": ref, "title": f"Probe {ref}", "occurred_at": "2026-11-26T10:00:00Z", "rule": rule,
            "severity": "low", "host": host, "observables": {"src_ip": src_ip, "user": user}, **extra}


def ingest_alerts(customer, *alerts):
    """One batch through ingestion as the API takes it; the per-item results."""
    body = "\n".join(json.dumps(item) for item in alerts).encode()
    with TestCase.captureOnCommitCallbacks(execute=True):
        return ingest.ingest("generic", ingest.decode_body(body, "application/x-ndjson"),
                             default_customer=customer, actor_label="test")


def suppression(customer, author=None, days=30, **fields):
    defaults = dict(rule=RULE, reason="Our own scanner", expires_at=timezone.now() + timedelta(days=days))
    with TestCase.captureOnCommitCallbacks(execute=True):
        found = Suppression.objects.create(customer=customer, author=author, **{**defaults, **fields})
        services.forget_live()
    return found


def stored(customer, rule=RULE, days_ago=1, severity="", disposition="", **observables):
    """A stored threat of `rule`, received `days_ago` days ago, with a verdict and triage as given."""
    threat = factories.make_threat(customer=customer, analyse=False, rule=rule,
                                   observables={"src_ip": "203.0.113.7", **observables})
    closed = {"status": "closed", "closed_at": timezone.now(), "closed_by_kind": "human"} if disposition else {}
    Threat.objects.filter(pk=threat.pk).update(
        received_at=timezone.now() - timedelta(days=days_ago), severity=severity, disposition=disposition,
        analysis_status=AnalysisStatus.COMPLETED, **closed)
    return threat


def proposal(customer, who, days=30, **entities):
    return services.check_proposal(who, customer=customer.slug, rule=RULE, entities=entities, days=days)


@pytest.fixture
def admin_user(analyst_group):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("ada", password="pw-ada")
    user.groups.add(analyst_group, Group.objects.get_or_create(name="admin")[0])
    return get_user_model().objects.get(pk=user.pk)


# --- Matching at ingest ------------------------------------------------------------------------------------


def test_a_matching_alert_is_stored_closed_by_rule_and_never_analysed(customer, alice, monkeypatch):
    sent = []
    monkeypatch.setattr("agents.tasks.enqueue_analyses", lambda ids: sent.extend(ids))
    rule = suppression(customer, alice, src_ip="203.0.113.7")
    [hit, miss] = ingest_alerts(customer, alert("a-1"), alert("a-2", src_ip="198.51.100.9"))
    threat = Threat.objects.get(pk=hit.id)
    assert (hit.suppression_id, hit.analysis_status) == (rule.pk, "suppressed")
    assert (threat.suppressed, threat.suppression_id, threat.analysis_status) == (True, rule.pk, "suppressed")
    assert (threat.status, threat.closed_by_kind, threat.disposition) == ("closed", "rule", "false_positive")
    assert threat.group_id is None and threat.campaign_id is None
    assert miss.suppression_id is None and not Threat.objects.get(pk=miss.id).suppressed
    assert str(threat.pk) not in map(str, sent) and miss.id in map(str, sent)


def test_hits_are_counted_and_audited_once_per_batch(customer, alice, caplog):
    rule = suppression(customer, alice)
    with caplog.at_level(logging.INFO, logger="soc.audit"):
        ingest_alerts(customer, alert("h-1"), alert("h-2"), alert("h-3", rule="other"))
        ingest_alerts(customer, alert("h-1"))  # a duplicate is no new hit
    rule.refresh_from_db()
    assert rule.hit_count == 2 and rule.last_hit_at is not None
    hits = [r.audit for r in caplog.records if getattr(r, "audit", {}).get("action") == "suppression.hit"]
    assert [(h["suppression"], h["alerts"]) for h in hits] == [(str(rule.pk), "2")]


def test_every_pinned_entity_must_match(customer, alice):
    suppression(customer, alice, user="svc-scan", host="web-1")
    results = ingest_alerts(customer, alert("e-1", user="svc-scan"), alert("e-2", user="j.doe"),
                            alert("e-3", user="svc-scan", host="web-2"))
    assert [bool(r.suppression_id) for r in results] == [True, False, False]


def test_expired_revoked_and_other_customers_suppressions_do_not_match(customer, alice):
    other = factories.make_customer()
    suppression(customer, alice, expires_at=timezone.now() - timedelta(seconds=1))
    suppression(customer, alice, revoked_at=timezone.now())
    suppression(other, alice)
    assert not any(r.suppression_id for r in ingest_alerts(customer, alert("x-1")))


def test_a_new_suppression_applies_to_the_next_batch_and_a_revoked_one_stops(customer, alice):
    assert not ingest_alerts(customer, alert("n-1"))[0].suppression_id  # the empty set is cached now
    with TestCase.captureOnCommitCallbacks(execute=True):
        saved, _ = services.create(alice, proposal(customer, alice), reason="scanner",
                                   expires_at=timezone.now() + timedelta(days=7))
    assert ingest_alerts(customer, alert("n-2"))[0].suppression_id == saved.pk
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.revoke(alice, saved.pk)
    assert not ingest_alerts(customer, alert("n-3"))[0].suppression_id


def test_suppressed_alerts_are_filtered_on_the_threat_list(alice_client, customer, alice):
    suppression(customer, alice, src_ip="203.0.113.7")
    ingest_alerts(customer, alert("f-1"), alert("f-2", src_ip="198.51.100.9"))
    hidden = alice_client.get("/api/threats", {"suppressed": "true"}).json()["items"]
    shown = alice_client.get("/api/threats", {"suppressed": "false"}).json()["items"]
    assert [t["title"] for t in hidden] == ["Probe f-1"] and hidden[0]["suppressed"] is True
    assert [t["title"] for t in shown] == ["Probe f-2"]
    assert len(alice_client.get("/api/threats").json()["items"]) == 2


# --- The preview ---------------------------------------------------------------------------------------------


def test_the_preview_counts_by_severity_exactly_as_a_direct_count(customer, alice):
    for severity, days_ago in (("HIGH", 1), ("HIGH", 2), ("LOW", 3), ("", 4), ("CRITICAL", 40)):
        stored(customer, severity=severity, days_ago=days_ago)
    stored(customer, rule="rule:other", severity="HIGH")
    stored(customer, severity="MEDIUM", src_ip="198.51.100.9")
    stored(factories.make_customer(), severity="HIGH")
    result = services.preview(proposal(customer, alice, src_ip="203.0.113.7"))
    since = timezone.now() - timedelta(days=30)
    direct = Threat.objects.filter(customer=customer, rule=RULE, observables__src_ip="203.0.113.7",
                                   received_at__gte=since)
    assert result.total == direct.count() == 4
    assert result.by_severity == {"CRITICAL": 0, "HIGH": 2, "MEDIUM": 0, "LOW": 1, "UNRATED": 1}
    assert result.by_severity["HIGH"] == direct.filter(severity="HIGH").count()


def test_the_window_is_the_days_asked_for(customer, alice):
    stored(customer, days_ago=1)
    stored(customer, days_ago=40)
    assert services.preview(proposal(customer, alice, days=30)).total == 1
    assert services.preview(proposal(customer, alice, days=90)).total == 2


def test_the_preview_lists_every_true_positive_it_would_hide(customer, alice):
    tps = [stored(customer, severity="HIGH", disposition="true_positive") for _ in range(3)]
    stored(customer, severity="LOW", disposition="false_positive")
    result = services.preview(proposal(customer, alice))
    assert {str(t["id"]) for t in result.true_positives} == {str(t.pk) for t in tps}
    assert all(t["closed_at"] and t["title"] and t["severity"] == "HIGH" for t in result.true_positives)


@pytest.mark.parametrize("field,value", [("src_ip", "not-an-ip"), ("user", "x" * 201)])
def test_a_bad_entity_is_refused_naming_it(customer, alice, field, value):
    with pytest.raises(services.InvalidInput) as refused:
        proposal(customer, alice, **{field: value})
    assert refused.value.field == field


# --- Saving: confirmation, the admin threshold, expiry --------------------------------------------------------


def test_true_positives_need_a_confirmation(customer, alice):
    stored(customer, disposition="true_positive")
    expires = timezone.now() + timedelta(days=7)
    with pytest.raises(services.Refused) as refused:
        services.create(alice, proposal(customer, alice), reason="scanner", expires_at=expires)
    assert (refused.value.status, refused.value.field) == (400, "confirm_true_positives")
    assert not Suppression.objects.exists()
    saved, result = services.create(alice, proposal(customer, alice), reason="scanner", expires_at=expires,
                                    confirm_true_positives=True)
    assert saved.pk and len(result.true_positives) == 1


def test_above_the_threshold_only_an_admin_saves(customer, alice, admin_user, settings):
    settings.SUPPRESSION_ADMIN_THRESHOLD = 2
    for _ in range(3):
        stored(customer)
    expires = timezone.now() + timedelta(days=7)
    with pytest.raises(services.Refused) as refused:
        services.create(alice, proposal(customer, alice), reason="scanner", expires_at=expires)
    assert (refused.value.status, refused.value.field) == (403, "role")
    saved, result = services.create(admin_user, proposal(customer, admin_user), reason="scanner", expires_at=expires)
    assert result.total == 3 and saved.author == admin_user


@pytest.mark.parametrize("offset", [timedelta(seconds=-1), timedelta(days=90, minutes=1)])
def test_the_expiry_is_in_the_future_and_at_most_90_days_ahead(customer, alice, offset):
    with pytest.raises(services.InvalidInput) as refused:
        services.create(alice, proposal(customer, alice), reason="scanner", expires_at=timezone.now() + offset)
    assert refused.value.field == "expires_at"


def test_a_reason_is_mandatory(customer, alice):
    with pytest.raises(services.InvalidInput) as refused:
        services.create(alice, proposal(customer, alice), reason="  ", expires_at=timezone.now() + timedelta(days=1))
    assert refused.value.field == "reason"


def test_creation_and_revocation_are_audited(customer, alice, caplog):
    with caplog.at_level(logging.INFO, logger="soc.audit"):
        saved, _ = services.create(alice, proposal(customer, alice), reason="scanner",
                                   expires_at=timezone.now() + timedelta(days=7))
        services.revoke(alice, saved.pk)
        services.revoke(alice, saved.pk)  # twice: nothing more happens
    actions = [r.audit["action"] for r in caplog.records if hasattr(r, "audit")]
    assert actions.count("suppression.created") == 1 and actions.count("suppression.revoked") == 1
    saved.refresh_from_db()
    assert saved.revoked_by == alice and saved.state(timezone.now()) == "revoked"


# --- Expiry --------------------------------------------------------------------------------------------------


def test_the_beat_task_expires_due_suppressions_once_and_audits_them(customer, alice, caplog):
    due = suppression(customer, alice, expires_at=timezone.now() - timedelta(minutes=1))
    live = suppression(customer, alice)
    with caplog.at_level(logging.INFO, logger="soc.audit"):
        assert expire.delay().get() == 1
        assert expire.delay().get() == 0
    due.refresh_from_db(), live.refresh_from_db()
    assert due.expired_at is not None and live.expired_at is None
    assert [r.audit["suppression"] for r in caplog.records
            if getattr(r, "audit", {}).get("action") == "suppression.expired"] == [str(due.pk)]


def test_the_beat_schedule_runs_the_expiry(settings):
    assert settings.CELERY_BEAT_SCHEDULE["expire-suppressions"]["task"] == "suppressions.expire"


# --- Who may ----------------------------------------------------------------------------------------------------


def test_a_scoped_analyst_can_neither_preview_nor_save_for_another_customer(customer, alice):
    other = factories.make_customer()
    UserAccess.objects.create(user=alice).customers.set([customer])
    with pytest.raises(services.InvalidInput) as refused:
        services.check_proposal(alice, customer=other.slug, rule=RULE, entities={})
    assert refused.value.field == "customer"
    theirs = suppression(other)
    assert list(services.visible_suppressions(alice)) == []
    with pytest.raises(services.access.NotFound):
        services.revoke(alice, theirs.pk)


def test_a_user_without_the_analyst_role_may_not_propose(customer, charlie):
    with pytest.raises(services.access.AccessDenied):
        services.check_proposal(charlie, customer=customer.slug, rule=RULE, entities={})


def test_a_blank_entity_means_any_value_in_the_preview_and_when_saved(customer, alice):
    found = proposal(customer, alice, user="   ", src_ip="")
    assert found.entities == {}
    saved, _ = services.create(alice, found, reason="scanner", expires_at=timezone.now() + timedelta(days=1))
    assert saved.user == ""


def test_an_expiry_without_a_utc_value_is_refused_naming_it(customer, alice):
    from datetime import datetime, timezone as tz

    far = datetime(1, 1, 1, tzinfo=tz(timedelta(hours=14)))
    with pytest.raises(services.InvalidInput) as refused:
        services.create(alice, proposal(customer, alice), reason="scanner", expires_at=far)
    assert refused.value.field == "expires_at"


def test_suppressed_alerts_are_still_counted_in_the_analytics(alice_client, customer, alice):
    suppression(customer, alice)
    ingest_alerts(customer, alert("c-1"), alert("c-2", rule="other"))
    analytics = alice_client.get("/api/analytics").json()
    assert analytics["total_threats"] == Threat.objects.count() == 2
    assert analytics["by_status"].get("closed") == 1
