"""The threat list and the queue, a page at a time: their filters, keyset cursors and pages, shared
by the API (GET /api/threats, /api/queue) and the pages (/threats/, /queue/)."""

import base64
import binascii
import json
import math
from uuid import UUID

from django.contrib.auth import get_user_model
from django.db.models import F, Q
from django.utils import timezone
from ninja import Field, Schema

from stories.models import StoryThreat

from . import access, pivots, queue, services
from .choices import AnalysisStatus, Severity, Status
from .models import Customer, ThreatGroup
from .serializers import SUMMARY_EXPRESSIONS, SUMMARY_FIELDS, summary, utc_moment

MAX_SEQ = 2**63 - 1


class ThreatFilters(Schema):
    severity: str | None = Field(None, max_length=16)
    threat_type: str | None = Field(None, max_length=64)
    status: str | None = Field(None, max_length=16)
    customer: str | None = Field(None, max_length=100, description="Customer slug.")
    assignee: str | None = Field(None, max_length=150, description="Username, 'me' or 'none'.")
    requires_review: bool | None = None
    q: str | None = Field(None, max_length=200, description=(
        "Text search in title, summary and alert id, and an exact match on any observable the term can be "
        "(address, user, host, hash, domain, rule)."))
    ip: str | None = Field(None, max_length=200, description="Pivot: threats with this source or destination IP.")
    user: str | None = Field(None, max_length=200, description="Pivot: threats naming this user (exact).")
    host: str | None = Field(None, max_length=200, description="Pivot: threats on this host (exact).")
    hash: str | None = Field(None, max_length=200, description="Pivot: threats with this MD5/SHA-1/SHA-256/SHA-512.")
    domain: str | None = Field(None, max_length=200, description="Pivot: threats naming this domain.")
    rule: str | None = Field(None, max_length=200, description="Pivot: threats of this rule, e.g. rule:5712, sid:1:2001219.")
    campaign: int | None = Field(None, ge=1, le=MAX_SEQ, description="Only the threats of this campaign (id).")
    group: int | None = Field(None, ge=1, le=MAX_SEQ, description="Only the threats of this alert group (id).")
    story: int | None = Field(None, ge=1, le=MAX_SEQ, description="Only the threats of this attack story (id, docs/stories.md).")
    suppressed: bool | None = Field(None, description="true: only the alerts a suppression hid; false: none of them.")
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=200)


class QueueFilters(Schema):
    customer: str | None = Field(None, max_length=100, description="Customer slug.")
    assignee: str | None = Field(None, max_length=150, description="Username, 'me' or 'none'.")
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=300, description=(
        "The `next_cursor` of the previous page. It keeps the moment the first page was ranked at, so "
        "the pages of one walk through the queue never repeat or skip a threat as the clocks move."))


# --- The threat list -------------------------------------------------------------------------------


def summary_page(who, filters):
    """(summaries, next cursor): one page of GET /api/threats, newest first, read as the summary's
    columns only (serializers.SUMMARY_FIELDS)."""
    found = _filter(access.visible_threats(who), filters, who)
    if filters.cursor:
        received_at, last_id = _decode_cursor(filters.cursor)
        found = _older_than(found, received_at, last_id)
    page = list(found.order_by("-received_at", "-id").values(*SUMMARY_FIELDS, **SUMMARY_EXPRESSIONS)[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    next_cursor = _cursor(page[-1]["received_at"], page[-1]["id"]) if more else None
    return [summary(row) for row in page], next_cursor


def threat_page(user, filters, before=None):
    """One page of the filtered list for the threats page: keyset queries only (no OFFSET, no COUNT),
    so it costs the same on page 1 and page 40,000. `filters.cursor` goes to older threats,
    `before` (the first row of a page) back to newer ones. Returns (threats, older, newer) cursors."""
    found, limit = _filter(access.visible_threats(user).select_related("group__head"), filters, user), filters.limit
    if before:
        received_at, first_id = _decode_cursor(before)
        newer = _newer_than(found, received_at, first_id)
        rows = list(newer.order_by("received_at", "id")[: limit + 1])
        more_newer = len(rows) > limit
        rows = rows[:limit][::-1]
        return rows, (encode_cursor(rows[-1]) if rows else None), (encode_cursor(rows[0]) if more_newer else None)
    if filters.cursor:
        received_at, last_id = _decode_cursor(filters.cursor)
        found = _older_than(found, received_at, last_id)
    rows = list(found.order_by("-received_at", "-id")[: limit + 1])
    more_older = len(rows) > limit
    rows = rows[:limit]
    older = encode_cursor(rows[-1]) if more_older else None
    newer = encode_cursor(rows[0]) if filters.cursor and rows else None
    return rows, older, newer


def _older_than(found, received_at, threat_id):
    """Rows after (received_at, id) in newest-first order. The plain `received_at <=` bound lets the
    database seek in the (…, received_at) index; with only the OR it walks the index from the top,
    so page 10,000 would cost 10,000 pages."""
    return found.filter(Q(received_at__lt=received_at) | Q(id__lt=threat_id), received_at__lte=received_at)


def _newer_than(found, received_at, threat_id):
    return found.filter(Q(received_at__gt=received_at) | Q(id__gt=threat_id), received_at__gte=received_at)


# Enum filters ignore case (severity=critical): each is compared in the case its values are stored in.
FILTER_CASE = {"severity": str.upper, "status": str.lower, "threat_type": str.lower}


def _filter(found, filters, user):
    choices = {"severity": Severity.values, "status": Status.values}
    for name in ("severity", "threat_type", "status"):
        value = FILTER_CASE[name](getattr(filters, name) or "")
        if value:
            if name in choices and value not in choices[name]:
                raise services.InvalidInput(name, f"Unknown {name} {getattr(filters, name)!r}.", choices[name])
            found = found.filter(_severity_filter(value) if name == "severity" else Q(**{name: value}))
    found = _by_customer_and_assignee(found, filters, user)
    if filters.requires_review is not None:
        found = found.filter(requires_human_review=filters.requires_review)
    if filters.campaign:
        found = found.filter(campaign_id=filters.campaign)
    if filters.group:
        found = found.filter(group_id=filters.group)
    if filters.story:
        found = found.filter(pk__in=StoryThreat.objects.filter(story_id=filters.story).values("threat_id"))
    if filters.suppressed is not None:
        found = found.filter(suppressed=filters.suppressed)
    for kind in pivots.PIVOTS:
        if getattr(filters, kind):
            found = found.filter(pivots.condition(kind, pivots.normalise(kind, getattr(filters, kind))))
    if filters.q:
        q = filters.q.strip()
        found = found.filter(Q(title__icontains=q) | Q(executive_summary__icontains=q) | Q(source_ref=q)
                             | pivots.search_condition(q))
    return found


def _by_customer_and_assignee(found, filters, user):
    # Customer and assignee are looked up first, so the filter is on the indexed id column
    # (customer/assignee + received_at): a join on the name would scan at a million rows.
    if filters.customer:
        found = found.filter(customer_id=Customer.objects.filter(slug=filters.customer).values("pk")[:1])
    if filters.assignee == "none":
        found = found.filter(assignee__isnull=True)
    elif filters.assignee:
        me = user.get_username() if hasattr(user, "get_username") else ""  # an API key is nobody's "me"
        username = me if filters.assignee == "me" else filters.assignee
        found = found.filter(assignee_id=get_user_model().objects.filter(username=username).values("pk")[:1])
    return found


def _severity_filter(severity):
    """Threats of this severity, and grouped members whose group head has it (they show the head's
    verdict, so they filter with it)."""
    heads = ThreatGroup.objects.filter(head__severity=severity).values("pk")
    return Q(severity=severity) | Q(analysis_status=AnalysisStatus.GROUPED, group_id__in=heads)


def encode_cursor(threat):
    return _cursor(threat.received_at, threat.pk)


def _cursor(received_at, threat_id):
    raw = json.dumps([received_at.isoformat(), str(threat_id)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor):
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        received_at, last_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return utc_moment(str(received_at)), UUID(str(last_id))
    except (ValueError, TypeError, binascii.Error):
        raise services.InvalidInput("cursor", "Invalid cursor: pass back the next_cursor of a previous page.") from None


# --- My queue: what to work on next (threats/queue.py, docs/queue.md) ------------------------------


QUEUE_FIELDS = (*SUMMARY_FIELDS, "priority", "queue_risk", "queue_urgency", "queue_weight", "acknowledged_at")
QUEUE_EXPRESSIONS = {**SUMMARY_EXPRESSIONS, "tier": F("customer__tier")}


def queue_page(who, filters, now=None):
    """(items, next cursor, ranked at): one page of `who`'s queue, as GET /api/queue answers it."""
    ranked_at, position = _decode_queue_cursor(filters.cursor) if filters.cursor else (now or timezone.now(), None)
    found = queue.open_threats(_by_customer_and_assignee(access.visible_threats(who), filters, who))
    customers = access.visible_customers(who)
    if filters.customer:
        customers = customers.filter(slug=filters.customer)
    # The page's ids first (a narrow query per part of the queue), then its rows in one query.
    best = queue.best(found, ranked_at, position, customers.values_list("pk", "tier"), filters.limit + 1)
    page = queue.ranked(found.filter(pk__in=[row["id"] for row in best]), ranked_at)
    rows = sorted(page.values(*QUEUE_FIELDS, **QUEUE_EXPRESSIONS), key=queue.queue_order)
    more, rows = len(rows) > filters.limit, rows[: filters.limit]
    next_cursor = _queue_cursor(ranked_at, rows[-1]) if more else None
    return [_queue_item(row, ranked_at) for row in rows], next_cursor, ranked_at


def _queue_item(row, now):
    # As queue.ranked reads it: a member's own verdict when it has one (analysed before it was
    # grouped), else its group head's, and only its own severity starts an SLA clock.
    grouped = row["analysis_status"] == AnalysisStatus.GROUPED and row["head_id"] is not None
    inherited = grouped and not row["severity"] and row["risk_score"] is None
    ranking = queue.rank(
        severity=row["head_severity"] if inherited else row["severity"],
        risk_score=row["head_risk"] if grouped and row["risk_score"] is None else row["risk_score"],
        received_at=row["received_at"], acknowledged_at=row["acknowledged_at"], tier=row["tier"], now=now,
        inherited=inherited)
    return {**summary(row), "priority": round(row["priority"], 2), "risk": ranking.risk,
            "urgency": round(row["queue_urgency"], 3), "tier_weight": row["queue_weight"], "reason": ranking.reason,
            "sla_due": ranking.sla_due, "acknowledged_at": row["acknowledged_at"]}


def _queue_cursor(ranked_at, row):
    raw = json.dumps([ranked_at.isoformat(), row["priority"], row["received_at"].isoformat(), str(row["id"])])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_queue_cursor(cursor):
    """(ranked at, (priority, received_at, id)) from a queue cursor; 400 naming `cursor` otherwise."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        ranked_at, priority, received_at, last_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if isinstance(priority, bool) or not isinstance(priority, (int, float)) or not 0 <= priority < math.inf:
            raise ValueError(priority)  # also NaN and Infinity, which json reads
        return utc_moment(str(ranked_at)), (float(priority), utc_moment(str(received_at)), UUID(str(last_id)))
    except (ValueError, TypeError, binascii.Error):
        raise services.InvalidInput("cursor", "Invalid cursor: pass back the next_cursor of a previous page.") from None
