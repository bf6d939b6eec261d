"""The `threats:events` Redis channel (docs/websocket.md): every stored event is
PUBLISHed once its transaction commits, in seq order, a batch's in one round trip; with Redis down
the events are still stored and the failed pushes are counted. A real, private Redis."""

import json

import pytest
import redis
from django.db import transaction

from tests import factories
from tests.integration.server import free_port
from tests.test_observability import scrape, value
from threats import events, services
from threats.choices import EventType
from threats.models import ThreatEvent

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _received(pubsub, count):
    messages = []
    for _ in range(count * 5):
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if message:
            messages.append(json.loads(message["data"]))
        if len(messages) == count:
            break
    return messages


def test_a_batch_s_events_are_published_after_commit_in_seq_order(settings, redis_url, customer):
    settings.REDIS_URL = redis_url
    threats = [factories.make_threat(customer=customer, analyse=False, title=f"alert {i}") for i in range(3)]
    pubsub = redis.Redis.from_url(redis_url).pubsub()
    pubsub.subscribe(events.REDIS_CHANNEL)
    pubsub.get_message(timeout=2)  # the subscribe confirmation

    with transaction.atomic():
        recorded = services._record_events(threats, EventType.ANALYZED, services.COORDINATOR)
        assert pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2) is None  # not before commit

    messages = _received(pubsub, 4)  # waits for a fourth that must not come
    assert [(m["type"], m["seq"], m["threat"]["id"]) for m in messages] == \
        [("threat.analyzed", event.seq, str(threat.pk)) for event, threat in zip(recorded, threats, strict=True)]
    pubsub.close()


def test_with_redis_down_a_batch_s_events_are_stored_and_its_failed_pushes_counted(settings, client, customer):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    threats = [factories.make_threat(customer=customer, analyse=False, title=f"alert {i}") for i in range(3)]
    before = value(scrape(client), "soc_redis_publish_failures_total")

    with transaction.atomic():
        recorded = services._record_events(threats, EventType.ANALYZED, services.COORDINATOR)

    assert ThreatEvent.objects.filter(pk__in=[event.pk for event in recorded]).count() == 3
    assert value(scrape(client), "soc_redis_publish_failures_total") == before + 3
