"""Webhooks: signing, the SSRF rule, the outbox rows the threat lifecycle writes, back-off and the
admin (issue 21 item 4; docs/handoff.md). Real deliveries: tests/integration/test_webhook_delivery.py."""

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from handoff import signing, tasks
from handoff.addresses import check_url
from handoff.models import WebhookDelivery, WebhookEndpoint
from tests import factories
from threats import services

BODY = b'{"event":"threat.closed"}'


def test_a_signature_verifies_over_timestamp_and_body():
    headers = signing.headers("s3cret", BODY, now=1_700_000_000)
    assert headers["X-SOC-Signature"].startswith("sha256=") and headers["X-SOC-Timestamp"] == "1700000000"
    assert signing.verify("s3cret", BODY, headers["X-SOC-Timestamp"], headers["X-SOC-Signature"], now=1_700_000_010)


def test_it_rejects_a_changed_body_a_wrong_secret_an_old_or_garbled_timestamp():
    headers = signing.headers("s3cret", BODY, now=1_700_000_000)
    stamp, signed = headers["X-SOC-Timestamp"], headers["X-SOC-Signature"]
    assert not signing.verify("s3cret", BODY + b" ", stamp, signed, now=1_700_000_000)
    assert not signing.verify("other", BODY, stamp, signed, now=1_700_000_000)
    assert not signing.verify("s3cret", BODY, stamp, signed, now=1_700_000_000 + 301)
    assert not signing.verify("s3cret", BODY, "1700000001", signed, now=1_700_000_000)
    assert not signing.verify("s3cret", BODY, "soon", signed, now=1_700_000_000)


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "file:///etc/passwd", "http:///nohost",
                                 "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x",
                                 "http://0.0.0.0/x", "http://[::ffff:169.254.169.254]/x"])
def test_it_refuses_other_schemes_and_link_local_or_metadata_addresses(url, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True  # never enough for these
    with pytest.raises(ValidationError):
        check_url(url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "https://10.1.2.3/hook", "http://192.168.0.5/",
                                 "http://localhost:9000/hook", "http://[::1]/hook"])
def test_private_addresses_need_the_setting(url, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(ValidationError, match="WEBHOOK_ALLOW_PRIVATE_NETWORKS"):
        check_url(url)
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    check_url(url)


def test_a_public_address_is_allowed(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    check_url("https://93.184.215.14/hook")


def test_saving_an_endpoint_with_a_metadata_url_fails_validation(db):
    with pytest.raises(ValidationError):
        WebhookEndpoint(name="bad", url="http://169.254.169.254/").full_clean()


def test_back_off_doubles_within_jitter_and_is_capped(settings):
    settings.WEBHOOK_BACKOFF_SECONDS, settings.WEBHOOK_BACKOFF_MAX_SECONDS = 10, 60
    for attempts, ceiling in [(1, 10), (2, 20), (3, 40), (4, 60), (9, 60)]:
        delays = [tasks.backoff(attempts) for _ in range(50)]
        assert all(ceiling * 0.5 <= d <= ceiling for d in delays), attempts


# --- The outbox -----------------------------------------------------------------------------------


@pytest.fixture
def no_sending(monkeypatch):
    """Rows are written; nothing is sent (the integration tests send)."""
    monkeypatch.setattr(tasks, "schedule", lambda delivery_id, delay: None)


def _endpoint(**fields):
    return WebhookEndpoint.objects.create(**{"name": "soar", "url": "https://93.184.215.14/hook", **fields})


def test_an_analysed_threat_at_or_above_the_severity_writes_a_delivery(customer, no_sending):
    at_medium, above = _endpoint(analyzed_min_severity="MEDIUM"), _endpoint(analyzed_min_severity="HIGH")
    _endpoint(analyzed_min_severity="", on_closed=True)
    threat = factories.make_threat(customer=customer)
    assert threat.severity == "MEDIUM"
    delivery = WebhookDelivery.objects.get()
    assert delivery.endpoint == at_medium and delivery.event == "threat.analyzed" and delivery.threat_id == threat.pk
    assert delivery.payload["id"] == str(delivery.pk) and delivery.payload["threat"]["severity"] == "MEDIUM"
    assert delivery.payload["threat"]["url"] == f"/threats/{threat.pk}/" and not above.deliveries.exists()


def test_the_customer_filter_and_the_active_flag_are_honoured(customer, no_sending):
    other = factories.make_customer()
    _endpoint(analyzed_min_severity="LOW").customers.set([other])
    _endpoint(analyzed_min_severity="LOW", active=False)
    factories.make_threat(customer=customer)
    assert not WebhookDelivery.objects.exists()
    factories.make_threat(customer=other)
    assert WebhookDelivery.objects.count() == 1


def test_closing_a_threat_writes_one_threat_closed_delivery(alice, threat, no_sending):
    endpoint = _endpoint(on_closed=True)
    services.triage(alice, threat.pk, status="investigating")
    assert not WebhookDelivery.objects.exists()
    services.triage(alice, threat.pk, status="closed", disposition="false_positive", reason="scanner")
    services.triage(alice, threat.pk, status="resolved")  # still closed: no second event
    delivery = WebhookDelivery.objects.get()
    assert (delivery.endpoint, delivery.event) == (endpoint, "threat.closed")
    assert delivery.payload["threat"]["disposition"] == "false_positive"


def test_no_delivery_survives_a_rolled_back_closure(alice, threat, no_sending):
    _endpoint(on_closed=True)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.triage(alice, threat.pk, status="closed", disposition="false_positive", reason="scanner")
        raise RuntimeError("the closing transaction fails")
    assert not WebhookDelivery.objects.exists()


# --- Admin ----------------------------------------------------------------------------------------


def test_only_superusers_see_the_webhook_admin(client, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    for url in ("/admin/handoff/webhookendpoint/", "/admin/handoff/deadletter/", "/admin/handoff/webhookdelivery/"):
        assert client.get(url).status_code == 403, url
    admin = django_user_model.objects.create_superuser("root", password="pw")
    client.force_login(admin)
    for url in ("/admin/handoff/webhookendpoint/", "/admin/handoff/deadletter/", "/admin/handoff/webhookendpoint/add/"):
        assert client.get(url).status_code == 200, url
