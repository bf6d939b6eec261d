"""Elastic Common Schema events and Elastic Security alerts (`.alerts-security.alerts-*`
documents, with `kibana.alert.*` keys flattened or nested, or `_search` hits).

Field reference: ECS field list (`elastic/ecs` `generated/ecs/ecs_flat.yml`) and Elastic's
"Alert schema" page. Risk-score buckets follow Elastic's rule defaults (low 21, medium 47,
high 73, critical 99).
"""

from threats.choices import Severity

from .common import ItemError, Reader, category, parse_time, reference, tactic_ids, unwrap_source

SOURCE = "ecs"
RISK_BANDS = [(74, Severity.CRITICAL), (48, Severity.HIGH), (22, Severity.MEDIUM), (0, Severity.LOW)]
RULE_THREAT = ("kibana.alert.rule.threat", "signal.rule.threat", "rule.threat")


def parse(item):
    doc = unwrap_source(item)
    read = Reader(doc)
    timestamp = read.get("kibana.alert.original_time", "@timestamp")
    if timestamp is None:
        raise ItemError("@timestamp", "An ECS document has an `@timestamp`.")
    rule_name = read.text("kibana.alert.rule.name", "signal.rule.name", "rule.name", limit=200, name="rule.name")
    src_ip = read.ip("source.ip", "client.ip", name="src_ip")
    host = read.text("host.name", "host.hostname", name="host")
    title = rule_name or read.text("kibana.alert.reason", "message", "event.action", limit=200, name="title")
    rule = read.text("kibana.alert.rule.uuid", "kibana.alert.rule.rule_id", "signal.rule.id", "rule.uuid", "rule.id",
                     limit=100) or rule_name or title
    return read.alert(
        source=SOURCE,
        source_ref=reference(read.text("kibana.alert.uuid", "event.id", limit=200) or item.get("_id"), doc),
        occurred_at=parse_time(timestamp, "@timestamp"),
        title=title or "Elastic alert",
        threat_type=category(SOURCE, read.text("event.category", limit=60) or rule_name or "alert"),
        raw=item,
        severity_hint=_severity(read),
        observables={
            "src_ip": src_ip,
            "dst_ip": read.ip("destination.ip", "server.ip", name="dst_ip"),
            "src_port": read.port("source.port", "client.port", name="src_port"),
            "dst_port": read.port("destination.port", "server.port", name="dst_port"),
            "proto": read.transport("network.transport"),
            "user": read.text("user.name", "user.target.name", name="user"),
            "host": host,
            "user_agent": read.text("user_agent.original", name="user_agent"),
            "urls": read.strings("url.full", "url.original", limit=2_048, name="urls"),
            "domains": read.strings("url.domain", "destination.domain", "dns.question.name",
                                    "tls.client.server_name", limit=253, name="domains"),
            "hashes": read.hashes(*[f"{obj}.hash.{algo}" for obj in ("file", "process", "dll")
                                    for algo in ("md5", "sha1", "sha256", "sha512")]),
            "process": read.text("process.executable", "process.name", name="process"),
            "command_line": read.text("process.command_line", limit=8_192, name="command_line"),
            "community_id": read.text("network.community_id", limit=100, name="community_id"),
            "country": _country(read),
        },
        mitre_hints=read.techniques(_techniques(read)),
        tactics=tactic_ids(read.strings("threat.tactic.id", *[f"{p}.tactic.id" for p in RULE_THREAT], limit=60)
                           or read.strings("threat.tactic.name", limit=60)),
        rule=f"rule:{rule}",
        entity=f"{host}|{src_ip}",
        customer_hint=read.text("organization.name", "organization.id", limit=100, name="organization.name"),
        hosts=list(dict.fromkeys(h for h in (host, read.text("agent.name", "observer.name", limit=200)) if h)),
    )


def _severity(read):
    named = read.text("kibana.alert.severity", "signal.rule.severity", "event.severity_name", limit=20).upper()
    if named in Severity.values:
        return named
    score = read.get("kibana.alert.risk_score", "signal.rule.risk_score", "event.risk_score")
    if isinstance(score, (int, float)) and not isinstance(score, bool) and 0 <= score <= 100:
        return next(severity for floor, severity in RISK_BANDS if score >= floor)
    return ""


def _techniques(read):
    paths = ["threat.technique.id", "threat.technique.subtechnique.id"]
    for prefix in RULE_THREAT:
        paths += [f"{prefix}.technique.id", f"{prefix}.technique.subtechnique.id"]
    return read.strings(*paths, limit=20, name="mitre")


def _country(read):
    code = read.text("source.geo.country_iso_code", "client.geo.country_iso_code", limit=10)
    return code.upper() if len(code) == 2 and code.isalpha() else ""

