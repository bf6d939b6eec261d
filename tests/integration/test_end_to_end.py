"""End to end against a real Daphne process: login form, session cookie, WebSocket, trigger, resume.

One embedded-mode server (its own database, auto-generation off) serves the whole module, so the
event log only moves when a test triggers a threat. Nothing here touches the Django test database.
"""

import asyncio
import json
import os
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.integration.server import EmbeddedServer, login, trigger

pytestmark = pytest.mark.integration

FRAME_TIMEOUT = 10  # seconds to wait for any expected frame
ANALYSIS_DEADLINE = 30  # seconds for triggered threats to be analysed
QUIET_PERIOD = 1.0  # longer than the consumer's 0.5 s resume grace, so a late duplicate would show


@pytest.fixture(scope="module")
def server(request):
    outer_url = os.environ.get("DATABASE_URL", "")
    postgres_url = outer_url if outer_url.startswith(("postgres://", "postgresql://")) else None
    running = EmbeddedServer(postgres_url=postgres_url).start()
    failed_before = request.session.testsfailed
    try:
        yield running
    finally:
        running_failed = request.session.testsfailed > failed_before
        log = running.stderr_text() if running_failed else ""
        running.stop()
        if running_failed:
            _print_uncaptured(request, f"\n--- daphne (pid {running.pid}) stderr ---\n{log}--- end of daphne stderr ---")


@pytest.fixture(scope="module")
def session(server):
    return login(server.base_url)


def _print_uncaptured(request, text):
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(text)
        return
    with capture.global_and_fixture_disabled():
        print(text)


# --- WebSocket helpers -------------------------------------------------------------------------


def _socket(server, session=None, origin=None, path="/ws"):
    headers = {"Cookie": session.cookie_header} if session else {}
    return connect(
        f"ws://127.0.0.1:{server.port}{path}", additional_headers=headers, origin=origin or server.base_url,
        open_timeout=FRAME_TIMEOUT, close_timeout=2,
    )


async def _receive(ws, timeout=FRAME_TIMEOUT):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def _send(ws, message):
    await asyncio.wait_for(ws.send(json.dumps(message)), FRAME_TIMEOUT)


async def _assert_quiet(ws):
    with pytest.raises(TimeoutError):
        extra = await asyncio.wait_for(ws.recv(), QUIET_PERIOD)
        pytest.fail(f"unexpected extra frame: {extra}")


async def _refused_status(server, **kwargs):
    with pytest.raises(InvalidStatus) as refused:
        async with _socket(server, **kwargs):
            pass
    return refused.value.response.status_code


def _wait_until_analyzed(session, threat_ids):
    deadline = time.monotonic() + ANALYSIS_DEADLINE
    pending = set(threat_ids)
    while pending and time.monotonic() < deadline:
        pending = {i for i in pending if session.get_json(f"/api/threats/{i}")["analysis_status"] != "completed"}
        if pending:
            time.sleep(0.05)  # the analysis runs on the server's thread pool
    assert not pending, f"not analysed within {ANALYSIS_DEADLINE} s: {pending}"


# --- Tests -------------------------------------------------------------------------------------


def test_a_logged_in_analyst_sees_a_triggered_threat_created_then_analyzed(server, session):
    async def scenario():
        async with _socket(server, session) as ws:
            hello = await _receive(ws)
            assert hello["type"] == "hello"
            await _send(ws, {"type": "ping"})
            assert (await _receive(ws))["type"] == "pong"

            created = await asyncio.to_thread(trigger, session, scenario="critical_threat")
            frames = [await _receive(ws), await _receive(ws)]
            return hello, created, frames

    hello, created, (first, second) = asyncio.run(scenario())

    assert [first["type"], second["type"]] == ["threat.created", "threat.analyzed"]
    assert first["threat"]["id"] == second["threat"]["id"] == created["id"]
    assert second["threat"]["severity"] == "CRITICAL"
    assert second["threat"]["analysis_status"] == "completed"
    assert [hello["seq"] + 1, hello["seq"] + 2] == [first["seq"], second["seq"]]


def test_it_refuses_an_anonymous_socket(server):
    assert asyncio.run(_refused_status(server)) == 403


def test_it_refuses_a_logged_in_socket_from_a_foreign_origin(server, session):
    assert asyncio.run(_refused_status(server, session=session, origin="http://evil.example")) == 403


@pytest.mark.parametrize("how", ["message", "url"])
def test_a_reconnecting_client_gets_exactly_the_missed_events_in_order(server, session, how):
    start = _disconnect_then_miss_three_analysed_threats(server, session)
    path = f"/ws?after={start['seq']}" if how == "url" else "/ws"

    async def resume():
        async with _socket(server, session, path=path) as ws:
            hello = await _receive(ws)
            if how == "message":
                await _send(ws, {"type": "resume", "after": start["seq"]})
            frames = [await _receive(ws) for _ in range(7)]
            await _assert_quiet(ws)
            return hello, frames

    hello, frames = asyncio.run(resume())

    assert hello == {"type": "hello", "seq": start["seq"] + 6}
    _assert_exact_replay(frames, start)


def _disconnect_then_miss_three_analysed_threats(server, session):
    """Connect, note hello, close; then trigger 3 threats and wait until all are analysed."""

    async def hello_then_close():
        async with _socket(server, session) as ws:
            return await _receive(ws)

    hello = asyncio.run(hello_then_close())
    assert hello["type"] == "hello"
    ids = [trigger(session, threat_type=kind)["id"] for kind in ("bot_traffic", "geo_anomaly", "proxy_network")]
    _wait_until_analyzed(session, ids)
    return {"seq": hello["seq"], "ids": ids}


def _assert_exact_replay(frames, start):
    replay, last = frames[:6], frames[6]
    seqs = [frame["seq"] for frame in replay]
    assert seqs == list(range(start["seq"] + 1, start["seq"] + 7))
    assert sorted(f["type"] for f in replay) == ["threat.analyzed"] * 3 + ["threat.created"] * 3
    for threat_id in start["ids"]:
        kinds = [f["type"] for f in replay if f["threat"]["id"] == threat_id]
        assert kinds == ["threat.created", "threat.analyzed"], threat_id
    assert last == {"type": "resumed", "seq": start["seq"] + 6}
