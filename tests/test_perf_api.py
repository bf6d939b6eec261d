"""The fast paths of the API return exactly what the straightforward code returned: the threat list
reads only the summary's columns and encodes the page itself, and its items are still the
`threat_summary` every WebSocket event carries."""

import json
import os
import re
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from ninja.responses import NinjaJSONEncoder

from tests import factories
from threats import access, services
from threats.choices import Disposition, Status
from threats.models import Threat
from threats.serializers import threat_summary

pytestmark = pytest.mark.django_db


def as_the_api_encodes(summary):
    """threat_summary as the response schema encoded it: datetimes parsed, then ECMA-262 (ms, Z)."""
    fields = {**summary, "occurred_at": datetime.fromisoformat(summary["occurred_at"]),
              "received_at": datetime.fromisoformat(summary["received_at"])}
    return json.loads(json.dumps(fields, cls=NinjaJSONEncoder))


@pytest.fixture
def varied(alice, bob, customer):
    """Analysed and not, assigned and not, closed with a disposition, a long summary, hostile text."""
    threats = [factories.make_threat(customer=customer, threat_type=kind)
               for kind in ("bot_traffic", "device_compromise", "geo_anomaly")]
    threats.append(factories.make_threat(customer=factories.make_customer(), analyse=False,
                                         title='<script>alert("x")</script> ünïcode'))
    services.triage(alice, threats[0].pk, status=Status.CLOSED, disposition=Disposition.FALSE_POSITIVE,
                    reason="known scanner", assignee="bob")
    Threat.objects.filter(pk=threats[1].pk).update(executive_summary="é" * 700)
    return threats


def test_the_list_items_are_the_summaries_the_events_carry(alice_client, varied):
    body = alice_client.get("/api/threats?limit=100").json()

    expected = [as_the_api_encodes(threat_summary(t)) for t in Threat.objects.order_by("-received_at", "-id")]
    assert body["items"] == expected
    assert body["next_cursor"] is None
    assert any(item["mitre_techniques"] for item in body["items"])
    assert {len(item["executive_summary"]) for item in body["items"]} >= {300}


def test_the_list_pages_with_cursors_as_before(alice_client, customer):
    now = timezone.now()
    made = [factories.make_threat(customer=customer, analyse=False, received_at=now - timedelta(seconds=i))
            for i in range(5)]
    first = alice_client.get("/api/threats?limit=2").json()
    second = alice_client.get(f"/api/threats?limit=2&cursor={first['next_cursor']}").json()
    third = alice_client.get(f"/api/threats?limit=2&cursor={second['next_cursor']}").json()

    ids = [item["id"] for page in (first, second, third) for item in page["items"]]
    assert ids == [str(t.pk) for t in made]
    assert third["next_cursor"] is None


def test_the_list_reads_neither_the_raw_alert_nor_the_verdict_json(alice_client, varied):
    with CaptureQueriesContext(connection) as queries:
        assert alice_client.get("/api/threats?limit=20").status_code == 200

    listing = [q["sql"] for q in queries.captured_queries if 'FROM "threats_threat"' in q["sql"]]
    assert len(listing) == 1
    for column in ('"raw"', '"timeline"', '"response_plan"', '"risk_factors"', '"false_positive"'):
        assert column not in listing[0]


def test_the_list_answers_json_with_the_api_content_type(alice_client, varied):
    response = alice_client.get("/api/threats?severity=LOW")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"


def test_an_outsider_still_gets_no_list(charlie_client, varied):
    assert charlie_client.get("/api/threats").status_code == 403


# --- seed_scale ------------------------------------------------------------------------------------------


def test_seed_scale_stores_analysed_threats_with_events_runs_and_exact_totals(db):
    from django.core.management import call_command

    from agents.models import AgentRun
    from threats import stats
    from threats.models import ThreatEvent

    with open(os.devnull, "w") as quiet:
        call_command("seed_scale", "--threats", "60", "--detailed", "10", "--pool", "6", "--batch", "25", "--days", "3",
                     "--check", stdout=quiet, stderr=quiet)

    assert Threat.objects.count() == 60
    assert not Threat.objects.exclude(analysis_status="completed").exists()
    assert not Threat.objects.filter(severity="").exists()
    newest = list(Threat.objects.order_by("-received_at")[:10])
    assert all(t.timeline and t.response_plan for t in newest)
    assert AgentRun.objects.filter(threat__in=newest).count() == 50
    assert AgentRun.objects.count() == 50
    assert ThreatEvent.objects.filter(type="threat.created").count() == 60
    assert ThreatEvent.objects.filter(type="threat.analyzed").count() == 60
    first_events = list(ThreatEvent.objects.order_by("seq")[:2])
    assert first_events[0].threat.received_at == Threat.objects.order_by("received_at").first().received_at
    assert stats.stored() == stats.recount()


def test_seed_scale_refuses_a_database_that_already_has_threats(threat):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError):
        call_command("seed_scale", "--threats", "5", "--pool", "2")


# --- Analysis tasks of an ingest batch go out through one broker connection -------------------------------


def test_an_ingest_batch_publishes_its_analyses_in_batches_through_one_producer(settings, customer, monkeypatch):
    from django.test import TestCase

    from agents import tasks

    settings.AGENTS_IN_THREAD = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.AGENTS_BATCH_SIZE = 2
    published, producers = [], set()
    for task in (tasks.analyze_threat, tasks.analyze_threats):
        monkeypatch.setattr(task, "apply_async", lambda args, producer=None, name=task.name: (
            published.append((name, args[0])), producers.add(id(producer))))
    now = timezone.now()
    rows = [{"customer": customer, "threat_type": "bot_traffic", "title": f"alert {i}", "occurred_at": now,
             "analysis_status": "grouped" if i == 2 else "queued"} for i in range(6)]

    with TestCase.captureOnCommitCallbacks(execute=True):
        threats = services.do_create_threats(rows, services.SYSTEM)

    queued = [str(t.pk) for t in threats if t.analysis_status == "queued"]
    assert published == [("agents.analyze_threats", queued[0:2]), ("agents.analyze_threats", queued[2:4]),
                         ("agents.analyze_threat", queued[4])]
    assert len(producers) == 1


def test_with_an_llm_every_threat_gets_its_own_task(settings):
    from agents import tasks

    settings.AGENTS_BATCH_SIZE = 20
    assert tasks.batches(["a", "b", "c"]) == [["a", "b", "c"]]
    settings.LLM_BASE_URL, settings.LLM_MODEL = "http://127.0.0.1:9/v1", "model"
    assert tasks.batches(["a", "b", "c"]) == [["a"], ["b"], ["c"]]


# --- Workers keep their database connection, but never a broken one --------------------------------------


def test_a_worker_drops_a_broken_database_connection_before_the_next_task(transactional_db):
    from agents import tasks

    if connection.vendor != "postgresql":
        pytest.skip("a SQLite file connection does not break; workers reuse PostgreSQL connections")

    connection.ensure_connection()
    connection.connection.close()  # the database went away under the kept connection
    connection.errors_occurred = True

    tasks._drop_broken_connections()

    assert connection.connection is None
    assert Threat.objects.count() == 0  # reconnects


def test_a_worker_keeps_a_healthy_connection_between_tasks(transactional_db):
    from agents import tasks

    connection.ensure_connection()
    kept = connection.connection
    tasks._drop_broken_connections()
    assert connection.connection is kept


@pytest.mark.skipif(os.environ.get("DATABASE_URL", "").split(":")[0] not in ("postgres", "postgresql"),
                    reason="trigram indexes exist on PostgreSQL only (migration 0008)")
def test_each_branch_of_the_text_search_can_use_its_index_on_postgresql(alice):
    """Migration 0008's indexes are on the very expressions the list's search compares (a database
    uses an expression index only for the same expression): with plain index scans and sequential
    scans off, the planner answers the search with a bitmap over all three indexes."""
    from threats import paging, serializers

    filters = paging.ThreatFilters(q="Wz-4711")  # the API's own filter schema: every other filter unset
    found = paging._filter(access.visible_threats(alice), filters, alice).order_by("-received_at", "-id")
    sql, params = found.values(*serializers.SUMMARY_FIELDS, **serializers.SUMMARY_EXPRESSIONS)[:21].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    for index in ("threat_title_trgm", "threat_summary_trgm"):
        assert f"Bitmap Index Scan on {index}" in plan, plan
    # source_ref equality: its own index, or the per-customer unique one (migration 0010) whose
    # partial condition the planner may find as cheap.
    assert re.search(r"Bitmap Index Scan on (threat_source_ref|threat_unique_customer_source_ref)\b", plan), plan


def test_the_encoded_page_holds_exactly_what_the_documented_schema_says(alice_client, varied):
    """The list page is encoded without the response schema, so check it against that schema: every
    item has exactly the ThreatSummary fields, each of the documented type (nullable ones too)."""
    from threats.api import ThreatPage, ThreatSummary

    body = alice_client.get("/api/threats?limit=2").json()
    page = ThreatPage.model_validate(body)

    assert set(body) == set(ThreatPage.model_fields)
    assert body["next_cursor"] == page.next_cursor is not None
    everything = alice_client.get("/api/threats?limit=100").json()["items"]
    for item in everything:
        assert set(item) == set(ThreatSummary.model_fields)
        ThreatSummary.model_validate(item)
    assert {item["severity"] for item in everything} >= {None}  # the unanalysed one
    assert {item["assignee"] for item in everything} == {None, "bob"}
    assert {item["disposition"] for item in everything} == {None, "false_positive"}
