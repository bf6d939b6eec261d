"""Plain-dict views of a threat, shared by the API, the event log and the WebSocket feed."""

from datetime import UTC, datetime

from . import pivots
from .choices import AnalysisStatus
from .models import Threat

SUMMARY_TEXT_LIMIT = 300


def utc_moment(text):
    """An ISO-8601 moment read back from a page cursor, as an aware UTC datetime (naive = UTC).
    ValueError also at the calendar's edges: year 1 or 9999 with an offset has no UTC value, and
    SQLite's adapter would raise converting it (issue 18)."""
    parsed = datetime.fromisoformat(text)
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text[:40]} has no UTC value.") from None


def _iso(value):
    return value.isoformat() if value else None


def threat_summary(threat: Threat):
    """The small shape used in lists and in every WebSocket event."""
    return {
        "id": str(threat.pk),
        "title": threat.title,
        "source": threat.source,
        "threat_type": threat.threat_type,
        "customer": threat.customer.name,
        "customer_slug": threat.customer.slug,
        "severity": threat.severity or None,
        "risk_score": threat.risk_score,
        "analysis_status": threat.analysis_status,
        "status": threat.status,
        "disposition": threat.disposition or None,
        "assignee": threat.assignee.get_username() if threat.assignee_id else None,
        "requires_human_review": threat.requires_human_review,
        "executive_summary": threat.executive_summary[:SUMMARY_TEXT_LIMIT],
        "mitre_techniques": [t["technique_id"] for t in threat.mitre.get("techniques", [])],
        "processing_ms": threat.processing_ms,
        "occurred_at": _iso(threat.occurred_at),
        "received_at": _iso(threat.received_at),
        "campaign": threat.campaign_id,
        "version": threat.version,
        "group_id": threat.group_id,
        "group_head": group_head(threat),
        "pivots": pivots.summary_values(threat.observables, threat.rule),
        "suppressed": threat.suppressed,
    }


def group_head(threat):
    """The verdict a grouped member shows: its group head's, analysed once for the group (read from
    the head's row: the database stays the one truth). None for a head, an ungrouped threat, or a
    member whose head is gone."""
    if threat.analysis_status != AnalysisStatus.GROUPED or not threat.group_id:
        return None
    head = threat.group.head
    return None if head is None else head_verdict(head.pk, head.severity, head.risk_score, head.analysis_status)


def head_verdict(head_id, severity, risk_score, analysis_status):
    return {"id": str(head_id), "severity": severity or None, "risk_score": risk_score,
            "analysis_status": analysis_status}


def campaign_summary(campaign):
    """The campaign a threat belongs to (threats/grouping.py), as a threat's detail shows it."""
    if campaign is None:
        return None
    return {"id": campaign.pk, "key": campaign.key, "title": campaign.title, "threat_count": campaign.threat_count}


def agent_run_detail(run):
    return {
        "kind": run.kind,
        "name": run.get_kind_display(),
        "status": run.status,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_ms": run.duration_ms,
        "confidence": run.confidence,
        "summary": run.summary,
        "findings": run.findings,
        "recommendations": run.recommendations,
        "evidence": run.evidence,
        "risk": run.risk,
        "error": run.error or None,
    }


def threat_detail(threat: Threat):
    """Everything about one threat: signal, verdict, agent runs, triage and notes."""
    return {
        **threat_summary(threat),
        "source_ref": threat.source_ref or None,
        "observables": threat.observables,
        "mitre_hints": threat.mitre_hints,
        "rule": threat.rule or None,
        "signal": threat.signal,
        "raw": threat.raw,
        "executive_summary": threat.executive_summary,
        "risk_factors": threat.risk_factors,
        "confidence": threat.confidence,
        "mitre": threat.mitre,
        "false_positive": threat.false_positive,
        "response_plan": threat.response_plan,
        "timeline": threat.timeline,
        "review_reasons": threat.review_reasons,
        "adversarial": threat.adversarial,
        "severity_hint": threat.severity_hint or None,
        "group_id": threat.group_id,
        "campaign": campaign_summary(threat.campaign),
        "stories": list(threat.story_links.order_by("story_id").values_list("story_id", flat=True)),  # docs/stories.md
        "analyzed_at": _iso(threat.analyzed_at),
        "analysis_error": threat.analysis_error or None,
        "disposition_reason": threat.disposition_reason or None,
        "acknowledged_at": _iso(threat.acknowledged_at),
        "closed_at": _iso(threat.closed_at),
        "closed_by_kind": threat.closed_by_kind or None,
        "suppression": threat.suppression_id,
        "agent_runs": [agent_run_detail(run) for run in threat.agent_runs.all()],
        "notes": [
            {"id": n.pk, "author": n.author.get_username() if n.author else None, "body": n.body,
             "created_at": _iso(n.created_at)}
            for n in threat.notes.select_related("author")
        ],
    }


def event_message(event):
    """The WebSocket / Redis message for one event: identical for live pushes and replays."""
    return {
        "type": event.type,
        "seq": event.seq,
        "threat": event.payload.get("threat"),
        "actor": event.actor_label or event.actor_kind,
        "at": _iso(event.created_at),
        **{k: v for k, v in event.payload.items() if k != "threat"},
    }
