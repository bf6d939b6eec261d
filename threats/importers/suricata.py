"""Suricata EVE JSON (`eve.json` lines). Only `event_type: "alert"` records are alerts; flow, dns,
http, tls, fileinfo, stats ... records are skipped and counted.

Field reference: Suricata's EVE JSON schema (`etc/schema.json` in OISF/suricata) and the
"Eve JSON Format" chapter of its user guide. `alert.severity` is inverted: 1 is the highest.
Emerging Threats rules put ATT&CK ids in `alert.metadata.mitre_*` arrays.
"""

import base64
import binascii
import re

from threats.choices import Severity

from .common import (
    SEVERITY_RANK,
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
from .signal import Signal, direction

# UDP services abused to reflect and amplify floods (NTP, memcached, DNS, SSDP, chargen, CLDAP).
REFLECTORS = {123, 11211, 53, 1900, 19, 389}

SOURCE = "suricata"
SEVERITY = {1: Severity.HIGH, 2: Severity.MEDIUM, 3: Severity.LOW, 4: Severity.LOW}
# Emerging Threats' own rating in metadata.signature_severity bounds the classtype's priority:
# "Critical" rules are strong indicators (at least HIGH), "Informational" and "Audit" ones are
# context (LOW): rule-management tools disable both together.
SIGNATURE_FLOOR = {"critical": Severity.HIGH, "major": Severity.MEDIUM}
SIGNATURE_CAP = {"informational": Severity.LOW, "audit": Severity.LOW, "minor": Severity.MEDIUM}


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
    severity = _severity(alert, meta)
    return read.alert(
        source=SOURCE,
        source_ref=_reference(doc, item, sid),
        occurred_at=parse_time(doc.get("timestamp"), "timestamp"),
        title=read.text("alert.signature", limit=200, name="alert.signature") or f"Suricata signature {sid}",
        threat_type=category(SOURCE, alert.get("category") or "alert"),
        raw=item,
        severity_hint=severity,
        signal=signal(doc, severity),
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
    for rating in (str(v).lower() for v in as_list(meta.get("signature_severity"))[:1]):
        if rating in SIGNATURE_CAP and SEVERITY_RANK.get(hint, 0) > SEVERITY_RANK[SIGNATURE_CAP[rating]]:
            hint = SIGNATURE_CAP[rating]
        hint = severity_max(hint, SIGNATURE_FLOOR.get(rating, ""))
    return hint


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


# --- The normalised signal (docs/signals.md, "Suricata") -------------------------------------------

# alert.category is the classtype's description (etc/classification.config) -> (behaviour, outcome).
CLASSTYPES = {
    "not suspicious traffic": ("informational", ""), "misc activity": ("informational", ""),
    "generic icmp event": ("informational", ""), "a tcp connection was detected": ("informational", ""),
    "attempted information leak": ("recon_probe", ""), "information leak": ("recon_probe", "success"),
    "large scale information leak": ("exfiltration", "success"), "decode of an rpc query": ("recon_probe", ""),
    "detection of a network scan": ("network_scan", ""), "attempted denial of service": ("denial_of_service", ""),
    "denial of service": ("denial_of_service", "success"),
    "detection of a denial of service attack": ("denial_of_service", ""),
    "attempted user privilege gain": ("exploit_attempt", ""), "attempted administrator privilege gain":
        ("exploit_attempt", ""), "unsuccessful user privilege gain": ("exploit_attempt", "failure"),
    "successful user privilege gain": ("exploit_success", "success"),
    "successful administrator privilege gain": ("exploit_success", "success"),
    "executable code was detected": ("exploit_attempt", ""), "web application attack": ("web_attack", ""),
    "a network trojan was detected": ("malware", ""), "malware command and control activity detected":
        ("command_and_control", ""), "domain observed used for c2 detected": ("command_and_control", ""),
    "exploit kit activity detected": ("exploit_attempt", ""), "possibly unwanted program detected":
        ("unwanted_software", ""), "successful credential theft detected": ("phishing", "success"),
    "possible social engineering attempted": ("phishing", ""), "crypto currency mining activity detected":
        ("resource_hijacking", ""), "potential corporate privacy violation": ("policy_violation", ""),
    "inappropriate content was detected": ("policy_violation", ""),
    "device retrieving external ip address detected": ("discovery", ""),
    "attempt to login by a default username and password": ("brute_force", ""),
    "targeted malicious activity was detected": ("command_and_control", ""),
    "an attempted login using a suspicious username was detected": ("login_failure", ""),
}
# The rule set's own category: the second word of an Emerging Threats signature ("ET SCAN ...").
RULESET_CATEGORIES = {
    "SCAN": "network_scan", "EXPLOIT": "exploit_attempt", "EXPLOIT_KIT": "exploit_attempt",
    "SHELLCODE": "exploit_attempt", "WEB_SERVER": "web_attack", "WEB_SPECIFIC_APPS": "web_attack",
    "WEB_CLIENT": "exploit_attempt", "MALWARE": "malware", "TROJAN": "malware", "MOBILE_MALWARE": "malware",
    "WORM": "malware", "ATTACK_RESPONSE": "exploit_success", "POLICY": "policy_violation", "P2P": "policy_violation",
    "GAMES": "policy_violation", "CHAT": "policy_violation", "CINS": "reputation_match", "DROP": "reputation_match",
    "COMPROMISED": "reputation_match", "DSHIELD": "reputation_match", "3CORESEC": "reputation_match",
    "TOR": "anonymising_proxy", "DOS": "denial_of_service", "COINMINER": "resource_hijacking",
    "PHISHING": "phishing", "ADWARE_PUP": "unwanted_software", "CNC": "command_and_control",
}
# What a POLICY or INFO rule names as its subject (the words after "ET POLICY"): software whose use
# is itself a behaviour. Whole words of the signature's subject, never of a free-text title.
SUBJECTS = [
    ("anonymising_proxy", re.compile(r"\btor\b", re.I)),
    ("resource_hijacking", re.compile(r"\b(crypto ?currency miner|coin ?miner|stratum|xmrig)\b", re.I)),
    # A free dynamic-DNS provider's names (ET INFO DYNAMIC_DNS rules): where commodity C2 lives (T1568).
    ("dynamic_dns", re.compile(r"\bdynamic[_ ]?dns\b|\bddns\b", re.I)),
    ("remote_access_tool", re.compile(r"\b(anydesk|teamviewer|screenconnect|splashtop|logmein|rustdesk|ammyy|"
                                      r"atera|remote ?utilities|connectwise control)\b", re.I)),
    # Services that publish a host behind the firewall to the internet: a way in or out (T1572).
    ("tunnel", re.compile(r"\b(ngrok|localtunnel|trycloudflare|serveo|localhost\.run|pinggy)\b", re.I)),
    # Post-exploitation frameworks a JA3/JA4 or user-agent rule recognises: their traffic is their C2.
    ("command_and_control", re.compile(r"\b(cobalt ?strike|meterpreter|sliver|brute ?ratel|havoc|mythic|covenant|"
                                       r"poshc2)\b", re.I)),
    # Remote service execution tools: their service is how they run code on another host (T1569.002).
    ("lateral_movement", re.compile(r"\b(psexec|paexec|remcom|csexec)\b.*\bservice\b|\bpsexesvc\b", re.I)),
]
# Phrases that say what happened whatever the rule set's category: a failed login, a password or
# login sent in the clear (FTP, telnet, HTTP Basic), a DNS tunnel.
SIGNATURE_PHRASES = [
    ("login_failure", re.compile(r"\b(bad login|login (failed|incorrect)|failed login|authentication fail\w*)\b", re.I)),
    ("brute_force", re.compile(r"\bbrute ?force\b|\bpassword guess\w*", re.I)),
    ("credential_exposure", re.compile(r"\b(unencrypted|clear ?text|plain ?text)\b.*\b(password|credential|login)s?\b|"
                                       r"\b(password|credential)s?\b.*\b(unencrypted|clear ?text|plain ?text)\b|"
                                       r"\b(ftp|telnet|pop3?|imap)\b.*\blogin successful\b", re.I)),
    ("dns_tunnelling", re.compile(r"\bdns\b.*\btunnel", re.I)),
]
# alert.metadata.tag values Emerging Threats uses -> behaviour.
ADMIN_SHARE = re.compile(r"\\(ADMIN|[A-Z]|IPC)\$$", re.I)
EXECUTABLE = re.compile(r"\.(exe|dll|sys|bat|ps1|scr)$", re.I)
# What a shell prints, seen in an HTTP answer: `id`, a passwd file, `ipconfig`, `dir`, boot.ini.
COMMAND_OUTPUT = re.compile(r"\buid=\d+\([\w.$-]*\)\s+gid=\d+|\broot:[x*!]?:0:0:|Windows IP Configuration|"
                            r"Volume Serial Number is|\[boot loader\]|Directory of [A-Za-z]:\\")
TAGS = {"c2": "command_and_control", "ransomware": "ransomware", "coinminer": "resource_hijacking",
        "remoteaccesstool": "remote_access_tool",
        "phishing": "phishing", "exploit_kit": "exploit_attempt", "sql_injection": "web_attack", "xss": "web_attack",
        "command_injection": "web_attack", "path_traversal": "web_attack", "webshell": "exploit_success"}
SIGNATURE_PREFIXES = ("ET", "ETPRO", "GPL")
# Rule-set categories that describe software or context, not an infection: their "malware_family"
# names the product (AnyDesk), not malware.
CONTEXT_CATEGORIES = {"POLICY", "INFO", "HUNTING", "JA3", "USER_AGENTS", "GAMES", "CHAT", "P2P"}


def signal(doc, severity):
    """The EVE alert as a normalised signal: classtype, rule-set category, metadata, action, flow."""
    alert = doc["alert"]
    built = Signal().severity(severity, "alert.severity", alert.get("severity"))
    built.ecs(["intrusion_detection", "network"], ["info"], "event_type")
    behaviours(built, doc, "")
    blocked = str(alert.get("action", "")).lower() == "blocked"
    built.set("prevented", blocked, "alert.action").set("outcome", "failure" if blocked else "", "alert.action")
    built.set("action", str(alert.get("action", ""))[:40], "alert.action")
    flow = doc.get("flow") if isinstance(doc.get("flow"), dict) else {}
    # An alert's src/dest are the packet's; flow.src_ip/dest_ip (Suricata 7+) say who started it.
    starter = (flow.get("src_ip"), flow.get("dest_ip")) if flow.get("src_ip") else (doc.get("src_ip"), doc.get("dest_ip"))
    built.set("direction", direction(*starter), "flow.src_ip" if flow.get("src_ip") else "src_ip")
    built.set("protocol", str(doc.get("app_proto") or "").lower()[:20], "app_proto")
    built.measure("src_bytes", flow.get("bytes_toserver"), "flow.bytes_toserver")
    built.measure("dst_bytes", flow.get("bytes_toclient"), "flow.bytes_toclient")
    for port in (doc.get("dest_port"), doc.get("src_port")):
        built.measure("service_port", port if port in REFLECTORS else None, "dest_port")
    http = doc.get("http") if isinstance(doc.get("http"), dict) else {}
    built.measure("http_status", http.get("status"), "http.status")
    built.measure("response_bytes", http.get("length"), "http.length")
    built.set("content_type", str(http.get("http_content_type") or "").strip().lower()[:100], "http.http_content_type")
    smb = doc.get("smb") if isinstance(doc.get("smb"), dict) else {}
    named = {b["name"] for b in built.data["behaviours"]}
    if ADMIN_SHARE.search(str(smb.get("share") or "")) and EXECUTABLE.search(str(smb.get("filename") or "")) and \
            named <= {"policy_violation", "informational"}:
        # A program written to another host's admin share is how remote execution starts (T1570): said
        # here when the rule names nothing but a policy (its classtype may already call it a trojan).
        built.behaviour("lateral_movement", "smb.share", f"{str(smb.get('filename'))[:80]} to {str(smb.get('share'))[:80]}")
    answered = _command_output(http)
    if answered:
        # The server's answer holds what a shell prints: the injected command ran (whatever the rule).
        built.behaviour("exploit_success", answered, "command output in the response").set("outcome", "success", answered)
    if str(http.get("http_method") or "").upper() in ("PUT", "POST"):  # an upload declares its size up front
        built.measure("upload_bytes", _header(http, "content-length"), "http.request_headers")
    built.forwarded(as_list(http.get("xff")), "http.xff")
    built.forwarded(as_list(doc.get("xff")), "xff")  # Suricata's xff `extra-data` mode logs it beside the alert
    for header in as_list(http.get("request_headers")):
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "x-forwarded-for":
            built.forwarded([header.get("value", "")], "http.request_headers")
    return built.finish()


def _header(http, name):
    """The value of a logged request header (http.request_headers: [{name, value}]), or None."""
    for header in as_list(http.get("request_headers")):
        if isinstance(header, dict) and str(header.get("name", "")).lower() == name:
            return header.get("value")
    return None


def _command_output(http):
    """The EVE field whose response body shows a command's output (`id`, /etc/passwd, `ipconfig`,
    `dir`), or "": the printable body (metadata logging), else the base64 body, first 64 KB."""
    for field in ("http_response_body_printable", "http_response_body"):
        body = http.get(field)
        if not isinstance(body, str) or not body:
            continue
        if field == "http_response_body":
            try:
                body = base64.b64decode(body[:87_384], validate=False).decode("latin-1")
            except (ValueError, binascii.Error):
                continue
        if COMMAND_OUTPUT.search(body[:65_536]):
            return f"http.{field}"
    return ""


def behaviours(built, doc, prefix):
    """Behaviours an EVE alert's rule states (also used for EVE records Wazuh forwards under data.)."""
    alert = doc["alert"]
    meta = alert.get("metadata") if isinstance(alert.get("metadata"), dict) else {}
    words = str(alert.get("signature") or "").split()
    if len(words) > 1 and words[0].upper() in SIGNATURE_PREFIXES and words[1].upper() in RULESET_CATEGORIES:
        built.behaviour(RULESET_CATEGORIES[words[1].upper()], f"{prefix}alert.signature", f"{words[0]} {words[1]}")
        if words[1].upper() == "ATTACK_RESPONSE":
            built.set("outcome", "success", f"{prefix}alert.signature")
    classtype = str(alert.get("category") or "").strip().lower()
    if classtype in CLASSTYPES:
        name, outcome = CLASSTYPES[classtype]
        built.behaviour(name, f"{prefix}alert.category", alert["category"]).set("outcome", outcome,
                                                                               f"{prefix}alert.category")
    for tag in as_list(meta.get("tag")):
        if str(tag).lower() in TAGS:
            built.behaviour(TAGS[str(tag).lower()], f"{prefix}alert.metadata.tag", tag)
    context_only = len(words) > 1 and words[1].upper() in CONTEXT_CATEGORIES
    subject = " ".join(words[2:]) if context_only and words[0].upper() in SIGNATURE_PREFIXES else ""
    for name, pattern in SUBJECTS:
        found = pattern.search(subject)
        if found:
            built.behaviour(name, f"{prefix}alert.signature", f"{words[0]} {words[1]} {found.group(0)}")
    signature = str(alert.get("signature") or "")[:300]
    for name, pattern in SIGNATURE_PHRASES:
        found = pattern.search(signature)
        if found:
            built.behaviour(name, f"{prefix}alert.signature", found.group(0))
    for family in [] if context_only else as_list(meta.get("malware_family"))[:1]:
        built.behaviour("malware", f"{prefix}alert.metadata.malware_family", family)
