"""A threat or a campaign as a JSON document and as a readable incident summary in Markdown
(GET /api/threats/{id}/export, GET /api/campaigns/{id}/export; docs/handoff.md).

Every string that came from an alert is escaped for Markdown: a title such as
`[x](javascript:alert(1))` or `<script>` must read as text in any renderer, never as a link or HTML.
"""

import re

from django.urls import reverse
from django.utils import timezone

from threats import hidden_text

SCHEMA = "soc.export/1"
# Every ASCII punctuation character may be backslash-escaped in CommonMark; <, > and & become
# entities instead, so no renderer can read raw HTML out of them.
_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~\"'$%,/:;=?@^])")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def md(value):
    """One line of alert-derived text, safe in Markdown: hidden characters as markers, control
    characters and line breaks as spaces, punctuation escaped, <, > and & as entities."""
    text = hidden_text.reveal_text("" if value is None else str(value))
    text = _CONTROL.sub(" ", text.replace("\r\n", " ").replace("\n", " ").replace("\r", " "))
    text = "".join(_ENTITIES.get(char, char) for char in _PUNCTUATION.sub(r"\\\1", text))
    return text


def md_block(value):
    """Multi-line alert- or analyst-written text (a note): each line escaped on its own."""
    return "  \n".join(md(line) for line in str(value or "").splitlines()) or "—"


def _iso(value):
    return value.isoformat() if value else None


def threat_record(threat):
    """The threat as hand-off tools read it: signal, verdict and triage, without the raw alert."""
    return {
        "id": str(threat.pk),
        "url": reverse("threats:threat_detail", args=[threat.pk]),
        "title": threat.title,
        "customer": {"name": threat.customer.name, "slug": threat.customer.slug},
        "source": threat.source,
        "source_ref": threat.source_ref or None,
        "threat_type": threat.threat_type,
        "rule": threat.rule or None,
        "occurred_at": _iso(threat.occurred_at),
        "received_at": _iso(threat.received_at),
        "analysis_status": threat.analysis_status,
        "severity": threat.severity or None,
        "risk_score": threat.risk_score,
        "confidence": threat.confidence,
        "executive_summary": threat.executive_summary,
        "requires_human_review": threat.requires_human_review,
        "review_reasons": threat.review_reasons,
        "mitre": _mitre(threat.mitre),
        "false_positive": {key: threat.false_positive.get(key) for key in
                           ("score", "benign_score", "recommendation", "explanation")},
        "response_plan": threat.response_plan,
        "timeline": threat.timeline,
        "observables": threat.observables,
        "status": threat.status,
        "disposition": threat.disposition or None,
        "disposition_reason": threat.disposition_reason or None,
        "assignee": threat.assignee.get_username() if threat.assignee_id else None,
        "acknowledged_at": _iso(threat.acknowledged_at),
        "closed_at": _iso(threat.closed_at),
        "closed_by_kind": threat.closed_by_kind or None,
        "campaign_id": threat.campaign_id,
        "group_id": threat.group_id,
    }


def _mitre(mitre):
    keys = ("technique_id", "name", "tactic_id", "tactic", "source", "confidence")
    return {"attack_version": mitre.get("attack_version"),
            "techniques": [{key: t.get(key) for key in keys} for t in mitre.get("techniques", [])]}


def _notes(threat):
    return [{"author": n.author.get_username() if n.author else None, "body": n.body, "created_at": _iso(n.created_at)}
            for n in threat.notes.select_related("author")]


def threat_document(threat):
    """GET /api/threats/{id}/export?format=json."""
    return {"schema": SCHEMA, "kind": "threat", "exported_at": _iso(timezone.now()),
            "threat": {**threat_record(threat), "raw": threat.raw, "notes": _notes(threat)}}


def campaign_document(campaign, threats):
    """GET /api/campaigns/{id}/export?format=json: the campaign and its threats, oldest first."""
    return {"schema": SCHEMA, "kind": "campaign", "exported_at": _iso(timezone.now()),
            "campaign": _campaign_record(campaign),
            "threats": [{**threat_record(t), "notes": _notes(t)} for t in threats]}


def _campaign_record(campaign):
    return {"id": campaign.pk, "key": campaign.key, "title": campaign.title,
            "customer": {"name": campaign.customer.name, "slug": campaign.customer.slug},
            "first_seen": _iso(campaign.first_seen), "last_seen": _iso(campaign.last_seen),
            "threat_count": campaign.threat_count}


# --- Markdown ---------------------------------------------------------------------------------------


def threat_markdown(threat, depth=1):
    """GET /api/threats/{id}/export?format=markdown: an incident summary to paste into a ticket
    (`depth` 2 inside a campaign's summary)."""
    heading = "#" * depth
    lines = [f"{heading} Incident: {md(threat.title)}", "", *_facts(threat), ""]
    for title, section in [*_SECTIONS, ("Analyst notes", _note_lines)]:
        lines += [f"{heading}# {title}", "", *(section(threat) or ["None."]), ""]
    return "\n".join(lines)


def campaign_markdown(campaign, threats):
    """GET /api/campaigns/{id}/export?format=markdown: the campaign, then each threat's summary."""
    lines = [f"# Campaign: {md(campaign.title)}", "",
             f"- **Customer:** {md(campaign.customer.name)}",
             f"- **Linked by:** {md(campaign.key)}",
             f"- **Seen:** {_iso(campaign.first_seen)} to {_iso(campaign.last_seen)}",
             f"- **Threats:** {campaign.threat_count}", "",
             "This is a campaign (one user's activity across alerts); attack stories (an entity's alerts "
             "by ATT&CK stage) export from GET /api/stories/{id}/export.", ""]
    for threat in threats:
        lines += ["---", "", threat_markdown(threat, depth=2)]
    return "\n".join(lines)


def story_document(story, moments, threats):
    """GET /api/stories/{id}/export?format=json: the story (stories/serializers.py's summary), its
    timeline and its threats in time order."""
    return {"schema": SCHEMA, "kind": "story", "exported_at": _iso(timezone.now()),
            "story": {**story, "timeline": moments},
            "threats": [{**threat_record(t), "notes": _notes(t)} for t in threats]}


def story_markdown(story, moments, threats):
    """GET /api/stories/{id}/export?format=markdown: the tactic progression, the timeline, then each
    threat's summary. `story` and `moments` as stories/serializers.py gives them."""
    raised = f" (worst alert {md(story['alert_severity'])}, raised: {md(story['severity_reason'])})" \
        if story["severity_reason"] else ""
    lines = [f"# Attack story: {md(story['entity_kind'])} {md(story['entity'])}", "",
             f"- **Customer:** {md(story['customer'])}",
             f"- **Seen:** {story['first_seen']} to {story['last_seen']}",
             f"- **Alerts:** {story['threat_count']}",
             f"- **Severity:** {md(story['severity'] or 'not decided')}{raised}",
             f"- **Flagged:** {story['flagged_at'] or 'no'}"
             + (f" by threat {story['flagged_threat']}" if story["flagged_threat"] else ""), "",
             "## Tactic progression", "",
             *([f"{n}. {md(t['id'])} {md(t['name'])} — first reached by threat {md(t['threat'])} at {md(t['at'])}"
                for n, t in enumerate(story["tactics"], 1)] or ["None."]), "",
             "## Timeline", "",
             *([f"- {md(m['occurred_at'])} — {md(m['severity'] or '–')} — {md(m['title'])}"
                + (f" ({md(', '.join(t['name'] for t in m['tactics']))})" if m["tactics"] else "")
                + ("" if m["counts"] else " — dismissed, does not count") for m in moments] or ["None."]), ""]
    for threat in threats:
        lines += ["---", "", threat_markdown(threat, depth=2)]
    return "\n".join(lines)


def _facts(threat):
    verdict = threat.false_positive.get("recommendation") or threat.analysis_status
    return [
        f"- **Verdict:** {md(verdict)}" + (f" (false-positive likelihood {threat.false_positive['score']:.0%})"
                                           if isinstance(threat.false_positive.get("score"), (int, float)) else ""),
        f"- **Severity:** {md(threat.severity or 'not decided')}",
        f"- **Risk:** {threat.risk_score if threat.risk_score is not None else '–'}/100",
        f"- **Customer:** {md(threat.customer.name)}",
        f"- **Type:** {md(threat.threat_type)} · **Source:** {md(threat.source)}"
        + (f" · **Rule:** {md(threat.rule)}" if threat.rule else ""),
        f"- **Occurred:** {_iso(threat.occurred_at)} · **Received:** {_iso(threat.received_at)}",
        f"- **Status:** {md(threat.status)}" + (f" · **Disposition:** {md(threat.disposition)}" if threat.disposition else "")
        + (f" — {md(threat.disposition_reason)}" if threat.disposition_reason else ""),
        f"- **Threat id:** {threat.pk}",
        *(["", md(threat.executive_summary)] if threat.executive_summary else []),
    ]


def _review(threat):
    return [f"- {md(reason)}" for reason in threat.review_reasons]


def _techniques(threat):
    return [f"- {md(t.get('technique_id'))} {md(t.get('name'))} ({md(t.get('tactic'))}; {md(t.get('source'))})"
            for t in threat.mitre.get("techniques", [])]


def _observables(threat):
    return [f"- **{md(key)}:** {md(', '.join(map(str, value)) if isinstance(value, list) else value)}"
            for key, value in sorted(threat.observables.items()) if value not in (None, "", [], {})]


def _response(threat):
    plan = threat.response_plan
    if not plan:
        return []
    head = [f"Urgency {md(plan.get('urgency'))}, SLA {md(plan.get('sla_minutes'))} minutes; escalation: "
            f"{md(', '.join(map(str, plan.get('escalation') or [])) or 'none')}.", ""]
    return head + [f"{n}. {md(a.get('action'))} {md(a.get('target') or '')} — {md(a.get('reason'))}"
                   + (" (needs approval)" if a.get("requires_approval") else "")
                   for n, a in enumerate(plan.get("actions", []), 1)]


def _timeline(threat):
    return [f"- {md(entry.get('at'))} — {md(entry.get('title'))}" for entry in threat.timeline]


def _note_lines(threat):
    return [f"- **{md(n['author'] or 'deleted user')}** at {n['created_at']}:  \n  {md_block(n['body'])}"
            for n in _notes(threat)]


_SECTIONS = [
    ("Review reasons", _review),
    ("ATT&amp;CK techniques", _techniques),
    ("Observables", _observables),
    ("Response plan", _response),
    ("Timeline", _timeline),
]
