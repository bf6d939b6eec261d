"""Webhook deliveries to a real local HTTP receiver (a server thread) that fails, times out and
recovers (issue 21 item 4): retries with back-off until delivered; attempts used up make a dead
letter, which the admin's "retry now" delivers; a flagged attack story is delivered like a threat
event. The embedded in-process sender runs them."""

import json
import time

import pytest

from handoff import signing
from handoff.models import DeadLetter, WebhookDelivery, WebhookEndpoint
from stories.models import Story
from tests import factories
from tests.webhook_receiver import Receiver
from tests.test_story_webhooks import EXECUTION, INITIAL, analysed

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SECRET = "receiver-secret"


@pytest.fixture
def webhook_settings(settings):
    settings.AGENTS_IN_THREAD = True  # the embedded mode: timers and the in-process pool send
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    settings.WEBHOOK_BACKOFF_SECONDS = 0.2
    settings.WEBHOOK_MAX_ATTEMPTS = 5
    return settings


def _wait_for(condition, deadline=20.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)  # polling interval of the wait, not a stand-in for work
    raise AssertionError("condition not met before the deadline")


def _delivery(status):
    return WebhookDelivery.objects.filter(status=status).first()


def test_a_delivery_retries_through_a_failure_and_a_timeout_with_back_off_then_succeeds(webhook_settings):
    receiver = Receiver([500, "hang"], then=200)
    try:
        WebhookEndpoint.objects.create(name="soar", url=receiver.url, secret=SECRET, analyzed_min_severity="LOW")
        threat = factories.make_threat()
        delivered = _wait_for(lambda: _delivery("delivered"))
    finally:
        receiver.close()
    assert delivered.attempts == 3 and delivered.last_status_code == 200 and delivered.threat_id == threat.pk
    (t1, _, _), (t2, _, _), (t3, headers, body) = receiver.seen
    # back-off: 0.2 s × 2^(n-1) × [0.5, 1]; the second attempt also waited out its 0.5 s timeout
    assert 0.1 <= t2 - t1 and 0.5 + 0.2 <= t3 - t2
    assert signing.verify(SECRET, body, headers["X-SOC-Timestamp"], headers["X-SOC-Signature"])
    payload = json.loads(body)
    assert payload["event"] == "threat.analyzed" and payload["threat"]["id"] == str(threat.pk)
    assert headers["X-SOC-Delivery"] == str(delivered.pk) == payload["id"]


def test_used_up_attempts_make_a_dead_letter_that_retry_now_delivers(webhook_settings, client, django_user_model):
    webhook_settings.WEBHOOK_MAX_ATTEMPTS = 3
    webhook_settings.WEBHOOK_BACKOFF_SECONDS = 0.05
    receiver = Receiver([], then=500)
    try:
        WebhookEndpoint.objects.create(name="chat", url=receiver.url, secret=SECRET, analyzed_min_severity="LOW")
        factories.make_threat()
        dead = _wait_for(lambda: _delivery("dead"))
        assert dead.attempts == 3 and dead.last_error == "HTTP 500" and len(receiver.seen) == 3
        assert list(DeadLetter.objects.all()) == [dead]

        receiver.then = 200
        client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
        page = client.post("/admin/handoff/deadletter/", {"action": "retry_now", "_selected_action": [str(dead.pk)]})
        assert page.status_code == 302
        delivered = _wait_for(lambda: _delivery("delivered"))
    finally:
        receiver.close()
    assert delivered.pk == dead.pk and len(receiver.seen) == 4 and not DeadLetter.objects.exists()


def test_a_flagged_story_is_delivered_signed_after_a_failed_attempt(webhook_settings):
    receiver = Receiver([503], then=200)
    try:
        customer = factories.make_customer(name="Acme")
        WebhookEndpoint.objects.create(name="soar", url=receiver.url, secret=SECRET, story_flagged_min_severity="HIGH")
        analysed(customer, 0, [INITIAL])
        second = analysed(customer, 10, [EXECUTION])  # commits: the flag and its delivery row together
        delivered = _wait_for(lambda: _delivery("delivered"))
    finally:
        receiver.close()
    story = Story.objects.get(customer=customer, entity="db-7")
    assert delivered.event == "story.flagged" and delivered.attempts == 2 and delivered.last_status_code == 200
    assert (delivered.story_id, delivered.threat_id) == (story.pk, second.pk) and len(receiver.seen) == 2
    _, headers, body = receiver.seen[-1]
    assert signing.verify(SECRET, body, headers["X-SOC-Timestamp"], headers["X-SOC-Signature"])
    payload = json.loads(body)
    assert (payload["event"], payload["kind"], payload["story"]["id"]) == ("story.flagged", "story", story.pk)
    assert headers["X-SOC-Event"] == "story.flagged" and headers["X-SOC-Delivery"] == str(delivered.pk) == payload["id"]
