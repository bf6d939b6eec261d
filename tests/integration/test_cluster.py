"""The seed's central claim, end to end with real processes: three Daphne pods, a Celery worker and
nginx on one Redis and one database. Threats created on one pod reach WebSocket clients on every
pod, in order; faults (Redis restarted empty, a pod killed, a worker child killed) lose nothing a
client cannot recover exactly by resuming from its last seq."""

import asyncio
import json
import os
import threading
import time

import pytest
import redis.asyncio as aioredis
import websockets

from tests.integration.cluster import Cluster
from tests.integration.server import login, trigger

pytestmark = pytest.mark.integration

TIMEOUT = 20


@pytest.fixture(scope="module")
def cluster(request):
    postgres = os.environ.get("DATABASE_URL", "")
    with Cluster(pods=3, beat=False, postgres_url=postgres if postgres.startswith("postgres") else None,
                 env={"DJANGO_SETTINGS_MODULE": "tests.integration.delivery_settings"}) as running:
        failed_before = request.session.testsfailed
        yield running
        if request.session.testsfailed > failed_before:  # the processes' own words, for the report
            for process in [running.worker, *running.pods]:
                print(f"\n--- {process.name} log ---\n{process.log_tail(20000)}")


@pytest.fixture(scope="module")
def session(cluster):
    return login(cluster.url)


class Client:
    """A WebSocket client that records every event and, when its pod goes away, reconnects to the
    next pod and resumes from the last seq it saw (what the dashboard's live.js does)."""

    def __init__(self, cluster, session, pod):
        self.cluster, self.session, self.pod = cluster, session, pod
        self.events, self.reconnects, self.ws = [], 0, None

    @property
    def last_seq(self):
        return self.events[-1]["seq"] if self.events else self.start_seq

    async def connect(self, after=None):
        path = f"/ws?after={after}" if after is not None else "/ws"
        url = self.cluster.pod_ws(self.pod).replace("/ws", path)
        self.ws = await websockets.connect(url, additional_headers={
            "Cookie": self.session.cookie_header, "Origin": self.cluster.pod_url(self.pod)}, max_size=None)
        hello = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
        if after is None:
            self.start_seq = hello["seq"]
            await self.ws.send(json.dumps({"type": "ping"}))  # start streaming at once
        return hello

    async def run(self, stop):
        """Receive until `stop` is set; follow pod failures by resuming on the next pod."""
        while not stop.is_set():
            try:
                frame = json.loads(await asyncio.wait_for(self.ws.recv(), 0.5))
            except asyncio.TimeoutError:
                continue
            except websockets.ConnectionClosed:
                await self._failover()
                continue
            if "threat" in frame:
                self.events.append(frame)

    async def _failover(self):
        self.reconnects += 1
        for attempt in range(50):
            self.pod = (self.pod + 1) % len(self.cluster.pods)
            try:
                await self.connect(after=self.last_seq)
                return
            except (OSError, websockets.InvalidHandshake):
                await asyncio.sleep(0.1 * min(attempt + 1, 10))  # backoff between reconnect attempts
        raise RuntimeError("could not reconnect to any pod")

    async def heartbeat(self):
        """A ping: the server sends whatever the log has that the pushes missed, then pong. A socket
        whose pod just died is left to its reader, which fails over and resumes from last_seq."""
        try:
            await self.ws.send(json.dumps({"type": "ping"}))
        except websockets.ConnectionClosed:
            pass

    async def close(self):
        await self.ws.close()


def _seqs(client):
    return [event["seq"] for event in client.events]


def _stored_events(session, after):
    events, cursor = [], after
    while True:
        page = session.get_json(f"/api/events?after={cursor}&limit=1000")["events"]
        if not page:
            return events
        events += page
        cursor = page[-1]["seq"]


def _completed(session, ids):
    """Which of these threats are analysed: one list request for the newest 100 (the ones a test
    just triggered), one detail request only for an id not among them. Polling each id every
    0.2 s ran past the per-user API limit (600/min) while a worker was still reconnecting."""
    newest = {t["id"]: t["analysis_status"] for t in session.get_json("/api/threats?limit=100")["items"]}
    return {i for i in ids if (newest.get(i) or session.get_json(f"/api/threats/{i}")["analysis_status"]) == "completed"}


def _wait_all_analysed(session, ids, timeout=120):
    deadline = time.monotonic() + timeout
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        pending -= _completed(session, pending)
        if pending:
            time.sleep(0.3)  # polling a real worker
    statuses = {i: session.get_json(f"/api/threats/{i}")["analysis_status"] for i in sorted(pending)[:5]}
    assert not pending, f"{len(pending)} not analysed in {timeout} s, e.g. {statuses}"


def _sweep_until_analysed(cluster, session, ids, rounds=6):
    """What beat does every minute, sped up: sweep analyses whose task died with Redis (the worker
    may still be reconnecting to the new server at the first sweep), until all are analysed."""
    for attempt in range(rounds):
        cluster.manage("requeue_stale_analyses", "--older-than", "0")
        try:
            _wait_all_analysed(session, ids, timeout=15)
            return
        except AssertionError:
            if attempt == rounds - 1:
                raise


async def _collect(clients, action, settle=None):
    """Run the clients while `action` (a blocking function) runs in a thread; then heartbeat and
    wait until every client holds every stored event (or TIMEOUT)."""
    stop = asyncio.Event()
    readers = [asyncio.create_task(client.run(stop)) for client in clients]
    result = await asyncio.to_thread(action)
    target = settle() if settle else None
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for client in clients:
            await client.heartbeat()
        await asyncio.sleep(0.3)  # let the catch-up frames arrive
        if target is None or all(client.last_seq >= target for client in clients):
            break
    stop.set()
    await asyncio.gather(*readers)
    return result


def test_a_threat_created_on_one_pod_is_visible_on_the_others(cluster, session):
    created = trigger(session, scenario="crypto_surge")
    _wait_all_analysed(session, [created["id"]])
    seen = [login(cluster.pod_url(i)).get_json(f"/api/threats/{created['id']}") for i in range(3)]
    assert {s["id"] for s in seen} == {created["id"]}
    assert {s["severity"] for s in seen} == {seen[0]["severity"]} and seen[0]["severity"]


def test_clients_on_every_pod_receive_three_threats_in_order(cluster, session):
    async def scenario():
        clients = [Client(cluster, session, pod) for pod in range(3)]
        for client in clients:
            await client.connect()
        start = clients[0].start_seq

        def three():
            ids = [trigger(session, threat_type="bot_traffic")["id"] for _ in range(3)]
            _wait_all_analysed(session, ids)
            return ids

        ids = await _collect(clients, three, settle=lambda: start + 6)
        for client in clients:
            await client.close()
        return start, ids, clients

    start, ids, clients = asyncio.run(scenario())
    for client in clients:
        assert _seqs(client) == list(range(start + 1, start + 7)), f"pod {client.pod}"
        kinds = {(e["threat"]["id"], e["type"]) for e in client.events}
        assert kinds == {(i, t) for i in ids for t in ("threat.created", "threat.analyzed")}


def test_the_redis_channel_carries_every_event(cluster, session):
    async def scenario():
        listener = aioredis.Redis.from_url(cluster.redis_url)
        pubsub = listener.pubsub()
        await pubsub.subscribe("threats:events")
        await pubsub.get_message(timeout=1)  # the subscribe confirmation
        created = await asyncio.to_thread(trigger, session, threat_type="geo_anomaly")
        await asyncio.to_thread(_wait_all_analysed, session, [created["id"]])
        messages = []
        deadline = time.monotonic() + TIMEOUT
        while len(messages) < 2 and time.monotonic() < deadline:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message:
                messages.append(json.loads(message["data"]))
        await listener.aclose()
        return created, messages

    created, messages = asyncio.run(scenario())
    assert [(m["type"], m["threat"]["id"]) for m in messages] == [
        ("threat.created", created["id"]), ("threat.analyzed", created["id"])]
    assert messages[1]["seq"] == messages[0]["seq"] + 1


def test_100_clients_over_3_pods_get_200_events_without_a_gap(cluster, session):
    async def scenario():
        clients = [Client(cluster, session, index % 3) for index in range(100)]
        await asyncio.gather(*(client.connect() for client in clients))
        start = min(client.start_seq for client in clients)

        def hundred_threats():
            ids = [trigger(session, threat_type="rate_limit_breach")["id"] for _ in range(100)]
            _wait_all_analysed(session, ids)
            return ids

        await _collect(clients, hundred_threats, settle=lambda: _stored_events(session, start)[-1]["seq"])
        await asyncio.gather(*(client.close() for client in clients))
        return start, clients

    start, clients = asyncio.run(scenario())
    events = _stored_events(session, start)
    stored = [e["seq"] for e in events]
    # Each threat's creation and analysis (a story of these alerts may add its own flag event).
    assert sum(e["type"] in ("threat.created", "threat.analyzed") for e in events) == 200
    for client in clients:
        expected = [seq for seq in stored if seq > client.start_seq]
        assert _seqs(client) == expected, f"client on pod {client.pod} has gaps or duplicates"


def test_redis_restarted_mid_stream_loses_nothing_after_resume(cluster, session):
    async def scenario():
        clients = [Client(cluster, session, pod) for pod in range(3)]
        for client in clients:
            await client.connect()
        start = clients[0].start_seq

        def stream_with_a_redis_restart():
            ids = [trigger(session, threat_type="proxy_network")["id"] for _ in range(5)]
            cluster.restart_redis()  # killed with SIGKILL; the new one is empty
            ids += [trigger(session, threat_type="proxy_network")["id"] for _ in range(5)]
            _sweep_until_analysed(cluster, session, ids)
            return ids

        ids = await _collect(clients, stream_with_a_redis_restart,
                             settle=lambda: _stored_events(session, start)[-1]["seq"])
        for client in clients:
            await client.close()
        return start, ids, clients

    start, ids, clients = asyncio.run(scenario())
    stored = _stored_events(session, start)
    assert {e["threat"]["id"] for e in stored if e["type"] == "threat.analyzed"} == set(ids)
    assert sum(1 for e in stored if e["type"] == "threat.analyzed") == len(ids)  # each exactly once
    for client in clients:
        assert _seqs(client) == [e["seq"] for e in stored], f"pod {client.pod}"
    assert session.get_json("/ready") == {"status": "ready"}


def test_a_pod_killed_mid_stream_loses_nothing_for_its_clients(cluster, session):
    async def scenario():
        clients = [Client(cluster, session, 0) for _ in range(10)]
        for client in clients:
            await client.connect()
        start = clients[0].start_seq
        survivor = login(cluster.pod_url(1))

        def stream_with_a_pod_kill():
            ids = [trigger(survivor, threat_type="bot_traffic")["id"] for _ in range(5)]
            cluster.kill_pod(0)
            ids += [trigger(survivor, threat_type="bot_traffic")["id"] for _ in range(5)]
            _wait_all_analysed(survivor, ids)
            return ids

        await _collect(clients, stream_with_a_pod_kill,
                       settle=lambda: _stored_events(survivor, start)[-1]["seq"])
        for client in clients:
            await client.close()
        cluster.restart_pod(0)
        return start, clients, survivor

    start, clients, survivor = asyncio.run(scenario())
    events = _stored_events(survivor, start)
    stored = [e["seq"] for e in events]
    # Each threat's creation and analysis (a story of these alerts may add its own flag event).
    assert sum(e["type"] in ("threat.created", "threat.analyzed") for e in events) == 20
    for client in clients:
        assert client.reconnects >= 1
        assert _seqs(client) == stored


def test_a_worker_child_killed_mid_analysis_still_completes_each_threat_once(cluster, session):
    start = session.get_json("/api/events?after=0&limit=1")["latest_seq"]
    ids = []

    def burst():
        ids.extend(trigger(session, threat_type="device_compromise")["id"] for _ in range(60))

    producer = threading.Thread(target=burst)
    producer.start()
    while len(ids) < 20:
        time.sleep(0.01)  # let the worker get busy
    children = cluster.worker_children()
    assert children, "the worker has no pool processes"
    os.kill(children[0], 9)
    producer.join()
    _wait_all_analysed(session, ids)
    stored = _stored_events(session, start)
    analysed = [e["threat"]["id"] for e in stored if e["type"] == "threat.analyzed"]
    assert sorted(analysed) == sorted(ids)  # every threat once, none twice
    detail = session.get_json(f"/api/threats/{ids[20]}")
    assert len(detail["agent_runs"]) == 5


def test_a_worker_child_killed_mid_batch_still_completes_each_ingested_threat_once(cluster, session, tmp_path):
    # An import goes to the worker as batched tasks (AGENTS_BATCH_SIZE, 20): the killed child's task
    # is given back, and its second run claims only what the first did not record. Enough alerts that
    # the two pool processes are still busy when the poll below sees the first ten analysed.
    total = 1000
    start = session.get_json("/api/events?after=0&limit=1")["latest_seq"]
    alerts = tmp_path / "alerts.ndjson"
    alerts.write_text("\n".join(json.dumps(alert) for alert in [
        {"id": f"batch-kill-{i}", "title": f"Beacon to a C2 domain from ws-{i}", "occurred_at": "2026-11-26T10:00:00Z",
         "customer": "CryptoExchange Pro", "category": "malware", "severity": "high", "rule": f"c2-beacon-{i}",
         "host": f"ws-{i}", "observables": {"src_ip": f"10.9.{i // 250}.{i % 250 + 1}"}}
        for i in range(total)]))
    importer = threading.Thread(target=cluster.manage, args=("import_alerts", str(alerts), "--format", "generic"))
    importer.start()
    deadline, cursor, analysed = time.monotonic() + 60, start, 0
    while analysed < 10 and time.monotonic() < deadline:  # read the log as it grows, a small page at a time
        page = session.get_json(f"/api/events?after={cursor}&limit=200")["events"]
        if page:
            cursor, analysed = page[-1]["seq"], analysed + len(_of_type(page, "threat.analyzed"))
        else:
            time.sleep(0.05)  # let the worker get busy
    children = cluster.worker_children()
    assert children, "the worker has no pool processes"
    os.kill(children[0], 9)
    assert 10 <= analysed < total, "the worker was not mid-import when killed"
    importer.join()
    created = _of_type(_stored_events(session, start), "threat.created")
    assert len(created) == total
    _wait_all_analysed(session, created)
    assert sorted(_of_type(_stored_events(session, start), "threat.analyzed")) == sorted(created)  # each once


def _of_type(events, event_type):
    return [e["threat"]["id"] for e in events if e["type"] == event_type]


def test_while_redis_is_down_readiness_fails_and_threats_are_still_stored(cluster, session):
    cluster.stop_redis()
    try:
        status, body = _get(cluster.pod_url(2) + "/ready")
        assert status == 503 and "redis" in body["problems"]
        created = trigger(session, threat_type="anomaly_detection")  # stored, analysis queued later
        assert created["analysis_status"] == "queued"
    finally:
        cluster.start_redis()
    assert _get(cluster.pod_url(2) + "/ready") == (200, {"status": "ready"})
    _sweep_until_analysed(cluster, session, [created["id"]])


def _get(url):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
