"""GET /api/threats/{id}/export, /api/campaigns/{id}/export and /api/stories/{id}/export (docs/handoff.md). Mounted in
threats/api.py; same authentication and customer scoping as GET /api/threats/{id}."""

from typing import Literal
from uuid import UUID

from django.http import HttpResponse
from ninja import Query, Router, Schema
from ninja.security import django_auth

from stories import serializers
from stories.access import get_story_for_user
from threats import access
from threats.apikeys import APIKeyAuth
from threats.models import Campaign

from . import export

router = Router(tags=["export"])
READ_AUTH = [APIKeyAuth("read", required=False), django_auth]
MARKDOWN = {"content": {"text/markdown": {"schema": {"type": "string"}}},
            "description": "JSON document (format=json) or Markdown incident summary (format=markdown)."}


class Problem(Schema):
    detail: str | list | dict
    field: str | None = None
    valid: list[str] | None = None


class ExportQuery(Schema):
    format: Literal["json", "markdown"] = "json"


ANSWERS = {200: dict, 400: Problem, 401: Problem, 403: Problem, 404: Problem, 422: Problem, 429: Problem}


@router.get("/threats/{uuid:threat_id}/export", auth=READ_AUTH, response=ANSWERS,
            openapi_extra={"responses": {200: MARKDOWN}})
def export_threat(request, threat_id: UUID, query: Query[ExportQuery]):
    """One threat as JSON (verdict, triage, raw alert, notes) or as a Markdown incident summary."""
    threat = access.get_threat_for_user(access.principal(request), threat_id)
    if query.format == "markdown":
        return _markdown(export.threat_markdown(threat), f"threat-{threat.pk}.md")
    return export.threat_document(threat)


@router.get("/campaigns/{int:campaign_id}/export", auth=READ_AUTH, response=ANSWERS,
            openapi_extra={"responses": {200: MARKDOWN}})
def export_campaign(request, campaign_id: int, query: Query[ExportQuery]):
    """One campaign (a user's activity across alerts) with its threats, oldest first, as JSON or Markdown."""
    campaign, threats = _campaign_for(access.principal(request), campaign_id)
    if query.format == "markdown":
        return _markdown(export.campaign_markdown(campaign, threats), f"campaign-{campaign.pk}.md")
    return export.campaign_document(campaign, threats)


@router.get("/stories/{int:story_id}/export", auth=READ_AUTH, response=ANSWERS,
            openapi_extra={"responses": {200: MARKDOWN}})
def export_story(request, story_id: int, query: Query[ExportQuery]):
    """One attack story (an entity's alerts and the ATT&CK tactics they reached) with its threats in time order, as JSON or Markdown."""
    story, moments, threats = _story_for(access.principal(request), story_id)
    if query.format == "markdown":
        return _markdown(export.story_markdown(story, moments, threats), f"story-{story['id']}.md")
    return export.story_document(story, moments, threats)


def _story_for(who, story_id):
    """(summary, timeline, threats in time order) of a story `who` may see; NotFound otherwise."""
    if not 1 <= story_id <= 2**63 - 1:
        raise access.NotFound("Story not found.")
    story = get_story_for_user(who, story_id)
    moments = serializers.timeline(story)
    ids = [m["threat"] for m in moments]
    found = {str(pk): threat for pk, threat in access.visible_threats(who).in_bulk(ids).items()}
    threats = [found[threat_id] for threat_id in ids if threat_id in found]
    return serializers.story_summary(story), moments, threats


def _campaign_for(who, campaign_id):
    """The campaign and its visible threats; NotFound for one of a customer `who` may not see."""
    threats = access.visible_threats(who)
    campaign = access.scoped(Campaign.objects.select_related("customer"), who).filter(pk=campaign_id).first()
    if campaign is None:
        raise access.NotFound("Campaign not found.")
    return campaign, list(threats.filter(campaign=campaign).order_by("received_at", "id")[:500])


def _markdown(text, filename):
    response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response
