"""threats/sql.py: hand-written statements give callers exactly what the ORM would (both vendors)."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import AgentRun
from threats import services, sql
from threats.models import Customer, Threat

from . import factories

THREATS = Threat._meta.db_table


def _fields(instance, names):
    return {name: getattr(instance, name) for name in names}


def test_rows_read_back_as_the_orm_reads_them(customer):
    threat = factories.make_threat(customer=customer, analyse=False, mitre_hints=["T1110"],
                                   observables={"src_ip": "198.51.100.7", "ports": [22, 443], "nested": {"a": None}})
    columns = sql.Columns(Threat)
    [read] = columns.instances(f"SELECT {columns} FROM {THREATS} WHERE id = %s", [sql.param(Threat, "id", threat.pk)])
    names = [f.attname for f in Threat._meta.concrete_fields]
    assert _fields(read, names) == _fields(Threat.objects.get(pk=threat.pk), names)
    assert isinstance(read.pk, uuid.UUID) and timezone.is_aware(read.received_at)
    assert read.observables["ports"] == [22, 443] and read.requires_human_review is False
    assert read.customer.name == customer.name  # a real model instance: relations load as usual


def test_a_subset_of_columns_reads_as_values_and_defers_the_rest(customer):
    threat = factories.make_threat(customer=customer, analyse=False)
    columns = sql.Columns(Threat, ["id", "customer", "observables"])
    assert str(columns) == "id, customer_id, observables"
    params = [sql.param(Threat, "id", str(threat.pk))]  # a string id is adapted like the ORM adapts it
    [row] = columns.rows(f"SELECT {columns}, 1 + 1 FROM {THREATS} WHERE id = %s", params)
    assert row == [threat.pk, customer.pk, threat.observables, 2]  # a column beyond the fields comes as it is
    [partial] = columns.instances(f"SELECT {columns} FROM {THREATS} WHERE id = %s", params)
    assert partial.get_deferred_fields() >= {"title", "severity"}


def test_it_refuses_a_column_the_model_does_not_have():
    with pytest.raises(ValueError, match="nickname"):
        sql.Columns(Customer, ["name", "nickname"])


def test_written_values_are_adapted_by_their_fields(customer):
    threat = factories.make_threat(customer=customer, analyse=False)
    when = timezone.now() - timedelta(days=3)
    values = {"analyzed_at": when, "mitre": {"techniques": [{"technique_id": "T1110"}]}, "risk_score": 42,
              "requires_human_review": True}
    changed = sql.execute(f"UPDATE {THREATS} SET {sql.assignments(Threat, values)} WHERE id = %s",
                          [*sql.params(Threat, values), sql.param(Threat, "id", threat.pk)])
    assert changed == 1
    assert _fields(Threat.objects.get(pk=threat.pk), values) == values


def test_upsert_inserts_new_rows_and_updates_colliding_ones_in_place(customer):
    threat = factories.make_threat(customer=customer, analyse=False)
    run = {"threat": threat.pk, "kind": "config", "status": "running", "summary": "", "findings": [], "data": {}}
    sql.upsert(AgentRun, [run, {**run, "kind": "devops"}], unique=["threat", "kind"], update=["status"])
    first = AgentRun.objects.get(threat=threat, kind="config")
    sql.upsert(AgentRun, [{**run, "status": "succeeded", "summary": "kept out"}], unique=["threat", "kind"],
               update=["status"])
    again = AgentRun.objects.get(threat=threat, kind="config")
    assert (again.pk, again.status, again.summary) == (first.pk, "succeeded", "")  # only `update` fields change
    assert AgentRun.objects.filter(threat=threat).count() == 2


def test_the_claim_reads_the_threat_and_its_customer_back_once(customer, django_assert_num_queries):
    threat = factories.make_threat(customer=customer, analyse=False)
    with django_assert_num_queries(2):
        claimed = services.start_analysis(threat.pk)
        assert claimed.customer.slug == customer.slug  # loaded already: no third query
    assert Threat.objects.get(pk=threat.pk).analysis_status == "running"
    services.do_record_analysis(claimed, _verdict(claimed))
    assert services.start_analysis(threat.pk) is None  # analysed: nothing to claim


def _verdict(threat):
    from agents import coordinator

    return coordinator.decide(threat)


def test_insert_saves_a_new_instance_as_create_would(customer):
    from threats.models import ThreatEvent

    threat = factories.make_threat(customer=customer, analyse=False)
    before = timezone.now()
    event = sql.insert(ThreatEvent(threat=threat, type="threat.updated", actor_kind="system", payload={"n": 1}))
    stored = ThreatEvent.objects.get(seq=event.seq)
    assert event.seq > ThreatEvent.objects.filter(threat=threat).exclude(seq=event.seq).latest("seq").seq
    assert stored.created_at == event.created_at >= before  # auto_now_add ran
    assert (stored.payload, stored.threat_id, event._state.adding) == ({"n": 1}, threat.pk, False)
