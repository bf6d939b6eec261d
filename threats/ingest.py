"""Alert ingestion: decode a batch, map each record with its format's importer, resolve the
customer, skip what is already stored, group repeats, and store the rest in bulk through
`services.do_create_threats`. Used by POST /api/ingest/{format} and `manage.py import_alerts`;
documented in docs/ingestion.md.

- Idempotent on (customer, source, source_ref): a known alert answers `duplicate` with the stored
  id and is not analysed again. Never across customers: the same id sent for another customer is
  that customer's own alert. The unique constraint has the last word: should an insert still meet a
  stored row, the chunk is redone alert by alert, each in a savepoint, and that one is answered as
  a duplicate.
- One transaction per chunk of at most CHUNK_SIZE alerts; on PostgreSQL it first takes the
  ingestion lock (services.INGEST_LOCK), so concurrent batches are serialised up front and cannot
  deadlock on each other's new rows. Like every other writer it takes the event-log lock only
  when it writes its events, after its threats: a writer holding the event-log lock then never
  waits for rows (the running totals' rows, which every threat write locks through the
  threats/stats.py triggers) that another writer holds while it waits for that lock.
  SQLite's IMMEDIATE transactions serialise writers the same way.
- Grouping (threats/grouping.py): an alert joins a recent group with the same key (rule + entity;
  a scanner's address) unless it brings a new ATT&CK tactic, a new user or a higher severity; then
  it heads a new group. Only heads are analysed; members are stored with analysis_status "grouped"
  and share the head's verdict. Building blocks ride on their parent's group; a user's alerts are
  linked to a campaign.
- Suppressions (docs/suppressions.md): an alert a live suppression of its customer matches is
  stored closed by rule, outside any group or campaign, and never analysed; the chunk reads its
  customers' suppressions once (suppressions.services.Matcher) and counts the hits in its transaction.
"""

import dataclasses
import fnmatch
import json
import math
import re
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction

from suppressions import services as suppressions

from . import access, grouping, metrics, services
from .choices import ActorKind, AnalysisStatus
from .importers import IMPORTERS, ItemError, Skip
from .models import Customer, Threat

CHUNK_SIZE = 500  # alerts per transaction
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")
CUT_MARKER = "…[cut {n} characters]"
# JSON escapes that Python decodes but PostgreSQL refuses (NUL in text, lone UTF-16 surrogates).
RISKY_ESCAPES = re.compile(rb"\\u(?:0000|[dD][89abcdefABCDEF])")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


# --- Decoding a request body ------------------------------------------------------------------


class BodyError(Exception):
    """The whole request is refused (unparseable, too large, no alerts)."""

    def __init__(self, status, field, detail):
        super().__init__(detail)
        self.status, self.field, self.detail = status, field, detail


@dataclass
class Record:
    """One decoded item of a batch (or why it could not be decoded)."""

    index: int
    value: object = None
    line: int | None = None
    error: ItemError | None = None
    scrub: bool = False  # the text had \u0000 or surrogate escapes: clean strings before storing


def decode_body(body, content_type=""):
    """A JSON object, a JSON array, NDJSON, or an Elasticsearch `_search` answer -> Records."""
    if len(body) > settings.INGEST_MAX_BODY_BYTES:
        raise BodyError(413, "body", f"The body is larger than {settings.INGEST_MAX_BODY_BYTES} bytes.")
    if not body.strip():
        raise BodyError(400, "body", "The body is empty: send one alert, a JSON array or NDJSON.")
    if content_type.split(";")[0].strip().lower() in NDJSON_TYPES:
        return _limit_batch(ndjson_records(body.splitlines()))
    try:
        data = loads(body)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # several documents: read it as NDJSON
            return _limit_batch(ndjson_records(body.splitlines()))
        raise BodyError(400, "body", f"Invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise BodyError(400, "body", _decode_problem(exc)) from None
    return _limit_batch(document_records(data, scrub=bool(RISKY_ESCAPES.search(body))))


def document_records(data, scrub=True):
    """Records of one decoded JSON document: an object, an array, or a `_search` answer's hits."""
    return [Record(index, value, scrub=scrub) for index, value in enumerate(_items(data))]


def ndjson_records(lines, first_line=1, first_index=0):
    """One Record per non-blank line (bytes; None for a line too long to read); a bad line is a
    per-item error with its line number."""
    records = []
    for number, line in enumerate(lines, start=first_line):
        if line is None:
            records.append(Record(first_index + len(records), line=number, error=ItemError(
                "line", f"Line {number} is longer than {settings.INGEST_MAX_ITEM_CHARS} characters; not read.")))
            continue
        if not line.strip():
            continue
        record = Record(first_index + len(records), line=number, scrub=bool(RISKY_ESCAPES.search(line)))
        try:
            record.value = loads(line.rstrip(b"\r\n"))
        except json.JSONDecodeError as exc:
            record.error = ItemError("line", f"Line {number}: invalid JSON: {exc.msg} (column {exc.colno}).")
        except (UnicodeDecodeError, RecursionError) as exc:
            record.error = ItemError("line", f"Line {number}: {_decode_problem(exc)}")
        records.append(record)
    return records


class Unstorable:
    """A JSON number that Python's json reads but nothing after it can hold: NaN and Infinity (no
    database's JSON takes them) or an integer longer than Python converts (4,300 digits). It stays
    in place, so that check_item refuses its alert with the path, and the batch's other alerts
    are stored."""

    __slots__ = ("reason",)

    def __init__(self, reason):
        self.reason = reason


def loads(text):
    """json.loads, with NaN, Infinity and over-long integers read as Unstorable markers."""
    try:
        return json.loads(text, parse_constant=_constant)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except ValueError:  # int() refused a literal's length: read again, converting each integer ourselves
        return json.loads(text, parse_constant=_constant, parse_int=_integer)


def _constant(name):
    return Unstorable(f"{name} is not a JSON number.")


def _integer(text):
    try:
        return int(text)
    except ValueError:
        return Unstorable(f"An integer of {len(text.lstrip('-'))} digits; at most {sys.get_int_max_str_digits()}.")


def _items(data):
    if isinstance(data, dict) and isinstance(data.get("hits"), dict) and isinstance(data["hits"].get("hits"), list):
        return data["hits"]["hits"]
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise BodyError(400, "body", "The body must be a JSON object, a JSON array of objects or NDJSON.")


def _limit_batch(records):
    if not records:
        raise BodyError(400, "body", "The body holds no alert.")
    if len(records) > settings.INGEST_MAX_BATCH:
        raise BodyError(413, "body", f"{len(records)} alerts in one request; at most {settings.INGEST_MAX_BATCH}.")
    return records


def _decode_problem(exc):
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply."
    return "The body is not UTF-8 text."


# --- Checking one decoded item ------------------------------------------------------------------


def check_item(value, scrub):
    """Bound one item in place: cut very long strings, clean NUL and lone surrogates, refuse
    nesting or total size beyond the limits. Returns the paths that were cut."""
    if not isinstance(value, dict):
        raise ItemError("alert", "Each alert must be a JSON object.")
    bounds = _Bounds(scrub)
    bounds.walk(value, "", 0)
    if bounds.chars > settings.INGEST_MAX_ITEM_CHARS:
        raise ItemError("alert", f"The alert holds {bounds.chars} characters; at most {settings.INGEST_MAX_ITEM_CHARS}.")
    return bounds.cut


class _Bounds:
    """One walk over a decoded item (hot path: paths are only spelled out when needed)."""

    def __init__(self, scrub):
        self.scrub, self.chars, self.cut = scrub, 0, []
        self.longest, self.deepest = settings.INGEST_MAX_STRING_CHARS, settings.INGEST_MAX_DEPTH

    def walk(self, node, path, depth):
        if depth > self.deepest:
            raise ItemError(path or "alert", f"Nested deeper than {self.deepest} levels.")
        is_object = isinstance(node, dict)
        for key, value in list(node.items() if is_object else enumerate(node)):
            if isinstance(value, str):
                self.chars += len(value)
                if self.scrub or len(value) > self.longest:
                    node[key] = self.bounded(value, path, key)
            elif isinstance(value, (dict, list)):
                self.walk(value, _child(path, key), depth + 1)
            else:
                self.chars += 1
                if isinstance(value, (float, Unstorable)):
                    _check_number(value, path, key)
        if is_object:
            self.chars += sum(map(len, node))
            if self.scrub:
                for key in [k for k in node if _needs_scrub(k)]:
                    node[_scrubbed(key)] = node.pop(key)

    def bounded(self, text, path, key):
        if self.scrub and _needs_scrub(text):
            text = _scrubbed(text)
        if len(text) > self.longest:
            self.cut.append(_child(path, key))
            text = text[:self.longest] + CUT_MARKER.format(n=len(text) - self.longest)
        return text


def _check_number(value, path, key):
    if isinstance(value, Unstorable):
        raise ItemError(_child(path, key), value.reason)
    if not math.isfinite(value):  # a literal such as 1e400: Python reads it as infinity
        raise ItemError(_child(path, key), "The number is beyond the range of a 64-bit float.")


def _child(path, key):
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _needs_scrub(text):
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _scrubbed(text):
    return LONE_SURROGATE.sub("\ufffd", text.replace("\x00", ""))


# --- Customers --------------------------------------------------------------------------------


def host_patterns(spec):
    """[(pattern, customer)] from "web-*=acme-corp,db01=globex" or from settings.py's pairs."""
    pairs = tuple(map(tuple, spec)) if isinstance(spec, (list, tuple)) else tuple(
        entry.partition("=")[::2] if "=" in entry else (entry, "")
        for entry in filter(None, map(str.strip, spec.split(","))))
    return _patterns(pairs)


@lru_cache(maxsize=8)
def _patterns(pairs):
    for pattern, customer in pairs:
        if not str(pattern).strip() or not str(customer).strip():
            raise ImproperlyConfigured(f"INGEST_HOST_CUSTOMERS: {pattern}={customer} is not HOST_PATTERN=CUSTOMER")
    return [(str(pattern).strip().lower(), str(customer).strip()) for pattern, customer in pairs]


class CustomerResolver:
    """The customer of an alert (docs/ingestion.md, customer rule):
    1. a customer the alert names (generic `customer`, Wazuh `agent.labels.customer`, ECS
       `organization.name`), by slug or name;
    2. else the first INGEST_HOST_CUSTOMERS pattern matching the alert's agent/host/sensor name;
    3. else the API key's customer (or `import_alerts --customer`).
    A key bound to a customer never writes for another one."""

    def __init__(self, bound=None, default=None):
        self.bound, self.default = bound, default
        self.cache = {}
        self.patterns = host_patterns(settings.INGEST_HOST_CUSTOMERS)

    def resolve(self, alert):
        customer = self._named(alert) or self._mapped(alert) or self.bound or self.default
        if customer is None:
            raise ItemError("customer", "No customer: name one in the alert, map its host in INGEST_HOST_CUSTOMERS, "
                                        "or use an API key bound to a customer.")
        if self.bound is not None and customer.pk != self.bound.pk:
            raise ItemError("customer", f"This API key only ingests alerts for {self.bound.slug!r}.")
        return customer

    def _named(self, alert):
        if not alert.customer_hint:
            return None
        found = self.find(alert.customer_hint)
        if found is None:
            raise ItemError("customer", f"Unknown customer {alert.customer_hint[:100]!r}.")
        return found

    def _mapped(self, alert):
        for host in alert.hosts:
            for pattern, name in self.patterns:
                if fnmatch.fnmatchcase(host.lower(), pattern):
                    found = self.find(name)
                    if found is None:
                        raise ItemError("customer", f"INGEST_HOST_CUSTOMERS maps {host[:100]!r} to unknown customer "
                                                    f"{name!r}.")
                    return found
        return None

    def find(self, name):
        """Slug, exact name, then a name in any case (shippers write "acme corp")."""
        if name not in self.cache:
            self.cache[name] = access.find_customer(name) or Customer.objects.filter(name__iexact=name).first()
        return self.cache[name]


# --- Results ------------------------------------------------------------------------------------


@dataclass
class ItemResult:
    """What happened to one item; `status` is created, duplicate, skipped or error."""

    index: int
    status: str
    line: int | None = None
    id: str | None = None
    duplicate: bool = False
    group_id: int | None = None
    group_head: bool | None = None
    campaign_id: int | None = None
    analysis_status: str | None = None
    suppression_id: int | None = None
    field: str | None = None
    detail: str | None = None
    truncated: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)

    def as_dict(self):
        return {k: v for k, v in vars(self).items() if v is not None}


def summary(results):
    counts = {"created": 0, "duplicate": 0, "skipped": 0, "error": 0}
    for result in results:
        counts[result.status] += 1
    return {"created": counts["created"], "duplicates": counts["duplicate"], "skipped": counts["skipped"],
            "errors": counts["error"]}


# --- Ingesting ----------------------------------------------------------------------------------


def ingest(source, records, *, actor_label, bound_customer=None, default_customer=None):
    """Import decoded Records of one format; returns one ItemResult per record, in order."""
    importer = IMPORTERS[source]
    resolver = CustomerResolver(bound_customer, default_customer)
    actor = services.Actor(ActorKind.SYSTEM, label=actor_label[:150])
    results = []
    for start in range(0, len(records), CHUNK_SIZE):
        results += _ingest_chunk(importer, records[start:start + CHUNK_SIZE], resolver, actor)
    metrics.count_ingested(source, results)
    return results


def _ingest_chunk(importer, records, resolver, actor):
    results, mapped = {}, []
    for record in records:
        outcome = _map(importer, record, resolver)
        if isinstance(outcome, ItemResult):
            results[record.index] = outcome
        else:
            mapped.append((record, *outcome))
    if mapped:
        with transaction.atomic():
            _serialise_writers()
            _Batch(importer.SOURCE, actor).store(mapped, results)
    return [results[record.index] for record in records]


def _map(importer, record, resolver):
    """(alert, customer, cut paths) or an error/skip ItemResult; no database writes."""
    try:
        if record.error:
            raise record.error
        cut = check_item(record.value, record.scrub)
        alert = importer.parse(record.value)
        return alert, resolver.resolve(alert), cut
    except ItemError as exc:
        return ItemResult(record.index, "error", line=record.line, field=exc.field, detail=exc.detail)
    except Skip as exc:
        return ItemResult(record.index, "skipped", line=record.line, detail=exc.reason)


def _serialise_writers():
    services.lock(services.INGEST_LOCK)


class _Batch:
    """Storing one chunk inside its transaction. Every alert is planned in memory first (duplicate,
    group head or member, campaign: threats/grouping.py), then written with a few bulk statements.
    Should an insert still meet a stored (customer, source, source_ref) - only a writer outside
    ingestion could, since batches hold the ingestion lock - the chunk is redone alert by alert,
    each in its own savepoint."""

    def __init__(self, source, actor):
        self.source, self.actor = source, actor

    def store(self, mapped, results):
        try:
            with transaction.atomic():
                self._store(mapped, results, self._known(mapped), one_by_one=False)
        except IntegrityError:
            self._store(mapped, results, self._known(mapped), one_by_one=True)
        hits = Counter(result.suppression_id for result in results.values()
                       if result.suppression_id and result.status == "created")
        if hits:
            suppressions.record_hits(hits, self.suppressions.now)

    def _store(self, mapped, results, known, one_by_one):
        self.mapped = mapped
        self.grouping = self._grouper()
        self.suppressions = suppressions.Matcher({customer.pk for _, _, customer, _ in mapped})
        planned, rows = [], []
        for record, alert, customer, cut in mapped:
            result = results[record.index] = ItemResult(
                record.index, "created", line=record.line, truncated=[*cut, *alert.truncated], warnings=alert.warnings)
            ref = (customer.pk, alert.source_ref)
            if ref in known:
                result.status, result.duplicate, (result.id, where) = "duplicate", True, known[ref]
            elif one_by_one:
                where = self._create_one(alert, customer, result, known)
            else:
                where, row = self._plan(alert, customer, result)
                rows.append((row, where))
                known[ref] = result.id, where
            planned.append((result, where))
        if rows:
            self.grouping.save_before()
            services.do_create_threats([{**row, **where.fields()} for row, where in rows], self.actor)
            self.grouping.save_after(self.actor)
        for result, where in planned:
            _report_grouping(result, where)

    def _known(self, mapped):
        """{(customer id, source_ref): (threat id, group id)} of the chunk's alerts already stored.
        Keyed by customer: an id another customer used is not a duplicate (ARCHITECTURE, Threat)."""
        customers = {customer.pk for _, _, customer, _ in mapped}
        refs = {alert.source_ref for _, alert, _, _ in mapped}
        rows = Threat.objects.filter(source=self.source, customer_id__in=customers, source_ref__in=refs)
        found = rows.values_list("customer_id", "source_ref", "pk", "group_id")
        return {(customer, ref): (str(pk), group_id) for customer, ref, pk, group_id in found}

    def _grouper(self):
        grouper = grouping.Grouper(self.source, settings.INGEST_GROUP_WINDOW_SECONDS,
                                   settings.INGEST_CAMPAIGN_WINDOW_SECONDS)
        grouper.load([(alert, customer) for _, alert, customer, _ in self.mapped])
        return grouper

    def _plan(self, alert, customer, result):
        """(grouping.Placement, Threat field values but the grouping's) for a new alert."""
        threat_id = uuid.uuid4()
        live = self.suppressions.match(customer.pk, alert.rule[:120], alert.observables)
        placement = Suppressed(threat_id, customer.pk, alert, live, self.suppressions.now) if live else (
            self.grouping.place(alert, customer, threat_id))
        result.id, result.suppression_id = str(threat_id), live.pk if live else None
        return placement, {
            "id": threat_id, "customer": customer, "threat_type": alert.threat_type, "title": alert.title,
            "occurred_at": alert.occurred_at, "observables": alert.observables, "raw": alert.raw,
            "source": alert.source, "source_ref": alert.source_ref, "mitre_hints": alert.mitre_hints,
            "severity_hint": alert.severity_hint, "rule": alert.rule[:120], "signal": alert.signal,
        }

    def _create_one(self, alert, customer, result, known):
        """The careful path: one savepoint per alert; an insert that meets a stored row is a duplicate."""
        placement, row = self._plan(alert, customer, result)
        try:
            with transaction.atomic():
                self.grouping.save_before()
                services.do_create_threats([{**row, **placement.fields()}], self.actor)
                self.grouping.save_after(self.actor)
        except IntegrityError:
            existing = Threat.objects.filter(customer=customer, source=alert.source, source_ref=alert.source_ref)
            found = existing.values_list("pk", "group_id").first()
            if found is None:
                raise
            self.grouping = self._grouper()  # its plan for this alert was rolled back: read again
            result.status, result.duplicate, result.suppression_id = "duplicate", True, None
            result.id, where = str(found[0]), found[1]
        else:
            where = placement
        known[customer.pk, alert.source_ref] = result.id, where
        return where


class Suppressed(grouping.Placement):
    """An alert an active suppression matched (docs/suppressions.md): in no group or campaign (a
    later alert must never ride on an analysis that never happens), closed by rule, not analysed."""

    def __init__(self, threat_id, customer_id, alert, live, now):
        super().__init__(threat_id, customer_id, alert, group=None, head=False, campaign=None)
        self.live, self.now = live, now

    @property
    def analysis_status(self):
        return AnalysisStatus.SUPPRESSED

    def fields(self):
        return {**super().fields(), **suppressions.suppressed_fields(self.live, self.now)}


def _report_grouping(result, where):
    """A result's group (and, for a new alert, its head flag, analysis and campaign) as finally planned."""
    if not isinstance(where, grouping.Placement):
        result.group_id = where  # a stored alert's group id
        return
    result.group_id = where.group.pk if where.group is not None else None
    if not result.duplicate:
        result.group_head, result.analysis_status = where.head, where.analysis_status
        result.campaign_id = where.campaign.pk if where.campaign is not None else None
