"""Suricata EVE JSON (`eve.json` lines). Only `event_type: "alert"` records are alerts; flow, dns,
http, tls, fileinfo, stats ... records are skipped and counted.

Field reference: Suricata's EVE JSON schema (`etc/schema.json` in OISF/suricata) and the
"Eve JSON Format" chapter of its user guide. `alert.severity` is inverted: 1 is the highest.
Emerging Threats rules put ATT&CK ids in `alert.metadata.mitre_*` arrays.
"""

from threats.choices import Severity

from .common import (
    ItemError,
    Reader,
    Skip,
    as_list,
    category,
    parse_time,
    reference,
    severity_max,
    tactic_ids,
    unwrap_source,
)

SOURCE = "suricata"
SEVERITY = {1: Severity.HIGH, 2: Severity.MEDIUM, 3: Severity.LOW}
# ET rules' own rating in metadata; only "Critical" says more than the numeric severity.
SIGNATURE_SEVERITY = {"critical": Severity.CRITICAL}


def parse(item):
    doc = unwrap_source(item)
    event_type = doc.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise ItemError("event_type", "An EVE record has an `event_type`.")
    if event_type != "alert":
        raise Skip(f"event_type {event_type[:40]!r} is not an alert")
    alert = doc.get("alert")
    if not isinstance(alert, dict):
        raise ItemError("alert", "An EVE alert record has an `alert` object.")
    sid = alert.get("signature_id")
    if not isinstance(sid, int) or isinstance(sid, bool):
        raise ItemError("alert.signature_id", "An EVE alert has an integer `alert.signature_id`.")
    read = Reader(doc)
    src_ip = read.ip("src_ip", name="src_ip")
    dst_ip = read.ip("dest_ip", name="dst_ip")
    meta = alert.get("metadata") if isinstance(alert.get("metadata"), dict) else {}
    hostname = read.text("http.hostname", "tls.sni", limit=253, name="domains")
    return read.alert(
        source=SOURCE,
        source_ref=_reference(doc, item, sid),
        occurred_at=parse_time(doc.get("timestamp"), "timestamp"),
        title=read.text("alert.signature", limit=200, name="alert.signature") or f"Suricata signature {sid}",
        threat_type=category(SOURCE, alert.get("category") or "alert"),
        raw=item,
        severity_hint=_severity(alert, meta),
        observables={
            "src_ip": src_ip,
            "dst_ip": dst_ip,
            "src_port": read.port("src_port", name="src_port"),
            "dst_port": read.port("dest_port", name="dst_port"),
            "proto": read.transport("proto"),
            "community_id": read.text("community_id", limit=100, name="community_id"),
            "user_agent": read.text("http.http_user_agent", limit=1_024, name="user_agent"),
            "urls": _urls(read, hostname),
            "domains": list(dict.fromkeys(
                read.strings("http.hostname", "tls.sni", "dns.rrname", limit=253, name="domains") + _dns_queries(doc)
            )),
            "hashes": read.hashes("fileinfo.md5", "fileinfo.sha1", "fileinfo.sha256"),
        },
        mitre_hints=read.techniques(as_list(meta.get("mitre_technique_id"))),
        tactics=tactic_ids(as_list(meta.get("mitre_tactic_id")) or as_list(meta.get("mitre_tactic_name"))),
        rule=f"sid:{alert.get('gid', 1)}:{sid}",
        entity=f"{src_ip}>{dst_ip}",
        hosts=[h for h in (read.text("host", limit=200),) if h],  # the sensor's name
    )


def _severity(alert, meta):
    numeric = alert.get("severity")
    hint = SEVERITY.get(numeric, Severity.LOW) if isinstance(numeric, int) and numeric > 0 else ""
    rated = [SIGNATURE_SEVERITY.get(str(v).lower(), "") for v in as_list(meta.get("signature_severity"))]
    return severity_max(hint, *rated)


def _reference(doc, item, sid):
    """EVE has no alert id: flow id + signature + timestamp (+ transaction) names one alert, and
    survives a shipper adding its own fields; without a flow id, the record's SHA-256."""
    flow_id, timestamp = doc.get("flow_id"), doc.get("timestamp")
    if flow_id in (None, "") or not timestamp:
        return reference(item.get("_id"), doc)
    ref = f"{flow_id}:{sid}:{timestamp}"
    if doc.get("tx_id") is not None:
        ref += f":{doc['tx_id']}"
    return reference(ref, doc)


def _urls(read, hostname):
    path = read.text("http.url", limit=2_000, name="urls")
    if not path:
        return []
    return [f"http://{hostname}{path}" if hostname and path.startswith("/") else path]


def _dns_queries(doc):
    """DNS names listed as objects: {"dns": {"queries": [{"rrname": ...}]}} (EVE v3; older: "query")."""
    dns = doc.get("dns") if isinstance(doc.get("dns"), dict) else {}
    listed = as_list(dns.get("queries")) + as_list(dns.get("query"))
    names = [q.get("rrname") for q in listed if isinstance(q, dict)]
    return [n[:253] for n in names if isinstance(n, str) and n][:10]
