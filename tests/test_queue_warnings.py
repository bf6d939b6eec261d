"""Near-breach warnings (issue 21 item 1, docs/queue.md): a threat with at most SOC_SLA_WARN_FRACTION of
its SLA left is marked once and pushed as `threat.sla_warning` to the sockets that may see its customer
only; /metrics counts them. And the /queue/ page that lists the queue."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client, TestCase
from django.utils import timezone

from socproject.asgi import application
from tests import factories
from threats import services, tasks
from threats.choices import AnalysisStatus, Status
from threats.models import Threat, ThreatEvent, UserAccess

TIMEOUT = 3


def aged(customer, severity="HIGH", minutes_ago=27, risk=70, **fields):
    """A stored, analysed threat received `minutes_ago` (HIGH: 30 min SLA, so 27 min = 10 % left)."""
    threat = factories.make_threat(customer=customer, analyse=False)
    Threat.objects.filter(pk=threat.pk).update(
        severity=severity, risk_score=risk, analysis_status=AnalysisStatus.COMPLETED,
        received_at=timezone.now() - timedelta(minutes=minutes_ago), **fields)
    return Threat.objects.get(pk=threat.pk)


def warn(**kwargs):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return services.warn_near_breach(**kwargs)


@pytest.mark.django_db
class TestWhichThreatsAreWarnedAbout:
    def test_only_threats_inside_the_last_fifth_of_their_sla_and_not_yet_breached(self, customer):
        near = aged(customer, "HIGH", 27)
        aged(customer, "HIGH", 20)  # a third left
        aged(customer, "HIGH", 31)  # breached already: too late to warn, the SLA figures show it
        critical = aged(customer, "CRITICAL", 13)  # 2 of 15 min left
        assert {t.pk for t in warn()} == {near.pk, critical.pk}

    def test_acknowledged_closed_and_unanalysed_threats_are_left_alone(self, customer):
        aged(customer, "HIGH", 27, acknowledged_at=timezone.now(), status=Status.ACKNOWLEDGED)
        aged(customer, "HIGH", 27, status=Status.CLOSED, disposition="false_positive")
        aged(customer, "", 27, risk=None)
        assert warn() == []

    def test_each_threat_is_warned_about_once(self, customer):
        threat = aged(customer)
        assert [t.pk for t in warn()] == [threat.pk]
        assert warn() == []
        assert Threat.objects.get(pk=threat.pk).sla_warned_at is not None
        assert ThreatEvent.objects.filter(threat=threat, type="threat.sla_warning").count() == 1

    def test_the_fraction_comes_from_the_setting(self, customer, settings):
        threat = aged(customer, "HIGH", 20)
        assert warn() == []
        settings.SOC_SLA_WARN_FRACTION = 0.5
        assert [t.pk for t in warn()] == [threat.pk]

    def test_the_event_says_when_the_sla_breaches(self, customer):
        threat = aged(customer, "HIGH", 27)
        warn()
        event = ThreatEvent.objects.get(threat=threat, type="threat.sla_warning")
        assert event.payload["sla"]["minutes"] == 30
        assert 2.5 <= event.payload["sla"]["minutes_left"] <= 3.0
        assert event.payload["threat"]["id"] == str(threat.pk)

    def test_the_beat_task_runs_it_and_metrics_count_it(self, customer, client, alice):
        aged(customer, "CRITICAL", 13)
        before = _warnings_metric(client, "CRITICAL")
        with TestCase.captureOnCommitCallbacks(execute=True):
            assert tasks.warn_sla_task() == 1
        assert _warnings_metric(client, "CRITICAL") == before + 1

    def test_beat_schedules_the_task(self, settings):
        assert settings.CELERY_BEAT_SCHEDULE["warn-sla"]["task"] == "threats.warn_sla"


def _warnings_metric(client, severity):
    text = client.get("/metrics").content.decode()
    prefix = f'soc_sla_warnings_total{{severity="{severity}"}} '
    return float(next(line for line in text.splitlines() if line.startswith(prefix))[len(prefix):])


# --- Only the customers' sockets get it ---------------------------------------------------------------


def _session(name, customers=None):
    user = get_user_model().objects.create_user(username=name, password="pw-" + name)
    user.groups.add(Group.objects.get_or_create(name="analyst")[0])
    from django.contrib.auth.models import Permission

    Group.objects.get(name="analyst").permissions.add(*Permission.objects.filter(
        content_type__app_label="threats", codename__in=["view_threat", "change_threat"]))
    if customers is not None:
        UserAccess.objects.create(user=user).customers.set(customers)
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def _streaming(cookie):
    communicator = WebsocketCommunicator(application, "/ws", headers=[(b"origin", b"http://testserver"),
                                                                      (b"cookie", f"sessionid={cookie}".encode())])
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    await communicator.receive_json_from(TIMEOUT)  # hello
    await communicator.send_json_to({"type": "ping"})
    assert (await communicator.receive_json_from(TIMEOUT))["type"] == "pong"
    return communicator


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_warning_reaches_only_the_sockets_that_may_see_its_customer():
    acme, globex = await database_sync_to_async(
        lambda: (factories.make_customer(name="Acme"), factories.make_customer(name="Globex")))()
    threats = await database_sync_to_async(lambda: (aged(acme), aged(globex)))()
    cookies = await database_sync_to_async(
        lambda: {"all": _session("all"), "acme": _session("acme", [acme]), "globex": _session("globex", [globex])})()
    sockets = {name: await _streaming(cookie) for name, cookie in cookies.items()}
    await database_sync_to_async(warn)()
    expected = {"all": [str(t.pk) for t in threats], "acme": [str(threats[0].pk)], "globex": [str(threats[1].pk)]}
    for name, socket in sockets.items():
        got = [await socket.receive_json_from(TIMEOUT) for _ in expected[name]]
        assert [m["type"] for m in got] == ["threat.sla_warning"] * len(expected[name])
        assert [m["threat"]["id"] for m in got] == expected[name]
        assert all(m["sla"]["minutes"] == 30 for m in got)
        assert await socket.receive_nothing(0.2)
        await socket.disconnect()


# --- The page ------------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestQueuePage:
    def test_it_lists_the_queue_in_order_with_the_reasons(self, alice_client, customer):
        low, high = aged(customer, "LOW", 5, risk=20), aged(customer, "HIGH", 27, risk=80)
        page = alice_client.get("/queue/")
        assert page.status_code == 200
        body = page.content.decode()
        assert body.index(str(high.pk)) < body.index(str(low.pk))
        assert "HIGH, risk 80, 2 min left of 30, business customer" in body
        assert 'href="/queue/" aria-current="page">My queue<' in body

    def test_a_title_is_text_never_markup(self, alice_client, customer):
        threat = aged(customer)
        Threat.objects.filter(pk=threat.pk).update(title="<script>alert(1)</script> probe")
        body = alice_client.get("/queue/").content.decode()
        assert "<script>alert(1)</script>" not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt; probe" in body

    def test_an_unknown_parameter_is_a_400_that_names_it(self, alice_client):
        response = alice_client.get("/queue/", {"severity": "HIGH"})
        assert response.status_code == 400
        assert "Unknown parameter &#x27;severity&#x27;" in response.content.decode()

    def test_the_outsider_is_refused(self, charlie_client):
        assert charlie_client.get("/queue/").status_code == 403

    def test_the_warning_reads_as_a_sentence_in_the_activity(self, alice_client, customer):
        threat = aged(customer)
        warn()
        body = alice_client.get(f"/threats/{threat.pk}/").content.decode()
        assert "SLA nearly breached: 3.0 min left" in body or "SLA nearly breached: 2.9 min left" in body
