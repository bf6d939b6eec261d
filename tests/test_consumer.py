"""The /ws consumer, through the real ASGI application (origin check + session auth + routing)."""

import asyncio
import json
import threading

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from socproject.asgi import application
from tests import factories
from threats import events

pytestmark = [pytest.mark.django_db(transaction=True, reset_sequences=True), pytest.mark.asyncio]

TIMEOUT = 3


@pytest.fixture
def alice_cookie(client, alice):
    client.force_login(alice)
    return client.cookies["sessionid"].value


@pytest.fixture
def charlie_cookie(client, charlie):
    client.force_login(charlie)
    return client.cookies["sessionid"].value


async def _connect(cookie=None, origin=b"http://testserver", path="/ws"):
    headers = [(b"origin", origin)] if origin else []
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    return communicator, connected


async def _streaming(cookie, path="/ws"):
    """Connected, hello received, and streaming (a ping starts the stream at once)."""
    communicator, connected = await _connect(cookie, path=path)
    assert connected
    hello = await communicator.receive_json_from(TIMEOUT)
    await communicator.send_json_to({"type": "ping"})
    assert (await communicator.receive_json_from(TIMEOUT))["type"] == "pong"
    return communicator, hello


async def _receive(communicator, count):
    return [await communicator.receive_json_from(TIMEOUT) for _ in range(count)]


make_threat = database_sync_to_async(factories.make_threat)


async def test_it_says_hello_with_the_latest_seq(alice_cookie, customer):
    await make_threat(customer=customer)
    communicator, connected = await _connect(alice_cookie)
    assert connected
    hello = await communicator.receive_json_from(TIMEOUT)
    assert hello == {"type": "hello", "seq": 2}
    await communicator.disconnect()


async def test_it_pushes_created_then_analyzed(alice_cookie, customer):
    communicator, hello = await _streaming(alice_cookie)
    threat = await make_threat(customer=customer)
    created, analyzed = await _receive(communicator, 2)
    assert [created["type"], analyzed["type"]] == ["threat.created", "threat.analyzed"]
    assert [created["seq"], analyzed["seq"]] == [hello["seq"] + 1, hello["seq"] + 2]
    assert created["threat"]["id"] == analyzed["threat"]["id"] == str(threat.pk)
    assert created["threat"]["severity"] is None and analyzed["threat"]["severity"] == threat.severity
    await communicator.disconnect()


async def test_a_silent_client_gets_live_events_after_the_resume_grace(alice_cookie, customer):
    communicator, connected = await _connect(alice_cookie)
    await communicator.receive_json_from(TIMEOUT)
    await make_threat(customer=customer)
    types = [m["type"] for m in await _receive(communicator, 2)]
    assert types == ["threat.created", "threat.analyzed"]
    await communicator.disconnect()


async def test_resume_replays_the_gap_in_order(alice_cookie, customer):
    first, hello = await _streaming(alice_cookie)
    await first.disconnect()
    missed = [await make_threat(customer=customer) for _ in range(2)]
    second, connected = await _connect(alice_cookie)
    assert (await second.receive_json_from(TIMEOUT))["seq"] == hello["seq"] + 4
    await second.send_json_to({"type": "resume", "after": hello["seq"]})
    replay = await _receive(second, 5)
    assert [m["seq"] for m in replay[:4]] == [hello["seq"] + n for n in range(1, 5)]
    assert [m["threat"]["id"] for m in replay[:4]] == [str(t.pk) for t in missed for _ in (1, 2)]
    assert replay[4] == {"type": "resumed", "seq": hello["seq"] + 4}
    assert await second.receive_nothing(0.6)  # nothing is sent twice once streaming starts
    await second.disconnect()


async def test_resume_from_the_url_replays_before_live_events(alice_cookie, customer):
    await make_threat(customer=customer)
    communicator, connected = await _connect(alice_cookie, path="/ws?after=0")
    assert connected
    hello, created, analyzed, resumed = await _receive(communicator, 4)
    assert hello == {"type": "hello", "seq": 2}
    assert [created["seq"], analyzed["seq"]] == [1, 2]
    assert resumed == {"type": "resumed", "seq": 2}
    await make_threat(customer=customer)
    assert [m["seq"] for m in await _receive(communicator, 2)] == [3, 4]
    await communicator.disconnect()


async def test_a_gap_in_the_live_stream_is_filled_from_the_event_log(alice_cookie, customer, monkeypatch):
    communicator, hello = await _streaming(alice_cookie)
    monkeypatch.setattr(events, "publish", lambda *args: None)  # these pushes are lost
    lost = await make_threat(customer=customer)
    monkeypatch.undo()
    seen = await make_threat(customer=customer)
    received = await _receive(communicator, 4)
    assert [m["seq"] for m in received] == [hello["seq"] + n for n in range(1, 5)]
    assert [m["threat"]["id"] for m in received] == [str(lost.pk)] * 2 + [str(seen.pk)] * 2
    await communicator.disconnect()


async def test_a_repeated_push_is_delivered_once(alice_cookie, customer):
    communicator, hello = await _streaming(alice_cookie)
    await make_threat(customer=customer)
    pushed = await _receive(communicator, 2)
    again = {"type": pushed[1]["type"], "seq": pushed[1]["seq"], "text": json.dumps(pushed[1])}
    await get_channel_layer().group_send(events.GROUP, again)
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


async def test_it_asks_for_a_resync_when_the_gap_is_too_long(alice_cookie, customer, settings):
    settings.EVENT_REPLAY_LIMIT = 3
    for _ in range(2):
        await make_threat(customer=customer)
    communicator, connected = await _connect(alice_cookie, path="/ws?after=0")
    hello, resync = await _receive(communicator, 2)
    assert resync == {"type": "resync", "seq": 4}
    await communicator.disconnect()


async def test_it_ignores_messages_it_does_not_know(alice_cookie):
    communicator, hello = await _streaming(alice_cookie)
    await communicator.send_to(text_data="not json at all")
    await communicator.send_json_to({"type": "threat.created", "seq": 99, "threat": {"id": "forged"}})
    await communicator.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * 10_000}))
    assert await communicator.receive_nothing(0.3)
    await communicator.send_json_to({"type": "resume", "after": "yesterday"})
    assert (await communicator.receive_json_from(TIMEOUT))["type"] == "error"
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(TIMEOUT) == {"type": "pong", "seq": hello["seq"]}
    await communicator.disconnect()


async def test_it_refuses_an_anonymous_socket(db):
    communicator, connected = await _connect(cookie=None)
    assert not connected


async def test_it_refuses_an_outsider(charlie_cookie):
    communicator, connected = await _connect(charlie_cookie)
    assert not connected


@pytest.mark.parametrize("origin", [b"http://evil.example", b"http://testserver.evil.example", b"null", None])
async def test_it_refuses_a_foreign_or_missing_origin(alice_cookie, origin):
    communicator, connected = await _connect(alice_cookie, origin=origin)
    assert not connected


async def test_a_heartbeat_delivers_what_the_push_lost(alice_cookie, customer, monkeypatch):
    communicator, hello = await _streaming(alice_cookie)
    monkeypatch.setattr(events, "publish", lambda *args: None)  # e.g. Redis restarted mid-push
    lost = await make_threat(customer=customer)
    assert await communicator.receive_nothing(0.3)
    await communicator.send_json_to({"type": "ping"})
    created, analyzed, pong = await _receive(communicator, 3)
    assert [created["threat"]["id"], analyzed["threat"]["id"]] == [str(lost.pk)] * 2
    assert pong == {"type": "pong", "seq": hello["seq"] + 2}
    await communicator.disconnect()


# --- agent progress (`watch`) ------------------------------------------------------------------------


async def _until_analyzed(communicator):
    messages = []
    while (message := await communicator.receive_json_from(TIMEOUT))["type"] != "threat.analyzed":
        messages.append(message)
    return messages, message


async def test_a_watching_socket_sees_each_agent_start_and_finish_before_the_verdict(alice_cookie, customer):
    from agents import coordinator

    threat = await make_threat(customer=customer, analyse=False)
    watcher, _ = await _streaming(alice_cookie)
    other, _ = await _streaming(alice_cookie)
    await watcher.send_json_to({"type": "watch", "threat": str(threat.pk).upper()})
    assert await watcher.receive_json_from(TIMEOUT) == {"type": "watching", "threat": str(threat.pk)}

    await database_sync_to_async(coordinator.analyze)(threat.pk)

    progress, analyzed = await _until_analyzed(watcher)
    kinds = {"historical", "config", "devops", "context", "priority"}
    assert {m["type"] for m in progress} == {"threat.progress"}
    assert {m["threat"] for m in progress} == {str(threat.pk)}
    for kind in kinds:
        states = [m["state"] for m in progress if m["agent"] == kind]
        assert states == ["running", "succeeded"], (kind, states)
        done = next(m for m in progress if m["agent"] == kind and m["state"] == "succeeded")
        assert 0 <= done["confidence"] <= 1 and done["duration_ms"] >= 0
    assert {m["agent"] for m in progress} == kinds
    assert analyzed["threat"]["id"] == str(threat.pk)
    # A socket that watches nothing gets the verdict but no progress.
    assert (await other.receive_json_from(TIMEOUT))["type"] == "threat.analyzed"
    assert await other.receive_nothing(0.2)
    await watcher.disconnect()
    await other.disconnect()


def _analyze_in_own_thread(threat_id):
    """Not database_sync_to_async: its one shared thread also serves the consumer's database calls."""
    from django.db import connections

    from agents import coordinator

    try:
        return coordinator.analyze(threat_id)
    finally:
        connections.close_all()


async def test_a_slow_agent_is_reported_when_it_finishes_and_the_others_do_not_wait_for_it(
        alice_cookie, customer, monkeypatch):
    from agents.config.agent import ConfigAgent

    release = threading.Event()
    analyze = ConfigAgent.analyze

    def slow(self, threat, gathered):
        release.wait(TIMEOUT)  # held until the test has seen the other four finish
        return analyze(self, threat, gathered)

    monkeypatch.setattr(ConfigAgent, "analyze", slow)
    threat = await make_threat(customer=customer, analyse=False)
    watcher, _ = await _streaming(alice_cookie)
    await watcher.send_json_to({"type": "watch", "threat": str(threat.pk)})
    await watcher.receive_json_from(TIMEOUT)
    analysis = asyncio.ensure_future(asyncio.to_thread(_analyze_in_own_thread, threat.pk))

    started = await _receive(watcher, 5)
    assert {m["state"] for m in started} == {"running"}
    finished = await _receive(watcher, 4)
    assert {m["agent"] for m in finished} == {"historical", "devops", "context", "priority"}
    assert {m["state"] for m in finished} == {"succeeded"}
    release.set()
    late = await watcher.receive_json_from(TIMEOUT)
    assert (late["agent"], late["state"]) == ("config", "succeeded")
    assert (await watcher.receive_json_from(TIMEOUT))["type"] == "threat.analyzed"
    await analysis
    await watcher.disconnect()


async def test_watch_takes_only_a_threat_the_user_can_see_and_can_be_stopped(alice_cookie, customer, settings):
    threat = await make_threat(customer=customer, analyse=False)
    communicator, _ = await _streaming(alice_cookie)
    for bad in ("00000000-0000-0000-0000-000000000000", "not-a-uuid", 12, ["x"], "x" * 100):
        await communicator.send_json_to({"type": "watch", "threat": bad})
        assert (await communicator.receive_json_from(TIMEOUT))["type"] == "error", bad
    await communicator.send_json_to({"type": "watch", "threat": str(threat.pk)})
    assert (await communicator.receive_json_from(TIMEOUT))["threat"] == str(threat.pk)
    await communicator.send_json_to({"type": "watch", "threat": None})
    assert await communicator.receive_json_from(TIMEOUT) == {"type": "watching", "threat": None}
    events.push_progress(threat.pk, {"agent": "config", "state": "running"})
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


async def test_a_user_scoped_to_other_customers_cannot_watch(customer, client, analyst_group):
    from threats.models import UserAccess

    def scoped_cookie():
        from django.contrib.auth import get_user_model

        elsewhere = factories.make_customer(name="Elsewhere")
        dana = get_user_model().objects.create_user("dana", password="pw-dana")
        dana.groups.add(analyst_group)
        UserAccess.objects.get_or_create(user=dana)[0].customers.set([elsewhere])
        client.force_login(dana)
        return client.cookies["sessionid"].value

    threat = await make_threat(customer=customer, analyse=False)
    cookie = await database_sync_to_async(scoped_cookie)()
    communicator, _ = await _streaming(cookie)
    await communicator.send_json_to({"type": "watch", "threat": str(threat.pk)})
    assert (await communicator.receive_json_from(TIMEOUT))["type"] == "error"
    events.push_progress(threat.pk, {"agent": "config", "state": "running"})
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


async def test_progress_pushes_queued_back_to_back_for_one_threat_travel_as_one_layer_message():
    def progress(agent):
        return {"type": "threat.progress", "texts": [agent]}

    queued = [("progress.a", progress("historical")), ("progress.a", progress("config")),
              ("threats", {"type": "threat.analyzed", "seq": 7, "text": "{}"}),
              ("progress.a", progress("devops")), ("progress.b", progress("context"))]
    assert events._merged(queued) == [
        ("progress.a", {"type": "threat.progress", "texts": ["historical", "config"]}),
        ("threats", {"type": "threat.analyzed", "seq": 7, "text": "{}"}),  # never reordered around
        ("progress.a", progress("devops")), ("progress.b", progress("context")),
    ]


async def test_progress_of_a_threat_nobody_here_watches_is_not_sent_at_all(alice_cookie, customer):
    threat = await make_threat(customer=customer, analyse=False)
    communicator, _ = await _streaming(alice_cookie)  # a socket, but not watching this threat
    events.push_progress(threat.pk, {"agent": "config", "state": "running"})
    assert not events._busy()  # nothing queued for the loop: the in-memory layer has no listener here
    assert await communicator.receive_nothing(0.2)
    await communicator.disconnect()
