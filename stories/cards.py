"""A story as the pages show it (the story page, the list, a threat's detail page): built here from
ids and the stored story; the templates escape every text."""

import uuid
from datetime import datetime

from django.urls import reverse

from threats.choices import AnalysisStatus

from . import serializers, stitching
from .access import stories_of
from .models import EntityKind


def story_cards(threat):
    """The cards of the stories a threat belongs to, for its detail page (same customer as the
    threat). A grouped member shows its group head's: the head stands for the group in stories."""
    head = threat.group.head if threat.analysis_status == AnalysisStatus.GROUPED and threat.group_id else None
    stories = stories_of(head or threat)
    return [{**story_card(story, current=threat.pk, steps_only=True), "via_head": head is not None}
            for story in stories]


def story_card(story, current=None, steps_only=False):
    """A story as the pages show it: its summary, the tactic chips in ATT&CK order with the alert
    that reached each, and the timeline with a link per alert — with `steps_only` (a threat's page)
    only the alerts that reached a tactic and the current one; the story page has them all."""
    summary = {**serializers.story_summary(story), "first_seen": story.first_seen, "last_seen": story.last_seen,
               "flagged_at": story.flagged_at}
    only = {*(t["threat"] for t in story.tactics if _threat_url(t["threat"])), str(current)} if steps_only else None
    moments = [{**m, "occurred_at": datetime.fromisoformat(m["occurred_at"]), "url": _threat_url(m["threat"]),
                "current": m["threat"] == str(current),
                "reached_names": [stitching.TACTIC_NAMES.get(t, t) for t in m["reached"]]}
               for m in serializers.timeline(story, only=only)]
    titles = {m["threat"]: m["title"] for m in moments}
    chips = [{**tactic, "url": _threat_url(tactic["threat"]), "title": titles.get(tactic["threat"], "")}
             for tactic in sorted(story.tactics, key=lambda t: stitching.STAGE.get(t["id"], len(stitching.STAGE)))]
    return {**summary, "kind_label": EntityKind(story.entity_kind).label, "chips": chips, "timeline": moments,
            "more": story.threat_count > len(moments)}


def _threat_url(threat_id):
    """The alert's page; None for an id that is none (the stored tactics are JSON: never trust them to be one)."""
    try:
        return reverse("threats:threat_detail", args=[uuid.UUID(str(threat_id))])
    except ValueError:
        return None
