"""Pivots: the threats that share an observable with the one at hand (issue 23 item 2).

Analysts pivot on an address, a user, a host, a file hash, a domain or the source's rule: "every
threat with this IP". Each pivot is an exact match on one stored value, and each is served by an
index on PostgreSQL, so a pivot stays fast at a million threats:
- ip (src_ip or dst_ip), user, host: the entity expression indexes of migration 0007, which the
  historical agent reads too. A database uses an expression index only for the same expression, so
  `entity_key` below is the one place that spells it for both.
- hash, domain (lists in the observables): GIN expression indexes (migration 0016).
- rule: a B-tree on (rule, received_at) (migration 0016).
SQLite runs the same conditions without those indexes.

The text search `q` matches every pivot the term can be (an address only as ip, a hex digest only
as hash) besides the title, summary and alert id, so a search for an address finds its threats.
"""

import ipaddress
import json
import re
from functools import reduce
from operator import or_

from django.db import connection
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

from .errors import InvalidInput

TABLE = "threats_threat"
ENTITY_FIELDS = ("src_ip", "dst_ip", "user", "host")  # each with an expression index (migration 0007)
LIST_FIELDS = ("hashes", "domains")  # each with a GIN index on PostgreSQL (migration 0016)
FOLDED = ("domains",)  # compared lower-cased
KEY_CHARS = 200  # the entity indexes hold the first 200 characters (migration 0007)
MAX_VALUE = 200  # a longer value is no observable any importer keeps
PIVOTS = {"ip": ("src_ip", "dst_ip"), "user": ("user",), "host": ("host",), "hash": ("hashes",),
          "domain": ("domains",), "rule": ()}
OBSERVABLE_PIVOT = {field: kind for kind, fields in PIVOTS.items() for field in fields}
HEX_DIGEST = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{128})$")
# How importers write a rule (threats/importers): only such a term is looked up as a rule, which
# also keeps a search for a word off the rule index (a few hundred rules: the planner would expect
# thousands of matches for any word and read the whole table newest first to find none).
RULE_REF = re.compile(r"^(rule|sid):\S")
SUMMARY_VALUES = 10  # per pivot in a threat summary (what the list page matches live events with)


def entity_key(name):
    """`substr((observables ->> 'NAME'), 1, 200)`: the very expression the `threat_entity_NAME`
    indexes are built on (migration 0007), the same SQL on PostgreSQL and SQLite."""
    if name not in ENTITY_FIELDS:  # inlined in SQL: only known names
        raise ValueError(f"no entity index on {name!r}")
    return f"substr((observables ->> '{name}'), 1, {KEY_CHARS})"


def normalise(kind, value):
    """The stored form of a pivot value, or InvalidInput naming the filter and why."""
    text = (value or "").strip()
    if kind not in PIVOTS:
        raise InvalidInput("pivot", f"Unknown pivot {kind!r}: one of {', '.join(PIVOTS)}.", list(PIVOTS))
    if len(text) > MAX_VALUE:
        raise InvalidInput(kind, f"A {kind} is at most {MAX_VALUE} characters.")
    if kind == "ip":
        try:
            return str(ipaddress.ip_address(text))  # as importers store it: 2001:DB8::1 is 2001:db8::1
        except ValueError:
            raise InvalidInput("ip", f"{text[:60]!r} is not an IP address.") from None
    if kind == "hash":
        if not HEX_DIGEST.match(text.lower()):
            raise InvalidInput("hash", "A hash is an MD5, SHA-1, SHA-256 or SHA-512 hex digest.")
        return text.lower()
    if kind == "domain":
        return text.rstrip(".")
    if kind == "rule" and not RULE_REF.match(text):
        raise InvalidInput("rule", "A rule is written as importers store it: rule:<id> or sid:<gid>:<sid>.")
    return text


def condition(kind, value):
    """Q: threats with this (normalised) value in the pivot."""
    if kind == "rule":
        return Q(rule=value)
    return _any(_has(field, value) for field in PIVOTS[kind])


def entity_condition(field, value):
    """Q: threats whose observable `field` (one of ENTITY_FIELDS) is exactly `value`, on its index."""
    if field not in ENTITY_FIELDS:
        raise ValueError(f"no entity index on {field!r}")
    return _has(field, value)


def search_condition(term):
    """Q: threats with the term as the value of any pivot it can be (for the text search)."""
    branches = []
    for kind in PIVOTS:
        try:
            value = normalise(kind, term)
        except InvalidInput:
            continue
        branches.append(condition(kind, value))
    return _any(branches)


def _has(field, value):
    if field in ENTITY_FIELDS:
        # The indexed prefix narrows, the whole value decides (a value may exceed the prefix).
        sql = f"({_qualified(entity_key(field))} = %s AND ({TABLE}.observables ->> '{field}') = %s)"
        return _raw(sql, [value[:KEY_CHARS], value])
    # Importers keep a domain as the source wrote it, often mixed case: domains compare lower-cased
    # (the GIN index is on the lower-cased list too), hashes are stored lower case.
    fold = field in FOLDED
    if connection.vendor == "postgresql":
        return _raw(f"({list_expression(field)} @> %s::jsonb)", [json.dumps([value.lower() if fold else value])])
    stored = "lower(value)" if fold else "value"
    return _raw(f"EXISTS (SELECT 1 FROM json_each({TABLE}.observables, '$.{field}') WHERE {stored} = %s)",
                [value.lower() if fold else value])


def list_expression(field):
    """PostgreSQL: the JSON list a GIN index of migration 0016 is built on (the same expression)."""
    if field not in LIST_FIELDS:
        raise ValueError(f"no list index on {field!r}")
    listed = f"({TABLE}.observables -> '{field}')"
    return f"(lower({listed}::text)::jsonb)" if field in FOLDED else listed


def _qualified(expression):
    return expression.replace("(observables ", f"({TABLE}.observables ", 1)


def _raw(sql, params):
    return Q(RawSQL(sql, params, output_field=BooleanField()))


def _any(conditions):
    return reduce(or_, conditions, Q(pk__in=[]))


def summary_values(observables, rule):
    """{kind: [values]} of a threat, at most SUMMARY_VALUES each: the list page's live filter
    (static/js/list.js) matches an event's threat with it as the server matches rows."""
    found = {kind: [] for kind in PIVOTS}
    for field, kind in OBSERVABLE_PIVOT.items():
        value = (observables or {}).get(field)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item and len(found[kind]) < SUMMARY_VALUES:
                found[kind].append(item[:MAX_VALUE])
    if rule:
        found["rule"].append(rule)
    return {kind: values for kind, values in found.items() if values}
