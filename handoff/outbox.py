"""The outbox: the threat lifecycle calls these inside its own transaction (threats/services.py),
so a delivery row exists exactly when the event it reports was committed; the send is queued
after commit (handoff/tasks.py), and the sweeper finds any row whose send was lost."""

from django.utils import timezone

from stories import serializers
from stories.models import Story
from threats.choices import CLOSED_STATUSES, Severity
from threats.models import Threat

from . import export
from .models import WebhookDelivery, WebhookEndpoint

SEVERITY_RANK = {value: rank for rank, value in enumerate(Severity.values)}
ANALYZED, CLOSED, STORY_FLAGGED = "threat.analyzed", "threat.closed", "story.flagged"


def threats_analyzed(threats):
    """threat.analyzed for each verdict at or above an endpoint's `analyzed_min_severity`."""
    endpoints = _endpoints(analyzed_min_severity__gt="")
    _write([_threat_item(endpoint, ANALYZED, threat) for threat in threats for endpoint in endpoints
            if _serves(endpoint, threat) and _at_least(threat.severity, endpoint.analyzed_min_severity)])


def threat_triaged(threat, changes):
    """threat.closed when this triage change (`changes`: name -> {from, to}) closed the threat."""
    status = changes.get("status")
    if status and status["to"] in CLOSED_STATUSES and status["from"] not in CLOSED_STATUSES:
        _write([_threat_item(endpoint, CLOSED, threat) for endpoint in _endpoints(on_closed=True)
                if _serves(endpoint, threat)])


def stories_flagged(stories):
    """story.flagged for each story just flagged (stories/stitching.py) at or above an endpoint's
    `story_flagged_min_severity`; a story without a severity counts as LOW, as its metric does.
    The story is read as committed with it and exported once, however many endpoints get it."""
    endpoints = _endpoints(story_flagged_min_severity__gt="")
    wanted = [(endpoint, story) for story in stories for endpoint in endpoints if _serves(endpoint, story)
              and _at_least(story.severity or Severity.LOW, endpoint.story_flagged_min_severity)]
    stored = Story.objects.select_related("customer").in_bulk({story.pk for _endpoint, story in wanted})
    documents = {pk: _story_document(story) for pk, story in stored.items()}
    _write([(endpoint, STORY_FLAGGED, {"story_id": story.pk, "threat_id": story.flagged_threat_id},
             documents[story.pk]) for endpoint, story in wanted if story.pk in documents])


def _endpoints(**subscribed):
    return list(WebhookEndpoint.objects.filter(active=True, **subscribed).prefetch_related("customers"))


def _serves(endpoint, record):
    """The endpoint may receive this threat's or story's customer (none selected = every customer)."""
    customers = {customer.pk for customer in endpoint.customers.all()}
    return not customers or record.customer_id in customers


def _at_least(severity, minimum):
    return SEVERITY_RANK.get(severity, -1) >= SEVERITY_RANK[minimum]


def _threat_item(endpoint, event, threat):
    return endpoint, event, {"threat_id": threat.pk}, {"threat": export.threat_record(threat)}


def _story_document(story):
    """The story's JSON export (GET /api/stories/{id}/export): a story is one customer's, so all its
    alerts are within any endpoint that may receive it."""
    moments = serializers.timeline(story)
    ids = [moment["threat"] for moment in moments]
    found = {str(pk): threat for pk, threat in Threat.objects.select_related("customer", "assignee").in_bulk(ids).items()}
    threats = [found[threat_id] for threat_id in ids if threat_id in found]
    return export.story_document(serializers.story_summary(story), moments, threats)


def envelope(delivery_id, event, now, body):
    """What every delivery posts: its id (X-SOC-Delivery), the event and when it happened, then the body."""
    return {**body, "id": str(delivery_id), "event": event, "created_at": now.isoformat()}


def _write(items):
    """items: [(endpoint, event, {the delivery's threat_id / story_id}, body)]."""
    if not items:
        return
    from .tasks import send_after_commit

    now = timezone.now()
    rows = []
    for endpoint, event, subject, body in items:
        row = WebhookDelivery(endpoint=endpoint, event=event, next_attempt_at=now, **subject)
        row.payload = envelope(row.pk, event, now, body)
        rows.append(row)
    WebhookDelivery.objects.bulk_create(rows)
    send_after_commit([row.pk for row in rows])
