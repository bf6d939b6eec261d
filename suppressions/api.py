"""/api/suppressions (docs/suppressions.md): preview, save, list, read and revoke. Mounted in
threats/api.py, so errors are the API's JSON {"detail", "field"}. Writes take the session (CSRF),
never an API key; reads also take a key of scope `read`, bound to its customer."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from django.utils import timezone
from ninja import Field, Query, Router, Schema
from ninja.responses import Status as Reply
from ninja.security import django_auth

from threats import access
from threats.apikeys import APIKeyAuth

from . import services
from .serializers import suppression_summary

router = Router(tags=["suppressions"])
READ_AUTH = [APIKeyAuth("read", required=False), django_auth]
LIST_LIMIT = 500


class Problem(Schema):
    detail: str | list | dict
    field: str | None = None
    valid: list[str] | None = None


REFUSALS = {400: Problem, 401: Problem, 403: Problem, 414: Problem, 422: Problem, 429: Problem}


class ProposalIn(Schema):
    model_config = {"json_schema_extra": {"examples": [
        {"customer": "acme-corp", "rule": "rule:5712", "src_ip": "203.0.113.7", "days": 30}]}}

    customer: str = Field(..., max_length=100, description="Customer slug (or exact name).")
    rule: str = Field(..., max_length=200, description="As stored on the threat: rule:<id> or sid:<gid>:<sid>.")
    src_ip: str | None = Field(None, max_length=200, description="Only alerts from this source address.")
    dst_ip: str | None = Field(None, max_length=200, description="Only alerts to this destination address.")
    user: str | None = Field(None, max_length=200, description="Only alerts naming this user (exact).")
    host: str | None = Field(None, max_length=200, description="Only alerts on this host (exact).")
    days: int = Field(services.PREVIEW_DAYS, ge=1, le=services.MAX_PREVIEW_DAYS,
                      description="The preview replays the proposal over this many days of stored threats.")


class SuppressionIn(ProposalIn):
    model_config = {"json_schema_extra": {"examples": [
        {"customer": "acme-corp", "rule": "rule:5712", "src_ip": "203.0.113.7", "reason": "Our own scanner",
         "expires_at": "2027-01-31T00:00:00Z", "confirm_true_positives": False}]}}

    reason: str = Field(..., max_length=services.REASON_MAX_LENGTH)
    expires_at: datetime = Field(..., description="Mandatory, in the future and at most 90 days ahead.")
    confirm_true_positives: bool = Field(False, description=(
        "Required true when the preview shows threats closed as true positive that it would have hidden."))
    from_threat: UUID | None = Field(None, description="The closed false positive it was proposed from.")


class TruePositive(Schema):
    id: UUID
    title: str
    severity: str | None
    closed_at: datetime | None


class PreviewOut(Schema):
    since: datetime = Field(..., description="The start of the replayed window (received_at).")
    total: int = Field(..., description="Stored threats of the window it would have hidden.")
    by_severity: dict[str, int] = Field(..., description=(
        "CRITICAL, HIGH, MEDIUM, LOW and UNRATED: a threat's verdict severity, else its source's hint."))
    true_positive_count: int
    true_positives: list[TruePositive] = Field(..., description="Every threat of the window closed as true positive.")
    admin_threshold: int
    needs_admin: bool = Field(..., description="total is above SUPPRESSION_ADMIN_THRESHOLD: only an admin may save.")
    needs_confirmation: bool = Field(..., description="true positives found: saving needs confirm_true_positives.")


class SuppressionOut(Schema):
    id: int
    customer: str
    customer_slug: str
    rule: str
    src_ip: str | None
    dst_ip: str | None
    user: str | None
    host: str | None
    reason: str
    author: str | None
    created_at: datetime
    created_from: UUID | None
    expires_at: datetime
    state: Literal["active", "expired", "revoked"]
    hit_count: int
    last_hit_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    expired_at: datetime | None


class CreatedOut(SuppressionOut):
    preview: PreviewOut = Field(..., description="The preview it was saved on.")


class SuppressionList(Schema):
    items: list[SuppressionOut]


class ListFilters(Schema):
    state: Literal["active", "expired", "revoked", "all"] = "all"
    customer: str | None = Field(None, max_length=100, description="Customer slug.")
    limit: int = Field(100, ge=1, le=LIST_LIMIT)


@router.post("/suppressions/preview", auth=django_auth, response={200: PreviewOut, **REFUSALS})
def preview_suppression(request, payload: ProposalIn):
    """How many of the customer's stored threats of the last `days` days it would have hidden, by
    severity, and every one of them closed as a true positive."""
    proposal = _proposal(request, payload)
    return services.preview(proposal).as_dict()


@router.post("/suppressions", auth=django_auth, response={201: CreatedOut, **REFUSALS})
def create_suppression(request, payload: SuppressionIn):
    """Save a suppression. Runs the preview again: true positives need `confirm_true_positives`,
    more than SUPPRESSION_ADMIN_THRESHOLD hidden threats the admin role (400/403 naming the field)."""
    proposal = _proposal(request, payload)
    try:
        suppression, result = services.create(
            request.user, proposal, reason=payload.reason, expires_at=payload.expires_at,
            confirm_true_positives=payload.confirm_true_positives, created_from=payload.from_threat)
    except services.Refused as exc:
        return Reply(exc.status, {"detail": exc.detail, "field": exc.field})
    return Reply(201, {**suppression_summary(suppression), "preview": result.as_dict()})


@router.get("/suppressions", auth=READ_AUTH, response={200: SuppressionList, **REFUSALS})
def list_suppressions(request, filters: Query[ListFilters]):
    """Newest first; `state` active (in force now), expired, revoked or all."""
    now = timezone.now()
    found = _by_state(services.visible_suppressions(access.principal(request)), filters.state, now)
    if filters.customer:
        found = found.filter(customer__slug=filters.customer)
    return {"items": [suppression_summary(s, now) for s in found[:filters.limit]]}


@router.get("/suppressions/{int:suppression_id}", auth=READ_AUTH, response={200: SuppressionOut, 404: Problem, **REFUSALS})
def get_suppression(request, suppression_id: int):
    return suppression_summary(services.get_suppression_for_user(access.principal(request), suppression_id))


@router.delete("/suppressions/{int:suppression_id}", auth=django_auth,
               response={200: SuppressionOut, 404: Problem, **REFUSALS})
def revoke_suppression(request, suppression_id: int):
    """Revoke it now: alerts are analysed again from the next ingest on. Revoking twice changes nothing."""
    return suppression_summary(services.revoke(request.user, suppression_id))


def _proposal(request, payload):
    entities = {name: getattr(payload, name) for name in ("src_ip", "dst_ip", "user", "host")}
    return services.check_proposal(request.user, customer=payload.customer, rule=payload.rule,
                                   entities=entities, days=payload.days)


def _by_state(found, state, now):
    live = found.filter(revoked_at__isnull=True, expired_at__isnull=True)
    if state == "active":
        return live.filter(expires_at__gt=now)
    if state == "expired":
        return found.filter(revoked_at__isnull=True).exclude(expired_at__isnull=True, expires_at__gt=now)
    if state == "revoked":
        return found.filter(revoked_at__isnull=False)
    return found
