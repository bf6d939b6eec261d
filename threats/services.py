"""The only code that changes threats. `check_*` validates and authorizes, `do_*` writes.

Every write records a ThreatEvent in the same transaction; `events.broadcast_on_commit` pushes it
to WebSockets (and Redis) only after the transaction commits, and analysis is enqueued the same way.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import reduce
from operator import or_

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django.utils.text import slugify

from handoff import outbox
from stories import stitching

from . import access, analysis, audit, events, generator, metrics, sql, stats
from .choices import (
    CLOSED_STATUSES,
    SLA_MINUTES,
    ActorKind,
    AnalysisStatus,
    ClosedByKind,
    Disposition,
    EventType,
    Scenario,
    Status,
    ThreatType,
)
from .errors import InvalidInput  # noqa: F401 - raised here and by callers as services.InvalidInput
from .models import Customer, Note, Threat, ThreatEvent
from .serializers import threat_summary

log = logging.getLogger(__name__)

NOTE_MAX_LENGTH = 10_000
REASON_MAX_LENGTH = 2_000
# Reopening a closed threat clears its verdict.
REOPEN_CLEARS = ("disposition", "disposition_reason")
# Any constant works; it names the Postgres advisory lock that orders the event log.
EVENT_LOG_LOCK = 7_201_114
RETENTION_LOCK = 7_201_115
INGEST_LOCK = 7_201_116  # one ingest batch at a time (threats/ingest.py); never taken after the event-log lock


class Conflict(Exception):
    """A triage change based on a version that is no longer current (optimistic concurrency): the
    API answers 409 with the current threat, the pages say who changed it. Nothing was written."""

    def __init__(self, threat, expected):
        super().__init__(f"Threat {threat.pk} is at version {threat.version}, not {expected}.")
        self.threat, self.expected = threat, expected
        self.detail = ("Another analyst changed this threat after you read it; your change was not saved. "
                       "Check their change, then send yours again if it still applies.")


@dataclass(frozen=True)
class Actor:
    """Who caused an event: a user, an agent or the system."""

    kind: str
    user: object = None
    label: str = ""

    @classmethod
    def for_user(cls, user):
        return cls(ActorKind.USER, user, user.get_username())


SYSTEM = Actor(ActorKind.SYSTEM, label="system")
COORDINATOR = Actor(ActorKind.AGENT, label="coordinator")


# --- Creating threats ------------------------------------------------------------------------


def customer_for_name(name):
    """Find a customer by slug, else exact name (access.find_customer); the generator's catalogue
    customers are created on demand."""
    found = access.find_customer(name)
    if found:
        return found
    name = next((n for n in generator.CUSTOMER_CATALOGUE if slugify(n) == slugify(name)), name)
    if name in generator.CUSTOMER_CATALOGUE:
        customer, _ = Customer.objects.get_or_create(
            name=name, defaults={"slug": slugify(name), **generator.CUSTOMER_CATALOGUE[name]}
        )
        return customer
    catalogue = {slugify(known_name) for known_name in generator.CUSTOMER_CATALOGUE}
    known = sorted(set(Customer.objects.values_list("slug", flat=True)) | catalogue)
    raise InvalidInput("customer", f"Unknown customer {name!r}.", known)


def check_trigger(threat_type=None, scenario=None, customer=None):
    if threat_type and threat_type not in ThreatType.values:
        raise InvalidInput("threat_type", f"Unknown threat_type {threat_type!r}.", ThreatType.values)
    if scenario and scenario not in Scenario.values:
        raise InvalidInput("scenario", f"Unknown scenario {scenario!r}.", Scenario.values)
    if threat_type and scenario:
        raise InvalidInput("scenario", "Give either threat_type or scenario, not both.")
    return customer_for_name(customer) if customer else None


def trigger_threat(actor, threat_type=None, scenario=None, customer=None, rng=None, now=None):
    """Generate a synthetic signal (random, by type or by scenario), store it and queue analysis."""
    chosen = check_trigger(threat_type, scenario, customer)
    signal = generator.build_signal(threat_type, scenario, chosen.name if chosen else None, rng=rng, now=now)
    return do_create_threat(
        customer=chosen or customer_for_name(signal.customer_name),
        threat_type=signal.threat_type,
        title=signal.title,
        occurred_at=signal.occurred_at,
        observables=signal.observables,
        raw={"metadata": signal.metadata, "scenario": signal.scenario},
        mitre_hints=signal.mitre_hints,
        actor=actor,
        received_at=now,
        signal=generator.signal_for(signal.threat_type, signal.metadata),
    )


def do_create_threat(*, customer, threat_type, title, occurred_at, actor, observables=None, raw=None,
                     source="generator", source_ref="", mitre_hints=(), received_at=None,
                     severity_hint="", group=None, analysis_status=AnalysisStatus.QUEUED, signal=None, rule=""):
    """Store a signal and queue its analysis (only when `analysis_status` is queued: a grouped
    alert shares its group head's analysis)."""
    with transaction.atomic():
        threat = Threat.objects.create(
            source=source, source_ref=source_ref, threat_type=threat_type, title=title[:200],
            customer=customer, occurred_at=occurred_at, received_at=received_at or timezone.now(),
            observables=observables or {}, raw=raw or {}, mitre_hints=list(mitre_hints),
            severity_hint=severity_hint, group=group, analysis_status=analysis_status, signal=signal or {}, rule=rule,
        )
        _record_event(threat, EventType.CREATED, actor)
        if analysis_status == AnalysisStatus.QUEUED:
            analysis.request_analysis(threat.pk)
        if settings.MAX_STORED_THREATS:
            transaction.on_commit(enforce_retention, robust=True)
    return threat


def do_create_threats(rows, actor):
    """Store many signals at once (alert ingestion): one INSERT for the threats and one for their
    `threat.created` events, in one transaction. `rows` are Threat field values (an `id` may be
    given); analysis is queued for the rows whose analysis_status is queued (the default)."""
    now = timezone.now()
    threats = [Threat(**{"received_at": now, **row, "title": row["title"][:200]}) for row in rows]
    with transaction.atomic():
        Threat.objects.bulk_create(threats)
        _record_events(threats, EventType.CREATED, actor)
        analysis.request_analyses([threat.pk for threat in threats if threat.analysis_status == AnalysisStatus.QUEUED])
        if settings.MAX_STORED_THREATS:
            transaction.on_commit(enforce_retention, robust=True)
    return threats


def do_join_group(group, campaign, group_ids=(), threat_ids=()):
    """Alert ingestion (threats/grouping.py): stored threats - the members of `group_ids` and the
    `threat_ids` - ride on `group` from now on, in its `campaign` (building blocks adopted by their
    parent). They are members: "grouped", unless a worker is analysing one right now (it finishes).
    Returns [(threat, changes)] for `record_group_moves`, which the caller calls after its inserts:
    a writer takes the event-log lock only after its threat writes."""
    found = Threat.objects.filter(Q(group_id__in=list(group_ids)) | Q(pk__in=list(threat_ids)))
    with transaction.atomic():
        before = {pk: (status, group_id, campaign_id) for pk, status, group_id, campaign_id in
                  found.select_for_update().values_list("pk", "analysis_status", "group_id", "campaign_id")}
        Threat.objects.filter(pk__in=before).update(
            group=group, campaign=campaign, updated_at=timezone.now(),
            analysis_status=Case(When(analysis_status=AnalysisStatus.RUNNING, then=F("analysis_status")),
                                 default=Value(AnalysisStatus.GROUPED)))
        moved = (Threat.objects.select_related("customer", "assignee", "group__head").filter(pk__in=before)
                 .order_by("occurred_at"))
        return [(threat, _moved_changes(threat, *before[threat.pk])) for threat in moved]


def _moved_changes(threat, status, group_id, campaign_id):
    after = {"analysis_status": threat.analysis_status, "group_id": threat.group_id, "campaign": threat.campaign_id}
    was = {"analysis_status": status, "group_id": group_id, "campaign": campaign_id}
    return {name: {"from": was[name], "to": value} for name, value in after.items() if was[name] != value}


def record_group_moves(moved, actor):
    """A `threat.updated` event for each threat `do_join_group` moved, with its changes."""
    if moved:
        _record_each([(threat, {"changes": changes}) for threat, changes in moved], EventType.UPDATED, actor)


def enforce_retention(batch_size=500):
    """Delete the oldest threats beyond MAX_STORED_THREATS (their events, runs and notes cascade),
    in short transactions of `batch_size`, so a writer never waits for more than one batch.

    The number stored is read from the exact running totals (threats/stats.py): below the limit
    this costs one small query, not a walk over the newest MAX_STORED_THREATS rows of the index.
    Each batch re-reads it under a lock, so concurrent callers never delete more than the excess."""
    limit, deleted = settings.MAX_STORED_THREATS, 0
    if not limit or stats.stored_count() <= limit:
        return deleted
    while True:
        with transaction.atomic():
            lock(RETENTION_LOCK)
            excess = stats.stored_count() - limit
            ids = list(Threat.objects.order_by("received_at", "id").values_list("pk", flat=True)[:min(excess, batch_size)]
                       if excess > 0 else [])
            if not ids:
                return deleted
            stories = stitching.stories_of(ids)
            Threat.objects.filter(pk__in=ids).delete()
            stitching.drop_empty(stories)  # a story all of whose alerts are gone goes too (docs/stories.md)
            deleted += len(ids)


# --- Analysis ---------------------------------------------------------------------------------


THREAT_COLUMNS = sql.Columns(Threat)
CUSTOMER_COLUMNS = sql.Columns(Customer)
TRIAGE_COLUMNS = sql.Columns(Threat, ["id", "status", "disposition", "assignee", "updated_at"])


def start_analysis(threat_id):
    """Mark a threat as running; None when it is gone or already analysed (idempotent tasks)."""
    claimed = start_analyses([threat_id])
    return claimed[0] if claimed else None


def start_analyses(threat_ids, extras=0, running_before=None):
    """Mark threats as running and read them with their customers, in the order given; those gone,
    already analysed, or riding on a group head (a building block its parent adopted while its task
    waited in the queue: threats/grouping.py) are left out (idempotent tasks). The claim stamps
    `updated_at`: the stale-analysis sweeper counts from it.

    With `running_before` (a worker's first run of a task), a threat another claim marked running
    after that time is left out too: a live worker holds it (taken as one of its `extras`), so
    its own task, arriving later, does not analyse it a second time at once.

    `extras`: also claim up to that many OTHER threats still waiting (queued, their own tasks
    behind in the broker's queue), oldest first; they come after the given ones. On PostgreSQL
    they are picked `FOR UPDATE SKIP LOCKED`, and the claim takes only rows still queued, so two
    workers claiming at once never take the same threat (on SQLite the statement runs under the
    database's one write lock).

    One statement claims them all and reads them back (UPDATE ... RETURNING), one reads their
    customers: this runs for every analysis, so it is written in SQL (threats/sql.py says why)."""
    ids = list(dict.fromkeys(sql.param(Threat, "id", threat_id) for threat_id in threat_ids))
    table, now = Threat._meta.db_table, sql.param(Threat, "updated_at", timezone.now())
    where = f"id IN ({sql.placeholders(ids)}) AND analysis_status NOT IN (%s, %s)"
    params = [AnalysisStatus.RUNNING, now, *ids, AnalysisStatus.COMPLETED, AnalysisStatus.GROUPED]
    if running_before is not None:
        where += " AND (analysis_status <> %s OR updated_at < %s)"
        params += [AnalysisStatus.RUNNING, sql.param(Threat, "updated_at", running_before)]
    if extras > 0:
        # The pending-analysis index (status queued or running, by updated_at) finds them.
        waiting = (f"SELECT id FROM {table} WHERE analysis_status IN (%s, %s) AND analysis_status = %s"
                   f" AND id NOT IN ({sql.placeholders(ids)}) ORDER BY updated_at LIMIT {int(extras)}")
        if connection.vendor == "postgresql":  # ARRAY(): one look-up, then the key index for both parts
            waiting = f"id = ANY(ARRAY({waiting} FOR UPDATE SKIP LOCKED))"
        else:
            waiting = f"id IN ({waiting})"
        where = f"({where}) OR ({waiting} AND analysis_status = %s)"
        params += [AnalysisStatus.QUEUED, AnalysisStatus.RUNNING, AnalysisStatus.QUEUED, *ids, AnalysisStatus.QUEUED]
    claimed = THREAT_COLUMNS.instances(
        f"UPDATE {table} SET analysis_status = %s, updated_at = %s WHERE {where} RETURNING {THREAT_COLUMNS}", params)
    customer_ids = sorted({threat.customer_id for threat in claimed})
    customers = {customer.pk: customer for customer in CUSTOMER_COLUMNS.instances(
        f"SELECT {CUSTOMER_COLUMNS} FROM {Customer._meta.db_table} WHERE id IN ({sql.placeholders(customer_ids)})",
        customer_ids)} if claimed else {}
    for threat in claimed:
        threat.customer = customers[threat.customer_id]
    order = {threat_id: index for index, threat_id in enumerate(ids)}
    return sorted(claimed, key=lambda threat: order.get(sql.param(Threat, "id", threat.pk), len(ids)))


def do_record_analysis(threat, verdict):
    """Store one verdict (`do_record_analyses` of one)."""
    return do_record_analyses([(threat, verdict)])[0]


def do_record_analyses(analyses):
    """Store the coordinator's verdicts ([(threat, verdict)], claimed threats) and every agent run,
    in one transaction; returns the threats as stored, in order. Recording a verdict twice is a
    no-op: a threat already completed (a re-delivered task) is read back as it is (None if gone).

    One conditional UPDATE claims the completions (the rows stay locked until commit) and reads
    back their triage state, one upsert stores the runs, one INSERT the `threat.analyzed` events:
    three statements and one commit for a batch of threats, whatever its size. In SQL because it
    runs for every analysis (threats/sql.py says why). The agent runs are the agents app's rows: it
    stores them (threats/analysis.py).
    """
    now = timezone.now()
    changes = {threat.pk: {**verdict.threat_fields(), "analysis_status": AnalysisStatus.COMPLETED,
                           "analysis_error": "", "updated_at": now} for threat, verdict in analyses}
    with transaction.atomic():
        # Triage may have changed while the agents ran: the events must carry today's triage state
        # (a changed assignee_id drops the cached user).
        triage = {row[0]: row[1:] for row in sql.update_each(
            Threat, changes, "analysis_status <> %s", [AnalysisStatus.COMPLETED], TRIAGE_COLUMNS)}
        recorded = [(threat, verdict) for threat, verdict in analyses if threat.pk in triage]
        if recorded:
            analysis.store_runs(recorded)
            for threat, _verdict in recorded:
                values = zip(TRIAGE_COLUMNS.attnames[1:], triage[threat.pk], strict=True)
                for name, value in [*changes[threat.pk].items(), *values]:
                    setattr(threat, name, value)
            _record_events([threat for threat, _verdict in recorded], EventType.ANALYZED, COORDINATOR)
            outbox.threats_analyzed([threat for threat, _verdict in recorded])  # webhooks (handoff/)
            stitched = [threat for threat, _verdict in recorded]
            _record_story_flags(stitching.stitch(stitched, now), COORDINATOR, stitched)  # docs/stories.md
    done = {threat.pk for threat, _verdict in recorded}
    others = Threat.objects.select_related("customer", "assignee").in_bulk(
        [threat.pk for threat, _verdict in analyses if threat.pk not in done])
    return [threat if threat.pk in done else others.get(threat.pk) for threat, _verdict in analyses]


def _record_story_flags(flagged, actor=COORDINATOR, at_hand=()):
    """A `story.flagged` event for each story that just progressed to a later kill-chain stage, on
    the alert that took it there (read unless `at_hand`): stored and delivered per customer like
    every event (docs/stories.md), and a webhook delivery for each endpoint subscribed to it."""
    if not flagged:
        return
    threats = {str(threat.pk): threat for threat in at_hand}
    missing = {threat_id for _story, threat_id in flagged} - threats.keys()
    if missing:
        found = Threat.objects.select_related("customer", "assignee").in_bulk(missing)
        threats.update({str(pk): threat for pk, threat in found.items()})
    _record_each([(threats[threat_id], {"story": stitching.flag_payload(story)})
                  for story, threat_id in flagged if threat_id in threats], stitching.FLAGGED_EVENT, actor)
    outbox.stories_flagged([story for story, _threat_id in flagged])  # webhooks (handoff/)
    severities = [story.severity or "LOW" for story, _threat_id in flagged]
    transaction.on_commit(lambda: _count_story_flags(severities), robust=True)  # only what was stored


def _count_story_flags(severities):
    for severity in severities:
        metrics.STORIES_FLAGGED.labels(severity).inc()


def do_fail_analysis(threat_id, error):
    with transaction.atomic():
        threat = Threat.objects.select_for_update(of=("self",)).select_related("customer", "assignee").get(pk=threat_id)
        if threat.analysis_status == AnalysisStatus.COMPLETED:
            return threat
        threat.analysis_status = AnalysisStatus.FAILED
        threat.analysis_error = str(error)[:2000]
        threat.save(update_fields=["analysis_status", "analysis_error", "updated_at"])
        _record_event(threat, EventType.ANALYSIS_FAILED, COORDINATOR, {"error": threat.analysis_error})
    return threat


# --- Triage -----------------------------------------------------------------------------------


def check_triage(user, threat, status=None, disposition=None, reason=None, assignee=...):
    """Validate a triage change; returns the cleaned changes. `assignee=None` means unassign.
    `threat=None` (bulk triage, before any threat is read) checks only what fails for every threat
    alike: unknown values, closing without a disposition or a reason, nothing to change; not what
    depends on the threat (a disposition for one not closing, an assignee of its customer)."""
    access.check_permission(user, access.TRIAGE_PERMISSION)
    changes = {}
    if status is not None:
        if status not in Status.values:
            raise InvalidInput("status", f"Unknown status {status!r}.", Status.values)
        changes["status"] = status
    was_closed = threat is not None and threat.status in CLOSED_STATUSES
    closing = changes["status"] in CLOSED_STATUSES if "status" in changes else was_closed
    if disposition is not None:
        if disposition not in Disposition.values:
            raise InvalidInput("disposition", f"Unknown disposition {disposition!r}.", Disposition.values)
        if not closing and threat is not None:
            raise InvalidInput("disposition", "A disposition is set when closing: use status resolved or closed.")
        changes["disposition"] = disposition
    if "status" in changes and changes["status"] in CLOSED_STATUSES and not was_closed:
        _check_closure(disposition or (threat and threat.disposition), reason)
    if reason is not None:
        if len(reason) > REASON_MAX_LENGTH:
            raise InvalidInput("reason", f"A reason has at most {REASON_MAX_LENGTH} characters.")
        changes["disposition_reason"] = reason.strip()
    if assignee is not ...:
        changes["assignee"] = assignee if threat is None else _assignable_user(assignee, threat)
    if not changes:
        raise InvalidInput("body", "Nothing to change: give status, disposition, reason or assignee.")
    return changes


def _check_closure(disposition, reason):
    """Closing a threat that was open needs a disposition and a reason."""
    if not disposition:
        raise InvalidInput("disposition", "Closing a threat needs a disposition.", Disposition.values)
    if not (reason or "").strip():
        raise InvalidInput("reason", "Closing a threat needs a reason.")


def _assignable_user(username, threat):
    if username is None or username == "":
        return None
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None or not user.has_perm(access.VIEW_PERMISSION) or not access.can_see_customer(user, threat.customer_id):
        raise InvalidInput("assignee", f"No active analyst called {username!r}.")
    return user


def check_version(threat, version):
    """Optimistic concurrency: `version` (the client's ETag) must still be the threat's. None means
    the client sent no precondition and its change applies to whatever is current."""
    if version is not None and threat.version != version:
        raise Conflict(threat, version)


def do_triage(threat, actor, changes, closed_by_kind=ClosedByKind.HUMAN, version=None):
    """Apply validated triage changes, stamping acknowledgement and closure times. With `version`,
    only if the threat is still at it (checked under the row lock: two analysts cannot both pass)."""
    with transaction.atomic():
        locked = Threat.objects.select_for_update(of=("self",)).select_related("customer", "assignee").get(pk=threat.pk)
        check_version(locked, version)
        changes = {**changes, **_taken_on_acknowledgement(locked, actor, changes)}
        before = {name: _plain(getattr(locked, name)) for name in [*changes, *REOPEN_CLEARS]}
        for name, value in changes.items():
            setattr(locked, name, value)
        locked.version += 1
        touched = [*changes, *_stamp_times(locked, closed_by_kind, actor)]
        locked.save(update_fields=[*dict.fromkeys(touched), "version", "updated_at"])
        diff = {
            name: {"from": before[name], "to": _plain(getattr(locked, name))}
            for name in dict.fromkeys(touched)
            if name in before and before[name] != _plain(getattr(locked, name))
        }
        _record_event(locked, EventType.UPDATED, actor, {"changes": diff})
        outbox.threat_triaged(locked, diff)  # webhooks (handoff/)
        if {"status", "disposition"} & diff.keys():  # dismissed or no longer: its stories re-read (docs/stories.md)
            _record_story_flags(stitching.restitch(locked), actor)
    return locked


def _taken_on_acknowledgement(threat, actor, changes):
    """One meaning of Acknowledge everywhere (API, bulk, admin, pages): an analyst who acknowledges
    a threat nobody has takes it. Decided under the row lock, so an assignment made meanwhile by
    someone else is never overwritten; an explicit assignee in the same change wins."""
    acknowledging = changes.get("status") == Status.ACKNOWLEDGED and threat.status != Status.ACKNOWLEDGED
    if acknowledging and "assignee" not in changes and threat.assignee_id is None and actor.user is not None:
        return {"assignee": actor.user}
    return {}


def _stamp_times(threat, closed_by_kind, actor):
    """Acknowledgement and closure times; a closure also records who closed it (`closed_by`: the
    analyst, for a human closure by a user — the historical agent weighs closures per analyst)."""
    now, touched = timezone.now(), []
    if threat.status != Status.NEW and threat.acknowledged_at is None:
        threat.acknowledged_at, touched = now, touched + ["acknowledged_at"]
    if threat.status in CLOSED_STATUSES and threat.closed_at is None:
        threat.closed_at, threat.closed_by_kind = now, closed_by_kind
        threat.closed_by = actor.user if closed_by_kind == ClosedByKind.HUMAN else None
        touched += ["closed_at", "closed_by_kind", "closed_by"]
    elif threat.status not in CLOSED_STATUSES and threat.closed_at is not None:
        threat.closed_at, threat.closed_by_kind, threat.closed_by = None, "", None
        for name in REOPEN_CLEARS:
            setattr(threat, name, "")
        touched += ["closed_at", "closed_by_kind", "closed_by", *REOPEN_CLEARS]
    return touched


def _plain(value):
    return value.get_username() if hasattr(value, "get_username") else value


def triage(user, threat_id, version=None, **fields):
    """Check and apply a triage change for `user` (API, pages and admin all come through here).
    A stale `version` is a Conflict before any validation: the change was meant for another state."""
    threat = access.get_threat_for_user(user, threat_id)
    access.check_permission(user, access.TRIAGE_PERMISSION)
    check_version(threat, version)
    changes = check_triage(user, threat, **fields)
    audit.record("threat.triage", user, threat=str(threat.pk), changes=sorted(changes))
    return do_triage(threat, Actor.for_user(user), changes, version=version)


TRIAGE_FIELDS = ("status", "disposition", "disposition_reason", "assignee")


def triage_changes_since(threat, version, limit=20):
    """The triage events that took `threat` past `version`, oldest first (at most `limit`): what the
    other analyst did, for a Conflict's answer. Events recorded before versions existed carry none."""
    found = []
    for event in threat.events.filter(type=EventType.UPDATED).order_by("-seq")[:limit]:
        if (event.payload.get("threat") or {}).get("version", 0) <= version:
            break
        if any(name in TRIAGE_FIELDS for name in event.payload.get("changes", {})):
            found.append(event)
    return found[::-1]


def check_note(user, body):
    access.check_permission(user, access.TRIAGE_PERMISSION)
    body = (body or "").strip()
    if not body:
        raise InvalidInput("body", "A note cannot be empty.")
    if len(body) > NOTE_MAX_LENGTH:
        raise InvalidInput("body", f"A note has at most {NOTE_MAX_LENGTH} characters.")
    return body


def do_add_note(threat, user, body):
    with transaction.atomic():
        note = Note.objects.create(threat=threat, author=user, body=body)
        _record_event(threat, EventType.NOTE_ADDED, Actor.for_user(user), {"note": {"id": note.pk, "body": body}})
    return note


def add_note(user, threat_id, body):
    threat = access.get_threat_for_user(user, threat_id)
    body = check_note(user, body)
    audit.record("threat.note", user, threat=str(threat.pk))
    return do_add_note(threat, user, body)


# --- Near-breach warnings (docs/queue.md) -----------------------------------------------------------


def warn_near_breach(now=None, fraction=None):
    """Warn once about each open, unacknowledged threat whose SLA deadline is near: at most `fraction`
    (SOC_SLA_WARN_FRACTION) of its SLA left, not yet breached. Marks it (`sla_warned_at`) and records
    a `threat.sla_warning` event, which reaches only the sockets that may see its customer. Returns
    the threats warned about; a second run (or a second beat) finds none of them again."""
    now, fraction = now or timezone.now(), settings.SOC_SLA_WARN_FRACTION if fraction is None else fraction
    with transaction.atomic():
        found = list(_nearing_breach(now, fraction).select_for_update(of=("self",), skip_locked=True)
                     .select_related("customer", "assignee"))
        if not found:
            return []
        Threat.objects.filter(pk__in=[t.pk for t in found]).update(sla_warned_at=now)
        _record_each([(t, _sla_warning(t, now)) for t in found], EventType.SLA_WARNING, SYSTEM)
    for threat in found:
        metrics.SLA_WARNINGS.labels(threat.severity).inc()
    return found


def _nearing_breach(now, fraction):
    """Per severity one range of the (severity, received_at) index: received within the SLA, and
    long enough ago that at most `fraction` of it is left."""
    ranges = [Q(severity=severity, received_at__gt=now - timedelta(minutes=minutes),
                received_at__lte=now - timedelta(minutes=minutes) * (1 - fraction))
              for severity, minutes in SLA_MINUTES.items()]
    return (Threat.objects.filter(reduce(or_, ranges), acknowledged_at__isnull=True, sla_warned_at__isnull=True)
            .exclude(status__in=CLOSED_STATUSES).order_by("received_at"))


def _sla_warning(threat, now):
    minutes = SLA_MINUTES[threat.severity]
    due = threat.received_at + timedelta(minutes=minutes)
    return {"sla": {"due": due.isoformat(), "minutes": minutes,
                    "minutes_left": round((due - now).total_seconds() / 60, 1)}}


# --- The event log ----------------------------------------------------------------------------


def _lock_event_log():
    # Sequence values are handed out at insert, not at commit; holding this lock until commit
    # makes commit order equal seq order, so a client that has seen seq N has seen all < N.
    lock(EVENT_LOG_LOCK)


def lock(key):
    """A PostgreSQL advisory lock held until commit (SQLite's IMMEDIATE transactions already serialise writers)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _record_event(threat, event_type, actor, extra=None):
    """Append to the event log in the caller's transaction and broadcast after commit."""
    return _record_events([threat], event_type, actor, extra)[0]


def _record_events(threats, event_type, actor, extra=None):
    """`_record_event` for many threats: one INSERT (seqs in list order), one broadcast of them all.
    Written once in SQL (threats/sql.py): every analysis and every ingest batch records events."""
    return _record_each([(threat, extra) for threat in threats], event_type, actor)


def _record_each(pairs, event_type, actor):
    """`_record_events` with each threat's own payload: [(threat, extra payload or None)]."""
    _lock_event_log()
    recorded = sql.insert_all([
        ThreatEvent(threat=threat, type=event_type, actor_kind=actor.kind, actor=actor.user,
                    actor_label=actor.label, payload={"threat": threat_summary(threat), **(extra or {})})
        for threat, extra in pairs
    ])
    events.broadcast_on_commit(*recorded)
    return recorded


def latest_seq():
    return ThreatEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def events_after(after, limit, upto=None):
    """Stored events with seq > after (and <= upto), oldest first, at most `limit`."""
    found = ThreatEvent.objects.filter(seq__gt=after)
    if upto is not None:
        found = found.filter(seq__lte=upto)
    return list(found.order_by("seq")[:limit])

