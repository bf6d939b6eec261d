"""The outbox: the threat lifecycle calls these inside its own transaction (threats/services.py),
so a delivery row exists exactly when the event it reports was committed; the send is queued
after commit (handoff/tasks.py), and the sweeper finds any row whose send was lost."""

from django.db import transaction
from django.utils import timezone

from threats.choices import CLOSED_STATUSES, Severity

from . import export
from .models import WebhookDelivery, WebhookEndpoint

SEVERITY_RANK = {value: rank for rank, value in enumerate(Severity.values)}
ANALYZED, CLOSED = "threat.analyzed", "threat.closed"


def threats_analyzed(threats):
    """threat.analyzed for each verdict at or above an endpoint's `analyzed_min_severity`."""
    endpoints = _endpoints(analyzed_min_severity__gt="")
    _write([(endpoint, ANALYZED, threat) for threat in threats for endpoint in endpoints
            if _serves(endpoint, threat)
            and SEVERITY_RANK.get(threat.severity, -1) >= SEVERITY_RANK[endpoint.analyzed_min_severity]])


def threat_triaged(threat, changes):
    """threat.closed when this triage change (`changes`: name -> {from, to}) closed the threat."""
    status = changes.get("status")
    if status and status["to"] in CLOSED_STATUSES and status["from"] not in CLOSED_STATUSES:
        _write([(endpoint, CLOSED, threat) for endpoint in _endpoints(on_closed=True) if _serves(endpoint, threat)])


def _endpoints(**subscribed):
    return list(WebhookEndpoint.objects.filter(active=True, **subscribed).prefetch_related("customers"))


def _serves(endpoint, threat):
    customers = {customer.pk for customer in endpoint.customers.all()}
    return not customers or threat.customer_id in customers


def payload(delivery_id, event, threat, now):
    return {"id": str(delivery_id), "event": event, "created_at": now.isoformat(), "threat": export.threat_record(threat)}


def _write(items):
    if not items:
        return
    from .tasks import send_after_commit

    now = timezone.now()
    rows = []
    for endpoint, event, threat in items:
        row = WebhookDelivery(endpoint=endpoint, event=event, threat_id=threat.pk, next_attempt_at=now)
        row.payload = payload(row.pk, event, threat, now)
        rows.append(row)
    WebhookDelivery.objects.bulk_create(rows)
    send_after_commit([row.pk for row in rows])
