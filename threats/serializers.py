"""Plain-dict views of a threat, shared by the API, the event log and the WebSocket feed; the threat
summary's shape is defined here once."""

from datetime import UTC, datetime

from django.db.models import F, Func, JSONField
from django.db.models.functions import Left

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


# The threat summary: the one shape lists, the queue and every event carry, and static/js/rows.js
# draws (tests/test_summary_shape.py holds the API schema `ThreatSummary` and rows.js to it). It is
# built by `summary` from these columns, which a list page selects without loading the threat: not
# `raw`, the timeline, the response plan or the agents' JSON.
SUMMARY_FIELDS = ("id", "title", "source", "threat_type", "severity", "risk_score", "analysis_status", "status",
                  "disposition", "requires_human_review", "processing_ms", "occurred_at", "received_at", "campaign_id",
                  "version", "group_id", "rule", "suppressed")


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


SUMMARY_EXPRESSIONS = {
    "customer_name": F("customer__name"), "customer_slug": F("customer__slug"),
    "assignee_name": F("assignee__username"), "summary": Left("executive_summary", SUMMARY_TEXT_LIMIT),
    "techniques": _TechniqueIds("mitre"), "pivot_observables": _PivotObservables("observables"),
    # A grouped member's inherited verdict (group_head): its head's row, joined.
    "head_id": F("group__head_id"), "head_severity": F("group__head__severity"),
    "head_risk": F("group__head__risk_score"), "head_status": F("group__head__analysis_status"),
}


def summary(row):
    """The threat summary from the columns `.values(*SUMMARY_FIELDS, **SUMMARY_EXPRESSIONS)` reads."""
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


def threat_summary(threat: Threat):
    """The summary of a loaded threat (events, the WebSocket feed), JSON-ready: ids and times as text."""
    return summary(_summary_columns(threat))


def _summary_columns(threat):
    """What `summary` reads, taken from a loaded threat instead of selected."""
    head = threat.group.head if threat.analysis_status == AnalysisStatus.GROUPED and threat.group_id else None
    return {
        **{name: getattr(threat, name) for name in SUMMARY_FIELDS},
        "id": str(threat.pk), "occurred_at": _iso(threat.occurred_at), "received_at": _iso(threat.received_at),
        "customer_name": threat.customer.name, "customer_slug": threat.customer.slug,
        "assignee_name": threat.assignee.get_username() if threat.assignee_id else None,
        "summary": threat.executive_summary[:SUMMARY_TEXT_LIMIT],
        "techniques": [t["technique_id"] for t in threat.mitre.get("techniques", [])],
        "pivot_observables": threat.observables,
        "head_id": head and head.pk, "head_severity": head and head.severity,
        "head_risk": head and head.risk_score, "head_status": head and head.analysis_status,
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
