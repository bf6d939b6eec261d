"""Near-breach warnings across pods, with real processes (issue 21 item 1, docs/queue.md): Celery beat
runs `threats.warn_sla` every second, a Celery worker records `threat.sla_warning`, and the pods
push it through Redis to the sockets of the analysts who may see the customer — on every pod, never
on another customer's analyst's socket, once per threat."""

import asyncio
import json
import os

import pytest
import websockets

from tests.integration.cluster import Cluster
from tests.integration.server import login

pytestmark = pytest.mark.integration

TIMEOUT = 30
SCOPED = "finance-analyst"

CREATE = """
from datetime import timedelta
from django.utils import timezone
from threats.models import Customer, Threat
minutes = {{"CRITICAL": 13, "HIGH": 27}}["{severity}"]
print(Threat.objects.create(title="{title}", customer=Customer.objects.get(slug="{slug}"), threat_type="bot_traffic",
      severity="{severity}", risk_score=80, analysis_status="completed", occurred_at=timezone.now(),
      received_at=timezone.now() - timedelta(minutes=minutes)).pk)
"""

SCOPE = """
from django.contrib.auth.models import Group, User
from threats.models import Customer, UserAccess
user = User.objects.create_user("{name}", password="{name}")
user.groups.add(Group.objects.get(name="analyst"))
UserAccess.objects.create(user=user).customers.set([Customer.objects.get(slug="{slug}")])
"""


@pytest.fixture(scope="module")
def cluster(request):
    postgres = os.environ.get("DATABASE_URL", "")
    with Cluster(pods=2, beat=True, nginx=False, postgres_url=postgres if postgres.startswith("postgres") else None,
                 env={"SOC_SLA_WARN_INTERVAL_SECONDS": "1"}) as running:
        running.manage("shell", "-c", SCOPE.format(name=SCOPED, slug="global-finance"))
        failed_before = request.session.testsfailed
        yield running
        if request.session.testsfailed > failed_before:
            for process in [running.worker, running.beat, *running.pods]:
                print(f"\n--- {process.name} log ---\n{process.log_tail(20000)}")


def create(cluster, title, slug, severity):
    return cluster.manage("shell", "-c", CREATE.format(title=title, slug=slug, severity=severity)).split()[-1]


async def connect(cluster, session, pod):
    socket = await websockets.connect(cluster.pod_ws(pod), additional_headers={
        "Cookie": session.cookie_header, "Origin": cluster.pod_url(pod)})
    json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))  # hello
    await socket.send(json.dumps({"type": "ping"}))  # stream at once
    return socket


async def warnings_until(socket, threat_id):
    """The threat ids of the sla_warning frames received, up to and including `threat_id`'s."""
    seen = []
    while not seen or seen[-1] != threat_id:
        frame = json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))
        if frame.get("type") == "threat.sla_warning":
            seen.append(frame["threat"]["id"])
    return seen


def test_a_warning_reaches_every_pod_only_for_analysts_of_its_customer_and_once(cluster):
    everyone = [login(cluster.pod_url(pod)) for pod in range(2)]
    finance = login(cluster.pod_url(1), SCOPED, SCOPED)

    async def scenario():
        sockets = [await connect(cluster, everyone[pod], pod) for pod in range(2)]
        scoped = await connect(cluster, finance, 1)
        retail = await asyncio.to_thread(create, cluster, "Retail near breach", "retailmax", "HIGH")
        seen_first = [await warnings_until(socket, retail) for socket in sockets]
        # Created after RetailMax's warning went out, so warned about by a later beat run: a second
        # warning about RetailMax's threat from that run would reach the sockets before this one.
        bank = await asyncio.to_thread(create, cluster, "Bank near breach", "global-finance", "CRITICAL")
        seen_then = [await warnings_until(socket, bank) for socket in sockets]
        seen_scoped = await warnings_until(scoped, bank)
        for socket in [*sockets, scoped]:
            await socket.close()
        return retail, bank, seen_first, seen_then, seen_scoped

    retail, bank, seen_first, seen_then, seen_scoped = asyncio.run(scenario())
    assert seen_first == [[retail], [retail]]
    assert seen_then == [[bank], [bank]]
    assert seen_scoped == [bank]
    events = everyone[0].get_json("/api/events?after=0&limit=1000")["events"]
    assert [e["threat"]["id"] for e in events if e["type"] == "threat.sla_warning"] == [retail, bank]
