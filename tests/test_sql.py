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
    changed = len(sql.update_each(Threat, {threat.pk: values}, "true", [], sql.Columns(Threat, ["id"])))
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


def test_update_each_gives_every_row_its_own_values_in_one_statement(customer, django_assert_num_queries):
    threats = [factories.make_threat(customer=customer, analyse=False, title=f"alert {i}") for i in range(3)]
    threats[2].analysis_status = "completed"
    threats[2].save()
    changes = {t.pk: {"title": f"new {i}", "risk_score": 10 * i, "mitre": {"n": i}, "analyzed_at": t.received_at}
               for i, t in enumerate(threats)}
    returning = sql.Columns(Threat, ["id", "status"])
    with django_assert_num_queries(1):
        rows = sql.update_each(Threat, changes, "analysis_status <> %s", ["completed"], returning)
    assert sorted(rows) == sorted([[threats[0].pk, "new"], [threats[1].pk, "new"]])  # the third fails the condition
    stored = {t.pk: t for t in Threat.objects.all()}
    for i, threat in enumerate(threats[:2]):
        assert (stored[threat.pk].title, stored[threat.pk].risk_score, stored[threat.pk].mitre) == (f"new {i}", 10 * i, {"n": i})
    assert stored[threats[2].pk].title == "alert 2" and stored[threats[2].pk].risk_score is None


def test_update_each_refuses_a_value_too_long_for_its_column_rather_than_cutting_it(customer):
    from django.db import DataError, connection, transaction

    threat = factories.make_threat(customer=customer, analyse=False)
    if connection.vendor != "postgresql":
        pytest.skip("SQLite does not enforce varchar lengths")
    with pytest.raises(DataError), transaction.atomic():
        sql.update_each(Threat, {threat.pk: {"severity": "X" * 50}}, "true", [], sql.Columns(Threat, ["id"]))


def test_insert_all_hands_out_keys_in_list_order(customer):
    from threats.models import ThreatEvent

    threat = factories.make_threat(customer=customer, analyse=False)
    events = sql.insert_all([ThreatEvent(threat=threat, type="threat.updated", actor_kind="system", payload={"n": n})
                             for n in range(5)])
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert [ThreatEvent.objects.get(seq=e.seq).payload for e in events] == [{"n": n} for n in range(5)]


# --- Django's public cursor, not its private internals (issue 20 item 5) -------------------------------

PRIVATE = {"make_debug_cursor", "make_cursor", "wrap_database_errors", "queries_logged", "ensure_connection",
           "validate_thread_sharing", "create_cursor", "_prepare_cursor", "_cursor_factory", "CursorWrapper",
           "CursorDebugWrapper", "DatabaseErrorWrapper"}


def test_sql_py_names_none_of_djangos_private_cursor_internals():
    """They change across Django releases: threats/sql.py may use `connection.cursor()`, the DB-API
    cursor it wraps and psycopg's public API, never these (as a name, an attribute or a getattr string)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(sql))
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.alias):
            used.update({node.name.rsplit(".", 1)[-1], node.asname})
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            used.add(node.value)
    assert not used & PRIVATE


def test_every_statement_function_says_why_not_the_orm():
    import inspect

    for function in (sql.Columns.rows, sql.Columns.instances, sql.insert, sql.insert_all, sql.upsert, sql.update_each,
                     sql.execute):
        lines = [line.strip() for line in inspect.getdoc(function).splitlines()]
        assert [line for line in lines if line.startswith("Why not the ORM: ")], function.__qualname__


def test_statements_are_logged_and_seen_by_execute_wrappers(customer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    threat = factories.make_threat(customer=customer, analyse=False)
    seen = []

    def record(execute, statement, params, many, context):
        seen.append(statement)
        return execute(statement, params, many, context)

    columns = sql.Columns(Threat, ["id"])
    with CaptureQueriesContext(connection) as logged, connection.execute_wrapper(record):
        rows = columns.rows(f"SELECT {columns} FROM {THREATS} WHERE id = %s /* logged */",
                            [sql.param(Threat, "id", threat.pk)])
        sql.update_each(Threat, {threat.pk: {"title": "renamed"}}, "true", [], columns)
    assert rows == [[threat.pk]]
    assert len(seen) == len(logged.captured_queries) == 2
    assert "/* logged */" in seen[0] and "/* logged */" in logged.captured_queries[0]["sql"]
    assert seen[1].startswith(f"UPDATE {THREATS}") and logged.captured_queries[1]["sql"].startswith(f"UPDATE {THREATS}")


def test_database_errors_surface_as_djangos_own(customer):
    import django.db
    from django.db import transaction

    with pytest.raises(django.db.DatabaseError) as refused, transaction.atomic():
        sql.execute("UPDATE no_such_table SET x = %s", [1])
    assert type(refused.value).__module__ == "django.db.utils"  # ProgrammingError / OperationalError, wrapped
    with pytest.raises(django.db.IntegrityError), transaction.atomic():
        sql.insert(Customer(name="Twin", slug=customer.slug))


def test_postgresql_prepares_the_statements_it_runs_again(customer):
    """What the server-binding cursor is for: psycopg prepares a statement after `prepare_threshold`
    runs (the ORM's client-binding cursors never do)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    threshold = connection.settings_dict["OPTIONS"].get("prepare_threshold")
    if threshold is None:
        pytest.skip("prepare_threshold is off in this configuration")
    columns = sql.Columns(Customer, ["id"])
    statement = f"SELECT {columns} FROM threats_customer WHERE id = %s /* prepared by psycopg */"
    for _ in range(threshold + 1):
        assert columns.rows(statement, [customer.pk]) == [[customer.pk]]
    for _ in range(threshold + 1):
        list(Customer.objects.filter(pk=customer.pk, name__startswith="not prepared"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert [text for text in prepared if "/* prepared by psycopg */" in text]
    assert not [text for text in prepared if "LIKE" in text and "threats_customer" in text]  # the ORM's query
