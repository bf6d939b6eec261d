"""The JSON API under /api (django-ninja). Documented in docs/api.md and at /api/docs.

Handlers are thin: authenticate, parse, call one service function, shape the answer.
Errors are always JSON {"detail": ...}; input errors also name the `field` (and the valid values).
"""

import base64
import binascii
import json
import logging
import math
from collections import Counter
from datetime import datetime, timedelta
from functools import reduce
from operator import or_
from uuid import UUID

from django.contrib.auth import get_user_model
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.db.models import Count, F, Func, JSONField, Q
from django.db.models.functions import Left
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from ninja import Field, NinjaAPI, Query, Router, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder
from ninja.responses import Status as Reply
from ninja.security import django_auth

from agents.analyzers.response import SLA_MINUTES
from stories.models import StoryThreat

from . import access, audit, hidden_text, pivots, queue, ratelimit, services, shared_analytics, stats
from .apikeys import APIKeyAuth
from .choices import CLOSED_STATUSES, ActorKind, AnalysisStatus, Disposition, Severity, Status
from .models import APIKey, Customer, ThreatGroup
from .serializers import SUMMARY_TEXT_LIMIT, event_message, head_verdict, threat_detail, utc_moment

log = logging.getLogger(__name__)
SNAPSHOT_ATTEMPTS = 3
SLA_WATCH_LIMIT = 500
BULK_LIMIT = 500
MAX_SEQ = 2**63 - 1



class ObjectParser(Parser):
    """JSON bodies must be objects: `["x"]` or `5` would otherwise read as an empty request. No
    string may hold a NUL character: PostgreSQL refuses them in every query and column (a 500 the
    Schemathesis run found), and no field of this API has a use for one."""

    def parse_body(self, request):
        if not request.body.strip():
            return {}
        data = super().parse_body(request)
        if not isinstance(data, dict):
            raise services.InvalidInput("body", "The body must be a JSON object.")
        _refuse_nul(data, "body")
        return data

    def parse_querydict(self, data, list_fields, request):
        parsed = super().parse_querydict(data, list_fields, request)
        _refuse_nul(parsed, "query")
        return parsed


def _refuse_nul(value, where):
    if isinstance(value, str) and "\x00" in value:
        raise services.InvalidInput(where, "NUL characters are not allowed.")
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, where)
            _refuse_nul(item, str(key) if where in ("body", "query") else where)
    elif isinstance(value, list):
        for item in value:
            _refuse_nul(item, where)


class Encoder(hidden_text.EscapeHidden, NinjaJSONEncoder):
    """Readable UTF-8, with the characters that hide or reorder text written as \\uXXXX escapes, so a
    terminal or a viewer showing the raw answer cannot be tricked (threats/hidden_text.py)."""


class Renderer(JSONRenderer):
    encoder_class = Encoder


api = NinjaAPI(
    parser=ObjectParser(),
    renderer=Renderer(),
    title="SOC Agent System API",
    version="1.0",
    description="Threats, triage, analytics and the event log. Session authentication (CSRF on writes); "
                "reads also with an `X-API-Key` of scope `read`, the trigger with scope `trigger`.",
    urls_namespace="api",
)
router = Router(auth=django_auth, tags=["threats"])
# Reads and the trigger also take an API key (header only: no cookie, no CSRF); triage never does.
READ_AUTH = [APIKeyAuth("read", required=False), django_auth]
TRIGGER_AUTH = [APIKeyAuth("trigger", required=False), django_auth]


# --- Schemas -----------------------------------------------------------------------------------


class Error(Schema):
    detail: str | list | dict
    field: str | None = None
    valid: list[str] | None = None


# What any authenticated endpoint may answer besides its own codes: refused input (e.g. a NUL
# character), not logged in / bad key, not allowed, a query string over 8 KB, malformed input, over a
# rate limit.
REFUSALS = {400: Error, 401: Error, 403: Error, 414: Error, 422: Error, 429: Error}


class GroupHead(Schema):
    id: UUID
    severity: str | None
    risk_score: int | None
    analysis_status: str


class ThreatSummary(Schema):
    id: UUID
    title: str
    source: str
    threat_type: str
    customer: str
    customer_slug: str
    severity: str | None
    risk_score: int | None
    analysis_status: str
    status: str
    disposition: str | None
    assignee: str | None
    requires_human_review: bool
    executive_summary: str
    mitre_techniques: list[str]
    processing_ms: int | None
    occurred_at: datetime
    received_at: datetime
    campaign: int | None = Field(None, description="Id of the user's campaign the threat belongs to, if any.")
    version: int = Field(..., description="Triage version, also the ETag: send it back as If-Match (docs/api.md).")
    group_id: int | None = Field(None, description="The alert group (duplicates) it belongs to, if any.")
    group_head: GroupHead | None = Field(None, description=(
        "A grouped member's inherited verdict: its group head's (analysed once for the group). "
        "Its own severity and risk_score stay empty."))
    pivots: dict[str, list[str]] = Field(default_factory=dict, description=(
        "The values it can be pivoted on, by pivot (ip, user, host, hash, domain, rule; at most 10 each): "
        "what a list filtered on a pivot or `q` matches a live event with."))
    suppressed: bool = Field(False, description=(
        "An active suppression matched it at ingest: stored and closed by rule, never analysed (docs/suppressions.md)."))


class ThreatPage(Schema):
    items: list[ThreatSummary]
    next_cursor: str | None


class CampaignRef(Schema):
    id: int
    key: str = Field(..., description="What links the threats, e.g. user:alice.")
    title: str
    threat_count: int


class ThreatDetail(ThreatSummary):
    source_ref: str | None
    observables: dict
    mitre_hints: list
    rule: str | None = Field(None, description="The source's rule or signature, e.g. rule:5712, sid:1:2001219.")
    signal: dict = Field(default_factory=dict, description="The alert in the normalised signal model (docs/signals.md).")
    raw: dict
    risk_factors: list
    confidence: float | None
    mitre: dict
    false_positive: dict
    response_plan: dict
    timeline: list
    review_reasons: list
    adversarial: dict
    severity_hint: str | None
    campaign: CampaignRef | None = Field(None, description="One user's activity across hosts and rules.")
    stories: list[int] = Field(default_factory=list, description=(
        "Ids of the kill-chain stories it belongs to, one per entity at most (GET /api/stories/{id}, docs/stories.md)."))
    analyzed_at: datetime | None
    analysis_error: str | None
    disposition_reason: str | None
    acknowledged_at: datetime | None
    closed_at: datetime | None
    closed_by_kind: str | None
    suppression: int | None = Field(None, description="Id of the suppression that matched it, if any.")
    agent_runs: list[dict]
    notes: list[dict]


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


class TriggerIn(Schema):
    threat_type: str | None = Field(None, max_length=40)
    scenario: str | None = Field(None, max_length=40)
    customer: str | None = Field(None, max_length=100, description="Customer name or slug.")


class TriggerOut(Schema):
    id: UUID
    analysis_status: str
    threat_type: str
    customer: str
    title: str
    url: str


class TriageIn(Schema):
    model_config = {"json_schema_extra": {"examples": [
        {"status": "acknowledged"},
        {"status": "closed", "disposition": "false_positive", "reason": "Our own vulnerability scanner", "version": 3}]}}

    status: str | None = Field(None, max_length=16)
    disposition: str | None = Field(None, max_length=24)
    reason: str | None = Field(None, max_length=services.REASON_MAX_LENGTH)
    assignee: str | None = Field(None, max_length=150, description="Username; null or '' unassigns.")
    version: int | None = Field(None, ge=1, le=MAX_SEQ, description=(
        "The version the change is based on (as the If-Match header): 409 if the threat moved on. "
        "Without either, the change applies to the current state."))


class TriageChange(Schema):
    actor: str
    at: datetime
    changes: dict


class TriageConflict(Schema):
    detail: str
    field: str = "version"
    current: ThreatDetail = Field(..., description="The threat as it is now; its `version` is the one to send.")
    changes: list[TriageChange] = Field(..., description="The triage changes made since the version sent, oldest first.")


class BulkTriageIn(Schema):
    ids: list[UUID] = Field(..., min_length=1, max_length=BULK_LIMIT)
    status: str | None = Field(None, max_length=16)
    disposition: str | None = Field(None, max_length=24)
    reason: str | None = Field(None, max_length=services.REASON_MAX_LENGTH)
    assignee: str | None = Field(None, max_length=150, description="Username; null or '' unassigns.")


class BulkFailure(Schema):
    id: UUID
    detail: str
    field: str | None = None


class BulkTriageOut(Schema):
    updated: list[UUID]
    failed: list[BulkFailure]


class NoteIn(Schema):
    body: str = Field(..., max_length=services.NOTE_MAX_LENGTH)


class NoteOut(Schema):
    id: int
    threat_id: UUID
    author: str
    body: str
    created_at: datetime


class EventPage(Schema):
    events: list[dict]
    latest_seq: int


# --- Threats -------------------------------------------------------------------------------------


@router.get("/threats", auth=READ_AUTH, response={200: ThreatPage, 400: Error, **REFUSALS})
def list_threats(request, filters: Query[ThreatFilters]):
    """Newest first, filtered, with cursor pagination (pass `next_cursor` back as `cursor`).
    Enum filters ignore case; an unknown parameter or a value out of range is 400 naming it."""
    _refuse_unknown_parameters(request, ThreatFilters)
    who = access.principal(request)
    found = _filter(services.visible_threats(who), filters, who)
    if filters.cursor:
        received_at, last_id = _decode_cursor(filters.cursor)
        found = _older_than(found, received_at, last_id)
    page = list(found.order_by("-received_at", "-id").values(*SUMMARY_FIELDS, **SUMMARY_EXPRESSIONS)[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    next_cursor = _cursor(page[-1]["received_at"], page[-1]["id"]) if more else None
    # Encoded here, not validated item by item by the response schema (which still documents it):
    # that validation cost more than the query. The items equal `threat_summary` (tested).
    return hidden_text.json_response({"items": [_summary(row) for row in page], "next_cursor": next_cursor},
                                     content_type="application/json; charset=utf-8")


class _PivotObservables(Func):
    """Only the observables a pivot reads, as a JSON object (missing ones null): a list page never
    loads command lines, URLs or user agents."""

    output_field = JSONField()

    def as_sql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        build = "jsonb_build_object" if connection.vendor == "postgresql" else "json_object"
        pairs = ", ".join(f"'{name}', {column} -> '{name}'" if connection.vendor == "postgresql"
                          else f"'{name}', {column} -> '$.{name}'" for name in pivots.OBSERVABLE_PIVOT)
        return f"{build}({pairs})", params


class _TechniqueIds(Func):
    """The technique ids of `mitre` as a JSON array, taken out in the database: a list page never
    loads the techniques' evidence, mitigations and detections."""

    output_field = JSONField()
    template = "jsonb_path_query_array(%(expressions)s, '$.techniques[*].technique_id')"

    def as_sqlite(self, compiler, connection, **extra):
        template = "(SELECT json_group_array(json_extract(value, '$.technique_id')) FROM json_each(%(expressions)s, '$.techniques'))"
        return self.as_sql(compiler, connection, template=template, **extra)


# Only what a summary shows: not `raw`, the timeline, the response plan or the agents' JSON.
SUMMARY_FIELDS = ("id", "title", "source", "threat_type", "severity", "risk_score", "analysis_status", "status",
                  "disposition", "requires_human_review", "processing_ms", "occurred_at", "received_at", "campaign_id",
                  "version", "group_id", "rule", "suppressed")
SUMMARY_EXPRESSIONS = {
    "customer_name": F("customer__name"), "customer_slug": F("customer__slug"),
    "assignee_name": F("assignee__username"), "summary": Left("executive_summary", SUMMARY_TEXT_LIMIT),
    "techniques": _TechniqueIds("mitre"), "pivot_observables": _PivotObservables("observables"),
    # A grouped member's inherited verdict (serializers.group_head): its head's row, joined.
    "head_id": F("group__head_id"), "head_severity": F("group__head__severity"),
    "head_risk": F("group__head__risk_score"), "head_status": F("group__head__analysis_status"),
}


def _summary(row):
    """`serializers.threat_summary` from the selected columns."""
    return {
        "id": row["id"], "title": row["title"], "source": row["source"], "threat_type": row["threat_type"],
        "customer": row["customer_name"], "customer_slug": row["customer_slug"], "severity": row["severity"] or None,
        "risk_score": row["risk_score"], "analysis_status": row["analysis_status"], "status": row["status"],
        "disposition": row["disposition"] or None, "assignee": row["assignee_name"],
        "requires_human_review": row["requires_human_review"], "executive_summary": row["summary"],
        "mitre_techniques": row["techniques"], "processing_ms": row["processing_ms"],
        "occurred_at": row["occurred_at"], "received_at": row["received_at"], "campaign": row["campaign_id"],
        "version": row["version"], "group_id": row["group_id"],
        "group_head": (head_verdict(row["head_id"], row["head_severity"], row["head_risk"], row["head_status"])
                       if row["analysis_status"] == AnalysisStatus.GROUPED and row["head_id"] else None),
        "pivots": pivots.summary_values(row["pivot_observables"], row["rule"]),
        "suppressed": row["suppressed"],
    }


@router.get("/threats/{uuid:threat_id}", auth=READ_AUTH, response={200: ThreatDetail, 404: Error, **REFUSALS})
def get_threat(request, threat_id: UUID, response: HttpResponse):
    """Everything about one threat; its `ETag` header is the triage version (send it as If-Match)."""
    threat = services.get_threat_for_user(access.principal(request), threat_id)
    response["ETag"] = etag(threat)
    return threat_detail(threat)


@router.post("/threats/trigger", auth=TRIGGER_AUTH, response={202: TriggerOut, 400: Error, **REFUSALS})
def trigger(request, payload: TriggerIn = None):
    """Create a synthetic threat (random, by `threat_type`, or by named `scenario`) and queue its analysis.
    A principal scoped to customers triggers for one of them (its first when `customer` is absent)."""
    who = access.principal(request)
    services.check_permission(who, services.TRIGGER_PERMISSION)
    payload = payload or TriggerIn()
    customer = access.trigger_customer(who, payload.customer or None)
    actor = (services.Actor(ActorKind.SYSTEM, label=f"api key {who.name}"[:150]) if isinstance(who, APIKey)
             else services.Actor.for_user(who))
    threat = services.trigger_threat(actor, payload.threat_type or None, payload.scenario or None, customer)
    return Reply(202, {
        "id": threat.pk, "analysis_status": threat.analysis_status, "threat_type": threat.threat_type,
        "customer": threat.customer.name, "title": threat.title, "url": f"/api/threats/{threat.pk}",
    })


@router.patch("/threats/{uuid:threat_id}",
              response={200: ThreatDetail, 400: Error, 404: Error, 409: TriageConflict, **REFUSALS})
def update_threat(request, threat_id: UUID, payload: TriageIn, response: HttpResponse):
    """Triage: change `status`, set a `disposition` with a `reason` when closing, or (un)assign.
    With `If-Match: "<version>"` (or `version` in the body) the change applies only if nobody
    changed the threat since that version; otherwise 409 with the current threat and their changes."""
    fields = payload.dict(exclude_unset=True)
    version = _precondition(request.headers.get("If-Match"), fields.pop("version", None))
    threat = services.triage(request.user, threat_id, version=version, **fields)
    response["ETag"] = etag(threat)
    return threat_detail(threat)


def etag(threat):
    return f'"{threat.version}"'


def _precondition(if_match, version):
    """The version a triage change is based on: from If-Match (one strong entity tag, or `*` for
    "any"), else the body's `version`; None when the client sent neither (last write wins)."""
    if if_match is None or if_match.strip() == "*":
        return version
    tag = if_match.strip()
    if not (len(tag) > 2 and tag[0] == tag[-1] == '"' and tag[1:-1].isdigit()):
        raise services.InvalidInput("If-Match", 'Send one ETag as given by GET /api/threats/{id}, e.g. "3".')
    if version is not None and int(tag[1:-1]) != version:
        raise services.InvalidInput("version", "The If-Match header and the body's version disagree.")
    return int(tag[1:-1])


@router.post("/threats/bulk", response={200: BulkTriageOut, 400: Error, **REFUSALS})
def bulk_triage(request, payload: BulkTriageIn):
    """One triage change for many threats (at most 500). Each threat is changed on its own, with its
    own event; the ones that cannot be changed (gone, or refused) are listed with the reason."""
    fields = payload.dict(exclude_unset=True)
    ids = list(dict.fromkeys(fields.pop("ids")))
    services.check_permission(request.user, services.TRIAGE_PERMISSION)
    _check_bulk_change(fields)
    updated, failed = [], []
    for threat_id in ids:
        try:
            services.triage(request.user, threat_id, **fields)
        except services.InvalidInput as exc:
            failed.append({"id": threat_id, "detail": exc.detail, "field": exc.field})
        except services.NotFound as exc:
            failed.append({"id": threat_id, "detail": str(exc)})
        else:
            updated.append(threat_id)
    return {"updated": updated, "failed": failed}


def _check_bulk_change(fields):
    """Refuse up front what would fail for every threat alike, instead of N identical refusals."""
    if not fields:
        raise services.InvalidInput("body", "Nothing to change: give status, disposition, reason or assignee.")
    if "status" in fields and fields["status"] not in Status.values:
        raise services.InvalidInput("status", f"Unknown status {fields['status']!r}.", Status.values)
    if fields.get("disposition") is not None and fields["disposition"] not in Disposition.values:
        raise services.InvalidInput("disposition", f"Unknown disposition {fields['disposition']!r}.",
                                    Disposition.values)
    if fields.get("status") in CLOSED_STATUSES:
        if not fields.get("disposition"):
            raise services.InvalidInput("disposition", "Closing threats needs a disposition.", Disposition.values)
        if not (fields.get("reason") or "").strip():
            raise services.InvalidInput("reason", "Closing threats needs a reason.")


@router.post("/threats/{uuid:threat_id}/notes", response={201: NoteOut, 400: Error, 404: Error, **REFUSALS})
def add_note(request, threat_id: UUID, payload: NoteIn):
    note = services.add_note(request.user, threat_id, payload.body)
    return Reply(201, {"id": note.pk, "threat_id": note.threat_id, "author": request.user.get_username(),
                        "body": note.body, "created_at": note.created_at})


# --- My queue: what to work on next (threats/queue.py, docs/queue.md) ------------------------------


class QueueFilters(Schema):
    customer: str | None = Field(None, max_length=100, description="Customer slug.")
    assignee: str | None = Field(None, max_length=150, description="Username, 'me' or 'none'.")
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=300, description=(
        "The `next_cursor` of the previous page. It keeps the moment the first page was ranked at, so "
        "the pages of one walk through the queue never repeat or skip a threat as the clocks move."))


class QueueItem(ThreatSummary):
    priority: float = Field(..., description="risk × urgency × tier weight (docs/queue.md); higher comes first.")
    risk: int = Field(..., description="The risk the priority used (a grouped member: its head's; unanalysed: 50).")
    urgency: float = Field(..., description="1 with no SLA clock running; 1 + 3 × the share of the SLA used, at most 4.")
    tier_weight: float = Field(..., description="The customer's tier: starter 1, business 1.25, enterprise 1.5.")
    reason: str = Field(..., description='Why it is here, e.g. "HIGH, risk 72, 12 min left of 30, enterprise customer".')
    sla_due: datetime | None = Field(None, description="When the acknowledgement SLA breaches, while its clock runs.")
    acknowledged_at: datetime | None = None


class QueuePage(Schema):
    items: list[QueueItem]
    next_cursor: str | None
    ranked_at: datetime = Field(..., description="The moment the priorities were computed at.")


@router.get("/queue", auth=READ_AUTH, response={200: QueuePage, 400: Error, **REFUSALS})
def list_queue(request, filters: Query[QueueFilters]):
    """The open threats the caller may see, highest priority first (risk × urgency from the SLA time
    left × customer tier), each with the reason in words; cursor pagination as /api/threats."""
    _refuse_unknown_parameters(request, QueueFilters)
    items, next_cursor, ranked_at = queue_page(access.principal(request), filters)
    return hidden_text.json_response({"items": items, "next_cursor": next_cursor, "ranked_at": ranked_at},
                                     content_type="application/json; charset=utf-8")


QUEUE_FIELDS = (*SUMMARY_FIELDS, "priority", "queue_risk", "queue_urgency", "queue_weight", "acknowledged_at")
QUEUE_EXPRESSIONS = {**SUMMARY_EXPRESSIONS, "tier": F("customer__tier")}


def queue_page(who, filters, now=None):
    """(items, next cursor, ranked at): one page of `who`'s queue, as GET /api/queue answers it."""
    ranked_at, position = _decode_queue_cursor(filters.cursor) if filters.cursor else (now or timezone.now(), None)
    found = queue.open_threats(_by_customer_and_assignee(services.visible_threats(who), filters, who))
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
    return {**_summary(row), "priority": round(row["priority"], 2), "risk": ranking.risk,
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


# --- Analytics and events --------------------------------------------------------------------------


@router.get("/analytics", auth=READ_AUTH, response={200: dict, **REFUSALS})
def analytics(request):
    """Totals by type, severity and status; customers affected; processing time; MTTA/MTTR overall,
    by severity and by customer; SLA breaches. Exact at `latest_seq` (see `analytics_snapshot`)."""
    return analytics_snapshot(access.principal(request))


def analytics_snapshot(user, now=None):
    """The analytics and the event seq they are exact at.

    The aggregates are read again when an event was recorded while they were computed, so a
    dashboard that applies every event after `latest_seq` to them counts each change exactly once
    (`exact` is false in the rare case that the log kept moving on every attempt)."""
    threats = services.visible_threats(user).order_by()
    scope = access.customer_scope(user)

    def compute():
        for _attempt in range(SNAPSHOT_ATTEMPTS):
            seq = services.latest_seq()
            data = _analytics(threats, now or timezone.now(), scope)
            if services.latest_seq() == seq:
                return {**data, "latest_seq": seq, "exact": True}
        return {**data, "latest_seq": seq, "exact": False}

    # A snapshot is exact at its own seq however old it is: one per second per scope serves everyone.
    return compute() if now is not None else shared_analytics.shared(scope, compute)


def _analytics(threats, now, scope=access.ALL_CUSTOMERS):
    """Every figure from the exact running totals per (customer, type, severity, status) that the
    database keeps in each writing transaction (threats/stats.py: a few hundred rows whatever the
    number of threats), plus one index range for the open threats still inside their SLA deadline."""
    by_type, by_status = Counter(), Counter({s: 0 for s in Status.values})
    by_severity, open_by_severity = Counter({s: 0 for s in Severity.values}), Counter({s: 0 for s in Severity.values})
    overall, severity_times, customer_times, names = _Times(), {s: _Times() for s in Severity.values}, {}, {}
    analyzed = processing = review = 0
    unacknowledged = Counter()  # (customer slug, severity) -> open threats never acknowledged
    for slug, name, threat_type, severity, status, n, n_analyzed, ms, n_review, *times in stats.totals(scope):
        is_open = status not in CLOSED_STATUSES
        by_type[threat_type] += n
        by_status[status] += n
        analyzed, processing = analyzed + n_analyzed, processing + ms
        review += n_review if is_open else 0
        names[slug] = name
        for bucket in (overall, customer_times.setdefault(slug, _Times())):
            bucket.add(*times)
        if severity:
            by_severity[severity] += n
            open_by_severity[severity] += n if is_open else 0
            severity_times[severity].add(*times)
            unacknowledged[slug, severity] += n - times[0] if is_open else 0
    within_deadline, watch, until = _open_within_deadline(threats, now)
    for (slug, severity), count in unacknowledged.items():
        if severity in SLA_MINUTES:
            breached = count - within_deadline[slug, severity]
            for bucket in (overall, customer_times[slug], severity_times[severity]):
                bucket.breached_open += breached
    return {
        "total_threats": sum(by_type.values()),
        "customers_affected": len(names),
        "average_processing_ms": round(processing / analyzed, 1) if analyzed else 0,
        "requires_review": review,
        "mtta_seconds": overall.as_dict()["mtta_seconds"],
        "mttr_seconds": overall.as_dict()["mttr_seconds"],
        "by_type": dict(by_type),
        "by_severity": dict(by_severity),
        "by_status": dict(by_status),
        "open_by_severity": dict(open_by_severity),
        # What a dashboard needs to keep the figures above current from events alone.
        "analyzed_count": analyzed,
        "processing_ms_sum": processing,
        "customer_slugs": sorted(names),
        "sla": _sla(overall, severity_times,
                    {slug: {"name": names[slug], **times.as_dict()} for slug, times in customer_times.items()},
                    watch, until),
    }


class _Times:
    """Counts and summed durations behind MTTA/MTTR and the SLA figures, so buckets add up exactly."""

    def __init__(self):
        self.acknowledged = self.closed = self.within_sla = self.breached_open = 0
        self.acknowledge_us = self.resolve_us = 0

    def add(self, acknowledged, acknowledge_us, closed, resolve_us, within_sla):
        self.acknowledged += acknowledged
        self.acknowledge_us += acknowledge_us
        self.closed += closed
        self.resolve_us += resolve_us
        self.within_sla += within_sla

    def as_dict(self):
        return {
            "acknowledged": self.acknowledged,
            # Milliseconds: the dashboard multiplies the mean back into a sum and adds live events to it,
            # so a coarser mean drifts a second away from a fresh page's figure.
            "mtta_seconds": round(self.acknowledge_us / 1e6 / self.acknowledged, 3) if self.acknowledged else None,
            "closed": self.closed,
            "mttr_seconds": round(self.resolve_us / 1e6 / self.closed, 3) if self.closed else None,
            "within_sla": self.within_sla,
            "breached_open": self.breached_open,
        }


# --- SLA: acknowledge within the response plan's minutes for the severity ---------------------------


# The open, unacknowledged threats still inside their deadline are read in one query (counts and
# watch list alike) when there are at most this many; past it, counted in the database and listed
# per severity, SLA_WATCH_LIMIT each (a flood of recent threats must not be loaded whole).
SLA_PENDING_IN_ONE_QUERY = 2000


def _sla_pending(threats, now):
    """Open threats never acknowledged whose acknowledgement deadline is still ahead."""
    recent = reduce(or_, (
        Q(severity=severity, received_at__gte=now - timedelta(minutes=minutes))
        for severity, minutes in SLA_MINUTES.items()
    ))
    return threats.filter(recent, acknowledged_at__isnull=True).exclude(status__in=CLOSED_STATUSES)


def _open_within_deadline(threats, now):
    """(within-deadline counts per (customer slug, severity), the SLA watch and its horizon).
    The totals hold every unacknowledged open threat; the difference is the breached ones.

    Usually one query: every pending threat inside its deadline (recent threats only, read from the
    (severity, received_at) index), counted and listed here. When there are more than
    SLA_PENDING_IN_ONE_QUERY, a grouped count plus one bounded query per severity."""
    pending = _sla_pending(threats, now)
    rows = list(pending.order_by().values_list("pk", "customer__slug", "severity", "received_at")
                [:SLA_PENDING_IN_ONE_QUERY + 1])
    if len(rows) <= SLA_PENDING_IN_ONE_QUERY:
        counts = Counter((slug, severity) for _pk, slug, severity, _received in rows)
        by_severity = {severity: [] for severity in SLA_MINUTES}
        for pk, slug, severity, received in sorted(rows, key=lambda row: row[3]):
            by_severity[severity].append((pk, slug, received))
        return counts, *_sla_watch(by_severity, now)
    counts = Counter({(slug, severity): n for slug, severity, n in
                      pending.values_list("customer__slug", "severity").annotate(n=Count("pk")).order_by()})
    by_severity = {
        severity: list(pending.filter(severity=severity).order_by("received_at")
                       .values_list("pk", "customer__slug", "received_at")[:SLA_WATCH_LIMIT])
        for severity in SLA_MINUTES
    }
    return counts, *_sla_watch(by_severity, now)


def _sla(overall, severity_times, by_customer, watch, until):
    return {
        "minutes": dict(SLA_MINUTES),
        **overall.as_dict(),
        "by_severity": {severity: times.as_dict() for severity, times in severity_times.items()},
        "by_customer": by_customer,
        "watch": watch,
        "watch_until": until.isoformat() if until else None,
    }


def _sla_watch(by_severity, now):
    """Every SLA deadline still ahead up to a horizon ([id, severity, customer slug, due], soonest
    first), so a dashboard can count breaches as they happen. `by_severity` holds each severity's
    pending threats, oldest first. `until` is that horizon (None: all of them are listed); past it,
    the dashboard reads the analytics again."""
    found, horizons = [], []
    for severity, minutes in SLA_MINUTES.items():
        rows = by_severity[severity][:SLA_WATCH_LIMIT]
        found += [(received + timedelta(minutes=minutes), str(pk), severity, slug) for pk, slug, received in rows]
        if len(rows) == SLA_WATCH_LIMIT:  # later deadlines of this severity were left out
            horizons.append(rows[-1][2] + timedelta(minutes=minutes))
    found.sort()
    if len(found) > SLA_WATCH_LIMIT:
        horizons.append(found[SLA_WATCH_LIMIT - 1][0])
    until = min(horizons) if horizons else None
    listed = [item for item in found if until is None or item[0] <= until][:SLA_WATCH_LIMIT]
    return [[pk, severity, slug, due.isoformat()] for due, pk, severity, slug in listed], until


@router.get("/events", auth=READ_AUTH, response={200: EventPage, **REFUSALS})
def list_events(request, after: int = Query(0, ge=0, le=MAX_SEQ), limit: int = Query(100, ge=1, le=1000)):
    """Events with seq > `after`, oldest first, at most `limit` (for replay after a disconnect); only
    the events of customers the caller may see."""
    found = access.visible_events(access.principal(request)).filter(seq__gt=after).order_by("seq")[:limit]
    return {"events": [event_message(e) for e in found], "latest_seq": services.latest_seq()}


# --- Helpers -----------------------------------------------------------------------------------------


def threat_page(user, filters, before=None):
    """One page of the filtered list for the threats page: keyset queries only (no OFFSET, no COUNT),
    so it costs the same on page 1 and page 40,000. `filters.cursor` goes to older threats,
    `before` (the first row of a page) back to newer ones. Returns (threats, older, newer) cursors."""
    found, limit = _filter(services.visible_threats(user).select_related("group__head"), filters, user), filters.limit
    if before:
        received_at, first_id = _decode_cursor(before)
        newer = _newer_than(found, received_at, first_id)
        rows = list(newer.order_by("received_at", "id")[: limit + 1])
        more_newer = len(rows) > limit
        rows = rows[:limit][::-1]
        return rows, (_encode_cursor(rows[-1]) if rows else None), (_encode_cursor(rows[0]) if more_newer else None)
    if filters.cursor:
        received_at, last_id = _decode_cursor(filters.cursor)
        found = _older_than(found, received_at, last_id)
    rows = list(found.order_by("-received_at", "-id")[: limit + 1])
    more_older = len(rows) > limit
    rows = rows[:limit]
    older = _encode_cursor(rows[-1]) if more_older else None
    newer = _encode_cursor(rows[0]) if filters.cursor and rows else None
    return rows, older, newer


def _older_than(found, received_at, threat_id):
    """Rows after (received_at, id) in newest-first order. The plain `received_at <=` bound lets the
    database seek in the (…, received_at) index; with only the OR it walks the index from the top,
    so page 10,000 would cost 10,000 pages."""
    return found.filter(Q(received_at__lt=received_at) | Q(id__lt=threat_id), received_at__lte=received_at)


def _newer_than(found, received_at, threat_id):
    return found.filter(Q(received_at__gt=received_at) | Q(id__gt=threat_id), received_at__gte=received_at)


def _refuse_unknown_parameters(request, schema):
    """A misspelt filter (`review` for `requires_review`) must not answer with the unfiltered list."""
    known = set(schema.model_fields)
    for name in request.GET:
        if name not in known:
            raise services.InvalidInput(name, f"Unknown parameter {name!r}.", sorted(known))


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


def _encode_cursor(threat):
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


def _seconds(delta):
    return round(delta.total_seconds(), 1) if delta is not None else None


api.add_router("/", router)
api.add_router("/", "threats.ingest_api.router")  # POST /api/ingest/{format}, GET /api/groups
api.add_router("/", "stories.api.router")  # GET /api/stories, /api/stories/{id} (docs/stories.md)
api.add_router("/", "handoff.api.router")  # GET /api/threats/{id}/export, /api/campaigns/{id}/export
api.add_router("/", "suppressions.api.router")  # /api/suppressions: preview, save, list, revoke


# --- Error handling: always JSON ------------------------------------------------------------------------


@api.exception_handler(services.InvalidInput)
def _invalid(request, exc):
    body = {"detail": exc.detail, "field": exc.field}
    if exc.valid is not None:
        body["valid"] = list(exc.valid)
    return api.create_response(request, body, status=400)


@api.exception_handler(services.Conflict)
def _conflict(request, exc):
    changes = [{"actor": event.actor_label or event.actor_kind, "at": event.created_at,
                "changes": event.payload.get("changes", {})}
               for event in services.triage_changes_since(exc.threat, exc.expected)]
    body = {"detail": exc.detail, "field": "version", "current": threat_detail(exc.threat), "changes": changes}
    response = api.create_response(request, body, status=409)
    response["ETag"] = etag(exc.threat)
    return response


@api.exception_handler(services.AccessDenied)
def _denied(request, exc):
    return api.create_response(request, {"detail": str(exc)}, status=403)


@api.exception_handler(services.NotFound)
def _not_found(request, exc):
    return api.create_response(request, {"detail": str(exc)}, status=404)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    audit.record("api.unauthenticated", None, outcome="refused", method=request.method, path=request.path)
    return api.create_response(request, {"detail": "Authentication required: log in first."}, status=401)


@api.exception_handler(ratelimit.RateLimited)
def _rate_limited(request, exc):
    audit.record("ratelimit.refused", access.principal(request) if hasattr(request, "auth") else None,
                 outcome="refused", path=request.path)
    response = api.create_response(request, {"detail": exc.detail, "field": None}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(ValidationError)
def _validation(request, exc):
    # A query parameter out of range (limit=-1, requires_review=maybe) is a 400 naming it, in
    # words, like every other refused filter; a body that does not match its schema stays a 422.
    if exc.errors and all(len(e.get("loc", ())) > 1 and e["loc"][0] == "query" for e in exc.errors):
        first = exc.errors[0]
        name = str(first["loc"][1])
        return api.create_response(request, {"detail": f"Invalid {name}: {first['msg']}.", "field": name}, status=400)
    return api.create_response(request, {"detail": exc.errors}, status=422)


@api.exception_handler(HttpError)
def _http_error(request, exc):
    return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)


@api.exception_handler(MultiPartParserError)
def _malformed_body(request, exc):
    # e.g. `Content-Type: multipart/form-data` without a boundary, met when the CSRF check reads
    # request.POST (found by the Schemathesis run, tests/test_fuzz_api.py): the client's mistake.
    return api.create_response(request, {"detail": f"Malformed request body: {exc}", "field": "body"}, status=400)


@api.exception_handler(RequestDataTooBig)
def _too_big(request, exc):
    return api.create_response(request, {"detail": "Request body too large."}, status=413)


@api.exception_handler(Exception)
def _unexpected(request, exc):
    log.exception("unhandled API error on %s %s", request.method, request.path)
    return api.create_response(request, {"detail": "Internal server error."}, status=500)
