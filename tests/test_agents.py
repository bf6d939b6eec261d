"""The analysis task: five agents in parallel, a verdict computed from the signal and stored data."""

import threading
from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.module_loading import import_string

from agents import coordinator, tasks, tracing
from agents.models import AgentRun
from agents.registry import AGENT_KINDS
from tests import factories
from threats import services
from threats.choices import AnalysisStatus, EventType
from threats.models import ContextItem, Threat, ThreatEvent

pytestmark = pytest.mark.django_db


def _analysed(threat):
    return Threat.objects.get(pk=threat.pk)


def test_it_writes_one_agent_run_per_agent(threat):
    runs = AgentRun.objects.filter(threat=threat)
    assert sorted(runs.values_list("kind", flat=True)) == sorted(AGENT_KINDS)
    for run in runs:
        assert run.status == "succeeded", run.error
        assert run.started_at <= run.finished_at
        assert run.summary and 0 <= run.confidence <= 1
        assert run.findings
    assert threat.analysis_status == AnalysisStatus.COMPLETED
    assert threat.severity in ("LOW", "MEDIUM", "HIGH", "CRITICAL")
    # The band comes from the policy's moves (the prior first); the score sits inside the band.
    assert threat.risk_factors[0]["kind"] == "prior"
    assert [f["to"] for f in threat.risk_factors if f["kind"] != "adjustment"][-1] == threat.severity
    floor = {"LOW": 0, "MEDIUM": 25, "HIGH": 50, "CRITICAL": 75}[threat.severity]
    assert floor <= threat.risk_score <= floor + 24


def test_the_agents_run_in_parallel(customer, monkeypatch):
    # Each agent waits at a barrier for all five: run one after another, they would time out.
    barrier = threading.Barrier(len(AGENT_KINDS), timeout=5)
    for _label, path in AGENT_KINDS.values():
        cls = import_string(path)
        monkeypatch.setattr(cls, "analyze", _after_barrier(cls.analyze, barrier))
    threat = _analysed(factories.make_threat(customer=customer))
    assert set(AgentRun.objects.filter(threat=threat).values_list("status", flat=True)) == {"succeeded"}
    timeline_events = [m["event"] for m in threat.timeline]
    assert timeline_events.count("agent_started") == 5 and timeline_events[-1] == "decision"


def _after_barrier(analyze, barrier):
    def wrapped(self, threat, gathered):
        barrier.wait()
        return analyze(self, threat, gathered)

    return wrapped


def test_running_the_task_twice_changes_nothing(threat):
    before = list(AgentRun.objects.filter(threat=threat).values_list("id", "finished_at"))
    tasks.analyze_threat.delay(str(threat.pk))
    tasks.analyze_threat.delay(str(threat.pk))
    assert list(AgentRun.objects.filter(threat=threat).values_list("id", "finished_at")) == before
    assert ThreatEvent.objects.filter(threat=threat, type=EventType.ANALYZED).count() == 1


def test_a_redelivered_task_after_a_crash_updates_rather_than_duplicates(customer):
    threat = factories.make_threat(customer=customer, analyse=False)
    Threat.objects.filter(pk=threat.pk).update(analysis_status=AnalysisStatus.RUNNING)  # a worker died mid-run
    tasks.analyze_threat.delay(str(threat.pk))
    tasks.analyze_threat.delay(str(threat.pk))
    assert AgentRun.objects.filter(threat=threat).count() == 5
    assert ThreatEvent.objects.filter(threat=threat, type=EventType.ANALYZED).count() == 1


def test_a_batch_task_analyses_every_threat_once_in_order_and_skips_the_analysed_and_the_gone(customer):
    queued = [factories.make_threat(customer=customer, analyse=False, title=f"alert {i}") for i in range(3)]
    done = factories.make_threat(customer=customer)
    gone = "00000000-0000-0000-0000-000000000000"
    ids = [str(queued[2].pk), gone, str(done.pk), str(queued[0].pk), str(queued[1].pk), str(queued[0].pk)]

    tasks.analyze_threats.delay(ids)

    for threat in queued:
        assert _analysed(threat).analysis_status == AnalysisStatus.COMPLETED
        assert AgentRun.objects.filter(threat=threat).count() == 5
    analysed = ThreatEvent.objects.filter(type=EventType.ANALYZED).order_by("seq")
    assert [e.threat_id for e in analysed] == [done.pk, queued[2].pk, queued[0].pk, queued[1].pk]  # each once, in task order


def test_a_failure_in_a_batch_is_recorded_on_its_threat_and_the_others_are_analysed(customer, monkeypatch):
    queued = [factories.make_threat(customer=customer, analyse=False, title=f"alert {i}") for i in range(3)]
    decide = coordinator.decide
    monkeypatch.setattr(coordinator, "decide", lambda t, *found: 1 / 0 if t.pk == queued[1].pk else decide(t, *found))

    with pytest.raises(ZeroDivisionError):  # raised after the batch, so the task is retried
        tasks.analyze_threats.delay([str(t.pk) for t in queued])

    states = [_analysed(t).analysis_status for t in queued]
    assert states == [AnalysisStatus.COMPLETED, AnalysisStatus.FAILED, AnalysisStatus.COMPLETED]
    monkeypatch.undo()
    tasks.analyze_threats.delay([str(t.pk) for t in queued])  # the retry: only the failed one is left
    assert _analysed(queued[1]).analysis_status == AnalysisStatus.COMPLETED
    assert ThreatEvent.objects.filter(type=EventType.ANALYZED).count() == 3


def test_one_statement_claims_a_batch(customer, django_assert_num_queries):
    queued = [factories.make_threat(customer=customer, analyse=False, title=f"alert {i}") for i in range(4)]
    with django_assert_num_queries(2):  # the claim (UPDATE ... RETURNING) and the customers
        claimed = services.start_analyses([t.pk for t in reversed(queued)])
    assert [t.pk for t in claimed] == [t.pk for t in reversed(queued)]
    assert all(t.customer.slug == customer.slug for t in claimed)
    assert set(Threat.objects.values_list("analysis_status", flat=True)) == {AnalysisStatus.RUNNING}


def test_a_batch_s_verdicts_are_stored_with_as_many_statements_as_one_verdict(customer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def store(count):
        queued = [factories.make_threat(customer=customer, analyse=False, title=f"alert {i}") for i in range(count)]
        claimed = services.start_analyses([t.pk for t in queued])
        decided = [(threat, coordinator.decide(threat)) for threat in claimed]
        with CaptureQueriesContext(connection) as statements:
            stored = services.do_record_analyses(decided)
        assert [t.pk for t in stored] == [t.pk for t in queued]
        assert all(t.analysis_status == AnalysisStatus.COMPLETED and t.severity for t in stored)
        return len(statements)

    assert store(1) == store(6)  # one UPDATE, one upsert of the runs, one INSERT of the events, one commit
    assert AgentRun.objects.count() == 7 * 5 and ThreatEvent.objects.filter(type=EventType.ANALYZED).count() == 7


def test_a_verdict_the_database_refuses_costs_only_its_own_threat(customer, monkeypatch):
    queued = [factories.make_threat(customer=customer, analyse=False, title=f"alert {i}") for i in range(3)]
    decide = coordinator.decide

    def refused_for_the_second(threat, *found):
        verdict = decide(threat, *found)
        if threat.pk == queued[1].pk:
            verdict.risk_score = -1  # a positive small integer column: the CHECK constraint refuses it
        return verdict

    monkeypatch.setattr(coordinator, "decide", refused_for_the_second)
    with pytest.raises(Exception, match="(?i)constraint|check"):  # raised after the batch: the task is retried
        coordinator.analyze_many([t.pk for t in queued])

    states = [_analysed(t).analysis_status for t in queued]
    assert states == [AnalysisStatus.COMPLETED, AnalysisStatus.FAILED, AnalysisStatus.COMPLETED]
    assert AgentRun.objects.filter(threat=queued[1]).count() == 0
    assert [e.threat_id for e in ThreatEvent.objects.filter(type=EventType.ANALYZED).order_by("seq")] == \
        [queued[0].pk, queued[2].pk]


def test_a_slow_batch_stores_its_verdicts_as_it_goes(customer, monkeypatch):
    queued = [factories.make_threat(customer=customer, analyse=False, title=f"alert {i}") for i in range(3)]
    stores = []
    record = services.do_record_analyses
    monkeypatch.setattr(services, "do_record_analyses", lambda analyses: stores.append(len(analyses)) or record(analyses))

    coordinator.analyze_many([t.pk for t in queued])
    assert stores == [3]  # decided well within STORE_AFTER_SECONDS: stored together

    queued = [factories.make_threat(customer=customer, analyse=False, title=f"alert {i}") for i in range(3)]
    monkeypatch.setattr(coordinator, "STORE_AFTER_SECONDS", 0)  # every verdict has waited long enough
    stores.clear()
    coordinator.analyze_many([t.pk for t in queued])
    assert stores == [1, 1, 1]
    assert all(_analysed(t).analysis_status == AnalysisStatus.COMPLETED for t in queued)


def _batch_world():
    """Two customers' threats at different moments, and infrastructure events and context items
    inside, across and outside their windows, for them, for the other customer and for everyone."""
    acme, globex = factories.make_customer(), factories.make_customer()
    now = timezone.now()
    threats = [factories.make_threat(customer=customer, analyse=False, occurred_at=now - timedelta(minutes=minutes),
                                     title=f"alert {minutes}")
               for customer, minutes in ((acme, 2), (globex, 30), (acme, 200), (acme, 45), (globex, 2))]
    for customer in (acme, globex, None):
        for minutes_ago, ended_minutes_ago in ((10, None), (70, 50), (300, 290), (400, None), (-3, None), (240, 100)):
            factories.make_infra_event(customer=customer, minutes_ago=minutes_ago, service=f"svc-{minutes_ago}",
                                       ended_at=now - timedelta(minutes=ended_minutes_ago)
                                       if ended_minutes_ago is not None else None)
        for starts, ends in ((60 * 24, None), (100, 40), (20, None), (500, 300), (-10, None)):
            ContextItem.objects.create(customer=customer, kind="advisory", title=f"item {starts}",
                                       threat_types=[], valid_from=now - timedelta(minutes=starts),
                                       valid_until=now - timedelta(minutes=ends) if ends is not None else None)
    return threats


@pytest.mark.parametrize("limit", [None, 1])  # 1: the batch's read comes back full, and each threat reads alone
@pytest.mark.parametrize("kind", ["devops", "context"])
def test_one_read_for_a_batch_finds_for_each_threat_what_its_own_read_finds(customer, monkeypatch, kind, limit):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    module = import_string(f"agents.{kind}.agent")
    if limit:
        monkeypatch.setattr(module, "MAX_EVENTS" if kind == "devops" else "MAX_ITEMS", limit)
    threats = _batch_world()
    agent = next(a for a in coordinator._load() if a.kind == kind)
    alone = [[record.pk for record in agent.gather(threat)] for threat in threats]
    with CaptureQueriesContext(connection) as statements:
        together = [[record.pk for record in found] for found in agent.gather_many(threats)]
    assert together == alone
    assert len(set(map(tuple, alone))) > (1 if limit else 2)  # they find different records: a test that can fail
    assert len(statements) == (1 + len(threats) if limit else 1)


def test_a_batch_is_decided_as_each_threat_would_be_on_its_own(customer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    threats = _batch_world()
    claimed = services.start_analyses([t.pk for t in threats])
    alone = {threat.pk: coordinator.decide(threat) for threat in claimed}
    with CaptureQueriesContext(connection) as statements:
        gathered = coordinator.gather(claimed)
    historical = len(claimed)  # this customer's look-up, one a threat (SQLite; one for them all on PostgreSQL)
    recent = len(claimed)  # the priority agent's read of the last hour's alerts on the same source or user
    assert len(statements) <= historical + recent + 2  # the DevOps and context agents read once for the batch
    ahead = {threat.pk: found for threat, found in zip(claimed, gathered, strict=True)}
    ran = coordinator._run_batch(claimed, ahead, {threat.pk: tracing.Analysis(threat.pk) for threat in claimed})
    assert set(ran) == set(ahead)  # every threat got its five runs from the batch's five jobs
    for threat, found in zip(claimed, gathered, strict=True):
        verdict = coordinator.decide(threat, found, ran[threat.pk])
        expected = alone[threat.pk]
        assert (verdict.severity, verdict.risk_score, verdict.risk_factors) == \
            (expected.severity, expected.risk_score, expected.risk_factors)
        assert [run["evidence"] for run in verdict.agent_runs] == [run["evidence"] for run in expected.agent_runs]
        moments = {m["event"]: m for m in verdict.timeline}
        assert moments["analysis_started"]["at"] <= moments["context_gathered"]["at"] <= moments["decision"]["at"]
        assert f"one read for a batch of {len(claimed)}" in moments["context_gathered"]["title"]
        order = [m["event"] for m in verdict.timeline]  # sorted by time: each agent ran after the batch's read
        assert order.count("agent_started") == order.count("agent_finished") == 5
        assert order.index("context_gathered") < order.index("agent_started")
        assert max(i for i, event in enumerate(order) if event == "agent_finished") < order.index("decision")


def test_an_agent_s_run_over_a_batch_that_breaks_leaves_its_remaining_threats_to_run_alone(customer, monkeypatch,
                                                                                            caplog):
    queued = [factories.make_threat(customer=customer, analyse=False, title=f"alert {i}") for i in range(4)]
    run_agent, broken = coordinator._run_agent, []

    def breaks_once_on_the_third(agent, threat, gathered):
        if agent.kind == "config" and threat.pk == queued[2].pk and not broken:
            broken.append(threat.pk)
            raise RuntimeError("the run over the batch broke")
        return run_agent(agent, threat, gathered)

    monkeypatch.setattr(coordinator, "_run_agent", breaks_once_on_the_third)
    coordinator.analyze_many([t.pk for t in queued])

    assert broken == [queued[2].pk]
    for threat in queued:  # the third and fourth ran their agents on their own, and all five succeeded
        stored = _analysed(threat)
        assert stored.analysis_status == AnalysisStatus.COMPLETED
        assert sorted(run.status for run in stored.agent_runs.all()) == ["succeeded"] * 5
    assert "the rest run on their own" in caplog.text


def test_a_task_for_a_deleted_threat_is_a_no_op(db):
    assert coordinator.analyze("00000000-0000-0000-0000-000000000000") is None


def test_a_failing_agent_is_recorded_and_flags_review(customer, monkeypatch):
    def broken(self, threat, gathered):
        raise ValueError("context source unavailable")

    monkeypatch.setattr("agents.context.agent.ContextAgent.analyze", broken)
    threat = _analysed(factories.make_threat(customer=customer))
    run = AgentRun.objects.get(threat=threat, kind="context")
    assert run.status == "failed" and "context source unavailable" in run.error
    assert threat.analysis_status == AnalysisStatus.COMPLETED
    assert threat.requires_human_review and "agent_failed: context" in threat.review_reasons


def test_a_failed_analysis_is_visible_and_can_be_retried(customer, monkeypatch):
    monkeypatch.setattr(coordinator, "_risk_factors", lambda results, fp: 1 / 0)
    factories.make_threat(customer=customer)  # the creation itself succeeds; the analysis fails
    threat = Threat.objects.get()
    assert threat.analysis_status == AnalysisStatus.FAILED and "division by zero" in threat.analysis_error
    assert ThreatEvent.objects.filter(threat=threat, type=EventType.ANALYSIS_FAILED).exists()
    monkeypatch.undo()
    tasks.analyze_threat.delay(str(threat.pk))
    assert _analysed(threat).analysis_status == AnalysisStatus.COMPLETED


def test_analysis_is_not_enqueued_for_a_rolled_back_threat(customer, django_capture_on_commit_callbacks):
    from django.db import transaction

    with pytest.raises(RuntimeError):
        with transaction.atomic():
            services.trigger_threat(services.SYSTEM, customer=customer.slug)
            raise RuntimeError
    assert not AgentRun.objects.exists()


def test_the_critical_scenario_is_critical_and_needs_review(db):
    threat = _triggered(scenario="critical_threat")
    assert threat.severity == "CRITICAL"
    assert "critical_severity: compromise or impact in progress" in threat.review_reasons
    techniques = {t["technique_id"] for t in threat.mitre["techniques"]}
    assert {"T1071", "T1041"} <= techniques
    assert threat.response_plan["sla_minutes"] == 15
    assert threat.response_plan["actions"][0]["action"] == "isolate_host"


def test_the_crypto_surge_is_explained_by_the_rate_limit(db):
    threat = _triggered(scenario="crypto_surge")
    config = AgentRun.objects.get(threat=threat, kind="config")
    assert config.data["rate_ratio"] == pytest.approx(850 / 150, rel=0.01)
    assert any("customer:cryptoexchange-pro.rate_limit_per_minute" in f["evidence"] for f in config.findings)
    # Automated abuse with no sign of impact is MEDIUM whatever the multiple; the breach raises the score.
    assert threat.severity == "MEDIUM" and any(f["agent"] == "config" and f["points"] > 0 for f in threat.risk_factors)


def _closed(user, threat, disposition, hours_ago):
    """`threat` closed by `user` through the service, `hours_ago` (closures spread over time: a
    sudden run of them is a closure burst, which is not learned from)."""
    services.triage(user, threat.pk, status="closed", disposition=disposition, reason="triaged")
    Threat.objects.filter(pk=threat.pk).update(closed_at=timezone.now() - timedelta(hours=hours_ago))
    return threat


def test_the_historical_agent_learns_from_analyst_dispositions(customer, alice, bob):
    past = [factories.make_threat(customer=customer) for _ in range(3)]
    for old, analyst, hours_ago in zip(past, (alice, bob, alice), (30, 20, 10), strict=True):
        _closed(analyst, old, "false_positive", hours_ago)
    fresh = _analysed(factories.make_threat(customer=customer))
    run = AgentRun.objects.get(threat=fresh, kind="historical")
    assert run.data["dispositions"]["false_positive"] == 3
    assert {f"threat:{t.pk}" for t in past} <= set(run.evidence)
    assert fresh.false_positive["score"] > past[0].false_positive["score"]


def test_the_devops_agent_cites_infrastructure_events(customer):
    deployment = factories.make_infra_event(customer=customer, minutes_ago=15, description="API release 9.1")
    factories.make_infra_event(customer=customer, minutes_ago=600, description="last week's change")
    threat = factories.make_threat(customer=customer, threat_type="rate_limit_breach")
    run = AgentRun.objects.get(threat=threat, kind="devops")
    # The finding also cites the signal time it measured the gap from.
    assert [ref for ref in run.evidence if ref.startswith("infra_event:")] == [f"infra_event:{deployment.pk}"]
    assert any(r["points"] < 0 for r in run.risk)


def test_the_context_agent_uses_tier_hours_and_context_items(customer):
    item = ContextItem.objects.create(
        customer=customer, kind="advisory", title="Credential stuffing wave", threat_types=["bot_traffic"],
        valid_from=timezone.now() - timedelta(days=1),
    )
    threat = factories.make_threat(customer=customer)
    run = AgentRun.objects.get(threat=threat, kind="context")
    assert f"context_item:{item.pk}" in run.evidence
    assert "business hours" in run.summary


def test_the_config_agent_honours_the_allow_list(db):
    trusted = factories.make_customer(allow_listed_ips=["192.0.2.0/24"])
    threat = factories.make_threat(customer=trusted)
    run = AgentRun.objects.get(threat=threat, kind="config")
    assert any(r["points"] == -25 and "allow-listed" in r["reason"] for r in run.risk)


def test_alert_technique_hints_are_kept(customer):
    threat = factories.make_threat(customer=customer, mitre_hints=["T1078", "not-a-technique"])
    sources = {t["technique_id"]: t["source"] for t in threat.mitre["techniques"]}
    assert "alert" in sources["T1078"].split("+") and "not-a-technique" not in sources


def _triggered(**kwargs):
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True), tasks.analysis_inline():
        threat = services.trigger_threat(services.SYSTEM, **kwargs)
    return _analysed(threat)


def test_the_sweeper_requeues_only_stale_unfinished_analyses(customer):
    from datetime import timedelta as _td

    stuck = factories.make_threat(customer=customer, analyse=False)
    fresh = factories.make_threat(customer=customer, analyse=False)
    done = factories.make_threat(customer=customer)
    Threat.objects.filter(pk__in=[stuck.pk, done.pk]).update(updated_at=timezone.now() - _td(minutes=10))
    with tasks.analysis_inline():
        assert tasks.requeue_stale_analyses() == 1
    assert _analysed(stuck).analysis_status == AnalysisStatus.COMPLETED
    assert _analysed(fresh).analysis_status == AnalysisStatus.QUEUED
    assert ThreatEvent.objects.filter(threat=done, type=EventType.ANALYZED).count() == 1


# --- The historical look-up: indexed, and the same past threats as the rule says ---------------------


def _past(customer, threat_type="malware", hours_ago=2, **observables):
    return factories.make_threat(customer=customer, analyse=False, threat_type=threat_type,
                                 observables=observables, received_at=timezone.now() - timedelta(hours=hours_ago))


def _similar_by_the_rule(threat):
    """docs/agents.md: this customer's threats only, of the same type or rule, or with the same
    src/dst IP, user or host; indicators make every threat of the customer a candidate."""
    from agents.historical.agent import ENTITY_FIELDS, lookback

    found = set()
    for row in Threat.objects.filter(received_at__gte=threat.received_at - lookback(), customer=threat.customer,
                                     received_at__lte=threat.received_at).exclude(pk=threat.pk):
        shares = any(threat.observables.get(n) and row.observables.get(n) == threat.observables[n]
                     for n in ENTITY_FIELDS)
        if row.threat_type == threat.threat_type or (threat.rule and row.rule == threat.rule) or shares:
            found.add(row.pk)
    return found


def _with_rule(threat, rule):
    Threat.objects.filter(pk=threat.pk).update(rule=rule)
    threat.rule = rule
    return threat


def test_the_historical_lookup_finds_every_past_threat_sharing_an_entity_and_nothing_else(customer):
    from agents.historical.agent import HistoricalAgent

    other = factories.make_customer()
    long_host = "h" * 250 + "-a"  # longer than the indexed prefix: the whole value decides
    expected = [
        _past(customer, src_ip="198.51.100.7"), _past(customer, user="mallory"), _past(customer, host=long_host),
        _past(customer, threat_type="bot_traffic", src_ip="203.0.113.1"),  # same type, no shared entity
        _with_rule(_past(customer, threat_type="web_attack"), "sid:1:2001219"),  # same rule, another type
    ]
    unexpected = [
        _past(customer, src_ip="198.51.100.8"), _past(customer, user="mallory2"),
        _past(customer, host="h" * 250 + "-b"),  # same first 200 characters, another host
        _with_rule(_past(customer, threat_type="web_attack"), "sid:1:2001220"),
        _past(other, user="mallory"), _past(other, threat_type="bot_traffic"),  # never another customer's:
        _past(other, src_ip="198.51.100.7", hours_ago=1), _past(other, dst_ip="203.0.113.50", hours_ago=3),  # nor IPs
        _with_rule(_past(other, threat_type="web_attack"), "sid:1:2001219"),
        _past(customer, src_ip="198.51.100.7", hours_ago=24 * 40),  # outside the look-back
        _past(customer, src_ip="x" * 3000),  # a huge value is stored and indexed (by its prefix) too
    ]
    threat = _with_rule(factories.make_threat(customer=customer, analyse=False, observables={
        "src_ip": "198.51.100.7", "dst_ip": "203.0.113.50", "user": "mallory", "host": long_host}), "sid:1:2001219")
    gathered = {row["id"] for row in HistoricalAgent().gather(threat)}
    assert gathered == {t.pk for t in expected} == _similar_by_the_rule(threat)
    assert not gathered & {t.pk for t in unexpected}


def _statements_of(call):
    """The (SQL, parameters) of every statement `call()` runs."""
    from django.db import connection

    statements = []

    def record(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        call()
    return statements


def test_every_branch_of_the_historical_lookup_reads_its_own_index(customer):
    """A database uses an expression index only for the identical expression: if the agent's
    `entity_key` and threats migration 0007 drift apart, or a branch stops being an index range,
    the look-up silently walks the customer's whole window again."""
    from django.db import connection, transaction

    from agents.historical.agent import ENTITY_FIELDS, HistoricalAgent

    threat = _with_rule(factories.make_threat(customer=customer, analyse=False, observables={
        "src_ip": "198.51.100.7", "dst_ip": "203.0.113.50", "user": "mallory", "host": "db-1"}), "rule:5712")
    # A table as real ones are: many threats of this type and rule at other customers, many of this
    # customer's of other types and rules, every entity value rare. On a near-empty table several
    # indexes cost PostgreSQL's planner the same, and its pick among equals changed when migration
    # 0011 added indexes: a test of the look-up, not of tie-breaking.
    other, now = factories.make_customer(), timezone.now()
    Threat.objects.bulk_create(
        Threat(customer=owner, threat_type=kind, rule=rule_of(i), title=f"filler {i}", occurred_at=now,
               received_at=now - timedelta(minutes=i), observables={name: f"{name}-{i}" for name in ENTITY_FIELDS})
        for owner, kind, rule_of in ((customer, "malware", "rule-{}".format), (other, threat.threat_type,
                                                                              lambda i: threat.rule))
        for i in range(1000))
    statements = _statements_of(lambda: HistoricalAgent().gather(threat))
    assert len(statements) == 1  # this customer's history only (shared reputation is off by default)
    plans = []
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE threats_threat")  # rolled back with the test (SQLite keeps no statistics)
        for sql, params in statements:
            cursor.execute(("EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN ") + sql, params)
            plans.append("\n".join(str(row) for row in cursor.fetchall()))
    for name in ENTITY_FIELDS:
        assert f"threat_entity_{name}" in plans[0], plans[0]
    assert "threat_customer_type_newest" in plans[0] and "threat_customer_rule_newest" in plans[0], plans[0]


def test_a_sqlite_table_rebuild_does_not_lose_the_historical_lookup_indexes(customer):
    """SQLite rebuilds a table for most ALTERs and re-creates only the model's own indexes: migration
    0009 dropped 0007's expression indexes. Every `migrate` puts them back (threats/indexes.py)."""
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL alters the table in place")
    names = [f"threat_entity_{name}" for name in ("src_ip", "dst_ip", "user", "host")] + ["threat_customer_type_newest"]

    def present():
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'threats_threat'")
            return {row[0] for row in cursor.fetchall()} & set(names)

    assert present() == set(names)  # after the test database's migrations, 0009's rebuild included
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f"DROP INDEX {name}")  # what a rebuild does to them
    call_command("migrate", verbosity=0)
    assert present() == set(names)


def _historical_batch_world(customer):
    other = factories.make_customer()
    hours = iter(range(1, 1000))  # every past threat at its own time: "newest first" has no ties
    for owner in (customer, other):
        for threat_type in ("malware", "bot_traffic", "phishing"):
            for observables in ({"src_ip": "198.51.100.7"}, {"user": "mallory"}, {"host": "db-1"},
                                {"dst_ip": "203.0.113.50"}, {"hashes": ["e3b0c442"]}, {"src_ip": "198.51.100.9"}, {}):
                past = _past(owner, threat_type=threat_type, hours_ago=next(hours) / 4, **observables)
                if observables.get("src_ip") == "198.51.100.9":
                    _with_rule(past, "sid:1:9")
    _past(other, src_ip="198.51.100.7", hours_ago=30)
    _past(customer, src_ip="198.51.100.7", hours_ago=24 * 40)  # outside the look-back
    return [_with_rule(factories.make_threat(customer=owner, analyse=False, threat_type=threat_type,
                                             observables=observables), rule)
            for owner, threat_type, observables, rule in (
                (customer, "malware", {"src_ip": "198.51.100.7", "user": "mallory"}, ""),
                (customer, "bot_traffic", {"hashes": ["e3b0c442", "ffff"], "src_ip": "198.51.100.9"}, "sid:1:9"),
                (other, "malware", {"dst_ip": "203.0.113.50"}, ""),
                (customer, "ransomware", {}, "sid:1:9"),  # the rule is all it shares
                (other, "bot_traffic", {"host": "db-1", "src_ip": "198.51.100.7", "user": "x" * 300}, ""))]


@pytest.mark.parametrize("limit", [100, 3])
def test_a_batch_s_historical_look_ups_are_one_statement_that_reads_each_threat_s_own_rows(customer, monkeypatch,
                                                                                          limit):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from agents.historical import agent as historical

    if connection.vendor != "postgresql":
        pytest.skip("one statement for a batch is PostgreSQL's (a LATERAL join); SQLite reads per threat")
    monkeypatch.setattr(historical, "MAX_ROWS", limit)
    threats = _historical_batch_world(customer)
    alone = [historical.HistoricalAgent().gather(threat) for threat in threats]
    with CaptureQueriesContext(connection) as statements:
        together = historical.HistoricalAgent().gather_many(threats)
    assert len(statements) == 1
    assert together == alone
    assert all(alone) and len({tuple(row["id"] for row in rows) for rows in alone}) == len(threats)
    assert any(row["same"] for rows in alone for row in rows) and any("observables" in rows[0] for rows in alone)
    assert all(row["customer_id"] == threat.customer_id for threat, rows in zip(threats, alone) for row in rows)
    assert alone[3] and all(row["same_rule"] and not row["same_type"] for row in alone[3])  # found by its rule alone
    if limit == 3:  # the limit cuts: the newest rows of each branch, then of the look-up
        assert max(len(rows) for rows in alone) == 3


def test_a_batch_s_historical_statement_reads_every_entity_index(customer):
    from django.db import connection, transaction

    from agents.historical.agent import ENTITY_FIELDS, HistoricalAgent

    if connection.vendor != "postgresql":
        pytest.skip("one statement for a batch is PostgreSQL's (a LATERAL join); SQLite reads per threat")
    threats = _historical_batch_world(customer)
    now = timezone.now()  # the customer's other threats: many, each entity value rare (as in a real table)
    Threat.objects.bulk_create(
        Threat(customer=customer, threat_type="malware", title=f"filler {i}", occurred_at=now, received_at=now - timedelta(
            minutes=i), rule=f"rule-{i}", observables={name: f"{name}-{i}" for name in ENTITY_FIELDS})
        for i in range(2000))
    statements = _statements_of(lambda: HistoricalAgent().gather_many(threats))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ANALYZE threats_threat")
        sql, params = statements[0]
        cursor.execute("EXPLAIN " + sql.replace("%b", "%s"), params)
        plan = "\n".join(str(row) for row in cursor.fetchall())
    for name in ENTITY_FIELDS:
        assert f"threat_entity_{name}" in plan, plan
    assert "threat_customer_type_newest" in plan and "threat_customer_rule_newest" in plan, plan


def test_findings_count_and_name_in_words():
    from agents.base import counted, with_article

    assert (counted(1, "similar threat"), counted(3, "similar threat")) == ("1 similar threat", "3 similar threats")
    assert (with_article("anomaly detection"), with_article("denial of service")) == (
        "an anomaly detection", "a denial of service")
