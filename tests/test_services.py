"""The service layer: every change writes its event in the same transaction, and only then."""

import pytest
from django.db import transaction

from agents.models import AgentRun
from tests import factories
from threats import access, services
from threats.choices import AnalysisStatus, Disposition, EventType, Status
from threats.models import Note, Threat, ThreatEvent

pytestmark = pytest.mark.django_db


def test_it_writes_a_created_event_with_the_threat(customer):
    threat = factories.make_threat(customer=customer, analyse=False)
    event = ThreatEvent.objects.get(threat=threat)
    assert event.type == EventType.CREATED
    assert event.payload["threat"]["id"] == str(threat.pk)
    assert event.actor_kind == "system"


def test_it_writes_no_event_and_no_threat_on_rollback(customer):
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            factories.make_threat(customer=customer, analyse=False)
            raise RuntimeError("the caller's transaction fails after the service call")
    assert not Threat.objects.exists()
    assert not ThreatEvent.objects.exists()


def test_it_broadcasts_and_enqueues_only_on_commit(customer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        threat = services.trigger_threat(services.SYSTEM, customer=customer.slug)
    # Nothing ran yet: the analysis has not started and no agent run exists.
    assert Threat.objects.get(pk=threat.pk).analysis_status == AnalysisStatus.QUEUED
    assert not AgentRun.objects.exists()
    assert len(callbacks) == 2  # the broadcast and the enqueue
    for callback in callbacks:
        callback()
    assert Threat.objects.get(pk=threat.pk).analysis_status == AnalysisStatus.COMPLETED


def test_events_have_increasing_seqs(customer):
    first = factories.make_threat(customer=customer)
    second = factories.make_threat(customer=customer)
    seqs = list(ThreatEvent.objects.values_list("seq", flat=True))
    assert seqs == sorted(seqs) and len(seqs) == 4
    assert services.latest_seq() == seqs[-1]
    assert [e.threat_id for e in services.events_after(seqs[1], 10)] == [second.pk, second.pk]
    assert [e.seq for e in services.events_after(0, 10, upto=seqs[1])] == seqs[:2]
    assert first.pk != second.pk


def test_triage_records_who_changed_what(threat, alice, bob):
    updated = services.triage(alice, threat.pk, status=Status.ACKNOWLEDGED, assignee="bob")
    assert updated.assignee == bob
    assert updated.acknowledged_at is not None
    event = ThreatEvent.objects.filter(type=EventType.UPDATED).get()
    assert event.actor == alice and event.actor_label == "alice"
    assert event.payload["changes"] == {
        "status": {"from": "new", "to": "acknowledged"},
        "assignee": {"from": None, "to": "bob"},
    }


def test_closing_needs_a_disposition_and_a_reason(threat, alice):
    with pytest.raises(services.InvalidInput) as missing:
        services.triage(alice, threat.pk, status=Status.RESOLVED)
    assert missing.value.field == "disposition"
    with pytest.raises(services.InvalidInput) as no_reason:
        services.triage(alice, threat.pk, status=Status.RESOLVED, disposition=Disposition.FALSE_POSITIVE)
    assert no_reason.value.field == "reason"
    closed = services.triage(alice, threat.pk, status=Status.RESOLVED, disposition="false_positive",
                             reason="Scanner run by the red team")
    assert closed.closed_at is not None and closed.closed_by_kind == "human"
    assert closed.disposition_reason == "Scanner run by the red team"


def test_reopening_clears_the_closure(threat, alice):
    services.triage(alice, threat.pk, status="closed", disposition="true_positive", reason="confirmed")
    reopened = services.triage(alice, threat.pk, status="investigating")
    assert reopened.closed_at is None and reopened.disposition == "" and reopened.closed_by_kind == ""


def test_a_closure_records_the_closing_analyst_and_an_automation_closure_none(customer, alice):
    by_alice, by_rule = (factories.make_threat(customer=customer, analyse=False) for _ in range(2))
    closing = {"status": Status.CLOSED, "disposition": Disposition.FALSE_POSITIVE, "disposition_reason": "scanner"}
    assert services.triage(alice, by_alice.pk, status="closed", disposition="false_positive",
                           reason="scanner").closed_by == alice
    closed = services.do_triage(by_rule, services.Actor.for_user(alice), closing, closed_by_kind="rule")
    assert (closed.closed_by_kind, closed.closed_by) == ("rule", None)  # automation: never an analyst's closure
    assert Threat.objects.get(pk=by_alice.pk).closed_by_id == alice.pk


def test_it_rejects_unknown_values_and_strangers(threat, alice):
    with pytest.raises(services.InvalidInput) as bad_status:
        services.triage(alice, threat.pk, status="done")
    assert "resolved" in bad_status.value.valid
    with pytest.raises(services.InvalidInput):
        services.triage(alice, threat.pk, assignee="nobody")
    with pytest.raises(services.InvalidInput):
        services.triage(alice, threat.pk)
    assert not ThreatEvent.objects.filter(type=EventType.UPDATED).exists()


def test_it_refuses_an_outsider(threat, charlie):
    with pytest.raises(access.AccessDenied):
        access.get_threat_for_user(charlie, threat.pk)
    with pytest.raises(access.AccessDenied):
        services.triage(charlie, threat.pk, status="acknowledged")
    with pytest.raises(access.AccessDenied):
        services.add_note(charlie, threat.pk, "hello")


def test_it_reports_a_missing_threat(alice):
    with pytest.raises(access.NotFound):
        access.get_threat_for_user(alice, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(access.NotFound):
        access.get_threat_for_user(alice, "not-a-uuid")


def test_a_note_is_stored_and_logged(threat, alice):
    note = services.add_note(alice, threat.pk, "  Called the customer; it was their load test.  ")
    assert Note.objects.get().body == "Called the customer; it was their load test."
    event = ThreatEvent.objects.get(type=EventType.NOTE_ADDED)
    assert event.payload["note"] == {"id": note.pk, "body": note.body}
    with pytest.raises(services.InvalidInput):
        services.add_note(alice, threat.pk, "   ")
    with pytest.raises(services.InvalidInput):
        services.add_note(alice, threat.pk, "x" * (services.NOTE_MAX_LENGTH + 1))


def test_trigger_validates_its_input(db):
    with pytest.raises(services.InvalidInput) as bad_type:
        services.trigger_threat(services.SYSTEM, threat_type="alien_invasion")
    assert bad_type.value.field == "threat_type" and "bot_traffic" in bad_type.value.valid
    with pytest.raises(services.InvalidInput) as bad_scenario:
        services.trigger_threat(services.SYSTEM, scenario="nope")
    assert "critical_threat" in bad_scenario.value.valid
    with pytest.raises(services.InvalidInput) as bad_customer:
        services.trigger_threat(services.SYSTEM, customer="Nobody Ltd")
    assert "retailmax" in bad_customer.value.valid
    assert not Threat.objects.exists()


def test_retention_keeps_the_newest_threats(customer, settings):
    settings.MAX_STORED_THREATS = 3
    made = [factories.make_threat(customer=customer, analyse=False) for _ in range(5)]
    kept = set(Threat.objects.values_list("pk", flat=True))
    assert kept == {t.pk for t in made[-3:]}
    assert not ThreatEvent.objects.filter(threat_id__in=[t.pk for t in made[:2]]).exists()


def test_the_verdict_event_carries_triage_done_while_the_agents_ran(customer, alice, bob):
    from agents import coordinator

    threat = factories.make_threat(customer=customer, analyse=False)
    running = services.start_analysis(threat.pk)
    services.triage(alice, threat.pk, status=Status.ACKNOWLEDGED, assignee="bob")  # meanwhile, an analyst
    stored = services.do_record_analysis(running, coordinator.decide(running))
    event = ThreatEvent.objects.filter(threat=threat, type=EventType.ANALYZED).get()
    assert event.payload["threat"]["status"] == Status.ACKNOWLEDGED and event.payload["threat"]["assignee"] == "bob"
    assert stored.assignee == bob and stored.analysis_status == "completed"
    fresh = Threat.objects.get(pk=threat.pk)
    assert (fresh.status, fresh.assignee_id, fresh.severity) == (Status.ACKNOWLEDGED, bob.pk, stored.severity)
