"""Issue 18 item 7 with real processes: a Daphne pod on a private redis-server (a free port, started
and stopped by its PID through tests/integration/cluster.py). After Redis restarts, the first
WebSocket handshake used to meet the channel layer's dead connection inside `connect` and answer
HTTP 500; now it is accepted (the consumer joins its groups again once redis-py has reconnected) or,
at worst, closed with 4013, which the dashboard retries."""

import asyncio
import json

import pytest
import websockets

from tests.integration.cluster import Cluster
from tests.integration.server import login

pytestmark = pytest.mark.integration
ROUNDS = 5


@pytest.fixture(scope="module")
def cluster():
    with Cluster(pods=1, worker=False, beat=False, nginx=False) as running:
        yield running


async def _handshake(cluster, session):
    """'hello', 'closed <code>' for a socket accepted and closed, or 'HTTP <status>' for a refused handshake."""
    try:
        socket = await websockets.connect(cluster.pod_ws(0), additional_headers={
            "Cookie": session.cookie_header, "Origin": cluster.pod_url(0)})
    except websockets.InvalidStatus as exc:
        return f"HTTP {exc.response.status_code}"
    try:
        return json.loads(await asyncio.wait_for(socket.recv(), 5))["type"]
    except websockets.ConnectionClosed:
        return f"closed {socket.close_code}"
    finally:
        await socket.close()


def test_the_first_handshakes_after_a_redis_restart_never_answer_500(cluster):
    session = login(cluster.pod_url(0))
    assert asyncio.run(_handshake(cluster, session)) == "hello"
    outcomes = []
    for _ in range(ROUNDS):
        cluster.restart_redis()  # SIGKILL, then an empty redis-server on the same port
        outcomes.append([asyncio.run(_handshake(cluster, session)) for _ in range(2)])
    print(f"\nhandshakes after each of {ROUNDS} Redis restarts: {outcomes}")
    for first, second in outcomes:
        assert first in ("hello", "closed 4013"), outcomes
        assert second == "hello", outcomes
    assert "Exception inside application" not in cluster.pods[0].log_tail(200_000)


def test_a_socket_opened_after_the_restart_receives_events(cluster):
    session = login(cluster.pod_url(0))
    cluster.restart_redis()

    async def scenario():
        assert await _handshake(cluster, session) in ("hello", "closed 4013")
        socket = await websockets.connect(cluster.pod_ws(0), additional_headers={
            "Cookie": session.cookie_header, "Origin": cluster.pod_url(0)})
        assert json.loads(await asyncio.wait_for(socket.recv(), 5))["type"] == "hello"
        await socket.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(socket.recv(), 5))["type"] == "pong"
        status, created = await asyncio.to_thread(session.post_json, "/api/threats/trigger",
                                                  {"threat_type": "bot_traffic"})
        assert status == 202
        while (message := json.loads(await asyncio.wait_for(socket.recv(), 10)))["type"] != "threat.created":
            pass
        await socket.close()
        return message, created

    message, created = asyncio.run(scenario())
    assert message["threat"]["id"] == created["id"]
