"""Observability in one process: the span tree of one threat, /metrics before and after trigger,
triage and WebSocket connections, JSON log lines with trace ids and without secrets, readiness.

The process-level behaviour (a real worker, OTLP export, shutdown without a collector) is in
tests/integration/test_observability.py.
"""

import io
import json
import logging
import re
from unittest import mock

import pytest
from channels.testing import WebsocketCommunicator
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from agents import tracing
from agents.registry import AGENT_KINDS
from socproject import logformat
from socproject.asgi import application
from threats.models import Threat

AGENT_SPANS = {f"agent.{kind}" for kind in AGENT_KINDS}
ANALYZER_SPANS = {f"analyzer.{name}" for name in tracing.ANALYZERS}
PHASES = {"gather", "agents", "adversarial", "false_positive", "response", "timeline", "store", "total"}
TIMEOUT = 3


def scrape(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    return response.content.decode()


def samples(text):
    """{(sample name, frozenset(labels)): value} of one exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def value(text, name, **labels):
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def trigger(client, user, **body):
    client.force_login(user)
    response = client.post("/api/threats/trigger", body, content_type="application/json")
    assert response.status_code == 202, response.content
    return Threat.objects.get(pk=response.json()["id"])


# --- Traces -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # on_commit really runs: the task starts inside the request
def test_one_trace_runs_from_the_trigger_request_through_the_task_to_every_agent_and_analyzer(client, alice, spans):
    threat = trigger(client, alice, scenario="critical_threat")

    finished = spans.get_finished_spans()
    request = next(s for s in finished if s.kind == SpanKind.SERVER)
    assert request.attributes["http.route"] == "api/threats/trigger"
    assert {s.context.trace_id for s in finished} == {request.context.trace_id}
    by_id = {s.context.span_id: s for s in finished}
    task = next(s for s in finished if s.name == "run/agents.analyze_threat")
    analysis = next(s for s in finished if s.name == "analysis")
    assert _ancestors(analysis, by_id) == [task.name, request.name]
    children = {s.name for s in finished if s.parent is not None and s.parent.span_id == analysis.context.span_id}
    assert AGENT_SPANS | ANALYZER_SPANS | {"analysis.gather", "analysis.agents", "analysis.store"} <= children
    threat.refresh_from_db()
    assert analysis.attributes["threat.id"] == str(threat.pk)
    assert analysis.attributes["threat.severity"] == threat.severity
    assert analysis.attributes["threat.requires_review"] == threat.requires_human_review
    assert analysis.attributes["customer"] == threat.customer.slug
    agent = next(s for s in finished if s.name == "agent.priority")
    assert agent.attributes["threat.id"] == str(threat.pk) and agent.attributes["agent.status"] == "succeeded"
    assert agent.start_time >= analysis.start_time and agent.end_time <= analysis.end_time


@pytest.mark.django_db(transaction=True)
def test_the_embedded_analysis_thread_keeps_the_request_s_trace(client, alice, spans, settings):
    settings.AGENTS_IN_THREAD = True  # `make run`: the eager task runs on a background thread
    threat = trigger(client, alice, threat_type="bot_traffic")

    from agents.tasks import _pool

    # The analysis was queued on this pool at commit; a job queued after it on a one-at-a-time
    # check ends only once the analysis thread is done with it.
    _wait_for(lambda: any(s.name == "analysis" for s in spans.get_finished_spans()), _pool())
    finished = spans.get_finished_spans()
    request = next(s for s in finished if s.kind == SpanKind.SERVER)
    analysis = next(s for s in finished if s.name == "analysis")
    assert analysis.context.trace_id == request.context.trace_id
    assert analysis.attributes["threat.id"] == str(threat.pk)
    assert AGENT_SPANS <= {s.name for s in finished if s.context.trace_id == request.context.trace_id}


@pytest.mark.django_db
def test_every_threat_of_a_batch_has_its_own_analysis_span_ended_by_the_shared_store(customer, spans):
    from agents import coordinator
    from tests import factories

    queued = [factories.make_threat(customer=customer, analyse=False, title=f"alert {i}") for i in range(3)]
    gone = "00000000-0000-0000-0000-000000000000"
    coordinator.analyze_many([t.pk for t in queued] + [gone])

    finished = spans.get_finished_spans()
    analyses = {s.attributes["threat.id"]: s for s in finished if s.name == "analysis"}
    assert set(analyses) == {str(t.pk) for t in queued} | {gone}
    assert analyses[gone].attributes["analysis.skipped"] is True
    stores = []
    for threat in queued:
        span = analyses[str(threat.pk)]
        children = [s for s in finished if s.parent is not None and s.parent.span_id == span.context.span_id]
        assert AGENT_SPANS | {"analysis.gather", "analysis.store"} <= {s.name for s in children}
        assert span.attributes["threat.severity"] == Threat.objects.get(pk=threat.pk).severity
        stores.append(next(s for s in children if s.name == "analysis.store"))
        assert span.end_time >= stores[-1].end_time
    assert len({(s.start_time, s.end_time) for s in stores}) == 1  # one store for the batch
    last_agent = max(s.end_time for s in finished if s.name.startswith("agent."))
    assert stores[0].start_time >= last_agent  # it begins once every threat is decided


def _wait_for(condition, pool, attempts=200):
    for _ in range(attempts):
        if condition():
            return
        pool.submit(lambda: None).result(timeout=10)  # lets the analysis thread make progress
        if condition():
            return
        import time

        time.sleep(0.05)  # the analysis runs on another thread: poll its result
    raise AssertionError("the analysis span never ended")


def _ancestors(span, by_id):
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


@pytest.mark.django_db
def test_probes_and_scrapes_make_no_spans(client, spans):
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert spans.get_finished_spans() == ()


# --- Metrics --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_metrics_need_no_login_and_count_what_one_analysis_did(client, alice):
    before = scrape(client)
    threat = trigger(client, alice, scenario="critical_threat")
    client.logout()
    after = scrape(client)

    threat.refresh_from_db()

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("soc_threats_processed_total", threat_type=threat.threat_type, severity=threat.severity) == 1
    for kind in AGENT_KINDS:
        assert grew("soc_agent_duration_seconds_count", agent=kind, status="succeeded") == 1
    for phase in PHASES:
        assert grew("soc_analysis_phase_duration_seconds_count", phase=phase) == 1, phase
    assert grew("soc_analysis_queue_wait_seconds_count") == 1
    assert grew("soc_false_positive_score_count") == 1
    assert grew("soc_false_positive_score_sum") == pytest.approx(threat.false_positive["score"])
    assert grew("soc_events_broadcast_total", type="threat.created") == 1
    assert grew("soc_events_broadcast_total", type="threat.analyzed") == 1
    assert grew("soc_http_requests_total", method="POST", route="api/threats/trigger", status="202") == 1
    assert grew("soc_http_request_duration_seconds_count", method="POST", route="api/threats/trigger") == 1


@pytest.mark.django_db(transaction=True)
def test_review_and_open_threat_gauges_follow_triage_exactly(client, alice):
    threat = trigger(client, alice, scenario="critical_threat")
    threat.refresh_from_db()
    assert threat.requires_human_review and threat.status == "new"
    severity = threat.severity
    expected_review = Threat.objects.filter(requires_human_review=True, severity=severity).exclude(
        status__in=["resolved", "closed"]).count()

    text = scrape(client)
    assert value(text, "soc_threats_requiring_review", severity=severity) == expected_review
    assert value(text, "soc_open_threats", status="new", severity=severity) == Threat.objects.filter(
        status="new", severity=severity).count()

    client.patch(f"/api/threats/{threat.pk}", {"status": "acknowledged"}, content_type="application/json")
    acknowledged = scrape(client)
    assert value(acknowledged, "soc_open_threats", status="acknowledged", severity=severity) == 1
    assert value(acknowledged, "soc_threats_requiring_review", severity=severity) == expected_review

    response = client.patch(f"/api/threats/{threat.pk}", {"status": "resolved", "disposition": "true_positive",
                                                         "reason": "contained"}, content_type="application/json")
    assert response.status_code == 200, response.content
    resolved = scrape(client)
    assert value(resolved, "soc_threats_requiring_review", severity=severity) == expected_review - 1
    assert value(resolved, "soc_open_threats", status="acknowledged", severity=severity) == 0


@pytest.mark.django_db
def test_pending_analyses_are_counted_from_the_database(client):
    from tests import factories

    factories.make_threat(analyse=False)
    assert value(scrape(client), "soc_analyses_pending", analysis_status="queued") == Threat.objects.filter(
        analysis_status="queued").count() >= 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_websocket_metrics_follow_connects_resumes_and_disconnects(alice_cookie, charlie_cookie):
    from asgiref.sync import sync_to_async
    from django.test import Client

    read = sync_to_async(lambda: scrape(Client()))
    before = await read()
    socket = await _socket(alice_cookie)
    assert await socket.connect(timeout=TIMEOUT) == (True, None)
    await socket.receive_json_from(TIMEOUT)  # hello
    opened = await read()
    assert value(opened, "soc_websocket_connections") == value(before, "soc_websocket_connections") + 1

    await socket.send_json_to({"type": "resume", "after": 0})
    while (await socket.receive_json_from(TIMEOUT))["type"] != "resumed":
        pass
    await socket.send_json_to({"type": "resume", "after": -3})
    assert (await socket.receive_json_from(TIMEOUT))["type"] == "error"
    refused = await _socket(charlie_cookie)
    assert (await refused.connect(timeout=TIMEOUT))[0] is False
    await socket.disconnect()
    closed = await read()

    def grew(name, **labels):
        return value(closed, name, **labels) - value(before, name, **labels)

    assert grew("soc_websocket_connections") == 0
    assert grew("soc_websocket_connects_total", outcome="accepted") == 1
    assert grew("soc_websocket_connects_total", outcome="refused") == 1
    assert grew("soc_websocket_resumes_total", outcome="resumed") == 1
    assert grew("soc_websocket_resumes_total", outcome="invalid") == 1


async def _socket(cookie):
    headers = [(b"origin", b"http://testserver"), (b"cookie", f"sessionid={cookie}".encode())]
    return WebsocketCommunicator(application, "/ws", headers=headers)


@pytest.fixture
def alice_cookie(client, alice):
    client.force_login(alice)
    return client.cookies["sessionid"].value


@pytest.fixture
def charlie_cookie(charlie):
    from django.test import Client

    client = Client()  # its own session: logging charlie in on alice's client would end hers
    client.force_login(charlie)
    return client.cookies["sessionid"].value


@pytest.mark.django_db
def test_ingested_alerts_are_counted_by_format_and_outcome(client, customer):
    from threats import apikeys

    raw = apikeys.issue("metrics test", ["ingest"], customer=customer)[1]
    alert = {"id": "obs-1", "title": "SSH brute force", "occurred_at": "2026-01-05T10:00:00Z",
             "observables": {"src_ip": "203.0.113.7"}}
    before = scrape(client)
    for _ in range(2):
        response = client.post("/api/ingest/generic", alert, content_type="application/json", HTTP_X_API_KEY=raw)
        assert response.status_code == 202, response.content
    client.post("/api/ingest/generic", {"id": "obs-2"}, content_type="application/json", HTTP_X_API_KEY=raw)
    after = scrape(client)

    def grew(outcome):
        return value(after, "soc_ingest_items_total", source="generic", outcome=outcome) - value(
            before, "soc_ingest_items_total", source="generic", outcome=outcome)

    assert (grew("created"), grew("duplicate"), grew("error")) == (1, 1, 1)


# --- Logs -----------------------------------------------------------------------------------------


@pytest.fixture
def json_log():
    """The root logger writing JSON lines to a buffer, as LOG_FORMAT=json does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logformat.JsonFormatter())
    handler.addFilter(logformat.TraceContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    level, root.level = root.level, logging.INFO
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.django_db(transaction=True)
def test_an_analysis_writes_one_json_line_that_carries_its_trace(client, alice, spans, json_log):
    threat = trigger(client, alice, scenario="critical_threat")

    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    mine = [line for line in lines if str(threat.pk) in json.dumps(line)]
    assert len(mine) == 1, lines
    analysis = next(s for s in spans.get_finished_spans() if s.name == "analysis")
    assert mine[0]["trace_id"] == format(analysis.context.trace_id, "032x")
    assert mine[0]["span_id"] == format(analysis.context.span_id, "016x")
    assert mine[0]["threat_id"] == str(threat.pk) and mine[0]["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", mine[0]["timestamp"])


def test_lines_outside_a_span_have_no_trace_fields(json_log):
    logging.getLogger("tests").warning("outside")
    line = json.loads(json_log.getvalue())
    assert line["message"] == "outside" and "trace_id" not in line and "span_id" not in line


def test_passwords_api_keys_and_configured_secrets_never_reach_a_line(json_log, settings):
    settings.LLM_API_KEY = "sk-live-0123456789abcdef"
    settings.REDIS_URL = "redis://:p%40ss-w0rd-redis@redis:6379/0"
    key = "soc_0123456789ab_" + "S3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3t"
    text_stream = io.StringIO()
    text = logging.StreamHandler(text_stream)
    text.setFormatter(logformat.TextFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.secrets")
    logger.addHandler(text)
    try:
        logger.warning("redis at %s refused", "redis://:p%40ss-w0rd-redis@redis:6379/0")
        logger.warning("postgres://soc:hunter2-db@db:5432/soc is down")
        logger.warning("bad key", extra={"key": key})
        logger.warning("calling the LLM with sk-live-0123456789abcdef")
        logger.warning("raw password p@ss-w0rd-redis seen")
        try:
            raise RuntimeError(f"with {key}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(text)
    for output in (json_log.getvalue(), text_stream.getvalue()):
        for secret in ("p%40ss-w0rd-redis", "p@ss-w0rd-redis", "hunter2-db", "S3cr3tS3cr3t", "0123456789abcdef"):
            assert secret not in output
        assert "redis://:***@redis:6379/0" in output and "soc_0123456789ab_***" in output
    assert all(json.loads(line) for line in json_log.getvalue().splitlines())


# --- Readiness ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_ready_names_the_channel_layer_when_its_round_trip_fails(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                           "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}}
    response = client.get("/ready")
    assert response.status_code == 503
    assert set(response.json()["problems"]) == {"redis", "channel_layer"}


@pytest.mark.django_db
def test_ready_closes_the_redis_client_it_opens(client, settings):
    import redis

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: the probe fails, the client still closes
    made, from_url = [], redis.Redis.from_url
    # Holding on to the client keeps garbage collection from closing it in the view's place.
    with mock.patch.object(redis.Redis, "from_url", side_effect=lambda *a, **kw: made.append(from_url(*a, **kw)) or made[-1]), \
         mock.patch.object(redis.Redis, "close", autospec=True, side_effect=redis.Redis.close) as close:
        assert client.get("/ready").status_code == 503
    assert [call.args[0] for call in close.call_args_list] == made and len(made) == 1


# --- The chart's alerts and dashboard read metrics the application really exposes ------------------

CHART_FILES = __import__("pathlib").Path(__file__).resolve().parents[1] / "helm" / "charts" / "soc-agent" / "files"
PROMQL_WORDS = {"by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool",
                "offset", "inf", "nan"}
PROMETHEUS_METRICS = {"up"}  # made by Prometheus itself, not by the application


def metric_names(expression):
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords,
    label names (inside {...} or by/without (...)), strings or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end():].lstrip()[:1]
        word = match.group()
        if following != "(" and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def shipped_expressions():
    rules = __import__("yaml").safe_load((CHART_FILES / "prometheus-rules.yaml").read_text())
    found = [(rule["alert"], rule["expr"]) for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((CHART_FILES / "grafana-dashboard.json").read_text())
    found += [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return found


def test_the_promql_reader_finds_metric_names_and_nothing_else():
    expression = ('1 - sum(increase(a_bucket{le="0.7"}[1h])) / sum by (le, agent) (rate(b_total{x=~"5.."}[5m]))'
                  ' > 0.5 and on (pod) max(c) unless absent(up{job=~".+-backend"})')
    assert metric_names(expression) == {"a_bucket", "b_total", "c", "up"}


@pytest.mark.django_db(transaction=True)
def test_every_metric_in_the_shipped_alerts_and_dashboard_is_exposed_after_one_threat(client, alice):
    trigger(client, alice, scenario="critical_threat")
    client.patch("/api/threats/" + str(Threat.objects.first().pk), {"status": "acknowledged"},
                 content_type="application/json")
    exposed = {name for name, _labels in samples(scrape(client))}

    expressions = shipped_expressions()
    assert len(expressions) >= 25
    for where, expression in expressions:
        missing = metric_names(expression) - exposed - PROMETHEUS_METRICS
        assert not missing, f"{where}: {expression} reads {missing}, which /metrics does not expose"
