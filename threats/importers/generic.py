"""The project's own alert shape, for sources without an importer (docs/ingestion.md):

    {"id": "vpn-7781", "title": "Brute force against the VPN", "occurred_at": "2026-11-26T10:00:00Z",
     "customer": "acme-corp", "category": "vpn", "severity": "high", "rule": "vpn-bruteforce",
     "host": "vpn-gw-1", "observables": {"src_ip": "203.0.113.7", "user": "j.doe"},
     "mitre": ["T1110.001"], "tactics": ["Credential Access"]}

Only `title` and `occurred_at` are required; any other key is kept in `raw`.
"""

import re

from threats.choices import Severity, ThreatType

from . import ecs
from .common import ItemError, Reader, as_list, category, parse_time, reference, tactic_ids
from .signal import Signal, generic_behaviour

SOURCE = "generic"
TYPE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,39}$")
OBSERVABLE_KEYS = {
    "src_ip", "dst_ip", "src_port", "dst_port", "proto", "user", "host", "user_agent", "urls", "domains", "hashes",
    "process", "command_line", "community_id", "country", "endpoint",
}


def parse(item):
    read = Reader(item)
    title = read.text("title", limit=200, name="title")
    if not title:
        raise ItemError("title", "A generic alert needs a non-empty string `title`.")
    if "occurred_at" not in item:
        raise ItemError("occurred_at", "A generic alert needs `occurred_at` (ISO-8601 or epoch seconds).")
    observed = item.get("observables", {})
    if not isinstance(observed, dict):
        raise ItemError("observables", "`observables` must be an object.")
    read.warnings += [f"observables.{str(k)[:40]}: not a known observable; kept in raw only"
                      for k in observed if k not in OBSERVABLE_KEYS]
    host = read.text("host", "observables.host", name="host")
    src_ip = read.ip("observables.src_ip", name="src_ip")
    severity = _severity(item.get("severity"))
    return read.alert(
        source=SOURCE,
        source_ref=reference(read.text("id", limit=200), item),
        occurred_at=parse_time(item["occurred_at"], "occurred_at"),
        title=title,
        threat_type=_threat_type(item),
        raw=item,
        severity_hint=severity,
        signal=signal(read, item, severity),
        observables=_observables(read, host, src_ip),
        mitre_hints=read.techniques(as_list(item.get("mitre"))),
        tactics=tactic_ids(as_list(item.get("tactics"))),
        rule=f"rule:{read.text('rule', limit=120) or title}",
        entity=f"{host}|{src_ip}",
        customer_hint=read.text("customer", limit=100, name="customer"),
        hosts=[host] if host else [],
    )


def _observables(read, host, src_ip):
    country = read.text("observables.country", limit=10, name="country").upper()
    return {
        "src_ip": src_ip,
        "dst_ip": read.ip("observables.dst_ip", name="dst_ip"),
        "src_port": read.port("observables.src_port", name="src_port"),
        "dst_port": read.port("observables.dst_port", name="dst_port"),
        "proto": read.transport("observables.proto"),
        "user": read.text("observables.user", name="user"),
        "host": host,
        "user_agent": read.text("observables.user_agent", name="user_agent"),
        "endpoint": read.text("observables.endpoint", limit=2_048, name="endpoint"),
        "urls": read.strings("observables.urls", limit=2_048, name="urls"),
        "domains": read.strings("observables.domains", limit=253, name="domains"),
        "hashes": read.hashes("observables.hashes"),
        "process": read.text("observables.process", name="process"),
        "command_line": read.text("observables.command_line", limit=8_192, name="command_line"),
        "community_id": read.text("observables.community_id", limit=100, name="community_id"),
        "country": country if len(country) == 2 and country.isalpha() else "",
    }


def _threat_type(item):
    given = item.get("threat_type")
    if given is not None:
        if not isinstance(given, str) or not TYPE_PATTERN.match(given):
            raise ItemError("threat_type", "Use one of the known types or a category of at most 40 characters "
                                           f"of a-z 0-9 _ . : - (known: {', '.join(ThreatType.values)}).")
        return given
    return category(SOURCE, item.get("category") or "alert")


def _severity(value):
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or value.upper() not in Severity.values:
        raise ItemError("severity", f"Severity is one of {', '.join(v.lower() for v in Severity.values)}.")
    return value.upper()


def signal(read, item, severity):
    """Our own format as a normalised signal: `severity`, the behaviour its `category` names, and any
    ECS fields it carries (event.action/outcome, source.bytes, ...: the ECS mapping applies)."""
    built = Signal().severity(severity, "severity", item.get("severity"))
    named = generic_behaviour(item.get("category")) if isinstance(item.get("category"), str) else None
    if named:
        built.behaviour(named, "category", item["category"][:60])
    return ecs.signal(read, item, built)
