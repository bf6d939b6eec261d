"""POST /api/ingest/{format} (API key) and GET /api/groups[/{id}] (session or API key).
Mounted in threats/api.py; documented in docs/ingestion.md.

Answers: 202 with one result per item (valid items are stored even when others fail); 422 when
every item failed; 400 for an unparseable body or an unknown format; 413 for a body over
INGEST_MAX_BODY_BYTES or more than INGEST_MAX_BATCH items; 401/403 for a missing, wrong or
under-privileged key.
"""

import base64
import binascii
from datetime import datetime

from django.conf import settings
from django.db.models import Q
from ninja import Field, Query, Router, Schema
from ninja.responses import Status as Reply
from ninja.security import django_auth

from . import access, hidden_text, ingest, services
from .apikeys import APIKeyAuth
from .importers import FORMATS
from .models import ThreatGroup
from .serializers import threat_summary, utc_moment

router = Router(tags=["ingest"])
GROUP_MEMBERS_DEFAULT = 100


class Problem(Schema):
    detail: str | list  # a list: the field errors of a 422
    field: str | None = None
    valid: list[str] | None = None


class ItemOut(Schema):
    index: int
    status: str = Field(..., description="created, duplicate, skipped or error")
    line: int | None = Field(None, description="NDJSON line number")
    id: str | None = None
    duplicate: bool = False
    group_id: int | None = None
    group_head: bool | None = Field(None, description="true: this alert heads its group and is analysed")
    campaign_id: int | None = Field(None, description="the user's campaign this alert was linked to")
    analysis_status: str | None = None
    suppression_id: int | None = Field(None, description="the suppression that matched it: stored, not analysed")
    field: str | None = None
    detail: str | None = None
    truncated: list[str] = Field(default_factory=list, description="fields that were cut to the limits")
    warnings: list[str] = Field(default_factory=list)


class IngestOut(Schema):
    format: str
    received: int
    created: int
    duplicates: int
    skipped: int
    errors: int
    items: list[ItemOut]


class IngestRefused(IngestOut):
    detail: str
    field: str


class GroupOut(Schema):
    id: int
    title: str
    source: str
    key: str
    customer: str
    customer_slug: str
    member_count: int
    first_seen: datetime
    last_seen: datetime
    worst_severity_hint: str | None
    tactics: list
    users: list
    head: dict | None


class GroupPage(Schema):
    items: list[GroupOut]
    next_cursor: str | None


class GroupDetail(GroupOut):
    members: list[dict]


class GroupFilters(Schema):
    customer: str | None = Field(None, description="Customer slug.")
    source: str | None = Field(None, max_length=32)
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=200)


BATCH_BODY = {"type": "array", "items": {"type": "object"}, "description": "One alert object, or an array of them."}


@router.post("/ingest/{format}", auth=APIKeyAuth("ingest"),
             response={202: IngestOut, 400: Problem, 401: Problem, 403: Problem, 413: Problem, 422: IngestRefused,
                       429: Problem},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": BATCH_BODY},
                 "application/x-ndjson": {"schema": {"type": "string", "description": "One alert per line."}},
             }}})
def ingest_alerts(request, format: str):
    """Import one alert, a JSON array or NDJSON (`Content-Type: application/x-ndjson`) of `format`
    (generic, wazuh, suricata, ecs). Idempotent on the alert's own id within its customer:
    re-posting answers `duplicate: true` with the stored id; the same id sent for another customer
    is that customer's own alert."""
    key = request.auth
    if format not in FORMATS:
        raise services.InvalidInput("format", f"Unknown format {format!r}.", FORMATS)
    if key.source and key.source != format:
        return Reply(403, {"detail": f"This API key only ingests {key.source!r} alerts.", "field": "format"})
    try:
        records = ingest.decode_body(_read_body(request), request.content_type or "")
    except ingest.BodyError as exc:
        return Reply(exc.status, {"detail": exc.detail, "field": exc.field})
    results = ingest.ingest(format, records, actor_label=f"api key {key.name}", bound_customer=key.customer)
    answer = {"format": format, "received": len(results), **ingest.summary(results),
              "items": [result.as_dict() for result in results]}
    # The answer is built field by field above (IngestOut documents it); returning it as it is
    # spares re-validating up to 1,000 items.
    if answer["errors"] == len(results):
        answer.update(detail="No alert in the request could be imported.", field="items")
        return hidden_text.json_response(answer, status=422)
    return hidden_text.json_response(answer, status=202)


@router.get("/groups", auth=[APIKeyAuth("read", required=False), django_auth],
            response={200: GroupPage, 400: Problem, 401: Problem, 403: Problem, 422: Problem, 429: Problem})
def list_groups(request, filters: Query[GroupFilters]):
    """Alert groups, most recently active first (pass `next_cursor` back as `cursor`)."""
    found = _visible_groups(request)
    if filters.customer:
        found = found.filter(customer__slug=filters.customer)
    if filters.source:
        found = found.filter(source=filters.source)
    if filters.cursor:
        last_seen, last_id = _decode_cursor(filters.cursor)
        found = found.filter(Q(last_seen__lt=last_seen) | Q(last_seen=last_seen, id__lt=last_id))
    page = list(found.order_by("-last_seen", "-id")[: filters.limit + 1])
    more, page = len(page) > filters.limit, page[: filters.limit]
    return {"items": [_group(g) for g in page], "next_cursor": _encode_cursor(page[-1]) if more else None}


@router.get("/groups/{int:group_id}", auth=[APIKeyAuth("read", required=False), django_auth],
            response={200: GroupDetail, 400: Problem, 401: Problem, 403: Problem, 404: Problem, 422: Problem,
                      429: Problem})
def get_group(request, group_id: int, limit: int = Query(GROUP_MEMBERS_DEFAULT, ge=1, le=500)):
    """One group with its newest members (at most `limit`), each a threat summary."""
    group = _visible_groups(request).filter(pk=group_id).first()
    if group is None:
        raise access.NotFound("Group not found.")
    members = group.members.select_related("customer", "assignee").order_by("-occurred_at", "-id")[:limit]
    return {**_group(group), "members": [threat_summary(t) for t in members]}


# --- Helpers -------------------------------------------------------------------------------------


def _read_body(request):
    """The raw body, refusing more than INGEST_MAX_BODY_BYTES before reading it when the client
    says its length (Django's own 2.5 MB cap on request.body is meant for forms, not batches)."""
    most = settings.INGEST_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > most:
        raise ingest.BodyError(413, "body", f"The body is larger than {most} bytes.")
    return request.read(most + 1)


def _visible_groups(request):
    """Groups of the customers the key or user may see (access.py: one scoping rule everywhere)."""
    groups = ThreatGroup.objects.select_related("customer", "head__customer", "head__assignee")
    who = access.principal(request)
    access.check_permission(who, access.VIEW_PERMISSION)
    return access.scoped(groups, who)


def _group(group):
    return {
        "id": group.pk, "title": group.title, "source": group.source, "key": group.key,
        "customer": group.customer.name, "customer_slug": group.customer.slug, "member_count": group.member_count,
        "first_seen": group.first_seen, "last_seen": group.last_seen,
        "worst_severity_hint": group.worst_severity_hint or None, "tactics": group.tactics, "users": group.users,
        "head": threat_summary(group.head) if group.head_id else None,
    }


def _encode_cursor(group):
    return base64.urlsafe_b64encode(f"{group.last_seen.isoformat()}|{group.pk}".encode()).decode().rstrip("=")


def _group_id(text):
    """A group id within the database's 64-bit integer (a larger one raises in the driver)."""
    number = int(text)
    if not 0 < number < 2**63:
        raise ValueError(f"{text[:40]} is not a group id.")
    return number


def _decode_cursor(cursor):
    try:
        text = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        last_seen, last_id = text.split("|")
        return utc_moment(last_seen), _group_id(last_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise services.InvalidInput("cursor", "Invalid cursor: pass back the next_cursor of a previous page.") from None
