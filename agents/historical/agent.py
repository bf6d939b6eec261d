"""Historical agent: how did this customer's analysts resolve similar threats before?

Similar = this customer's threats, within the look-back, of the same type, with the same rule
(`Threat.rule`), or sharing an entity (src/dst IP, user, host, or an indicator: hash, domain).
Only this customer's closures teach (issue 18): another customer's threats are never read, cited
or counted here. The one exception is opt-in (AGENTS_SHARED_REPUTATION): how many OTHER customers
confirmed one of this threat's indicators as malicious, as a bare count of at least two
customers, which can only add risk.

What an analyst's closure teaches is weighted (docs/agents.md):
- by how exactly it matches: same rule and entity 1, same entity 0.75, same rule 0.4, same type 0.2;
- by recency: the weight halves every HALF_LIFE_DAYS (environments change: hosts are re-purposed,
  addresses re-assigned);
- by analyst: one analyst's closures together weigh at most ANALYST_CAP, so several analysts who
  agree count more than one analyst's many closures. Closures with no recorded analyst (closed
  before `Threat.closed_by` existed, or the user was deleted) count together as one analyst.
Not learned from: closures by a rule or an agent (they would teach the agents their own verdicts
back), and a closure burst (`closure_burst`): a sudden run of false-positive/benign closures on
one of this threat's entities, which is how history is poisoned, so it goes to a human instead.
"""

import json
import re
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.db import connection

from threats import sql
from threats.pivots import ENTITY_FIELDS, KEY_CHARS, entity_key  # the entity indexes' expression (migration 0007)
from threats.choices import ClosedByKind, Disposition
from threats.models import Threat

from .. import signal_model
from ..base import Agent, AgentResult, counted, field_ref, read_for_batch, threat_ref

MAX_ROWS = 100
FIELDS = ("id", "customer_id", "disposition", "closed_by_kind", "closed_by", "disposition_reason")
# Then, computed in SQL: `received` and `closed` (received_at and closed_at as epoch seconds: as
# datetimes, the driver's text parsing of two per row doubled a batch's read on PostgreSQL,
# measured) and what the row shares with this threat as ONE integer of MATCH_BITS rather than a
# column per test (every column costs the driver a conversion per row: 2,000 rows for a batch of 20).
TIMES = ("received", "closed")
MATCH_BITS = {"src_ip": 1, "dst_ip": 2, "user": 4, "host": 8, "rule": 16, "type": 32}
INDICATOR_FIELDS = ("hashes", "domains")
AUTOMATION = (ClosedByKind.AGENT, ClosedByKind.RULE)
# A closure reason that orders future handling instead of judging the alert closed ("do not escalate",
# "close without review", "for any user/process"): an analyst's judgement is about one alert.
STANDING_ORDER = re.compile(r"\b(do\s+not|don't|never)\s+(escalate|review|investigate|alert)\b|"
                            r"\bclose\s+(it\s+|them\s+)?without\s+(review|investigation|looking)\b|"
                            r"\b(always|automatically)\s+close\b|\bfor\s+any\s+(user|process|host|source)\b|"
                            r"\ball\s+future\b|\bauto-?clos(e|ed|ing)\b|\bignore\s+(all\s+|any\s+)?(future|further|subsequent)\b|"
                            r"\bgoing\s+forward\b|\bfrom\s+now\s+on\b", re.I)
DISMISSED = (Disposition.FALSE_POSITIVE, Disposition.BENIGN_TRUE_POSITIVE)

# How much one closure teaches (docs/agents.md, docs/verdicts.md).
MATCH = {"rule_and_entity": 1.0, "entity": 0.75, "rule": 0.4, "type": 0.2}
HALF_LIFE_DAYS = 14
ANALYST_CAP = 1.0
POINTS = {  # per unit of weight, cap
    Disposition.TRUE_POSITIVE: (10, 15),
    Disposition.FALSE_POSITIVE: (-8, -15),
    Disposition.BENIGN_TRUE_POSITIVE: (-4, -8),
}

# closure_burst: at least BURST_CLOSURES false-positive/benign closures of threats sharing one of
# this threat's entities, closed within BURST_SPAN of each other, in the last BURST_RECENT. Triage
# of one entity's alerts is normally spread over the shifts that see them; three dismissals inside
# half an hour, shortly before a new alert on the same entity, is what poisoning the history looks
# like (the six closures did it), whoever closed them.
BURST_CLOSURES = 3
BURST_SPAN = timedelta(minutes=30)
BURST_RECENT = timedelta(days=7)

# Shared reputation (AGENTS_SHARED_REPUTATION): indicators any customer may share with another.
CONFIRMED_ATTACKER_DAYS = 7  # an address analysts confirmed malicious is still the attacker's a week on
REPUTATION_FIELDS = ("src_ip", "dst_ip", "hashes", "domains")
REPUTATION_MIN_CUSTOMERS = 2  # fewer would tell a customer what one other customer saw
REPUTATION_ROWS = 2_000  # the newest confirmations read (other customers', within the look-back)
REPUTATION_POINTS = 8


def lookback():
    return timedelta(days=settings.AGENTS_HISTORY_DAYS)


class Similar(list):
    """What `gather` read for one threat: its similar past threats (the list) and, with shared
    reputation on, other customers' confirmations of its indicators (counts only, else None)."""

    reputation = None


class HistoricalAgent(Agent):
    kind = "historical"

    def gather(self, threat):
        return self.gather_many([threat])[0]

    def gather_many(self, threats):
        # In SQL because it runs for every threat (threats/sql.py says why). A threat's look-up is
        # one statement, a union of branches — same type, same rule, the same src/dst IP, user or
        # host — each one index range read newest first and cut at the limit: (customer, type,
        # time), (customer, rule, time), or an entity index on `entity_key(name)` + time (threats
        # migration 0007). So the cost does not grow with how many threats the customer has in
        # the window. On PostgreSQL a batch's look-ups are one statement (`_similar_for_batch`).
        if len(threats) > 1 and connection.vendor == "postgresql":
            found = [Similar(rows) for rows in _similar_for_batch(threats)]
        else:
            found = [Similar(_similar(threat)) for threat in threats]
        if settings.AGENTS_SHARED_REPUTATION:
            confirmed = read_for_batch(threats, _confirmations, _confirmed_for, REPUTATION_ROWS)
            for threat, similar, rows in zip(threats, found, confirmed, strict=True):
                similar.reputation = _reputation(threat, rows)
        return found

    def analyze(self, threat, rows):
        days = lookback().days
        past = [p for p in (_match(threat, row) for row in rows) if p]
        human = [p for p in past if p["disposition"] and p["closed_by_kind"] not in AUTOMATION]
        automated = [p for p in past if p["disposition"] and p["closed_by_kind"] in AUTOMATION]
        burst = closure_burst(threat, human)
        orders = [p for p in human if STANDING_ORDER.search(str(p.get("disposition_reason") or "")[:2_000])]
        labelled = [p for p in human if (not burst or str(p["id"]) not in burst["threats"]) and p not in orders]
        learned = _weigh(threat, [p for p in labelled if p["disposition"] in POINTS])
        result = AgentResult(summary=_summary(past, labelled, burst, days),
                             confidence=min(0.95, 0.45 + 0.1 * len(learned)) if past else 0.4)
        if past:
            result.find(f"{counted(len(past), 'similar threat')} of this customer in the last {days} days "
                        f"({sum(1 for p in past if p['shared'])} share an entity).", *[threat_ref(p["id"]) for p in past])
        else:
            result.find(result.summary, "signal.threat_type", *_entity_refs(threat))
        self._score_dispositions(result, learned)
        self._score_repeats(result, past)
        if automated:
            result.find(f"{len(automated)} similar threats were closed by automation; not learned from.",
                        *[threat_ref(p["id"]) for p in automated])
        if burst:
            result.find(_burst_text(burst), field_ref(burst["entity"]), *map(threat_ref, burst["threats"]))
        if orders:
            result.find(f"{counted(len(orders), 'closure')} of similar threats give a standing order ('do not escalate', "
                        "'close without review') instead of judging that alert — how history is poisoned; not "
                        "learned from, a human should confirm them.", *[threat_ref(p["id"]) for p in orders])
        reputation = _score_reputation(result, getattr(rows, "reputation", None), days)
        result.data = {"similar": len(past), "labelled": len(labelled), "dispositions": _counts(labelled),
                       **_weights(threat, learned), "automated_closures": len(automated), "closure_burst": burst,
                       "standing_orders": [str(p["id"]) for p in orders],
                       "reputation": reputation, "lookback_days": days, "half_life_days": HALF_LIFE_DAYS,
                       "confirmed_attacker": _confirmed_attacker(threat, labelled)}
        return result  # the similar threats' ids are cited once, as the first finding's evidence

    def _score_dispositions(self, result, learned):
        for disposition, (each, cap) in POINTS.items():
            matching = [p for p in learned if p["disposition"] == disposition]
            if not matching:
                continue
            weight = sum(p["weight"] for p in matching)
            points = max(cap, round(each * weight)) if cap < 0 else min(cap, round(each * weight))
            analysts = len({_analyst(p) for p in matching})
            label = Disposition(disposition).label.lower()
            result.score(points, f"{counted(len(matching), 'similar threat')} closed as {label} by {analysts} analyst(s), "
                         f"weight {weight:.2f} (recency, match, analyst)", *[threat_ref(p["id"]) for p in matching])

    def _score_repeats(self, result, past):
        # An entity that keeps coming back in threats nobody called benign is a repeat offender.
        live = [p for p in past if p["disposition"] not in DISMISSED]
        for name in ENTITY_FIELDS + INDICATOR_FIELDS:
            seen = [p for p in live if name in p["shared"]]
            if seen:
                result.find(f"{name} seen in {counted(len(seen), 'earlier threat')} not closed as benign.", field_ref(name),
                            *[threat_ref(p["id"]) for p in seen])
                result.score(min(12, 4 * len(seen)), f"repeat {name} in {counted(len(seen), 'earlier threat')}", field_ref(name),
                             *[threat_ref(p["id"]) for p in seen])


# --- Weighing what analysts decided ---------------------------------------------------------------


def _match(threat, row):
    """How exactly a past threat matches this one (`match`, its weight `match_weight`, the entities
    it shares); None if it is not similar after all, or not this customer's (never learned from)."""
    if row["customer_id"] != threat.customer_id:
        return None
    shared = list(row["same"])
    observables = row.get("observables") if isinstance(row.get("observables"), dict) else {}
    for name in INDICATOR_FIELDS:
        theirs = observables.get(name) if isinstance(observables.get(name), list) else []
        if set(signal_model.values(threat, name)) & {v for v in theirs if isinstance(v, str)}:
            shared.append(name)
    same_rule = row["same_rule"]
    if shared:
        match = "rule_and_entity" if same_rule else "entity"
    elif same_rule or row["same_type"]:
        match = "rule" if same_rule else "type"
    else:
        return None
    return {**row, "shared": shared, "match": match, "match_weight": MATCH[match]}


def _weigh(threat, closures):
    """Each closure's `weight`: match × recency, then every analyst's closures scaled down together
    so that they weigh at most ANALYST_CAP (one analyst's many closures count as one opinion)."""
    analysts = {}
    for p in closures:
        age_days = _age_days(threat, p)
        p["weight"] = p["match_weight"] * 0.5 ** (age_days / HALF_LIFE_DAYS)
        analysts.setdefault(_analyst(p), []).append(p)
    for mine in analysts.values():
        total = sum(p["weight"] for p in mine)
        for p in mine:
            p["weight"] *= min(1.0, ANALYST_CAP / total) if total else 1.0
    return closures


def _confirmed_attacker(threat, closures):
    """The threats an analyst confirmed as true positives in the last CONFIRMED_ATTACKER_DAYS that
    came from this threat's public source address: the attacker is back (docs/verdicts.md)."""
    address = signal_model.ip(signal_model.text(threat, "src_ip"))
    if address is None or signal_model.is_internal(address):
        return []
    return [str(p["id"]) for p in closures if p["disposition"] == Disposition.TRUE_POSITIVE
            and "src_ip" in p["shared"] and _age_days(threat, p) <= CONFIRMED_ATTACKER_DAYS]


def _learned(threat, p):
    """What one closure taught, for the record (its analyst is counted, never named)."""
    return {"threat": str(p["id"]), "disposition": p["disposition"], "match": p["match"],
            "age_days": round(_age_days(threat, p), 2), "weight": round(p["weight"], 3)}


def _age_days(threat, p):
    return max(0.0, threat.received_at.timestamp() - p["received"]) / 86_400


def _weights(threat, learned):
    """The weighted sums the false-positive analyzer reads, and every closure's share of them."""
    weighted = _weighted(learned)
    evidence = sum(weighted.values())
    entity = sum(p["weight"] for p in learned if p["match"] in ("rule_and_entity", "entity"))
    return {"weighted": weighted, "evidence_weight": round(evidence, 3), "entity_weight": round(entity, 3),
            "analysts": len({_analyst(p) for p in learned}),
            "fp_share": _share(weighted, Disposition.FALSE_POSITIVE, evidence),
            "benign_share": _share(weighted, Disposition.BENIGN_TRUE_POSITIVE, evidence),
            "learned": [_learned(threat, p) for p in learned]}


def _summary(past, labelled, burst, days):
    if not past:
        return f"No similar threat in the last {days} days: no analyst history to learn from."
    counts = _counts(labelled)
    return (f"{counted(len(past), 'similar threat')} in {days} days; analysts closed {len(labelled)}: "
            f"{counts['true_positive']} true positive, {counts['benign_true_positive']} benign true positive, "
            f"{counts['false_positive']} false positive." + (" A closure burst is not learned from." if burst else ""))


def _analyst(closure):
    return closure["closed_by_id"]  # None: closures with no recorded analyst, together


def _weighted(learned):
    return {d: round(sum(p["weight"] for p in learned if p["disposition"] == d), 3) for d in POINTS}


def _share(weighted, disposition, evidence):
    return round(weighted[disposition] / evidence, 3) if evidence else None


def _counts(rows):
    return {d: sum(1 for p in rows if p["disposition"] == d) for d in Disposition.values}


# --- closure_burst ----------------------------------------------------------------------------------


def closure_burst(threat, closures):
    """The sudden runs of false-positive/benign closures on this threat's entities (module
    docstring), or None: the entity with the most closures in such runs, how many, the span from
    the first to the last of them, by how many analysts, and the threats (this customer's; never
    learned from). Every run on every entity is left out of learning, not only the reported one."""
    since = (threat.received_at - BURST_RECENT).timestamp()
    recent = [p for p in closures if p["disposition"] in DISMISSED and p["closed"] is not None and p["closed"] >= since]
    found = {}
    for name in ENTITY_FIELDS + INDICATOR_FIELDS:
        run = _in_runs(sorted((p for p in recent if name in p["shared"]), key=lambda p: p["closed"]))
        if run:
            found[name] = run
    if not found:
        return None
    burst = [p for run in found.values() for p in run]
    entity, run = max(found.items(), key=lambda item: len(item[1]))
    span = (run[-1]["closed"] - run[0]["closed"]) / 60
    return {"what": "false-positive/benign closures in a sudden run", "entity": entity, "closures": len(run),
            "span_minutes": round(span, 1), "analysts": len({_analyst(p) for p in run}),
            "first_closed_at": _moment(run[0]["closed"]), "last_closed_at": _moment(run[-1]["closed"]),
            "threats": list(dict.fromkeys(str(p["id"]) for p in burst))}


def _in_runs(closures):
    """The closures (sorted by closing time) that fall in a window of BURST_SPAN holding at least BURST_CLOSURES."""
    marked, end, span = set(), 0, BURST_SPAN.total_seconds()
    for start, first in enumerate(closures):
        end = max(end, start)
        while end < len(closures) and closures[end]["closed"] - first["closed"] <= span:
            end += 1
        if end - start >= BURST_CLOSURES:
            marked.update(range(start, end))
    return [closures[index] for index in sorted(marked)]


def _moment(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def _burst_text(burst):
    return (f"Closure burst: {burst['closures']} false-positive/benign closures of threats with this "
            f"{burst['entity']} within {burst['span_minutes']:g} min by {burst['analysts']} analyst(s) — a sudden run "
            f"like this is how history is poisoned; not learned from, a human should confirm them.")


def review_reason(burst):
    """The verdict's review reason for a closure burst (docs/verdicts.md `closure_burst`)."""
    return (f"closure_burst: {burst['closures']} false-positive/benign closures on this {burst['entity']} within "
            f"{burst['span_minutes']:g} min by {burst['analysts']} analyst(s); not learned from")


# --- Shared reputation (AGENTS_SHARED_REPUTATION) --------------------------------------------------


CONFIRMED = sql.Columns(Threat, ("customer",))  # then closed_at (epoch seconds) and the indicators, as text


def _confirmations(threats, limit):
    """Analysts' true-positive closures within the threats' look-back windows, newest first, at most
    `limit`: (customer id, closed_at, the indicators) — never ids, titles or anything else. A
    batch of one customer leaves that customer's out in SQL; `_confirmed_for` decides per threat.
    The constants are in the SQL text so that the partial index `threat_confirmed_newest` serves."""
    since = min(threat.received_at for threat in threats) - lookback()
    until = max(threat.received_at for threat in threats)
    where = (f"disposition = '{Disposition.TRUE_POSITIVE}' AND closed_by_kind = '{ClosedByKind.HUMAN}'"
             " AND closed_at >= %s AND closed_at <= %s")
    params = [sql.param(Threat, "closed_at", since), sql.param(Threat, "closed_at", until)]
    customers = {threat.customer_id for threat in threats}
    if len(customers) == 1:
        where, params = where + " AND customer_id <> %s", [*params, *customers]
    indicators = ", ".join(f"observables {'->>' if name in ENTITY_FIELDS else '->'} '{name}'"
                           for name in REPUTATION_FIELDS)  # a list comes back as JSON text
    rows = CONFIRMED.rows(f"SELECT {CONFIRMED}, {epoch('closed_at')}, {indicators} FROM {Threat._meta.db_table}"
                          f" WHERE {where} ORDER BY closed_at DESC LIMIT {int(limit)}", params)
    return [{"customer_id": row[0], "closed": row[1],
             **{name: _listed(value) for name, value in zip(REPUTATION_FIELDS, row[2:], strict=True)}} for row in rows]


def _listed(value):
    """An indicator value as read from SQL (text, or JSON text of a list) as a list of strings."""
    if isinstance(value, str) and value[:1] == "[":
        try:
            value = json.loads(value)
        except ValueError:
            return []
    items = value if isinstance(value, list) else [value]
    return [item[:signal_model.MAX_TEXT] for item in items[:50] if isinstance(item, str) and item]


def _confirmed_for(row, threat):
    """Whether a confirmation counts for this threat: another customer's, within its window."""
    until = threat.received_at.timestamp()
    return row["customer_id"] != threat.customer_id and until - lookback().total_seconds() <= row["closed"] <= until


def _reputation(threat, rows):
    """[{indicator, value, customers}] for this threat's indicators that at least
    REPUTATION_MIN_CUSTOMERS other customers confirmed: counts leave here, customer ids do not."""
    mine = {name: set(signal_model.values(threat, name)) for name in REPUTATION_FIELDS}
    customers = {}
    for row in rows:
        for name in REPUTATION_FIELDS:
            for value in mine[name].intersection(row[name]):
                customers.setdefault((name, value), set()).add(row["customer_id"])
    return [{"indicator": name, "value": value[:200], "customers": len(ids)}
            for (name, value), ids in sorted(customers.items()) if len(ids) >= REPUTATION_MIN_CUSTOMERS]


def _score_reputation(result, reputation, days):
    """Findings and (once) risk for the indicators other customers confirmed; None when it is off."""
    if reputation is None:
        return None
    for item in reputation:
        result.find(f"{item['customers']} other customers confirmed this indicator as malicious in the last {days} "
                    f"days ({item['indicator']} {item['value']}).", field_ref(item["indicator"]))
    if reputation:
        top = max(item["customers"] for item in reputation)
        result.score(REPUTATION_POINTS, f"{top} other customers confirmed this indicator as malicious",
                     *dict.fromkeys(field_ref(item["indicator"]) for item in reputation))
    return {"indicators": [{"indicator": i["indicator"], "customers": i["customers"]} for i in reputation],
            "customers": max((i["customers"] for i in reputation), default=0)}


# --- The look-ups -------------------------------------------------------------------------------------


def epoch(column):
    """SQL: a timestamp column as epoch seconds (a float; NULL stays NULL), on PostgreSQL and SQLite
    (which stores UTC text that julianday() reads)."""
    if connection.vendor == "postgresql":
        return f"CAST(EXTRACT(EPOCH FROM {column}) AS double precision)"
    return f"((julianday({column}) - 2440587.5) * 86400.0)"


ROWS = sql.Columns(Threat, FIELDS)
ROWS_WITH_OBSERVABLES = sql.Columns(Threat, (*FIELDS, "observables"))


def _branches(threat):
    """The look-up's branches, (SQL condition, params): with indicators (lists, no index), the
    customer's newest threats, whose overlap `_match` checks."""
    if _has_indicators(threat):
        return [("", [])]
    branches = [("threat_type = %s", [threat.threat_type])]
    if threat.rule:
        branches.append(("rule = %s", [threat.rule]))
    return branches + [_same_entity(threat, name) for name in ENTITY_FIELDS if signal_model.text(threat, name)]


def _similar(threat):
    """This customer's newest MAX_ROWS threats of the window that match any of `_branches`: the
    union of each branch's newest MAX_ROWS ids.

    Each row says which of this threat's entities it shares (`same`, compared in SQL); the
    observables themselves are read only when list overlaps (indicators) are to be checked."""
    table = Threat._meta.db_table
    columns = ROWS_WITH_OBSERVABLES if _has_indicators(threat) else ROWS
    window = [sql.param(Threat, "received_at", threat.received_at - lookback()),
              sql.param(Threat, "received_at", threat.received_at), sql.param(Threat, "id", threat.pk),
              threat.customer_id]
    parts, params = [], []
    for index, (condition, values) in enumerate(_branches(threat)):
        parts.append(f"SELECT id FROM (SELECT id FROM {table} WHERE {condition + ' AND ' if condition else ''}"
                     f"received_at >= %s AND received_at <= %s AND id <> %s AND customer_id = %s"
                     f" ORDER BY received_at DESC LIMIT {MAX_ROWS}) AS branch{index}")
        params += [*values, *window]
    tests = [(f"(observables ->> '{name}') = %s", name, signal_model.text(threat, name))
             for name in ENTITY_FIELDS if signal_model.text(threat, name)]
    tests += [("rule = %s", "rule", threat.rule)] if threat.rule else []
    tests += [("threat_type = %s", "type", threat.threat_type)]
    times = ", ".join(epoch(f"{name}_at") for name in TIMES)
    rows = columns.rows(f"SELECT {columns}, {times}, {_bits((test, name) for test, name, _value in tests)} FROM {table}"
                        f" WHERE id IN ({' UNION '.join(parts)}) ORDER BY received_at DESC LIMIT {MAX_ROWS}",
                        [*(value for _test, _name, value in tests), *params])
    return [_row(columns, row) for row in rows]


def _bits(tests):
    """SQL: the sum of MATCH_BITS[name] over the (SQL test, name) pairs that hold."""
    return " + ".join(f"CASE WHEN {test} THEN {MATCH_BITS[name]} ELSE 0 END" for test, name in tests)


def _row(columns, row):
    """A look-up row as a dict: the columns, `received`/`closed` (epoch seconds), the entities it
    shares with this threat (`same`) and whether it has its rule and its type."""
    width = len(columns.attnames)
    received, closed, bits = row[width:width + 3]
    return {**dict(zip(columns.attnames, row)), "received": received, "closed": closed,
            "same": [name for name in ENTITY_FIELDS if bits & MATCH_BITS[name]],
            "same_rule": bool(bits & MATCH_BITS["rule"]), "same_type": bool(bits & MATCH_BITS["type"])}


def _similar_for_batch(threats):
    """`_similar` for each of `threats`, in order, in ONE statement (PostgreSQL): a LATERAL join
    runs the look-up for every threat, over the batch's parameters (unnest() of one binary array
    per column, like threats/sql.py's row sources: one prepared plan whatever the batch). A branch
    whose value a threat lacks (NULL) or does not use (the indicators switch) reads nothing. Same
    rows as each threat's own look-up (tests/test_agents.py compares them), one round trip for the
    batch instead of one a threat."""
    table, columns, entities = Threat._meta.db_table, ROWS_WITH_OBSERVABLES, ENTITY_FIELDS
    moment = "timestamp with time zone"
    types = {"k": "integer", "id": "uuid", "customer_id": Threat._meta.get_field("customer").db_type(connection),
             "threat_type": "text", "rule": "text", "since": moment, "until": moment, "indicators": "boolean",
             **{f"{name}_value": "text" for name in entities}}  # v's columns
    rows, indicators = [], [_has_indicators(threat) for threat in threats]
    for index, threat in enumerate(threats):
        rows.append({"k": index, "id": sql.param(Threat, "id", threat.pk), "customer_id": threat.customer_id,
                     "threat_type": threat.threat_type, "rule": threat.rule or None,
                     "since": threat.received_at - lookback(), "until": threat.received_at,
                     "indicators": indicators[index], **{f"{name}_value": signal_model.text(threat, name) or None
                                                         for name in entities}})

    def branch(condition):
        where = (f"{condition} AND received_at >= v.since AND received_at <= v.until AND id <> v.id"
                 f" AND customer_id = v.customer_id")
        return f"SELECT id FROM (SELECT id FROM {table} WHERE {where} ORDER BY received_at DESC LIMIT {MAX_ROWS}) AS b"

    def same(name):  # `_same_entity`, with the value from v
        return f"{entity_key(name)} = substr(v.{name}_value, 1, {KEY_CHARS}) AND (observables ->> '{name}') = v.{name}_value"

    branches = [branch("NOT v.indicators AND threat_type = v.threat_type"), branch("NOT v.indicators AND rule = v.rule"),
                branch("v.indicators"), *(branch(f"NOT v.indicators AND {same(name)}") for name in entities)]
    look_up = (f"(SELECT {columns}, received_at, closed_at, rule, threat_type FROM {table} WHERE id IN"
               f" ({' UNION '.join(branches)}) ORDER BY received_at DESC LIMIT {MAX_ROWS})")
    selected = ", ".join("CASE WHEN v.indicators THEN m.observables END" if name == "observables"
                         else f"m.{name}" for name in columns.attnames)  # observables only for an indicator check
    times = ", ".join(epoch(f"m.{name}_at") for name in TIMES)
    bits = _bits([*((f"(m.observables ->> '{name}') = v.{name}_value", name) for name in entities),
                  ("m.rule = v.rule", "rule"), ("m.threat_type = v.threat_type", "type")])
    arrays = ", ".join(f"CAST(%b AS {kind}[])" for kind in types.values())
    found = [[] for _threat in threats]
    for row in columns.rows(f"SELECT {selected}, {times}, {bits}, v.k FROM unnest({arrays}) AS v({', '.join(types)})"
                            f" CROSS JOIN LATERAL {look_up} AS m ORDER BY v.k, m.received_at DESC",
                            [[row[name] for row in rows] for name in types]):
        record, index = _row(columns, row), row[-1]
        if not indicators[index]:
            del record["observables"]  # as `_similar` reads
        found[index].append(record)
    return found


def _same_entity(threat, name):
    """"Observable `name` equals this threat's", as a branch: the indexed prefix narrows, the whole text decides."""
    value = signal_model.text(threat, name)
    return f"{entity_key(name)} = %s AND (observables ->> '{name}') = %s", [value[:KEY_CHARS], value]


def _has_indicators(threat):
    return any(signal_model.values(threat, name) for name in INDICATOR_FIELDS)


def _entity_refs(threat):
    return [field_ref(name) for name in ENTITY_FIELDS + INDICATOR_FIELDS if signal_model.values(threat, name)]
