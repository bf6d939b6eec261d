"""GET /api/stories and GET /api/stories/{id} (docs/stories.md). Mounted in threats/api.py; same
authentication, customer scoping and error shapes as GET /api/threats."""

import base64
import binascii
import json
from datetime import datetime

from django.db.models import Q
from ninja import Field, Query, Router, Schema
from ninja.security import django_auth

from threats import access
from threats.apikeys import APIKeyAuth
from threats.errors import InvalidInput
from threats.models import Customer
from threats.serializers import utc_moment

from . import serializers
from .access import get_story_for_user, visible_stories
from .models import EntityKind

router = Router(tags=["stories"])
READ_AUTH = [APIKeyAuth("read", required=False), django_auth]
MAX_ID = 2**63 - 1


class Problem(Schema):
    detail: str | list | dict
    field: str | None = None
    valid: list[str] | None = None


REFUSALS = {400: Problem, 401: Problem, 403: Problem, 414: Problem, 422: Problem, 429: Problem}


class StoryTactic(Schema):
    id: str = Field(..., description="ATT&CK tactic id, e.g. TA0001.")
    name: str
    threat: str = Field(..., description="The first alert of the story that reached it (threat id).")
    at: datetime = Field(..., description="When that alert happened.")


class StorySummary(Schema):
    id: int
    customer: str
    customer_slug: str
    entity_kind: str = Field(..., description="host, user or source (address).")
    entity: str
    first_seen: datetime
    last_seen: datetime
    tactics: list[StoryTactic] = Field(..., description="The tactics reached, in the order the alerts reached them.")
    stage_count: int
    severity: str | None = Field(None, description=(
        "The story's: its worst alert's, one band higher for 3+ tactics or exfiltration/impact after an earlier stage."))
    alert_severity: str | None = Field(None, description="The highest severity of a single alert in it.")
    severity_reason: str | None = Field(None, description="Why severity is above alert_severity, when it is.")
    threat_count: int = Field(..., description="Alerts that count (dismissed ones do not).")
    flagged_at: datetime | None = Field(None, description="When it first progressed to a later stage (set once).")
    flagged_threat: str | None = Field(None, description="The alert whose tactic made that progression.")
    url: str = Field(..., description="The story's page.")


class TimelineTactic(Schema):
    id: str
    name: str


class StoryMoment(Schema):
    threat: str
    occurred_at: datetime
    title: str
    severity: str | None
    status: str
    tactics: list[TimelineTactic] = Field(..., description="The alert's tactics, in kill-chain order.")
    reached: list[str] = Field(..., description="The tactics (ids) this alert was the first of the story to reach.")
    counts: bool = Field(..., description="False once an analyst dismissed it (false positive, benign).")
    group_size: int | None = Field(None, description="For a group head: the alerts of its group it stands for.")


class StoryDetail(StorySummary):
    timeline: list[StoryMoment] = Field(..., description="Its alerts in time order (at most 500).")


class StoryPage(Schema):
    items: list[StorySummary]
    next_cursor: str | None


class StoryFilters(Schema):
    entity: str | None = Field(None, max_length=255, description="Only the stories of this host, user or address.")
    kind: str | None = Field(None, max_length=16, description="Only stories of this entity kind: host, user, source.")
    flagged: bool | None = Field(None, description="true: only stories that progressed to a later stage.")
    customer: str | None = Field(None, max_length=100, description="Customer slug.")
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=200)


@router.get("/stories", auth=READ_AUTH, response={200: StoryPage, **REFUSALS})
def list_stories(request, filters: Query[StoryFilters]):
    """Stories, the most recently active first, filtered; cursor pagination (pass `next_cursor` back as `cursor`)."""
    _refuse_unknown_parameters(request)
    items, next_cursor = story_page(access.principal(request), filters)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/stories/{int:story_id}", auth=READ_AUTH, response={200: StoryDetail, 404: Problem, **REFUSALS})
def get_story(request, story_id: int):
    """One story with its timeline: each alert's time, title, severity and tactics, and the tactics it reached first."""
    if not 1 <= story_id <= MAX_ID:
        raise access.NotFound("Story not found.")
    return serializers.story_detail(get_story_for_user(access.principal(request), story_id))


def story_page(who, filters):
    """(items, next cursor): one page of the stories `who` may see, as GET /api/stories answers it."""
    found = _filtered(visible_stories(who), filters)
    if filters.cursor:
        last_seen, last_id = _decode_cursor(filters.cursor)
        found = found.filter(Q(last_seen__lt=last_seen) | Q(last_seen=last_seen, id__lt=last_id))
    page = list(found.order_by("-last_seen", "-id")[: filters.limit + 1])
    more, page = len(page) > filters.limit, page[: filters.limit]
    return [serializers.story_summary(story) for story in page], _cursor(page[-1]) if more else None


def _filtered(found, filters):
    if filters.kind:
        if filters.kind not in EntityKind.values:
            raise InvalidInput("kind", f"Unknown kind {filters.kind!r}.", EntityKind.values)
        found = found.filter(entity_kind=filters.kind)
    if filters.entity and filters.entity.strip():
        entity = filters.entity.strip()
        found = found.filter(entity__in={entity, entity.casefold()})  # hosts and users are stored in lower case
    if filters.flagged is not None:
        found = found.filter(flagged_at__isnull=not filters.flagged)
    if filters.customer:
        found = found.filter(customer_id=Customer.objects.filter(slug=filters.customer).values("pk")[:1])
    return found


def _refuse_unknown_parameters(request):
    """A misspelt filter must not answer with the unfiltered list (as GET /api/threats)."""
    known = set(StoryFilters.model_fields)
    for name in request.GET:
        if name not in known:
            raise InvalidInput(name, f"Unknown parameter {name!r}.", sorted(known))


def _cursor(story):
    raw = json.dumps([story.last_seen.isoformat(), story.pk])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor):
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        last_seen, last_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if isinstance(last_id, bool) or not isinstance(last_id, int) or not 0 <= last_id <= MAX_ID:
            raise ValueError(last_id)
        return utc_moment(str(last_seen)), last_id
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput("cursor", "Invalid cursor: pass back the next_cursor of a previous page.") from None
