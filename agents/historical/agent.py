"""Historical agent: how did analysts resolve similar threats before?

Similar = same customer and threat type, or the same entity (user, host, source/destination IP or
an indicator — hash, domain — at the same customer) within the look-back, or the same
source/destination IP at another customer within the last day. Only
dispositions that a human gave are learned from: closures by a rule or an agent are counted apart
(they would otherwise teach the agents their own verdicts back).
"""

from datetime import timedelta

from django.conf import settings
from django.db import connection

from threats import sql
from threats.choices import ClosedByKind, Disposition
from threats.models import Threat

from .. import signal
from ..base import Agent, AgentResult, field_ref, threat_ref

MAX_ROWS = 100
MAX_OTHER_CUSTOMERS = 50
CROSS_CUSTOMER_WINDOW = timedelta(days=1)
FIELDS = ("id", "customer_id", "threat_type", "status", "disposition", "closed_by_kind")
CROSS_CUSTOMER_FIELDS = ("src_ip", "dst_ip")
CUSTOMER_FIELDS = ("user", "host")
INDICATOR_FIELDS = ("hashes", "domains")
STRONG, WEAK = 1.0, 0.5  # weight of an entity match and of a same-type-only match
KEY_CHARS = 200  # the entity indexes hold the first 200 characters (threats migration 0007)
POINTS = {  # per weighted threat, cap
    Disposition.TRUE_POSITIVE: (5, 15),
    Disposition.FALSE_POSITIVE: (-4, -15),
    Disposition.BENIGN_TRUE_POSITIVE: (-2, -8),
}


def lookback():
    return timedelta(days=getattr(settings, "AGENTS_HISTORY_DAYS", 30))


class HistoricalAgent(Agent):
    kind = "historical"

    def gather(self, threat):
        # Two look-ups (this customer; other customers, over a shorter window), in SQL because they
        # run for every threat (threats/sql.py says why). Each is a union of branches — same type;
        # the same src/dst IP, user or host — and every branch is one index range read newest
        # first and cut at the limit: (customer, type, time), or an entity index on
        # `entity_key(name)` + time (threats migration 0007). So the cost does not grow with how
        # many threats the customer has in the window, on PostgreSQL or on SQLite (which keeps no
        # statistics and would otherwise walk the customer's whole window, evaluating JSON per row).
        since, until = threat.received_at - lookback(), threat.received_at
        mine = [("threat_type = %s", [threat.threat_type])]
        mine += [_same_entity(threat, name) for name in CROSS_CUSTOMER_FIELDS + CUSTOMER_FIELDS if signal.text(threat, name)]
        indicators = _has_indicators(threat)
        if indicators:
            mine = [("", [])]  # list overlap is checked in analyze(): the customer's newest threats
        rows = _similar(threat, since, until, mine, "customer_id = %s", MAX_ROWS, indicators)
        others = [_same_entity(threat, name) for name in CROSS_CUSTOMER_FIELDS if signal.text(threat, name)]
        if others:
            since = max(since, until - CROSS_CUSTOMER_WINDOW)
            rows += _similar(threat, since, until, others, "customer_id <> %s", MAX_OTHER_CUSTOMERS, False)
        return rows

    def gather_many(self, threats):
        # On PostgreSQL a batch's look-ups are one statement (`_similar_for_batch`): the same
        # branches, run per threat by a LATERAL join over the batch's parameters.
        if len(threats) < 2 or connection.vendor != "postgresql":
            return [self.gather(threat) for threat in threats]
        return _similar_for_batch(threats)

    def analyze(self, threat, rows):
        days = lookback().days
        past = [p for p in (_match(threat, row) for row in rows) if p]
        result = AgentResult(summary="", confidence=0.4)
        if not past:
            result.summary = f"No similar threat in the last {days} days: no analyst history to learn from."
            result.find(result.summary, "signal.threat_type", *_entity_refs(threat))
            result.data = {"similar": 0, "labelled": 0, "dispositions": _counts([]), "lookback_days": days}
            return result
        automation = (ClosedByKind.AGENT, ClosedByKind.RULE)
        labelled = [p for p in past if p["disposition"] and p["closed_by_kind"] not in automation]
        automated = [p for p in past if p["disposition"] and p["closed_by_kind"] in automation]
        counts = _counts(labelled)
        result.find(f"{len(past)} similar threats in the last {days} days "
                    f"({sum(1 for p in past if p['weight'] == STRONG)} share an entity).",
                    *[threat_ref(p["id"]) for p in past])
        self._score_dispositions(result, labelled)
        self._score_repeats(result, threat, past)
        if automated:
            result.find(f"{len(automated)} similar threats were closed by automation; not learned from.",
                        *[threat_ref(p["id"]) for p in automated])
        decided = counts["true_positive"] + counts["benign_true_positive"] + counts["false_positive"]
        result.confidence = min(0.95, 0.45 + 0.1 * decided)
        result.data = {
            "similar": len(past), "labelled": len(labelled), "dispositions": counts,
            "fp_share": round(counts["false_positive"] / decided, 3) if decided else None,
            "benign_share": round(counts["benign_true_positive"] / decided, 3) if decided else None,
            "automated_closures": len(automated), "lookback_days": days,
        }  # the ids are cited once, as the first finding's evidence (and in the run's evidence)
        result.summary = (
            f"{len(past)} similar threats in {days} days; analysts closed {len(labelled)}: "
            f"{counts['true_positive']} true positive, {counts['benign_true_positive']} benign true positive, "
            f"{counts['false_positive']} false positive."
        )
        return result

    def _score_dispositions(self, result, labelled):
        for disposition, (each, cap) in POINTS.items():
            matching = [p for p in labelled if p["disposition"] == disposition]
            if not matching:
                continue
            weighted = sum(p["weight"] for p in matching)
            points = max(cap, round(each * weighted)) if cap < 0 else min(cap, round(each * weighted))
            strong = sum(1 for p in matching if p["weight"] == STRONG)
            label = Disposition(disposition).label.lower()
            result.score(points, f"{len(matching)} similar threats closed as {label} ({strong} sharing an entity)",
                         *[threat_ref(p["id"]) for p in matching])

    def _score_repeats(self, result, threat, past):
        # An entity that keeps coming back in threats nobody called benign is a repeat offender.
        live = [p for p in past if p["disposition"] not in (Disposition.FALSE_POSITIVE, Disposition.BENIGN_TRUE_POSITIVE)]
        for name in CROSS_CUSTOMER_FIELDS + CUSTOMER_FIELDS + INDICATOR_FIELDS:
            seen = [p for p in live if name in p["shared"]]
            if seen:
                result.find(f"{name} seen in {len(seen)} earlier threats not closed as benign.", field_ref(name),
                            *[threat_ref(p["id"]) for p in seen])
                result.score(min(12, 4 * len(seen)), f"repeat {name} in {len(seen)} earlier threats", field_ref(name),
                             *[threat_ref(p["id"]) for p in seen])


def entity_key(name):
    """`substr((observables ->> 'NAME'), 1, 200)`: the very expression the `threat_entity_NAME`
    indexes are built on (threats migration 0007), the same SQL on PostgreSQL and SQLite. A
    database uses an expression index only for an identical expression, so keep the two in step."""
    if name not in CROSS_CUSTOMER_FIELDS + CUSTOMER_FIELDS:  # inlined in SQL: only known names
        raise ValueError(f"no entity index on {name!r}")
    return f"substr((observables ->> '{name}'), 1, {KEY_CHARS})"


ROWS = sql.Columns(Threat, FIELDS)
ROWS_WITH_OBSERVABLES = sql.Columns(Threat, (*FIELDS, "observables"))


def _similar(threat, since, until, branches, customer, limit, observables):
    """The newest `limit` threats of the window, of `customer` (SQL on customer_id), that match any
    of `branches` ((SQL condition, params) pairs): the union of each branch's newest `limit` ids.

    Each row says which of this threat's entities it shares (`same`, compared in SQL); the
    observables themselves are read only when list overlaps (indicators) are to be checked."""
    table, columns = Threat._meta.db_table, ROWS_WITH_OBSERVABLES if observables else ROWS
    window = [sql.param(Threat, "received_at", since), sql.param(Threat, "received_at", until),
              sql.param(Threat, "id", threat.pk), threat.customer_id]
    parts, params = [], []
    for index, (condition, values) in enumerate(branches):
        parts.append(f"SELECT id FROM (SELECT id FROM {table} WHERE {condition + ' AND ' if condition else ''}"
                     f"received_at >= %s AND received_at <= %s AND id <> %s AND {customer}"
                     f" ORDER BY received_at DESC LIMIT {limit}) AS branch{index}")
        params += [*values, *window]
    entities = [name for name in CROSS_CUSTOMER_FIELDS + CUSTOMER_FIELDS if signal.text(threat, name)]
    flags = "".join(f", CASE WHEN (observables ->> '{name}') = %s THEN 1 ELSE 0 END" for name in entities)
    rows = columns.rows(f"SELECT {columns}{flags} FROM {table} WHERE id IN ({' UNION '.join(parts)})"
                        f" ORDER BY received_at DESC LIMIT {limit}",
                        [*(signal.text(threat, name) for name in entities), *params])
    width = len(columns.attnames)
    return [{**dict(zip(columns.attnames, row)), "same": [name for name, flag in zip(entities, row[width:]) if flag]}
            for row in rows]


def _similar_for_batch(threats):
    """`gather` for each of `threats`, in order, in ONE statement (PostgreSQL): a LATERAL join runs
    both look-ups of `gather` for every threat, over the batch's parameters (unnest() of one binary
    array per column, like threats/sql.py's row sources: one prepared plan whatever the batch). A
    branch whose value a threat lacks (NULL) or does not use (the indicators switch) reads nothing.
    Same rows as each threat's own look-ups (tests/test_agents.py compares them), one round trip
    for the batch instead of two a threat."""
    table, columns, entities = Threat._meta.db_table, ROWS_WITH_OBSERVABLES, CROSS_CUSTOMER_FIELDS + CUSTOMER_FIELDS
    moment = "timestamp with time zone"
    types = {"k": "integer", "id": "uuid", "customer_id": Threat._meta.get_field("customer").db_type(connection),
             "threat_type": "text", "since": moment, "since_others": moment, "until": moment, "indicators": "boolean",
             **{f"{name}_value": "text" for name in entities}}  # v's columns
    rows, indicators = [], [_has_indicators(threat) for threat in threats]
    for index, threat in enumerate(threats):
        since, until = threat.received_at - lookback(), threat.received_at
        rows.append({"k": index, "id": sql.param(Threat, "id", threat.pk), "customer_id": threat.customer_id,
                     "threat_type": threat.threat_type, "since": since,
                     "since_others": max(since, until - CROSS_CUSTOMER_WINDOW), "until": until,
                     "indicators": indicators[index], **{f"{name}_value": signal.text(threat, name) or None
                                                         for name in entities}})

    def branch(condition, others, limit):
        where = (f"{condition} AND received_at >= v.{'since_others' if others else 'since'} AND received_at <= v.until"
                 f" AND id <> v.id AND customer_id {'<>' if others else '='} v.customer_id")
        return f"SELECT id FROM (SELECT id FROM {table} WHERE {where} ORDER BY received_at DESC LIMIT {limit}) AS b"

    def same(name):  # `_same_entity`, with the value from v
        return f"{entity_key(name)} = substr(v.{name}_value, 1, {KEY_CHARS}) AND (observables ->> '{name}') = v.{name}_value"

    def look_up(others, branches, limit):  # `_similar`
        return (f"(SELECT {int(others)} AS others, received_at, {columns} FROM {table} WHERE id IN"
                f" ({' UNION '.join(branches)}) ORDER BY received_at DESC LIMIT {limit})")

    mine = look_up(False, [branch("NOT v.indicators AND threat_type = v.threat_type", False, MAX_ROWS),
                           branch("v.indicators", False, MAX_ROWS),
                           *(branch(f"NOT v.indicators AND {same(name)}", False, MAX_ROWS) for name in entities)], MAX_ROWS)
    others = look_up(True, [branch(same(name), True, MAX_OTHER_CUSTOMERS) for name in CROSS_CUSTOMER_FIELDS],
                     MAX_OTHER_CUSTOMERS)
    selected = ", ".join("CASE WHEN v.indicators AND m.others = 0 THEN m.observables END" if name == "observables"
                         else f"m.{name}" for name in columns.attnames)  # observables only for an indicator check
    flags = "".join(f", CASE WHEN (m.observables ->> '{name}') = v.{name}_value THEN 1 ELSE 0 END" for name in entities)
    arrays = ", ".join(f"CAST(%b AS {kind}[])" for kind in types.values())
    found, width = [[] for _threat in threats], len(columns.attnames)
    for row in columns.rows(f"SELECT {selected}{flags}, v.k, m.others FROM unnest({arrays}) AS v({', '.join(types)})"
                            f" CROSS JOIN LATERAL ({mine} UNION ALL {others}) AS m ORDER BY v.k, m.others, m.received_at DESC",
                            [[row[name] for row in rows] for name in types]):
        record, index, others = dict(zip(columns.attnames, row)), row[-2], row[-1]
        if others or not indicators[index]:
            del record["observables"]  # as `gather` reads
        record["same"] = [name for name, flag in zip(entities, row[width:-2]) if flag]
        found[index].append(record)
    return found


def _same_entity(threat, name):
    """"Observable `name` equals this threat's", as a branch: the indexed prefix narrows, the whole text decides."""
    value = signal.text(threat, name)
    return f"{entity_key(name)} = %s AND (observables ->> '{name}') = %s", [value[:KEY_CHARS], value]


def _has_indicators(threat):
    return any(signal.values(threat, name) for name in INDICATOR_FIELDS)


def _match(threat, row):
    """Which entities a past threat shares with this one; None if it is not similar after all."""
    same_customer = row["customer_id"] == threat.customer_id
    shared = [name for name in row["same"] if same_customer or name in CROSS_CUSTOMER_FIELDS]
    observables = row.get("observables") if isinstance(row.get("observables"), dict) else {}
    for name in INDICATOR_FIELDS if same_customer else ():
        theirs = observables.get(name) if isinstance(observables.get(name), list) else []
        if set(signal.values(threat, name)) & {v for v in theirs if isinstance(v, str)}:
            shared.append(name)
    same_type = same_customer and row["threat_type"] == threat.threat_type
    if not shared and not same_type:
        return None
    return {**row, "shared": shared, "weight": STRONG if shared else WEAK}


def _counts(rows):
    return {d: sum(1 for p in rows if p["disposition"] == d) for d in Disposition.values}


def _entity_refs(threat):
    names = CROSS_CUSTOMER_FIELDS + CUSTOMER_FIELDS + INDICATOR_FIELDS
    return [field_ref(name) for name in names if signal.values(threat, name)]
