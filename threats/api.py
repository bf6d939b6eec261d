"""The JSON API under /api (django-ninja). Documented in docs/api.md and at /api/docs.

Handlers are thin: authenticate, parse, call one service function, shape the answer.
Errors are always JSON {"detail": ...}; input errors also name the `field` (and the valid values).
"""

import logging
from datetime import datetime
from uuid import UUID

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja import Field, NinjaAPI, Query, Router, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder
from ninja.responses import Status as Reply
from ninja.security import django_auth

from . import access, audit, hidden_text, ratelimit, services
from .analytics import analytics_snapshot
from .apikeys import APIKeyAuth
from .choices import ActorKind
from .models import APIKey
from .paging import MAX_SEQ, QueueFilters, ThreatFilters, queue_page, summary_page
from .serializers import event_message, threat_detail

log = logging.getLogger(__name__)
BULK_LIMIT = 500


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
    items, next_cursor = summary_page(access.principal(request), filters)
    # Encoded here, not validated item by item by the response schema (which still documents it):
    # that validation cost more than the query. The items equal `threat_summary` (tested).
    return hidden_text.json_response({"items": items, "next_cursor": next_cursor},
                                     content_type="application/json; charset=utf-8")


@router.get("/threats/{uuid:threat_id}", auth=READ_AUTH, response={200: ThreatDetail, 404: Error, **REFUSALS})
def get_threat(request, threat_id: UUID, response: HttpResponse):
    """Everything about one threat; its `ETag` header is the triage version (send it as If-Match)."""
    threat = access.get_threat_for_user(access.principal(request), threat_id)
    response["ETag"] = etag(threat)
    return threat_detail(threat)


@router.post("/threats/trigger", auth=TRIGGER_AUTH, response={202: TriggerOut, 400: Error, **REFUSALS})
def trigger(request, payload: TriggerIn = None):
    """Create a synthetic threat (random, by `threat_type`, or by named `scenario`) and queue its analysis.
    A principal scoped to customers triggers for one of them (its first when `customer` is absent)."""
    who = access.principal(request)
    access.check_permission(who, access.TRIGGER_PERMISSION)
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
    # Refused up front what would fail for every threat alike, instead of N identical refusals.
    services.check_triage(request.user, None, **fields)
    updated, failed = [], []
    for threat_id in ids:
        try:
            services.triage(request.user, threat_id, **fields)
        except services.InvalidInput as exc:
            failed.append({"id": threat_id, "detail": exc.detail, "field": exc.field})
        except access.NotFound as exc:
            failed.append({"id": threat_id, "detail": str(exc)})
        else:
            updated.append(threat_id)
    return {"updated": updated, "failed": failed}


@router.post("/threats/{uuid:threat_id}/notes", response={201: NoteOut, 400: Error, 404: Error, **REFUSALS})
def add_note(request, threat_id: UUID, payload: NoteIn):
    note = services.add_note(request.user, threat_id, payload.body)
    return Reply(201, {"id": note.pk, "threat_id": note.threat_id, "author": request.user.get_username(),
                        "body": note.body, "created_at": note.created_at})


# --- My queue: what to work on next (threats/queue.py, docs/queue.md) ------------------------------


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


# --- Analytics and events --------------------------------------------------------------------------


@router.get("/analytics", auth=READ_AUTH, response={200: dict, **REFUSALS})
def analytics(request):
    """Totals by type, severity and status; customers affected; processing time; MTTA/MTTR overall,
    by severity and by customer; SLA breaches. Exact at `latest_seq` (see `analytics_snapshot`)."""
    return analytics_snapshot(access.principal(request))


@router.get("/events", auth=READ_AUTH, response={200: EventPage, **REFUSALS})
def list_events(request, after: int = Query(0, ge=0, le=MAX_SEQ), limit: int = Query(100, ge=1, le=1000)):
    """Events with seq > `after`, oldest first, at most `limit` (for replay after a disconnect); only
    the events of customers the caller may see."""
    found = access.visible_events(access.principal(request)).filter(seq__gt=after).order_by("seq")[:limit]
    return {"events": [event_message(e) for e in found], "latest_seq": services.latest_seq()}


# --- Helpers -----------------------------------------------------------------------------------------


def _refuse_unknown_parameters(request, schema):
    """A misspelt filter (`review` for `requires_review`) must not answer with the unfiltered list."""
    known = set(schema.model_fields)
    for name in request.GET:
        if name not in known:
            raise services.InvalidInput(name, f"Unknown parameter {name!r}.", sorted(known))


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


@api.exception_handler(access.AccessDenied)
def _denied(request, exc):
    return api.create_response(request, {"detail": str(exc)}, status=403)


@api.exception_handler(access.NotFound)
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
