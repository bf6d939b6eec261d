"""Tracing survives a request the client abandons (issue 23 item 9: "Failed to detach context").

A browser closing a page drops its WebSocket and aborts its pending requests. Django then cancels
the request task; the CancelledError passes through the OpenTelemetry request middleware between its
process_request (which attached the request span's context) and its process_response (which detaches
it), so the attached `use_span` generator was left in request.META. The garbage collector later
closed it on whatever thread ran (often the embedded analysis thread the request had started): the
detach ran in another context and logged "Failed to detach context", and the request span ended
only then, if ever. socproject/request_tracing.py ends the span in the context that attached it.
"""

import asyncio
import gc
import json
import logging
import threading

import pytest
from opentelemetry.trace import SpanKind

from socproject import telemetry
from threats.models import Threat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]
TIMEOUT = 5


@pytest.fixture
def context_errors():
    """What opentelemetry.context logs (settings' LOGGING keeps it from the root logger's capture)."""
    records = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append
    logger = logging.getLogger("opentelemetry.context")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.fixture
def held_agent(monkeypatch):
    """The config agent waits, inside the analysis, until the test releases it."""
    from agents.config.agent import ConfigAgent

    started, release, analyze = threading.Event(), threading.Event(), ConfigAgent.analyze

    def held(self, threat, gathered):
        started.set()
        release.wait(TIMEOUT)
        return analyze(self, threat, gathered)

    monkeypatch.setattr(ConfigAgent, "analyze", held)
    return started, release


def _session_headers(client, user):
    client.force_login(user)
    client.get("/")  # sets the CSRF cookie
    session, csrf = client.cookies["sessionid"].value, client.cookies["csrftoken"].value
    return [(b"host", b"testserver"), (b"content-type", b"application/json"), (b"x-csrftoken", csrf.encode()),
            (b"cookie", f"sessionid={session}; csrftoken={csrf}".encode())]


async def _request_abandoned_during_analysis(headers, held_agent):
    """POST /api/threats/trigger through the ASGI handler; the client goes away while the analysis
    the request started (inline, at commit) is still running."""
    from socproject.asgi import django_asgi_app

    started, release = held_agent
    gone, sent = asyncio.Event(), []
    messages = [{"type": "http.request", "body": json.dumps({"scenario": "critical_threat"}).encode()}]

    async def receive():
        if messages:
            return messages.pop(0)
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/threats/trigger", "raw_path": b"/api/threats/trigger", "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    request = asyncio.ensure_future(django_asgi_app(scope, receive, send))
    assert await asyncio.to_thread(started.wait, TIMEOUT), "the analysis did not start"
    gone.set()  # the client closes the page: Django cancels the request task
    await asyncio.sleep(0.2)
    release.set()
    await asyncio.wait_for(request, TIMEOUT)
    return sent


async def test_a_request_abandoned_during_an_analysis_ends_its_span_and_detaches_in_its_own_context(
        client, alice, settings, spans, context_errors, held_agent):
    from asgiref.sync import sync_to_async

    settings.AGENTS_IN_THREAD = False  # the analysis runs in the request's thread, at its commit
    headers = await sync_to_async(_session_headers)(client, alice)

    sent = await _request_abandoned_during_analysis(headers, held_agent)

    assert not any(m["type"] == "http.response.start" for m in sent)  # nobody was there to answer
    finished = spans.get_finished_spans()
    request = [s for s in finished if s.kind == SpanKind.SERVER and s.name.startswith("POST")]
    assert len(request) == 1, [s.name for s in finished]  # ended with the request, not by the collector
    assert request[0].attributes.get("http.status_code", request[0].attributes.get("http.response.status_code")) == 499
    analysis = next(s for s in finished if s.name == "analysis")
    assert analysis.context.trace_id == request[0].context.trace_id
    assert {f"agent.{kind}" for kind in ("config", "priority")} <= {s.name for s in finished}
    assert await sync_to_async(Threat.objects.filter(analysis_status="completed").count)() == 1

    gc.collect()  # where the abandoned span's context used to be detached, from the wrong context
    assert [r.getMessage() for r in context_errors] == []
