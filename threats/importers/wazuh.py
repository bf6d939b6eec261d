"""Wazuh alerts (`/var/ossec/logs/alerts/alerts.json` lines, `wazuh-alerts-*` hits, or Shuffle's
`{"all_fields": {...}}` envelope), any rule.

Field reference: the Wazuh index template (`extensions/elasticsearch/7.x/wazuh-template.json`)
and the alert samples in the Wazuh documentation. Rule level (0-15) becomes a severity hint
through the INGEST_WAZUH_LEVELS table (README "Alert ingestion"); `rule.mitre.tactic` carries
tactic names, which are turned into ids.
"""

import re
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from threats.choices import Severity

from .common import ItemError, Reader, as_list, category, parse_time, reference, tactic_ids, unwrap_source

SOURCE = "wazuh"
# level >= threshold -> severity; the common bucketing (soc-anchors.md §3.1), configurable.
DEFAULT_LEVELS = "0:LOW,7:MEDIUM,12:HIGH,15:CRITICAL"
# Rule groups that only name the log channel; the type comes from the first group after them.
CHANNEL_GROUPS = {"local", "syslog", "ossec", "windows", "linux", "json"}
SYSMON_HASH = re.compile(r"(?:MD5|SHA1|SHA256|SHA512)=([0-9A-Fa-f]+)")


def level_table(spec):
    """[(15, "CRITICAL"), (12, "HIGH"), ...] from "0:LOW,7:MEDIUM,..." or from settings.py's pairs."""
    pairs = tuple(map(tuple, spec)) if isinstance(spec, (list, tuple)) else tuple(
        entry.replace("=", ":").partition(":")[::2] for entry in filter(None, map(str.strip, spec.split(","))))
    return _table(pairs)


@lru_cache(maxsize=8)
def _table(pairs):
    table = []
    for level, severity in pairs:
        level, severity = str(level).strip(), str(severity).strip().upper()
        if not level.isdigit() or not 0 <= int(level) <= 15 or severity not in Severity.values:
            raise ImproperlyConfigured(
                f"INGEST_WAZUH_LEVELS: {level}:{severity} is not LEVEL:SEVERITY with LEVEL 0-15 and SEVERITY one "
                f"of {', '.join(Severity.values)}"
            )
        table.append((int(level), severity))
    if not table or min(level for level, _ in table) != 0:
        raise ImproperlyConfigured("INGEST_WAZUH_LEVELS must give a severity for level 0")
    return sorted(table, reverse=True)


def severity_for(level):
    table = level_table(getattr(settings, "INGEST_WAZUH_LEVELS", DEFAULT_LEVELS) or DEFAULT_LEVELS)
    return next(severity for floor, severity in table if level >= floor)


def parse(item):
    doc = unwrap_source(item.get("all_fields") if isinstance(item.get("all_fields"), dict) else item)
    rule = doc.get("rule")
    if not isinstance(rule, dict):
        raise ItemError("rule", "A Wazuh alert has a `rule` object (id, level, description).")
    level = _level(rule.get("level"))
    read = Reader(doc)
    rule_id = read.text("rule.id", limit=40) or "unknown"
    agent = read.text("agent.name", limit=200)
    src_ip = read.ip("data.srcip", "data.src_ip", "data.win.eventdata.ipAddress", "data.aws.sourceIPAddress",
                     name="src_ip")
    observables = {
        "src_ip": src_ip,
        "dst_ip": read.ip("data.dstip", "data.dst_ip", name="dst_ip"),
        "src_port": read.port("data.srcport", "data.win.eventdata.ipPort", name="src_port"),
        "dst_port": read.port("data.dstport", name="dst_port"),
        "proto": read.transport("data.protocol"),
        "user": read.text("data.dstuser", "data.srcuser", "data.win.eventdata.targetUserName",
                          "data.win.eventdata.subjectUserName", "syscheck.uname_after", name="user"),
        "host": agent,
        "urls": read.strings("data.url", limit=2_048, name="urls"),
        "hashes": list(dict.fromkeys(read.hashes(
            "syscheck.md5_after", "syscheck.sha1_after", "syscheck.sha256_after", "data.virustotal.source.md5",
            "data.virustotal.source.sha1", "data.md5", "data.sha1", "data.sha256") + _sysmon_hashes(read))),
        "process": read.text("data.win.eventdata.image", "data.audit.exe", "data.process.name", name="process"),
        "command_line": read.text("data.win.eventdata.commandLine", "data.audit.command", "data.command",
                                  limit=8_192, name="command_line"),
    }
    mitre = rule.get("mitre") if isinstance(rule.get("mitre"), dict) else {}
    return read.alert(
        source=SOURCE,
        source_ref=_reference(doc, item),
        occurred_at=parse_time(doc.get("timestamp") or doc.get("@timestamp"), "timestamp"),
        title=read.text("rule.description", limit=200, name="rule.description") or f"Wazuh rule {rule_id}",
        threat_type=category(SOURCE, _type_group(rule.get("groups"))),
        raw=item,
        severity_hint=severity_for(level),
        observables=observables,
        mitre_hints=read.techniques(as_list(mitre.get("id"))),
        tactics=tactic_ids(as_list(mitre.get("tactic"))),
        rule=f"rule:{rule_id}",
        entity=f"{agent}|{src_ip}",
        customer_hint=read.text("agent.labels.customer", "labels.customer", limit=100, name="agent.labels.customer"),
        hosts=list(dict.fromkeys(h for h in (agent, read.text("predecoder.hostname", limit=200)) if h)),
    )


def _level(value):
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 15:
        raise ItemError("rule.level", f"Rule level must be an integer 0-15, not {str(value)[:20]!r}.")
    return value


def _reference(doc, item):
    """`id` is unique per manager ("epoch.offset"), so it is qualified by the manager's name."""
    alert_id = doc.get("id") or item.get("_id")
    manager = doc.get("manager", {}).get("name") if isinstance(doc.get("manager"), dict) else None
    if alert_id and manager:
        alert_id = f"{manager}:{alert_id}"
    return reference(alert_id, doc)


def _type_group(groups):
    names = [g for g in as_list(groups) if isinstance(g, str) and g.strip()]
    specific = [g for g in names if g.lower() not in CHANNEL_GROUPS]
    return (specific or names or ["alert"])[0]


def _sysmon_hashes(read):
    """Sysmon's `Hashes` field packs several digests: "SHA1=...,MD5=...,SHA256=...,IMPHASH=..."."""
    packed = read.text("data.win.eventdata.hashes", limit=1_000, name="hashes")
    return [h.lower() for h in SYSMON_HASH.findall(packed) if len(h) in (32, 40, 64, 128)]
