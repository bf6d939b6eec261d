"""Server-rendered pages (overview, threat list, threat detail) and the health/readiness probes.

Pages render everything from the database; the small JS file of each page then applies WebSocket
events to what was rendered (docs/dashboard.md). Alert-derived text is only ever escaped by the
templates; links are built here, from validated ids, never from alert fields.
"""

import json
import logging
import re
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import urlencode

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from pydantic import ValidationError as SchemaError

from stories.cards import story_cards

from . import access, analysis, hidden_text, pivots, services
from .analytics import analytics_snapshot
from .choices import (
    CLOSED_STATUSES,
    SLA_MINUTES,
    AnalysisStatus,
    Disposition,
    Scenario,
    Severity,
    Status,
    ThreatType,
)
from .paging import FILTER_CASE, QueueFilters, ThreatFilters, queue_page, threat_page
from .serializers import event_message, group_head

log = logging.getLogger(__name__)
FEED_SIZE = 25
ACTIVITY_SIZE = 30
PAGE_SIZE = 50
MAX_ANALYSTS = 500
THREAT_REF = re.compile(r"^threat:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
FILTER_NAMES = ("severity", "threat_type", "status", "customer", "assignee", "review", "q", "campaign", "group",
                *pivots.PIVOTS, "suppressed", "story")
NO_DUE = None
TYPE_LABELS = dict(ThreatType.choices)


# --- Pages ----------------------------------------------------------------------------------------


@login_required
def dashboard(request):
    user = _analyst(request)
    # Read first, and exact at its seq: the page's JS applies every later event on top of it.
    analytics = analytics_snapshot(user)
    recent = list(access.visible_threats(user).select_related("group__head").order_by("-received_at", "-id")[:FEED_SIZE])
    events = access.visible_events(user).filter(seq__lte=analytics["latest_seq"]).order_by("-seq")[:ACTIVITY_SIZE]
    context = {
        **_common(request),
        "latest_seq": analytics["latest_seq"],
        "analytics": analytics,
        "recent": [_row(t) for t in recent],
        "activity": [_activity(event_message(e)) for e in events],
        "type_bars": _bars({**{value: 0 for value in ThreatType.values}, **analytics["by_type"]}, TYPE_LABELS),
        "severity_bars": _bars({value: analytics["by_severity"][value] for value in _severities()}),
        "cards": _cards(analytics),
        "sla_by_severity": [_sla_row(s, s, analytics["sla"]["by_severity"][s]) for s in _severities()],
        "sla_by_customer": sorted(
            (_sla_row(slug, group["name"], group) for slug, group in analytics["sla"]["by_customer"].items()),
            key=lambda row: row["label"].lower(),
        ),
        "threat_types": ThreatType.choices,
        "scenarios": Scenario.choices,
        "can_trigger": user.has_perm(access.TRIGGER_PERMISSION),
    }
    return render(request, "threats/dashboard.html", context)


@login_required
def threat_list(request):
    user = _analyst(request)
    latest_seq = services.latest_seq()
    # NUL removed for the form's echo only: a filter holding one is refused below, never dropped
    # (dropping it would answer with the unfiltered list).
    values = {name: request.GET.get(name, "").replace("\x00", "").strip()[:250] for name in FILTER_NAMES}
    # In the stored case (severity=critical is CRITICAL): the form and list.js compare with it.
    values.update({name: normalise(values[name]) for name, normalise in FILTER_CASE.items()})
    rows, older, newer, error = [], None, None, None
    try:
        _check_list_parameters(request.GET)
        filters = _list_filters(values, request.GET.get("cursor"))
        rows, older, newer = threat_page(user, filters, before=request.GET.get("before") or None)
    except services.InvalidInput as exc:
        error = exc.detail
    except SchemaError as exc:
        error = "; ".join(f"Invalid {e['loc'][-1] if e['loc'] else 'filter'}: {e['msg']}." for e in exc.errors())
    context = {
        **_common(request),
        "latest_seq": latest_seq,
        "rows": [_row(t) for t in rows],
        "filters": values,
        "active_filters": {k: v for k, v in values.items() if v},
        "pivot_filters": [(kind, values[kind], _without(values, kind)) for kind in pivots.PIVOTS if values[kind]],
        "filter_query": urlencode({k: v for k, v in values.items() if v}),
        "older": older,
        "newer": newer,
        "error": error,
        "customers": access.visible_customers(user).order_by("name").values_list("slug", "name"),
        "analysts": _analysts(user),
        "can_triage": user.has_perm(access.TRIAGE_PERMISSION),
    }
    return render(request, "threats/list.html", context, status=400 if error else 200)


QUEUE_PARAMETERS = ("customer", "assignee", "cursor")


@login_required
def my_queue(request):
    """The open threats in the order to work on them, with the reason per row (docs/queue.md)."""
    user = _analyst(request)
    latest_seq = services.latest_seq()
    items, next_cursor, ranked_at, error = [], None, timezone.now(), None
    try:
        filters = _queue_filters(request.GET)
        items, next_cursor, ranked_at = queue_page(user, filters)
    except services.InvalidInput as exc:
        error = exc.detail
    except SchemaError as exc:
        error = "; ".join(f"Invalid {e['loc'][-1] if e['loc'] else 'filter'}: {e['msg']}." for e in exc.errors())
    context = {
        **_common(request),
        "latest_seq": latest_seq,
        "items": [_queue_row(item, ranked_at) for item in items],
        "next_cursor": next_cursor,
        "filter_query": urlencode({k: request.GET[k] for k in ("customer", "assignee") if request.GET.get(k)}),
        "ranked_at": ranked_at,
        "error": error,
        "can_triage": user.has_perm(access.TRIAGE_PERMISSION),
    }
    return render(request, "threats/queue.html", context, status=400 if error else 200)


def _queue_filters(query):
    for name in query:
        if name not in QUEUE_PARAMETERS:
            raise services.InvalidInput(name, f"Unknown parameter {name!r}: the queue takes {', '.join(QUEUE_PARAMETERS)}.")
        if any("\x00" in value for value in query.getlist(name)):
            raise services.InvalidInput(name, f"The {name} parameter cannot contain a NUL character.")
    return QueueFilters(**{name: query[name] for name in QUEUE_PARAMETERS if query.get(name)}, limit=PAGE_SIZE)


def _queue_row(item, now):
    """A queue row: the API's item, its shown severity (a grouped member: its head's) and SLA cell."""
    head = item["group_head"] or {}
    sla_text, sla_class = _sla_cell(SimpleNamespace(**{name: item[name] or "" for name in ("severity", "status")},
                                                    received_at=item["received_at"],
                                                    acknowledged_at=item["acknowledged_at"]), now)
    return {**item, "shown_severity": item["severity"] or head.get("severity") or "",
            "inherited": bool(head) and not item["severity"], "sla_text": sla_text, "sla_class": sla_class,
            "status_label": dict(Status.choices).get(item["status"], item["status"])}


@login_required
def threat_detail(request, threat_id):
    user = _analyst(request)
    latest_seq = services.latest_seq()
    try:
        threat = access.get_threat_for_user(user, threat_id)
    except access.NotFound:
        raise Http404("Threat not found") from None
    runs = {run.kind: run for run in threat.agent_runs.all()}
    cited = _cited_threats(user, [*runs.values()], threat.risk_factors)
    context = {
        **_common(request),
        "latest_seq": latest_seq,
        "threat": threat,
        "row": _row(threat),
        "agents": [_agent(kind, label, runs.get(kind), cited) for kind, label in analysis.agent_kinds().items()],
        "risk_factors": [{**f, "evidence": _evidence(f.get("evidence", []), cited)} for f in threat.risk_factors],
        "observables": [_observable(key, value) for key, value in threat.observables.items()],
        "rule_pivot": _pivot_url("rule", threat.rule) if threat.rule else None,
        "timeline": _timeline(threat.timeline),
        "raw_json": json.dumps(threat.raw, indent=2, ensure_ascii=False, default=str),
        "adversarial": threat.adversarial or {},
        "fp_indicators": _fp_indicators(threat.false_positive.get("indicators", [])),
        "fp_recommendation": str(threat.false_positive.get("recommendation", "")).replace("_", " "),
        "plan_actions": [{**a, "label": str(a.get("action", "")).replace("_", " ")}
                         for a in threat.response_plan.get("actions", []) if isinstance(a, dict)],
        "notes": threat.notes.select_related("author"),
        "history": [_activity(event_message(e)) for e in threat.events.order_by("seq")],
        "sla": _sla(threat),
        "analysts": _analysts(user),
        "can_triage": user.has_perm(access.TRIAGE_PERMISSION),
        "analysis_done": threat.analysis_status in (AnalysisStatus.COMPLETED, AnalysisStatus.FAILED),
        "campaign": threat.campaign,  # same customer as the threat: visible to whoever sees the threat
        # Its alert group and head: same customer as the threat, like the campaign.
        "group": threat.group,
        "head_threat": threat.group.head if threat.group_id else None,
        "inherited": group_head(threat),
        "stories": story_cards(threat),  # its entities' attack stories (docs/stories.md); same customer
    }
    return render(request, "threats/detail.html", context)


# --- Pieces shared by the pages --------------------------------------------------------------------


def _analyst(request):
    try:
        access.check_permission(request.user, access.VIEW_PERMISSION)
    except access.AccessDenied as exc:
        raise PermissionDenied(str(exc)) from None
    return request.user


def _common(request):
    """Labels and URLs every page's JS needs (through json_script: no inline script)."""
    return {
        "page_config": {
            "username": request.user.get_username(),
            "detailUrl": reverse("threats:threat_detail", args=["00000000-0000-0000-0000-000000000000"]),
            "apiThreats": "/api/threats",
            "analyticsUrl": "/api/analytics",
            "triggerUrl": "/api/threats/trigger",
            "bulkUrl": "/api/threats/bulk",
            "types": dict(ThreatType.choices),
            "statuses": dict(Status.choices),
            "dispositions": dict(Disposition.choices),
            "analysis": dict(AnalysisStatus.choices),
            "severities": _severities(),
            "closed": list(CLOSED_STATUSES),
            "slaMinutes": dict(SLA_MINUTES),
        },
        "severities": _severities(),
        "statuses": Status.choices,
        "dispositions": Disposition.choices,
        "threat_type_choices": ThreatType.choices,
    }


def _cards(a):
    """The overview's metric cards as first rendered; dashboard.js re-renders them from events."""
    sla = a["sla"]
    cards = [
        ("total_threats", "Total threats", a["total_threats"]),
        ("customers_affected", "Customers affected", a["customers_affected"]),
        ("average_processing_ms", "Avg processing", f"{a['average_processing_ms']:g} ms"),
        ("requires_review", "Requires review", a["requires_review"]),
        *((f"open:{s}", f"Open {s.lower()}", a["open_by_severity"][s]) for s in _severities()),
        ("mtta", "MTTA", duration(a["mtta_seconds"])),
        ("mttr", "MTTR", duration(a["mttr_seconds"])),
        ("breached_open", "SLA breached (open)", sla["breached_open"]),
        ("within_sla", "Acknowledged in SLA", percent(sla["within_sla"], sla["acknowledged"])),
    ]
    return [{"key": key, "label": label, "text": str(text)} for key, label, text in cards]


def _sla_row(key, label, group):
    return {
        "key": key, "label": label, "acknowledged": group["acknowledged"], "mtta": duration(group["mtta_seconds"]),
        "within_sla": percent(group["within_sla"], group["acknowledged"]), "closed": group["closed"],
        "mttr": duration(group["mttr_seconds"]), "breached_open": group["breached_open"],
    }


def percent(part, whole):
    return f"{round(100 * part / whole)}%" if whole else "–"


def _severities():
    """Worst first, as analysts read them."""
    return list(reversed(Severity.values))


LIST_PARAMETERS = (*FILTER_NAMES, "cursor", "before")


def _check_list_parameters(query):
    """The list page refuses what it would otherwise ignore: an unknown parameter, a review that
    is neither yes nor no, a NUL character (the API answers the same with 400)."""
    for name in query:
        if name not in LIST_PARAMETERS:
            raise services.InvalidInput(name, f"Unknown parameter {name!r}: the list takes {', '.join(LIST_PARAMETERS)}.")
        if any("\x00" in value for value in query.getlist(name)):
            raise services.InvalidInput(name, f"The {name} filter cannot contain a NUL character.")
    if query.get("review", "") not in ("", "yes", "no"):
        raise services.InvalidInput("review", f"Requires review is yes or no, not {query['review'][:40]!r}.")
    if query.get("suppressed", "") not in ("", "yes", "no"):
        raise services.InvalidInput("suppressed", f"Suppressed is yes or no, not {query['suppressed'][:40]!r}.")


def _list_filters(values, cursor):
    data = {name: value for name, value in values.items() if value and name not in ("review", "suppressed")}
    if values["review"] in ("yes", "no"):
        data["requires_review"] = values["review"] == "yes"
    if values["suppressed"] in ("yes", "no"):  # docs/suppressions.md
        data["suppressed"] = values["suppressed"] == "yes"
    return ThreatFilters(**data, cursor=cursor or None, limit=PAGE_SIZE)


def _analysts(user):
    return access.analysts(user, MAX_ANALYSTS)


def _row(threat, now=None):
    """A list row: the threat, a grouped member's inherited verdict and its SLA cell. rows.js builds
    the same row from an event's summary and keeps the SLA cell ticking."""
    text, css = _sla_cell(threat, now or timezone.now())
    return {"threat": threat, "head": group_head(threat), "sla_text": text, "sla_class": css}


def _sla_cell(threat, now):
    due = _due(threat)
    if due is None:
        return "", ""
    if threat.acknowledged_at:
        late = threat.acknowledged_at > due
        return f"TTA {duration(_since(threat.received_at, threat.acknowledged_at))}", "sla-late" if late else "sla-met"
    if threat.status in CLOSED_STATUSES:
        return "", ""
    if due > now:
        return f"due in {duration((due - now).total_seconds())}", "sla-running"
    return f"breached {duration((now - due).total_seconds())}", "sla-breached"


def duration(seconds):
    """4m 12s, 3h 05m, 2d 04h (rows.js `duration` writes the same)."""
    if seconds is None:
        return "–"
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _due(threat):
    minutes = SLA_MINUTES.get(threat.severity)
    return threat.received_at + timedelta(minutes=minutes) if minutes else NO_DUE


def _sla(threat):
    due = _due(threat)
    tta, ttr = _since(threat.received_at, threat.acknowledged_at), _since(threat.received_at, threat.closed_at)
    return {
        "minutes": SLA_MINUTES.get(threat.severity),
        "due": due,
        "tta": tta,
        "tta_text": duration(tta),
        "ttr": ttr,
        "ttr_text": duration(ttr),
        "met": due is not None and threat.acknowledged_at is not None and threat.acknowledged_at <= due,
        "breached": due is not None and (threat.acknowledged_at or timezone.now()) > due,
    }


# The analysis's own steps: kept, but folded away under the story of what happened.
PROCESSING_MOMENTS = {"analysis_started", "context_gathered", "agent_started", "agent_finished"}


def _timeline(moments):
    moments = [m for m in moments if isinstance(m, dict)]
    return {"story": [m for m in moments if m.get("event") not in PROCESSING_MOMENTS],
            "processing": [m for m in moments if m.get("event") in PROCESSING_MOMENTS]}


FP_MOVES = {"false_positive": "false-positive likelihood", "benign_true_positive": "benign-true-positive likelihood"}


def _fp_indicators(indicators):
    """The false-positive table: each row says which of the two likelihoods it moves; a row
    repeated with the same likelihood, weight and source is shown once."""
    rows, seen = [], set()
    for item in indicators:
        if not isinstance(item, dict):
            continue
        row = {**item, "moves": FP_MOVES.get(item.get("kind"), "false-positive likelihood")}
        key = (row["moves"], str(item.get("indicator")), str(item.get("weight")), str(item.get("source")))
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


def _without(values, name):
    """The list's URL with every active filter but `name` (a pivot chip's remove link)."""
    kept = urlencode({k: v for k, v in values.items() if v and k != name})
    return f"{reverse('threats:threat_list')}?{kept}" if kept else reverse("threats:threat_list")


def _pivot_url(kind, value):
    return f"{reverse('threats:threat_list')}?{urlencode({kind: value})}"


def _observable(key, value):
    """An observable as the detail page shows it: a pivot's values link to every threat sharing them."""
    kind = pivots.OBSERVABLE_PIVOT.get(key)
    items = value if isinstance(value, list) else [value]
    linkable = kind and all(isinstance(item, str) and 0 < len(item) <= pivots.MAX_VALUE for item in items)
    return {"key": key, "text": _text(value), "kind": kind,
            "links": [(item, _pivot_url(kind, item)) for item in items] if linkable else []}


def _text(value):
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _since(start, end):
    return (end - start).total_seconds() if end else None


def _bars(counts, labels=None):
    """Chart rows: key, label, count and the bar's share of the largest (SVG width, 0-100)."""
    top = max(counts.values(), default=0) or 1
    return [{"key": key, "label": (labels or {}).get(key, key.replace("_", " ")), "count": count,
             "width": round(100 * count / top, 1)} for key, count in counts.items()]


# --- Agents and the evidence they cite -------------------------------------------------------------


def _cited_threats(user, runs, risk_factors):
    refs = [ref for run in runs for item in [*run.findings, *run.risk] for ref in item.get("evidence", [])]
    refs += [ref for factor in risk_factors for ref in factor.get("evidence", [])]
    ids = {match.group(1) for ref in refs if isinstance(ref, str) and (match := THREAT_REF.match(ref))}
    if not ids:
        return {}
    return {str(t.pk): t for t in access.visible_threats(user).filter(pk__in=ids)}


def _evidence(refs, cited):
    """Each cited reference: a link when it names a stored threat, otherwise the reference as text."""
    found = []
    for ref in refs:
        match = THREAT_REF.match(ref) if isinstance(ref, str) else None
        found.append({"ref": str(ref), "threat": cited.get(match.group(1)) if match else None,
                      "missing": bool(match) and match.group(1) not in cited})
    return found


def _agent(kind, label, run, cited):
    if run is None:
        return {"kind": kind, "label": label, "run": None}
    findings = [{"text": f.get("text", ""), "evidence": _evidence(f.get("evidence", []), cited)} for f in run.findings]
    return {"kind": kind, "label": label, "run": run, "findings": findings,
            "confidence_pct": None if run.confidence is None else round(run.confidence * 100)}


# --- The event log as sentences (rows.js `describe` says the same) ------------------------------------


def _activity(message):
    threat = message.get("threat") or {}
    return {"seq": message["seq"], "type": message["type"], "at": message["at"], "actor": message["actor"],
            "threat": threat, "text": describe_event(message)}


def describe_event(message):
    threat = message.get("threat") or {}
    kind = message["type"]
    if kind == "threat.created":
        return "created"
    if kind == "threat.analyzed":
        risk = threat.get("risk_score")
        return f"analysed: {threat.get('severity') or '–'}, risk {'–' if risk is None else risk}"
    if kind == "threat.analysis_failed":
        return "analysis failed"
    if kind == "threat.note_added":
        return "added a note"
    if kind == "threat.sla_warning":
        left = (message.get("sla") or {}).get("minutes_left", "–")
        return f"SLA nearly breached: {left} min left"
    if kind == "story.flagged":  # docs/stories.md
        story = message.get("story") or {}
        path = " → ".join(str(t.get("name", "")) for t in story.get("tactics") or [])
        return f"attack story flagged: {story.get('entity_kind', '')} {story.get('entity', '')} reached {path}"
    if kind == "threat.updated":
        changes = message.get("changes") or {}
        parts = [f"{name.replace('_', ' ')}: {_label(name, c.get('from'))} → {_label(name, c.get('to'))}"
                 for name, c in changes.items() if name != "disposition_reason"]
        if "disposition_reason" in changes and changes["disposition_reason"].get("to"):
            parts.append(f"reason: {changes['disposition_reason']['to']}")
        return "; ".join(parts) or "updated"
    return kind


def _label(name, value):
    if value in (None, ""):
        return "–"
    labels = {"status": dict(Status.choices), "disposition": dict(Disposition.choices)}.get(name, {})
    return str(labels.get(value, value))


# --- Probes and error pages -------------------------------------------------------------------------


@never_cache
def health(request):
    """Liveness: the process answers. Checks no dependency on purpose."""
    return hidden_text.json_response({"status": "ok"})


@never_cache
def ready(request):
    """Readiness: the database, and with REDIS_URL Redis and a channel-layer round trip, really answer.
    503 names each failing component with a generic state; the errors themselves (hosts, ports,
    roles) go to the log only, since the probe answers without a login."""
    problems = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        problems["database"] = str(exc)
    if settings.REDIS_URL:
        problems.update(_redis_problems())
        problems.update(async_to_sync(_channel_layer_problems)())
    if problems:
        log.warning("not ready: %s", problems)
        return hidden_text.json_response({"status": "unavailable", "problems": dict.fromkeys(problems, "unavailable")},
                                         status=503)
    return hidden_text.json_response({"status": "ready"})


def _redis_problems():
    import redis

    try:
        # Closed on the way out (the client's own pool): probes every few seconds must not pile up connections.
        with redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2) as client:
            client.ping()
    except Exception as exc:
        return {"redis": str(exc)}
    return {}


READY_LAYER_TIMEOUT_SECONDS = 2


async def _channel_layer_problems():
    """Send a message to a new channel of this process's layer and read it back (what every
    broadcast to this pod's sockets relies on)."""
    import asyncio

    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    try:
        async with asyncio.timeout(READY_LAYER_TIMEOUT_SECONDS):
            channel = await layer.new_channel("ready.")
            await layer.send(channel, {"type": "ready.ping"})
            answer = await layer.receive(channel)
            await _forget_channel(layer, channel)
    except TimeoutError:
        return {"channel_layer": f"no round trip within {READY_LAYER_TIMEOUT_SECONDS} s"}
    except Exception as exc:
        return {"channel_layer": str(exc) or type(exc).__name__}
    if answer.get("type") != "ready.ping":
        return {"channel_layer": f"unexpected message {answer.get('type')!r}"}
    return {}


async def _forget_channel(layer, channel):
    # The layers drop a channel's subscription when a receive on it is cancelled (their clean-up
    # when a consumer goes away); without this every probe would leave one subscribed channel.
    import asyncio

    waiter = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return hidden_text.json_response({"detail": "Not found."}, status=404)
    return render(request, "404.html", status=404)


def server_error(request):
    if request.path.startswith("/api/"):
        return hidden_text.json_response({"detail": "Internal server error."}, status=500)
    return render(request, "500.html", status=500)
