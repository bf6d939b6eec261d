"""The dashboard's analytics and SLA figures (GET /api/analytics and the overview page): totals by
type, severity and status, MTTA/MTTR, SLA breaches and the deadline watch list, exact at an event
seq. threats/shared_analytics.py shares one computed snapshot per customer scope."""

from collections import Counter
from datetime import timedelta
from functools import reduce
from operator import or_

from django.db.models import Count, Q
from django.utils import timezone

from . import access, services, shared_analytics, stats
from .choices import CLOSED_STATUSES, SLA_MINUTES, Severity, Status

SNAPSHOT_ATTEMPTS = 3
SLA_WATCH_LIMIT = 500


def analytics_snapshot(user, now=None):
    """The analytics and the event seq they are exact at.

    The aggregates are read again when an event was recorded while they were computed, so a
    dashboard that applies every event after `latest_seq` to them counts each change exactly once
    (`exact` is false in the rare case that the log kept moving on every attempt)."""
    threats = access.visible_threats(user).order_by()
    scope = access.customer_scope(user)

    def compute():
        for _attempt in range(SNAPSHOT_ATTEMPTS):
            seq = services.latest_seq()
            data = compute_analytics(threats, now or timezone.now(), scope)
            if services.latest_seq() == seq:
                return {**data, "latest_seq": seq, "exact": True}
        return {**data, "latest_seq": seq, "exact": False}

    # A snapshot is exact at its own seq however old it is: one per second per scope serves everyone.
    return compute() if now is not None else shared_analytics.shared(scope, compute)


def compute_analytics(threats, now, scope=access.ALL_CUSTOMERS):
    """Every figure from the exact running totals per (customer, type, severity, status) that the
    database keeps in each writing transaction (threats/stats.py: a few hundred rows whatever the
    number of threats), plus one index range for the open threats still inside their SLA deadline."""
    by_type, by_status = Counter(), Counter({s: 0 for s in Status.values})
    by_severity, open_by_severity = Counter({s: 0 for s in Severity.values}), Counter({s: 0 for s in Severity.values})
    overall, severity_times, customer_times, names = _Times(), {s: _Times() for s in Severity.values}, {}, {}
    analyzed = processing = review = 0
    unacknowledged = Counter()  # (customer slug, severity) -> open threats never acknowledged
    for slug, name, threat_type, severity, status, n, n_analyzed, ms, n_review, *times in stats.totals(scope):
        is_open = status not in CLOSED_STATUSES
        by_type[threat_type] += n
        by_status[status] += n
        analyzed, processing = analyzed + n_analyzed, processing + ms
        review += n_review if is_open else 0
        names[slug] = name
        for bucket in (overall, customer_times.setdefault(slug, _Times())):
            bucket.add(*times)
        if severity:
            by_severity[severity] += n
            open_by_severity[severity] += n if is_open else 0
            severity_times[severity].add(*times)
            unacknowledged[slug, severity] += n - times[0] if is_open else 0
    within_deadline, watch, until = _open_within_deadline(threats, now)
    for (slug, severity), count in unacknowledged.items():
        if severity in SLA_MINUTES:
            breached = count - within_deadline[slug, severity]
            for bucket in (overall, customer_times[slug], severity_times[severity]):
                bucket.breached_open += breached
    return {
        "total_threats": sum(by_type.values()),
        "customers_affected": len(names),
        "average_processing_ms": round(processing / analyzed, 1) if analyzed else 0,
        "requires_review": review,
        "mtta_seconds": overall.as_dict()["mtta_seconds"],
        "mttr_seconds": overall.as_dict()["mttr_seconds"],
        "by_type": dict(by_type),
        "by_severity": dict(by_severity),
        "by_status": dict(by_status),
        "open_by_severity": dict(open_by_severity),
        # What a dashboard needs to keep the figures above current from events alone.
        "analyzed_count": analyzed,
        "processing_ms_sum": processing,
        "customer_slugs": sorted(names),
        "sla": _sla(overall, severity_times,
                    {slug: {"name": names[slug], **times.as_dict()} for slug, times in customer_times.items()},
                    watch, until),
    }


class _Times:
    """Counts and summed durations behind MTTA/MTTR and the SLA figures, so buckets add up exactly."""

    def __init__(self):
        self.acknowledged = self.closed = self.within_sla = self.breached_open = 0
        self.acknowledge_us = self.resolve_us = 0

    def add(self, acknowledged, acknowledge_us, closed, resolve_us, within_sla):
        self.acknowledged += acknowledged
        self.acknowledge_us += acknowledge_us
        self.closed += closed
        self.resolve_us += resolve_us
        self.within_sla += within_sla

    def as_dict(self):
        return {
            "acknowledged": self.acknowledged,
            # Milliseconds: the dashboard multiplies the mean back into a sum and adds live events to it,
            # so a coarser mean drifts a second away from a fresh page's figure.
            "mtta_seconds": round(self.acknowledge_us / 1e6 / self.acknowledged, 3) if self.acknowledged else None,
            "closed": self.closed,
            "mttr_seconds": round(self.resolve_us / 1e6 / self.closed, 3) if self.closed else None,
            "within_sla": self.within_sla,
            "breached_open": self.breached_open,
        }


# --- SLA: acknowledge within the response plan's minutes for the severity ---------------------------


# The open, unacknowledged threats still inside their deadline are read in one query (counts and
# watch list alike) when there are at most this many; past it, counted in the database and listed
# per severity, SLA_WATCH_LIMIT each (a flood of recent threats must not be loaded whole).
SLA_PENDING_IN_ONE_QUERY = 2000


def _sla_pending(threats, now):
    """Open threats never acknowledged whose acknowledgement deadline is still ahead."""
    recent = reduce(or_, (
        Q(severity=severity, received_at__gte=now - timedelta(minutes=minutes))
        for severity, minutes in SLA_MINUTES.items()
    ))
    return threats.filter(recent, acknowledged_at__isnull=True).exclude(status__in=CLOSED_STATUSES)


def _open_within_deadline(threats, now):
    """(within-deadline counts per (customer slug, severity), the SLA watch and its horizon).
    The totals hold every unacknowledged open threat; the difference is the breached ones.

    Usually one query: every pending threat inside its deadline (recent threats only, read from the
    (severity, received_at) index), counted and listed here. When there are more than
    SLA_PENDING_IN_ONE_QUERY, a grouped count plus one bounded query per severity."""
    pending = _sla_pending(threats, now)
    rows = list(pending.order_by().values_list("pk", "customer__slug", "severity", "received_at")
                [:SLA_PENDING_IN_ONE_QUERY + 1])
    if len(rows) <= SLA_PENDING_IN_ONE_QUERY:
        counts = Counter((slug, severity) for _pk, slug, severity, _received in rows)
        by_severity = {severity: [] for severity in SLA_MINUTES}
        for pk, slug, severity, received in sorted(rows, key=lambda row: row[3]):
            by_severity[severity].append((pk, slug, received))
        return counts, *_sla_watch(by_severity, now)
    counts = Counter({(slug, severity): n for slug, severity, n in
                      pending.values_list("customer__slug", "severity").annotate(n=Count("pk")).order_by()})
    by_severity = {
        severity: list(pending.filter(severity=severity).order_by("received_at")
                       .values_list("pk", "customer__slug", "received_at")[:SLA_WATCH_LIMIT])
        for severity in SLA_MINUTES
    }
    return counts, *_sla_watch(by_severity, now)


def _sla(overall, severity_times, by_customer, watch, until):
    return {
        "minutes": dict(SLA_MINUTES),
        **overall.as_dict(),
        "by_severity": {severity: times.as_dict() for severity, times in severity_times.items()},
        "by_customer": by_customer,
        "watch": watch,
        "watch_until": until.isoformat() if until else None,
    }


def _sla_watch(by_severity, now):
    """Every SLA deadline still ahead up to a horizon ([id, severity, customer slug, due], soonest
    first), so a dashboard can count breaches as they happen. `by_severity` holds each severity's
    pending threats, oldest first. `until` is that horizon (None: all of them are listed); past it,
    the dashboard reads the analytics again."""
    found, horizons = [], []
    for severity, minutes in SLA_MINUTES.items():
        rows = by_severity[severity][:SLA_WATCH_LIMIT]
        found += [(received + timedelta(minutes=minutes), str(pk), severity, slug) for pk, slug, received in rows]
        if len(rows) == SLA_WATCH_LIMIT:  # later deadlines of this severity were left out
            horizons.append(rows[-1][2] + timedelta(minutes=minutes))
    found.sort()
    if len(found) > SLA_WATCH_LIMIT:
        horizons.append(found[SLA_WATCH_LIMIT - 1][0])
    until = min(horizons) if horizons else None
    listed = [item for item in found if until is None or item[0] <= until][:SLA_WATCH_LIMIT]
    return [[pk, severity, slug, due.isoformat()] for due, pk, severity, slug in listed], until
