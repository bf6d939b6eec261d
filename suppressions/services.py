"""Suppressions (docs/suppressions.md): propose, preview, save, revoke and expire them, and match
ingested alerts against them.

- A suppression names one customer, one rule as importers store it (Threat.rule) and optionally
  exact entity values (src_ip, dst_ip, user, host: the entity pivots of threats/pivots.py).
- The preview replays a proposal over the customer's stored threats of the last N days with the
  same conditions the pivots use, and lists every true positive it would have hidden. Saving
  runs the preview again here, so the confirmation rules never trust a number sent by a client.
- Ingest asks `Matcher` once per chunk: the customers' live suppressions come from the cache
  (one generation key, replaced on every change, so a stale copy is never read again).
"""

import time
from collections import namedtuple
from dataclasses import dataclass, field
from datetime import UTC, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, F, Q, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from threats import access, audit, pivots
from threats.choices import CLOSED_STATUSES, Disposition
from threats.errors import InvalidInput
from threats.models import APIKey, Customer, Threat

from . import notify
from .models import ENTITY_FIELDS, Suppression

MAX_EXPIRY_DAYS = 90
PREVIEW_DAYS, MAX_PREVIEW_DAYS = 30, 90
REASON_MAX_LENGTH = 2_000
ADMIN_GROUP = "admin"
UNRATED = "UNRATED"
SEVERITY_LEVELS = ("CRITICAL", "HIGH", "MEDIUM", "LOW", UNRATED)
# What a threat counts as in the preview: its verdict's severity, else its source's (a grouped
# member or a suppressed alert has no verdict of its own), else unrated.
LEVEL = Coalesce(NullIf(F("severity"), Value("")), NullIf(F("severity_hint"), Value("")), Value(UNRATED))
GENERATION_KEY = "suppressions:generation"
CACHE_SECONDS = 60  # a safety net: a process without the shared cache (a command) reads again within a minute
ENTITY_PIVOT = {"src_ip": "ip", "dst_ip": "ip", "user": "user", "host": "host"}


class Refused(Exception):
    """Saving is refused for a reason other than malformed input (status 400 or 403, naming the field)."""

    def __init__(self, status, field, detail):
        super().__init__(detail)
        self.status, self.field, self.detail = status, field, detail


def admin_threshold():
    return settings.SUPPRESSION_ADMIN_THRESHOLD


# --- Who may do what ---------------------------------------------------------------------------------


def check_writer(who):
    """Analysts and admins (the triage permission) propose, save and revoke; API keys never do."""
    if isinstance(who, APIKey):
        audit.record("access.denied", who, outcome="refused", permission="suppressions")
        raise access.AccessDenied("Suppressions are proposed and saved by analysts, not API keys.")
    access.check_permission(who, access.TRIAGE_PERMISSION)


def is_admin(who):
    return bool(getattr(who, "is_superuser", False)) or (
        hasattr(who, "groups") and who.groups.filter(name=ADMIN_GROUP).exists())


def visible_suppressions(who):
    """The suppressions of the customers `who` may see (the one access helper for them)."""
    access.check_permission(who, access.VIEW_PERMISSION)
    return access.scoped(Suppression.objects.select_related("customer", "author", "revoked_by"), who)


def get_suppression_for_user(who, pk):
    found = visible_suppressions(who).filter(pk=pk).first()
    if found is None:
        raise access.NotFound("Suppression not found.")
    return found


# --- A proposal and its preview ----------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """What a suppression would match: one customer's rule and the pinned entity values."""

    customer: Customer
    rule: str
    entities: dict = field(default_factory=dict)
    days: int = PREVIEW_DAYS

    def condition(self):
        """Q: the stored threats it matches (every stored threat, whatever its age)."""
        found = Q(customer_id=self.customer.pk, rule=self.rule)
        for name, value in self.entities.items():
            found &= pivots.entity_condition(name, value)
        return found


def check_proposal(who, *, customer, rule, entities, days=PREVIEW_DAYS):
    """A Proposal from request values, or InvalidInput naming the field. A customer `who` may not
    write for reads as unknown, so its existence does not leak."""
    check_writer(who)
    found = access.find_customer((customer or "").strip()) if customer else None
    if found is None or not access.can_write_for_customer(who, found.pk):
        raise InvalidInput("customer", f"Unknown customer {str(customer or '')[:100]!r}.")
    if not rule or not rule.strip():
        raise InvalidInput("rule", "A suppression needs the rule or signature it silences (rule:<id>, sid:<gid>:<sid>).")
    if len(rule.strip()) > 120:
        raise InvalidInput("rule", "A rule is at most 120 characters (as stored on a threat).")
    # A blank value (or none) means any value, for the preview and the saved suppression alike.
    pinned = {name: _entity(name, value) for name, value in entities.items() if value is not None and str(value).strip()}
    if not isinstance(days, int) or not 1 <= days <= MAX_PREVIEW_DAYS:
        raise InvalidInput("days", f"The preview window is 1 to {MAX_PREVIEW_DAYS} days.")
    return Proposal(found, pivots.normalise("rule", rule.strip()), pinned, days)


def _entity(name, value):
    if name not in ENTITY_FIELDS:
        raise InvalidInput(name, f"Unknown entity field {name!r}.", list(ENTITY_FIELDS))
    try:
        return pivots.normalise(ENTITY_PIVOT[name], str(value))
    except InvalidInput as exc:
        raise InvalidInput(name, exc.detail) from None


@dataclass
class Preview:
    """How many stored threats a proposal would have hidden in its window, and the true positives."""

    since: object
    total: int
    by_severity: dict
    true_positives: list

    def as_dict(self):
        return {"since": self.since, "total": self.total, "by_severity": self.by_severity,
                "true_positive_count": len(self.true_positives), "true_positives": self.true_positives,
                "admin_threshold": admin_threshold(), "needs_admin": self.total > admin_threshold(),
                "needs_confirmation": bool(self.true_positives)}


def preview(proposal, now=None):
    """Replay `proposal` over the customer's threats received in its last `days` days: exact counts."""
    since = (now or timezone.now()) - timedelta(days=proposal.days)
    found = Threat.objects.filter(proposal.condition(), received_at__gte=since)
    counts = dict.fromkeys(SEVERITY_LEVELS, 0)
    for row in found.annotate(level=LEVEL).values("level").annotate(n=Count("pk")).order_by():
        counts[row["level"] if row["level"] in counts else UNRATED] += row["n"]
    return Preview(since, sum(counts.values()), counts, _true_positives(found))


def _true_positives(found):
    """Every threat of the window closed as a true positive, latest closure first."""
    closed = found.filter(disposition=Disposition.TRUE_POSITIVE, status__in=CLOSED_STATUSES)
    rows = closed.order_by(F("closed_at").desc(nulls_last=True), "id").values("id", "title", "severity", "closed_at")
    return [{**row, "severity": row["severity"] or None} for row in rows]


# --- Saving, revoking, expiring ------------------------------------------------------------------------


def check_expiry(expires_at, now):
    if expires_at is None:
        raise InvalidInput("expires_at", "A suppression needs an expiry (at most 90 days ahead).")
    if timezone.is_naive(expires_at):
        raise InvalidInput("expires_at", "Give the expiry with a time zone, e.g. 2027-01-31T00:00:00Z.")
    try:
        expires_at = expires_at.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset has no UTC value
        raise InvalidInput("expires_at", "The expiry is out of range.") from None
    if expires_at <= now:
        raise InvalidInput("expires_at", "The expiry must be in the future.")
    if expires_at > now + timedelta(days=MAX_EXPIRY_DAYS):
        raise InvalidInput("expires_at", f"The expiry is at most {MAX_EXPIRY_DAYS} days ahead.")
    return expires_at


def check_reason(reason):
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("reason", "Say why these alerts may be silenced (e.g. our own scanner).")
    if len(text) > REASON_MAX_LENGTH:
        raise InvalidInput("reason", f"The reason is at most {REASON_MAX_LENGTH} characters.")
    return text


def check_save(who, proposal, result, confirmed):
    """Refused when the preview shows true positives and they were not confirmed, or when it
    would hide more than SUPPRESSION_ADMIN_THRESHOLD threats and `who` is not an admin."""
    if result.true_positives and not confirmed:
        raise Refused(400, "confirm_true_positives", (
            f"It would have hidden {len(result.true_positives)} threat(s) closed as true positive in the last "
            f"{proposal.days} days: check them, then save again with confirm_true_positives true."))
    if result.total > admin_threshold() and not is_admin(who):
        raise Refused(403, "role", (
            f"It would have hidden {result.total} threats in the last {proposal.days} days, more than "
            f"SUPPRESSION_ADMIN_THRESHOLD ({admin_threshold()}): only an admin may save it."))


def create(who, proposal, *, reason, expires_at, confirm_true_positives=False, created_from=None, now=None):
    """Save a suppression after its preview passed the confirmation rules; returns (suppression, preview)."""
    now = now or timezone.now()
    reason, expires_at = check_reason(reason), check_expiry(expires_at, now)
    result = preview(proposal, now)
    check_save(who, proposal, result, confirm_true_positives)
    with transaction.atomic():
        suppression = Suppression.objects.create(
            customer=proposal.customer, rule=proposal.rule, reason=reason, author=who, expires_at=expires_at,
            created_from=created_from, **proposal.entities)
        _changed(suppression, "suppression.created")
    audit.record("suppression.created", who, suppression=suppression.pk, customer=proposal.customer.slug,
                 rule=proposal.rule, entities=proposal.entities, expires_at=expires_at.isoformat(),
                 would_have_hidden=result.total, true_positives=len(result.true_positives), days=proposal.days)
    return suppression, result


def revoke(who, pk, now=None):
    """Stop a suppression now (idempotent: revoking it again changes nothing)."""
    check_writer(who)
    suppression = get_suppression_for_user(who, pk)
    if not access.can_write_for_customer(who, suppression.customer_id):
        raise access.NotFound("Suppression not found.")
    with transaction.atomic():
        live = Suppression.objects.filter(pk=pk, revoked_at__isnull=True, expired_at__isnull=True)
        if live.update(revoked_at=now or timezone.now(), revoked_by=who):  # only the first revoke changes it
            suppression.refresh_from_db()
            _changed(suppression, "suppression.revoked")
            audit.record("suppression.revoked", who, suppression=suppression.pk, customer=suppression.customer.slug,
                         rule=suppression.rule, hits=suppression.hit_count)
    return suppression


def expire_due(now=None):
    """Mark every live suppression past its expiry as expired (the beat task); returns how many."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(Suppression.objects.select_for_update(skip_locked=True).select_related("customer")
                   .filter(revoked_at__isnull=True, expired_at__isnull=True, expires_at__lte=now))
        for suppression in due:
            suppression.expired_at = now
            suppression.save(update_fields=["expired_at"])
            _changed(suppression, "suppression.expired")
            audit.record("suppression.expired", "system", suppression=suppression.pk,
                         customer=suppression.customer.slug, rule=suppression.rule, hits=suppression.hit_count)
    return len(due)


def _changed(suppression, event_type):
    """After commit: ingest reads the new set of live suppressions, and sockets hear of it."""
    transaction.on_commit(forget_live, robust=True)
    transaction.on_commit(lambda: notify.push(event_type, suppression), robust=True)


# --- Matching at ingest ------------------------------------------------------------------------------------

Live = namedtuple("Live", "pk rule entities expires_at reason")


def forget_live():
    """Every cached copy of live suppressions is stale from now on (a new generation)."""
    cache.set(GENERATION_KEY, time.time_ns(), None)


def _generation():
    found = cache.get(GENERATION_KEY)
    if found is None:  # never set or evicted: start a new one, never reuse an old generation's copies
        cache.add(GENERATION_KEY, time.time_ns(), None)
        found = cache.get(GENERATION_KEY)
    return found


def live_suppressions(customer_ids):
    """{customer id: [Live]} of the customers' unrevoked, unexpired suppressions, from the cache."""
    generation = _generation()
    keys = {customer_id: f"suppressions:live:{generation}:{customer_id}" for customer_id in customer_ids}
    cached = cache.get_many(list(keys.values()))
    found = {customer_id: cached[key] for customer_id, key in keys.items() if key in cached}
    missing = [customer_id for customer_id in keys if customer_id not in found]
    if missing:
        loaded = _load_live(missing)
        cache.set_many({keys[customer_id]: loaded[customer_id] for customer_id in missing}, CACHE_SECONDS)
        found.update(loaded)
    return found


def _load_live(customer_ids):
    loaded = {customer_id: [] for customer_id in customer_ids}
    rows = Suppression.objects.filter(customer_id__in=customer_ids, revoked_at__isnull=True, expired_at__isnull=True)
    for row in rows.order_by("created_at", "id"):
        loaded[row.customer_id].append(Live(row.pk, row.rule, tuple(row.entities().items()), row.expires_at, row.reason))
    return loaded


class Matcher:
    """The live suppressions of one ingest chunk's customers, indexed by rule: a dictionary look-up
    per alert, and a comparison of a few observables only when its rule is suppressed."""

    def __init__(self, customer_ids, now=None):
        self.now = now or timezone.now()
        self.by_rule = {}
        for customer_id, lives in live_suppressions(set(customer_ids)).items():
            for live in lives:
                self.by_rule.setdefault((customer_id, live.rule), []).append(live)

    def match(self, customer_id, rule, observables):
        """The first live suppression matching an alert, or None."""
        for live in self.by_rule.get((customer_id, rule), ()) if self.by_rule else ():
            if live.expires_at > self.now and all((observables or {}).get(k) == v for k, v in live.entities):
                return live
        return None


def suppressed_fields(live, now):
    """The Threat fields of an alert `live` suppressed: stored, closed by rule, never analysed."""
    return {"suppressed": True, "suppression_id": live.pk, "status": "closed", "received_at": now, "closed_at": now,
            "closed_by_kind": "rule", "disposition": Disposition.FALSE_POSITIVE,
            "disposition_reason": f"Suppressed by suppression #{live.pk}: {live.reason}"[:REASON_MAX_LENGTH]}


def record_hits(hits, now=None):
    """Count `hits` ({suppression id: alerts}) in the writing transaction, one UPDATE each, and audit them."""
    now = now or timezone.now()
    for pk, count in sorted(hits.items()):
        Suppression.objects.filter(pk=pk).update(hit_count=F("hit_count") + count, last_hit_at=now)
        audit.record("suppression.hit", "ingest", suppression=pk, alerts=count)
