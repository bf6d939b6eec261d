"""The ingest service (threats/ingest.py): decoding and bounding a batch, customer resolution,
idempotency on (source, source_ref) including concurrent duplicates, and grouping (only group
heads are analysed). Asserts database rows, events and agent runs."""

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, transaction
from django.test import TestCase

from agents.models import AgentRun
from tests import factories
from tests.test_settings import PRODUCTION, load_settings
from threats import ingest
from threats.choices import AnalysisStatus, EventType
from threats.importers import generic
from threats.models import Threat, ThreatEvent, ThreatGroup

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).parent / "fixtures" / "alerts"
BASE = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def run(source, body, content_type="application/json", **options):
    """Ingest like the API does, running the on-commit work (broadcast, analysis) as a commit would."""
    options.setdefault("actor_label", "test")
    with TestCase.captureOnCommitCallbacks(execute=True):
        return ingest.ingest(source, ingest.decode_body(body, content_type), **options)


def alert(n, minutes=0, user=None, tactics=(), severity="medium", rule="r1", host="h1", src="203.0.113.5", **extra):
    """A generic alert whose grouping key is rule + host + src."""
    observables = {"src_ip": src, **({"user": user} if user else {})}
    return {"id": f"a-{n}", "title": f"Alert of rule {rule}", "occurred_at": (BASE + timedelta(minutes=minutes)).isoformat(),
            "severity": severity, "rule": rule, "host": host, "observables": observables, "tactics": list(tactics),
            **extra}


def body(*items):
    return json.dumps(list(items)).encode()


def statuses(results):
    return [r.status for r in results]


@pytest.fixture
def finance(db):
    return factories.make_customer(name="Global Finance", slug="global-finance")


@pytest.fixture
def globex(db):
    return factories.make_customer(name="Globex", slug="globex")


# --- Storing a real file ------------------------------------------------------------------------------


def test_a_wazuh_file_is_stored_with_its_mapping_events_and_per_line_errors(finance, globex):
    results = run("wazuh", (FIXTURES / "wazuh_alerts.ndjson").read_bytes(), default_customer=globex)
    assert ingest.summary(results) == {"created": 12, "duplicates": 0, "skipped": 0, "errors": 3}
    assert [(r.line, r.field) for r in results if r.status == "error"] == [(5, "line"), (9, "rule.level"), (13, "rule")]
    threat = Threat.objects.get(source="wazuh", source_ref="wazuh-manager-1:1795162502.1047261")
    first_line = json.loads((FIXTURES / "wazuh_alerts.ndjson").read_text(encoding="utf-8").splitlines()[0])
    assert threat.raw == first_line  # kept intact
    assert threat.customer == finance  # named by agent.labels.customer
    assert threat.threat_type == "wazuh:sshd" and threat.severity_hint == "MEDIUM"
    assert threat.observables == {"src_ip": "203.0.113.45", "src_port": 51422, "user": "admin", "host": "web-01"}
    assert threat.mitre_hints == ["T1110"]
    assert threat.occurred_at == datetime(2026, 11, 20, 8, 15, 2, 347000, tzinfo=UTC)
    windows = Threat.objects.get(source_ref="wazuh-manager-1:1795165351.1102456")
    assert windows.customer == globex  # names no customer: the default
    created = ThreatEvent.objects.filter(type=EventType.CREATED).select_related("threat")
    assert created.count() == 12 and {e.actor_label for e in created} == {"test"}
    in_order = [str(r.id) for r in results if r.status == "created"]
    assert [str(e.threat_id) for e in created.order_by("seq")] == in_order  # the log keeps the file's order
    assert created.order_by("seq").first().payload["threat"]["source"] == "wazuh"


def test_only_group_heads_are_analysed_and_members_are_marked_grouped(finance):
    results = run("wazuh", (FIXTURES / "wazuh_alerts.ndjson").read_bytes(), default_customer=finance)
    heads = [r for r in results if r.status == "created" and r.group_head]
    members = [r for r in results if r.status == "created" and not r.group_head]
    assert len(heads) == 11 and len(members) == 1  # the second "admin" brute-force alert joined the first
    member = Threat.objects.get(pk=members[0].id)
    assert member.analysis_status == AnalysisStatus.GROUPED and member.severity == ""
    assert not AgentRun.objects.filter(threat=member).exists()
    head = member.group.head
    assert head.analysis_status == AnalysisStatus.COMPLETED and head.severity
    assert AgentRun.objects.filter(threat__in=[r.id for r in heads]).values("threat").distinct().count() == 11
    assert AgentRun.objects.values("threat").distinct().count() == 11


def test_every_format_and_envelope_is_stored(finance):
    files = [("wazuh", "wazuh_shuffle.json", 2, 0, 0), ("suricata", "suricata_eve.ndjson", 7, 6, 3),
             ("ecs", "ecs_alerts.ndjson", 6, 0, 3), ("ecs", "ecs_search_response.json", 0, 0, 0),
             ("generic", "generic_alerts.json", 6, 0, 5)]
    factories.make_customer(name="RetailMax", slug="retailmax")
    for source, name, created, skipped, errors in files:
        results = run(source, (FIXTURES / name).read_bytes(), default_customer=finance)
        counts = ingest.summary(results)
        assert (counts["created"], counts["skipped"], counts["errors"]) == (created, skipped, errors), name
    # the _search answer holds two alerts already stored from ecs_alerts.ndjson
    assert Threat.objects.filter(source="ecs").count() == 6
    hostile = Threat.objects.get(source="generic", source_ref="hostile-1")
    assert hostile.title.startswith("<script>alert('xss')</script>")  # stored verbatim; escaped on output


def test_the_ecs_organization_must_be_a_known_customer(finance):
    results = run("ecs", (FIXTURES / "ecs_alerts.ndjson").read_bytes(), default_customer=finance)
    refused = next(r for r in results if r.line == 6)
    assert (refused.status, refused.field, refused.detail) == ("error", "customer", "Unknown customer 'Globex'.")


# --- Idempotency ---------------------------------------------------------------------------------------


def test_reposting_answers_the_stored_ids_and_does_not_analyse_again(finance):
    data = (FIXTURES / "suricata_eve.ndjson").read_bytes()
    first = run("suricata", data, default_customer=finance)
    counts = (Threat.objects.count(), ThreatEvent.objects.count(), AgentRun.objects.count())
    again = run("suricata", data, default_customer=finance)
    assert ingest.summary(again) == {"created": 0, "duplicates": 7, "skipped": 6, "errors": 3}
    assert [(r.id, r.group_id) for r in again if r.duplicate] == [(r.id, r.group_id) for r in first if r.status == "created"]
    assert (Threat.objects.count(), ThreatEvent.objects.count(), AgentRun.objects.count()) == counts


def test_the_same_alert_twice_in_one_batch_is_stored_once(customer):
    results = run("generic", body(alert(1), alert(1)), default_customer=customer)
    assert statuses(results) == ["created", "duplicate"] and results[0].id == results[1].id
    assert Threat.objects.count() == 1


def test_a_row_stored_by_someone_else_after_the_lookup_is_answered_as_a_duplicate(customer):
    """The race the unique constraint settles (only a writer outside ingestion could cause it, as
    batches hold the writers' lock): the bulk insert fails, and the alert-by-alert retry answers
    the stored id while the rest of the batch is stored."""
    theirs = factories.make_threat(customer=customer, analyse=False, source="generic", source_ref="a-1")
    mapped = [(ingest.Record(n), generic.parse(alert(n)), customer, []) for n in (1, 2)]
    batch, results = ingest._Batch("generic", ingest.services.SYSTEM), {}
    with pytest.raises(IntegrityError), transaction.atomic():
        batch._store(mapped, results, known={}, one_by_one=False)  # as if looked up before theirs
    with TestCase.captureOnCommitCallbacks(execute=True):
        batch._store(mapped, results, known={}, one_by_one=True)
    assert (results[1].status, results[1].duplicate, results[1].id) == ("duplicate", True, str(theirs.pk))
    assert results[2].status == "created" and results[2].group_head
    assert Threat.objects.count() == 2 and ThreatGroup.objects.get().head_id == Threat.objects.get(source_ref="a-2").pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_create_exactly_one_row_each(customer):
    """Four threads with their own database connections post the same 40 alerts at once."""
    data = body(*[alert(n, minutes=n % 5, rule=f"r{n % 4}") for n in range(40)])
    start, answers, failures = threading.Barrier(4), [], []

    def post():
        try:
            start.wait(timeout=10)
            answers.append(ingest.ingest("generic", ingest.decode_body(data), actor_label="thread",
                                         default_customer=customer))
        except Exception as exc:  # reported below, so that a failure names its cause
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures and len(answers) == 4
    assert Threat.objects.count() == 40 and ThreatEvent.objects.filter(type=EventType.CREATED).count() == 40
    for index in range(40):
        ids = {answer[index].id for answer in answers}
        assert len(ids) == 1  # every thread got the same stored id
        assert sum(answer[index].status == "created" for answer in answers) == 1
    assert ThreatGroup.objects.count() == 4  # one per rule: no thread opened a second group for a key
    assert sum(ThreatGroup.objects.values_list("member_count", flat=True)) == 40


@pytest.mark.django_db(transaction=True)
def test_an_ingest_batch_never_deadlocks_with_a_worker_storing_a_verdict(customer, monkeypatch):
    """PostgreSQL. A worker storing a verdict has updated its threat - so it holds the running
    totals' row of (customer, type, no severity yet, new) - and then waits for the event-log lock.
    A batch inserting a threat of the same customer and type needs that row: it must not be
    holding the event-log lock while it waits (it did until the batch took its own lock)."""
    from agents import coordinator
    from threats import services

    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's; SQLite's IMMEDIATE transactions serialise writers")
    queued = factories.make_threat(customer=customer, analyse=False)
    holding_rows, failures = threading.Event(), []
    lock_event_log = services._lock_event_log

    def in_worker_after_the_batch_blocks():
        if threading.current_thread() is worker:
            holding_rows.set()
            with connection.cursor() as cursor:
                for _ in range(400):  # until the batch waits for the row this transaction holds
                    cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                    if cursor.fetchone()[0]:
                        break
                    threading.Event().wait(0.025)  # polling the server for a real waiting lock
        lock_event_log()

    def store_verdict():
        try:
            threat = services.start_analysis(queued.pk)
            services.do_record_analysis(threat, coordinator.decide(threat))
        except Exception as exc:  # reported below
            failures.append(exc)
        finally:
            holding_rows.set()
            connection.close()

    monkeypatch.setattr(services, "_lock_event_log", in_worker_after_the_batch_blocks)
    worker = threading.Thread(target=store_verdict)
    worker.start()
    assert holding_rows.wait(timeout=30)
    results = ingest.ingest("generic", ingest.decode_body(body(alert(1, threat_type="bot_traffic"))),
                            actor_label="test", default_customer=customer)
    worker.join(timeout=60)

    assert not failures, failures
    assert statuses(results) == ["created"]
    assert Threat.objects.get(pk=queued.pk).analysis_status == AnalysisStatus.COMPLETED
    assert ThreatEvent.objects.filter(type=EventType.ANALYZED, threat=queued).count() == 1


# --- Grouping ------------------------------------------------------------------------------------------


def test_repeats_within_the_window_join_one_group_with_counts_and_times(customer):
    results = run("generic", body(alert(1, 0, user="ann"), alert(2, 5, user="ann", severity="low"),
                                  alert(3, 30), alert(4, -10, user="ann")), default_customer=customer)
    assert [r.group_head for r in results] == [True, False, False, False]
    group = ThreatGroup.objects.get()
    assert group.member_count == 4 and group.head_id == Threat.objects.get(source_ref="a-1").pk
    assert group.first_seen == BASE - timedelta(minutes=10) and group.last_seen == BASE + timedelta(minutes=30)
    assert group.worst_severity_hint == "MEDIUM" and group.users == ["ann"] and group.key == "rule:r1|h1|203.0.113.5"
    assert set(group.members.values_list("analysis_status", flat=True)) == {"completed", "grouped"}


def test_a_new_user_tactic_or_higher_severity_starts_a_new_group(customer):
    results = run("generic", body(
        alert(1, 0, user="ann", tactics=["TA0006"]),
        alert(2, 1, user="bob", tactics=["TA0006"]),  # new user
        alert(3, 2, user="ann", tactics=["TA0006", "TA0008"]),  # new tactic
        alert(4, 3, user="ann", tactics=["TA0006"], severity="critical"),  # higher severity
        alert(5, 4, user="ann", tactics=["Credential Access"], severity="low"),  # nothing new: joins
    ), default_customer=customer)
    assert [r.group_head for r in results] == [True, True, True, True, False]
    assert ThreatGroup.objects.count() == 4
    assert AgentRun.objects.values("threat").distinct().count() == 4
    joined = Threat.objects.get(source_ref="a-5")
    assert joined.group.head.source_ref in ("a-1", "a-4")  # a group it fits: ann, TA0006, not above its worst
    assert joined.group.member_count == 2


def test_alerts_outside_the_window_or_of_another_entity_start_new_groups(customer, settings):
    settings.INGEST_GROUP_WINDOW_SECONDS = 600
    results = run("generic", body(alert(1, 0), alert(2, 9), alert(3, 11), alert(4, 1, host="h2"),
                                  alert(5, 1, src="198.51.100.1")), default_customer=customer)
    assert [r.group_head for r in results] == [True, False, True, True, True]
    # and across batches: a later request joins the stored group
    later = run("generic", body(alert(6, 12)), default_customer=customer)
    assert later[0].group_id == results[2].group_id and later[0].group_head is False


def test_a_group_whose_head_was_deleted_takes_no_more_members(customer):
    first = run("generic", body(alert(1), alert(2)), default_customer=customer)
    Threat.objects.filter(pk=first[0].id).delete()  # e.g. retention (MAX_STORED_THREATS)
    later = run("generic", body(alert(3, 1)), default_customer=customer)
    assert later[0].group_head and later[0].group_id != first[0].group_id
    assert Threat.objects.get(pk=later[0].id).analysis_status == AnalysisStatus.COMPLETED


def test_a_zero_window_turns_grouping_off(customer, settings):
    settings.INGEST_GROUP_WINDOW_SECONDS = 0
    results = run("generic", body(alert(1), alert(2)), default_customer=customer)
    assert [r.group_head for r in results] == [True, True] and {r.group_id for r in results} == {None}
    assert not ThreatGroup.objects.exists() and AgentRun.objects.values("threat").distinct().count() == 2


def test_the_same_key_for_two_customers_makes_two_groups(finance, globex):
    results = run("generic", body(alert(1, customer="global-finance"), alert(2, customer="globex")))
    assert results[0].group_id != results[1].group_id
    assert set(ThreatGroup.objects.values_list("customer__slug", flat=True)) == {"global-finance", "globex"}


# --- Customers -----------------------------------------------------------------------------------------


def test_the_customer_rule_named_then_host_map_then_key(finance, globex, settings):
    settings.INGEST_HOST_CUSTOMERS = "vpn-*=globex, h9=global-finance"
    results = run("generic", body(alert(1, customer="Global Finance", host="vpn-1"), alert(2, host="VPN-2"),
                                  alert(3, host="h9"), alert(4, host="elsewhere")), default_customer=finance)
    assert [Threat.objects.get(pk=r.id).customer.slug for r in results] == ["global-finance", "globex", "global-finance",
                                                                             "global-finance"]


def test_a_bound_key_never_writes_for_another_customer(finance, globex, settings):
    settings.INGEST_HOST_CUSTOMERS = "vpn-*=globex"
    results = run("generic", body(alert(1), alert(2, customer="globex"), alert(3, host="vpn-1")), bound_customer=finance)
    assert statuses(results) == ["created", "error", "error"]
    assert {r.field for r in results[1:]} == {"customer"} and "only ingests alerts for 'global-finance'" in results[1].detail
    assert Threat.objects.get().customer == finance


def test_unknown_or_missing_customers_are_item_errors(finance, settings):
    settings.INGEST_HOST_CUSTOMERS = "h1=initech"
    results = run("generic", body(alert(1, customer="Initech"), alert(2), alert(3, host="h2")))
    assert [(r.status, r.field) for r in results] == [("error", "customer")] * 3
    assert "Unknown customer 'Initech'" in results[0].detail
    assert "maps 'h1' to unknown customer 'initech'" in results[1].detail
    assert results[2].detail.startswith("No customer")
    settings.INGEST_HOST_CUSTOMERS = "no-equals-sign"
    with pytest.raises(ImproperlyConfigured):
        run("generic", body(alert(4)))


def test_the_ingest_environment_variables_are_read_strictly():
    read = load_settings("[settings.INGEST_WAZUH_LEVELS, settings.INGEST_HOST_CUSTOMERS, "
                         "settings.INGEST_GROUP_WINDOW_SECONDS]", **PRODUCTION, INGEST_WAZUH_LEVELS="0:LOW, 10:CRITICAL",
                         INGEST_HOST_CUSTOMERS="web-*=global-finance,db01=Globex", INGEST_GROUP_WINDOW_SECONDS="600")
    assert json.loads(read.stdout) == [[["0", "LOW"], ["10", "CRITICAL"]], [["web-*", "global-finance"], ["db01", "Globex"]],
                                       600]
    for name, value in [("INGEST_WAZUH_LEVELS", "5:LOW"), ("INGEST_WAZUH_LEVELS", "0:LOW,7:SEVERE"),
                        ("INGEST_WAZUH_LEVELS", "0:LOW,16:HIGH"), ("INGEST_HOST_CUSTOMERS", "web-*"),
                        ("INGEST_GROUP_WINDOW_SECONDS", "-1")]:
        refused = load_settings(**PRODUCTION, **{name: value})
        assert refused.returncode != 0 and "ImproperlyConfigured" in refused.stderr and name in refused.stderr, value


def test_the_settings_pairs_drive_the_host_map(finance, globex, settings):
    settings.INGEST_HOST_CUSTOMERS = [("web-*", "global-finance"), ("db01", "Globex")]
    results = run("generic", body(alert(1, host="web-7"), alert(2, host="DB01")))
    assert [Threat.objects.get(pk=r.id).customer for r in results] == [finance, globex]


# --- Decoding and limits -------------------------------------------------------------------------------


def test_bodies_may_be_an_object_an_array_ndjson_or_a_search_answer():
    one = json.dumps(alert(1)).encode()
    assert len(ingest.decode_body(one)) == 1
    assert len(ingest.decode_body(body(alert(1), alert(2)))) == 2
    ndjson = one + b"\n\n" + json.dumps(alert(2)).encode() + b"\n"
    by_type = ingest.decode_body(ndjson, "application/x-ndjson; charset=utf-8")
    assert [(r.index, r.line) for r in by_type] == [(0, 1), (1, 3)]
    assert [(r.index, r.line) for r in ingest.decode_body(ndjson, "application/json")] == [(0, 1), (1, 3)]  # sniffed
    search = json.dumps({"hits": {"hits": [{"_id": "x", "_source": alert(1)}]}}).encode()
    assert ingest.decode_body(search)[0].value["_id"] == "x"


@pytest.mark.parametrize("data, status, detail", [
    (b"", 400, "empty"), (b"   \n", 400, "empty"), (b"[]", 400, "no alert"), (b"{not json", 400, "Invalid JSON"),
    (b'"a string"', 400, "must be a JSON object"), (b'{"a": "\xff"}', 400, "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
])
def test_unusable_bodies_are_refused_whole(data, status, detail):
    with pytest.raises(ingest.BodyError) as refused:
        ingest.decode_body(data)
    assert refused.value.status == status and detail in refused.value.detail and refused.value.field == "body"


def test_too_large_bodies_and_batches_are_413(settings):
    settings.INGEST_MAX_BATCH = 3
    with pytest.raises(ingest.BodyError) as batch:
        ingest.decode_body(body(*[alert(n) for n in range(4)]))
    assert batch.value.status == 413 and "at most 3" in batch.value.detail
    settings.INGEST_MAX_BODY_BYTES = 100
    with pytest.raises(ingest.BodyError) as size:
        ingest.decode_body(body(alert(1)))
    assert size.value.status == 413


def test_a_bad_ndjson_line_is_an_item_error_with_its_line_number():
    records = ingest.decode_body(b'{"a": 1}\n{"b": \n\xff\n', "application/x-ndjson")
    assert [(r.line, r.error.field if r.error else None) for r in records] == [(1, None), (2, "line"), (3, "line")]
    assert records[1].error.detail.startswith("Line 2: invalid JSON")


def test_long_strings_are_cut_with_a_marker_and_reported(customer, settings):
    settings.INGEST_MAX_STRING_CHARS = 1_000
    item = alert(1, note="n" * 5_000, nested={"list": ["short", "x" * 1_500]})
    results = run("generic", body(item), default_customer=customer)
    assert results[0].status == "created" and results[0].truncated == ["note", "nested.list[1]"]
    raw = Threat.objects.get().raw
    assert raw["note"] == "n" * 1_000 + "…[cut 4000 characters]" and raw["nested"]["list"][0] == "short"


def test_oversized_normalised_fields_are_cut_and_raw_kept_within_bounds(finance):
    results = run("wazuh", (FIXTURES / "wazuh_oversized.ndjson").read_bytes(), default_customer=finance)
    big, deep = results
    assert big.status == "created" and big.truncated == ["full_log", "user", "urls", "rule.description"]
    threat = Threat.objects.get(pk=big.id)
    assert len(threat.title) == 200 and len(threat.observables["user"]) == 1_024
    assert len(threat.raw["full_log"]) < 66_000 and threat.raw["full_log"].endswith("characters]")
    assert (deep.status, deep.detail) == ("error", "Nested deeper than 32 levels.")


def test_an_alert_over_the_size_limit_is_refused(customer, settings):
    settings.INGEST_MAX_ITEM_CHARS = 2_000
    results = run("generic", body(alert(1, notes=["y" * 500] * 5), alert(2)), default_customer=customer)
    assert statuses(results) == ["error", "created"] and results[0].field == "alert"


def test_nul_characters_and_lone_surrogates_are_cleaned_so_any_database_stores_them(customer):
    text = '[{"id": "nul", "title": "bad\\u0000byte \\ud800 here", "occurred_at": "2026-11-20T10:00:00Z", ' \
           '"observables": {"user": "x\\u0000y"}, "k\\u0000ey": "v"}]'
    results = run("generic", text.encode(), default_customer=customer)
    assert results[0].status == "created", results[0]
    threat = Threat.objects.get()
    assert threat.title == "badbyte \ufffd here" and threat.observables["user"] == "xy" and threat.raw["key"] == "v"


def test_an_ecs_organization_id_is_the_vendor_s_tenant_not_a_customer(finance):
    """Elastic's Microsoft 365 and Okta integrations put the vendor's tenant GUID in organization.id."""
    record = {"@timestamp": "2026-11-20T10:00:00Z", "event": {"kind": "signal", "action": "New-InboxRule"},
              "kibana.alert.uuid": "o365-rule-1", "kibana.alert.rule.name": "M365 inbox rule",
              "organization": {"id": "6c1e0f4b-2a7d-4e3f-9b8a-5d4c3b2a1f0e"}}
    results = run("ecs", json.dumps(record).encode(), default_customer=finance)
    assert [r.status for r in results] == ["created"] and Threat.objects.get().customer == finance
