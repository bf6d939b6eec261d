"""Plain-dict views of a story, shared by the API, the pages and the export (docs/stories.md)."""

from django.urls import reverse

from threats.choices import AnalysisStatus

from . import stitching
from .models import StoryThreat

TIMELINE_LIMIT = 500  # alerts shown per story; the count says how many there are


def _iso(value):
    return value.isoformat() if value else None


def story_summary(story):
    severity, reason = stitching.story_severity(story.alert_severity, story.tactics)
    return {
        "id": story.pk, "customer": story.customer.name, "customer_slug": story.customer.slug,
        "entity_kind": story.entity_kind, "entity": story.entity,
        "first_seen": _iso(story.first_seen), "last_seen": _iso(story.last_seen),
        "tactics": [{"id": t["id"], "name": t["name"], "threat": t["threat"], "at": t["at"]} for t in story.tactics],
        "stage_count": story.stage_count, "severity": story.severity or None,
        "alert_severity": story.alert_severity or None, "severity_reason": reason if severity == story.severity else None,
        "threat_count": story.threat_count, "flagged_at": _iso(story.flagged_at),
        "flagged_threat": str(story.flagged_threat_id) if story.flagged_threat_id else None,
        "url": reverse("stories:detail", args=[story.pk]),
    }


def timeline(story, limit=TIMELINE_LIMIT, only=None):
    """The story's alerts in time order (`only`: just these threat ids): what each showed and which
    tactics it reached first."""
    first = {}
    for tactic in story.tactics:
        first.setdefault(tactic["threat"], []).append(tactic["id"])
    links = StoryThreat.objects.filter(story=story)
    if only is not None:
        links = links.filter(threat_id__in=only)
    links = links.select_related("threat__group").order_by("occurred_at", "threat_id")[:limit]
    return [_moment(link, first.get(str(link.threat_id), [])) for link in links]


def _moment(link, reached):
    threat = link.threat
    group = threat.group if threat.group_id and threat.analysis_status != AnalysisStatus.GROUPED else None
    return {
        "threat": str(threat.pk), "occurred_at": _iso(link.occurred_at), "title": threat.title,
        "severity": threat.severity or None, "status": threat.status,
        "tactics": [{"id": t["id"], "name": t["name"]} for t in link.tactics],
        "reached": reached, "counts": link.counts,
        "group_size": group.member_count if group else None,
    }


def story_detail(story):
    return {**story_summary(story), "timeline": timeline(story)}
