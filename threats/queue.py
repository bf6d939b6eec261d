"""My queue: the open threats a principal may see, in the order to work on them (docs/queue.md).

    priority = risk × urgency × tier weight

- risk: the verdict's risk score 0-100 (a grouped member: its group head's, as the list shows it;
  not analysed yet: UNKNOWN_RISK, since nothing says it is harmless);
- urgency: 1 when the acknowledgement SLA clock is not running (acknowledged, or no severity yet),
  else 1 + 3 × the share of the SLA already used, capped at 4 from the breach on: a threat rises
  while its deadline nears, and a long-breached LOW never buries a fresh CRITICAL for good;
- tier weight: what the customer's contract promises (TIER_WEIGHTS).

The database computes the same formula (`ranked`); `best` reads a page of the queue from a few
index-ordered parts (below); `rank` computes it for one threat in Python, with the reason per row.
"""

import math
from dataclasses import dataclass
from datetime import timedelta
from functools import reduce
from operator import or_

from django.db.models import Case, F, FloatField, Func, Q, Value, When
from django.db.models.functions import Cast, Coalesce, Greatest, Least

from .choices import CLOSED_STATUSES, SLA_MINUTES, AnalysisStatus, Tier
from .models import QUEUE_RATED_ACKNOWLEDGED, QUEUE_RATED_UNACKNOWLEDGED, QUEUE_UNRATED

TIER_WEIGHTS = {Tier.STARTER: 1.0, Tier.BUSINESS: 1.25, Tier.ENTERPRISE: 1.5}
UNKNOWN_RISK = 50
MAX_RISK = 32767  # the column's largest value (a positive small integer)
CALM, URGENT = 1.0, 4.0  # urgency with the clock stopped, and at (or past) the breach


@dataclass(frozen=True)
class Ranking:
    """One threat's place in the queue: its priority, the three factors and the reason in words."""

    priority: float
    risk: int
    urgency: float
    tier_weight: float
    reason: str
    sla_due: object  # datetime, or None when no SLA clock runs


def rank(*, severity, risk_score, received_at, acknowledged_at, tier, now, inherited=False):
    """The priority of one threat and why (the formula of the module docstring)."""
    risk = UNKNOWN_RISK if risk_score is None else risk_score
    minutes = SLA_MINUTES.get(severity) if not inherited else None
    clock_runs = minutes is not None and acknowledged_at is None
    due = received_at + timedelta(minutes=minutes) if minutes else None
    urgency = _urgency((now - received_at) / timedelta(minutes=minutes)) if clock_runs else CALM
    weight = TIER_WEIGHTS.get(tier, 1.0)
    reason = ", ".join(filter(None, (
        _verdict_words(severity, risk_score, inherited),
        _clock_words(minutes, due, acknowledged_at, now),
        f"{tier} customer",
    )))
    return Ranking(risk * urgency * weight, risk, urgency, weight, reason, due if clock_runs else None)


def _urgency(used):
    return CALM + (URGENT - CALM) * min(1.0, max(0.0, used))


def _verdict_words(severity, risk_score, inherited):
    if risk_score is None and not severity:
        return f"not analysed yet (risk taken as {UNKNOWN_RISK})"
    words = f"{severity or 'no severity'}, risk {UNKNOWN_RISK if risk_score is None else risk_score}"
    return f"{words} (its group head's)" if inherited else words


def _clock_words(minutes, due, acknowledged_at, now):
    if minutes is None:
        return "no SLA clock"
    if acknowledged_at is not None:
        return "acknowledged"
    left = (due - now).total_seconds() / 60
    if left >= 0:
        return f"{_minutes(left)} min left of {minutes}"
    return f"SLA breached {_minutes(-left)} min ago ({minutes} min)"


def _minutes(value):
    return int(value) if value >= 1 else round(value, 1)


# --- The same formula in SQL ----------------------------------------------------------------------


class Epoch(Func):
    """A datetime column as seconds since 1970 (double precision), on PostgreSQL and SQLite."""

    output_field = FloatField()
    template = "CAST(EXTRACT(EPOCH FROM %(expressions)s) AS double precision)"

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)",
                           **extra)


# --- One page at scale: disjoint parts, each read in an index's order --------------------------------
#
# Ranking every open threat to show twenty would read them all (a million rows: seconds). But
# only a threat whose SLA clock runs has a priority that moves with time, and those are few (an
# unacknowledged threat received within its SLA). Every other open threat has a fixed urgency (4
# if its SLA breached unacknowledged, 1 if acknowledged), and within one customer (one tier
# weight) and one of those urgencies, priority order is risk order: an index on (customer, risk)
# gives each part's best rows first. A page is the best `limit` of the parts' best `limit` rows.

# The partial indexes' conditions (Threat.Meta, migration 0018): a query uses a partial index only
# when its WHERE repeats the condition, so the parts below filter with these very objects.
RATED_UNACKNOWLEDGED, RATED_ACKNOWLEDGED, UNRATED = QUEUE_RATED_UNACKNOWLEDGED, QUEUE_RATED_ACKNOWLEDGED, QUEUE_UNRATED
RISK_ORDER = ("-risk_score", "received_at", "id")


def clock_running(now):
    """Unacknowledged threats still inside their SLA: one range of the (severity, received_at) index each."""
    return reduce(or_, (Q(severity=severity, received_at__gt=now - timedelta(minutes=minutes))
                        for severity, minutes in SLA_MINUTES.items())) & Q(acknowledged_at__isnull=True)


def best(found, now, position, customers, limit):
    """The first `limit` of `found` (open threats) in queue order at `now`, after `position`
    ((priority, received_at, id) or None), as [{id, priority, received_at}]. `customers`: the
    [(id, tier)] that `found` may hold. Read in disjoint parts, at most `limit` rows each."""
    running = clock_running(now)
    rows = []
    for part in (found.filter(running), found.filter(UNRATED).exclude(running)):
        rows += _after(ranked(part, now), position).values("id", "priority", "received_at")[:limit]
    for customer_id, tier in customers:
        mine = found.filter(customer_id=customer_id)
        weight = TIER_WEIGHTS.get(tier, 1.0)
        rows += _by_risk(mine.filter(RATED_UNACKNOWLEDGED).exclude(running), URGENT, weight, position, limit)
        rows += _by_risk(mine.filter(RATED_ACKNOWLEDGED), CALM, weight, position, limit)
    return sorted(rows, key=queue_order)[:limit]


def _by_risk(threats, urgency, weight, position, limit):
    """A part whose priority is risk × a fixed urgency × weight: read in risk order (an index), the
    priority computed here exactly as the database computes it ((risk × urgency) × weight)."""
    if position:
        threats = threats.filter(_after_by_risk(urgency, weight, *position))
    return [{"id": pk, "priority": _fixed(risk, urgency, weight), "received_at": received}
            for pk, risk, received in threats.order_by(*RISK_ORDER).values_list("id", "risk_score", "received_at")[:limit]]


def _fixed(risk, urgency, weight):
    return float(risk) * urgency * weight


def _after_by_risk(urgency, weight, priority, received_at, threat_id):
    """`after` for a part of fixed urgency and weight, on the risk column alone (so the index seeks):
    the risks whose priority is below `priority`, and the one (if any) whose priority equals it."""
    below = min(math.floor(priority / (urgency * weight)) + 1, MAX_RISK)
    while below >= 0 and _fixed(below, urgency, weight) >= priority:
        below -= 1  # the highest risk whose priority is below `priority` (-1: none)
    condition = Q(risk_score__lte=below) if below >= 0 else Q(pk__in=[])
    if _fixed(below + 1, urgency, weight) == priority:
        condition |= Q(risk_score=below + 1, received_at__gt=received_at) | Q(
            risk_score=below + 1, received_at=received_at, id__gt=threat_id)
    return condition


def _after(threats, position):
    return after(threats, *position) if position else threats


def queue_order(row):
    return (-row["priority"], row["received_at"], row["id"])


def open_threats(threats):
    """The threats a queue holds: not closed (resolved or closed)."""
    return threats.exclude(status__in=CLOSED_STATUSES)


def ranked(threats, now):
    """`threats` annotated with `queue_risk`, `queue_urgency`, `queue_weight` and `priority` (as `rank`
    computes them at `now`), highest priority first, then the oldest, then by id."""
    return threats.annotate(
        queue_risk=_risk_sql(), queue_urgency=_urgency_sql(now), queue_weight=_weight_sql(),
    ).annotate(
        priority=F("queue_risk") * F("queue_urgency") * F("queue_weight"),
    ).order_by("-priority", "received_at", "id")


def after(threats, priority, received_at, threat_id):
    """The ranked rows after (priority, received_at, id) in queue order: the next page."""
    return threats.filter(Q(priority__lt=priority) | Q(priority=priority, received_at__gt=received_at)
                          | Q(priority=priority, received_at=received_at, id__gt=threat_id))


def _risk_sql():
    inherited = Case(When(analysis_status=AnalysisStatus.GROUPED, then=F("group__head__risk_score")))
    return Cast(Coalesce("risk_score", inherited, Value(UNKNOWN_RISK)), FloatField())


def _urgency_sql(now):
    elapsed = Value(now.timestamp()) - Epoch("received_at")
    return Case(
        *(When(severity=severity, acknowledged_at__isnull=True,
               then=Value(CALM) + Value(URGENT - CALM) * Least(Value(1.0), Greatest(Value(0.0), elapsed / (minutes * 60.0))))
          for severity, minutes in SLA_MINUTES.items()),
        default=Value(CALM), output_field=FloatField(),
    )


def _weight_sql():
    return Case(*(When(customer__tier=tier, then=Value(weight)) for tier, weight in TIER_WEIGHTS.items()),
                default=Value(1.0), output_field=FloatField())
