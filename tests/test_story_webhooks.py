"""Attack stories to webhooks (issue 21 item 4; docs/handoff.md, docs/stories.md): an endpoint
subscribed to `story.flagged` gets one outbox row per flag of a story of a customer it may receive,
written in the transaction that stitched it, carrying the story's JSON export in the webhook
envelope. Retries and dead letters: tests/integration/test_webhook_delivery.py."""

import json
from datetime import datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import TestCase
from django.utils import timezone

from handoff import signing
from handoff.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from stories import stitching
from stories.models import Story
from tests import factories
from tests.webhook_receiver import Receiver
from threats import services

pytestmark = pytest.mark.django_db
T0 = timezone.now().replace(microsecond=0) - timedelta(hours=3)
INITIAL, EXECUTION, EXFIL = "TA0001", "TA0002", "TA0010"
ENVELOPE = {"id", "event", "created_at"}


def analysed(customer, minutes, tactics, severity="HIGH", host="db-7", recommendation="likely_real_threat"):
    """An alert on `host`, `minutes` after T0, whose verdict (these tactics) is stored through services:
    stitched in the transaction that stores it. On-commit work runs only where the caller captures it."""
    threat = factories.make_threat(customer=customer, analyse=False, observables={"host": host},
                                   occurred_at=T0 + timedelta(minutes=minutes))
    mitre = {"tactics": [{"id": t, "name": stitching.TACTIC_NAMES[t], "techniques": []} for t in tactics]}
    verdict = factories.Verdict(severity=severity, mitre=mitre, false_positive={"recommendation": recommendation})
    return services.do_record_analyses([(threat, verdict)])[0]


def endpoint(name, url="https://93.184.215.14/hook", customers=(), **fields):
    found = WebhookEndpoint.objects.create(name=name, url=url, **fields)
    found.customers.set(customers)
    return found


def story_deliveries():
    return list(WebhookDelivery.objects.filter(event="story.flagged").select_related("endpoint"))


def test_a_flag_writes_exactly_one_delivery_for_each_subscribed_endpoint_that_may_receive_the_customer(acme, globex):
    every = endpoint("every customer", story_flagged_min_severity="LOW")
    acme_only = endpoint("acme only", story_flagged_min_severity="HIGH", customers=[acme])
    endpoint("globex only", story_flagged_min_severity="LOW", customers=[globex])
    endpoint("threats only", analyzed_min_severity="CRITICAL", on_closed=True)
    endpoint("critical stories", story_flagged_min_severity="CRITICAL")
    endpoint("switched off", story_flagged_min_severity="LOW", active=False)

    analysed(acme, 0, [INITIAL])
    assert story_deliveries() == []  # one stage: no flag yet
    second = analysed(acme, 10, [EXECUTION])
    analysed(acme, 20, [EXFIL])  # the story grows (and turns CRITICAL), but it was flagged once
    story = Story.objects.get(customer=acme, entity="db-7")

    deliveries = story_deliveries()
    assert sorted(d.endpoint.name for d in deliveries) == sorted([every.name, acme_only.name])
    assert {(d.story_id, d.threat_id, d.status) for d in deliveries} == {(story.pk, second.pk, DeliveryStatus.PENDING)}
    assert story.severity == "CRITICAL" and not WebhookDelivery.objects.exclude(event="story.flagged").exists()


def test_another_customers_flag_reaches_none_of_the_endpoints_limited_to_this_one(acme, globex):
    endpoint("acme only", story_flagged_min_severity="LOW", customers=[acme])
    analysed(globex, 0, [INITIAL])
    analysed(globex, 10, [EXECUTION])
    assert Story.objects.get(customer=globex).flagged_at is not None and story_deliveries() == []


def test_a_triage_change_that_flags_a_story_writes_its_delivery(acme, alice):
    hook = endpoint("soar", story_flagged_min_severity="LOW")
    analysed(acme, 0, [INITIAL])
    dismissed = analysed(acme, 10, [EXECUTION], recommendation="likely_false_positive")
    assert story_deliveries() == []
    services.triage(alice, dismissed.pk, status="closed", disposition="true_positive", reason="it ran")
    [delivery] = story_deliveries()
    assert delivery.endpoint == hook and delivery.threat_id == dismissed.pk


def test_a_rolled_back_stitching_leaves_no_delivery(acme):
    endpoint("soar", story_flagged_min_severity="LOW")
    analysed(acme, 0, [INITIAL])
    with pytest.raises(RuntimeError), transaction.atomic():
        analysed(acme, 10, [EXECUTION])
        assert len(story_deliveries()) == 1  # written inside the stitching transaction...
        raise RuntimeError("the process dies before the commit")
    assert story_deliveries() == []  # ...and gone with it, as the flag is
    assert Story.objects.get(customer=acme, entity="db-7").flagged_at is None


def test_the_payload_is_the_storys_json_export_in_the_threat_events_envelope(acme, alice, client):
    endpoint("soar", story_flagged_min_severity="LOW", analyzed_min_severity="LOW")
    analysed(acme, 0, [INITIAL])
    second = analysed(acme, 10, [EXECUTION])
    [delivery] = story_deliveries()
    payload = delivery.payload

    threat_payload = WebhookDelivery.objects.filter(event="threat.analyzed").first().payload
    assert ENVELOPE <= threat_payload.keys() and ENVELOPE <= payload.keys()
    assert (payload["id"], payload["event"]) == (str(delivery.pk), "story.flagged")
    assert abs(datetime.fromisoformat(payload["created_at"]) - delivery.created_at) < timedelta(seconds=5)

    client.force_login(alice)
    exported = client.get(f"/api/stories/{delivery.story_id}/export").json()
    assert {key: value for key, value in payload.items() if key not in ENVELOPE | {"exported_at"}} == {
        key: value for key, value in exported.items() if key != "exported_at"}
    assert (payload["schema"], payload["kind"], payload["story"]["flagged_threat"]) == ("soc.export/1", "story", str(second.pk))
    assert [t["id"] for t in payload["story"]["tactics"]] == [INITIAL, EXECUTION]
    assert [t["id"] for t in payload["threats"]] == [m["threat"] for m in payload["story"]["timeline"]]


def test_the_delivery_is_sent_after_commit_signed_with_the_endpoints_secret(acme, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    receiver = Receiver([])
    try:
        hook = endpoint("soar", url=receiver.url, story_flagged_min_severity="LOW")
        analysed(acme, 0, [INITIAL])
        with TestCase.captureOnCommitCallbacks(execute=True):  # the commit: the send runs inline (eager)
            analysed(acme, 10, [EXECUTION])
            assert receiver.seen == []  # nothing leaves before the commit
    finally:
        receiver.close()
    [(_at, headers, body)] = receiver.seen
    [delivery] = story_deliveries()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 1
    assert signing.verify(hook.secret, body, headers["X-SOC-Timestamp"], headers["X-SOC-Signature"])
    assert not signing.verify("another secret", body, headers["X-SOC-Timestamp"], headers["X-SOC-Signature"])
    assert (headers["X-SOC-Event"], headers["X-SOC-Delivery"]) == ("story.flagged", str(delivery.pk))
    assert json.loads(body) == delivery.payload


# --- Subscribing --------------------------------------------------------------------------------------


def test_a_bad_subscription_value_is_refused_naming_the_field():
    with pytest.raises(ValidationError) as refused:
        WebhookEndpoint(name="soar", url="https://93.184.215.14/hook", story_flagged_min_severity="PURPLE").full_clean()
    assert list(refused.value.error_dict) == ["story_flagged_min_severity"]


def test_the_admin_subscribes_an_endpoint_and_refuses_a_bad_value(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    form = {"name": "soar", "url": "https://93.184.215.14/hook", "secret": "s3cret", "analyzed_min_severity": "",
            "story_flagged_min_severity": "PURPLE", "active": "on"}
    page = client.post("/admin/handoff/webhookendpoint/add/", form)
    assert page.status_code == 200 and list(page.context["adminform"].form.errors) == ["story_flagged_min_severity"]
    assert not WebhookEndpoint.objects.exists()
    assert client.post("/admin/handoff/webhookendpoint/add/", {**form, "story_flagged_min_severity": "HIGH"}).status_code == 302
    assert WebhookEndpoint.objects.get().story_flagged_min_severity == "HIGH"
    listing = client.get("/admin/handoff/webhookendpoint/").content.decode()
    assert "Story flagged at or above severity" in listing and "High" in listing
