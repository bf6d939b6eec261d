"""Reading a stored signal the same way in every agent, whatever its source.

Synthetic signals keep per-type numbers in `raw.metadata`; imported alerts (Wazuh, Suricata, ECS,
generic) carry generic observables (src_ip, dst_ip, user, host, user_agent, urls, domains, hashes,
process, command_line, country), `mitre_hints`, a `severity_hint` and the raw alert. Every value
read here is untrusted: strings are bounded before any pattern runs over them.
"""

import functools
import ipaddress
import re

from threats.choices import ThreatType

MAX_TEXT = 4_000  # characters of one field that the pattern scans look at
MAX_TEXTS = 200  # fields of one signal that are scanned
MAX_DEPTH = 6

# Generic families for threat types that are not one of the six synthetic ones (an imported alert
# may say "wazuh:authentication_failed", "web-application-attack", "malware" ...). First match wins.
FAMILY_WORDS = [
    ("exfiltration", r"exfil|data[-_ ]?loss|dlp|leak"),
    ("command_and_control", r"\bc2\b|c2[-_]|command[-_ ]?and[-_ ]?control|beacon|trojan[-_]activity|botnet"),
    ("malware", r"malware|virus|trojan|ransom|yara|rootkit|virustotal|\bav\b|antivirus|\bedr\b"),
    ("web_attack", r"web[-_ ]?(app|application)?[-_ ]?attack|sql|xss|injection|\bwaf\b|rce|exploit|shellshock"),
    ("authentication", r"auth|login|logon|password|brute|credential|ssh|\bpam\b|kerberos|mfa|account"),
    ("defense_evasion", r"defen[cs]e[-_ ]?evasion|stealth|tamper|impair|security[-_ ]software[-_ ]disabled"),
    ("denial_of_service", r"\bd?dos\b|flood|denial"),
    ("reconnaissance", r"scan|recon|probe|discovery|sweep"),
    ("policy", r"policy|complian|integrity|syscheck|\bfim\b|vulnerab|config|audit"),
]
FAMILY_RES = [(name, re.compile(words, re.I)) for name, words in FAMILY_WORDS]


SYNTHETIC_TYPES = frozenset(ThreatType.values)


@functools.lru_cache(maxsize=4096)  # asked about ten times per analysis, of a few dozen types
def family(threat_type):
    """One of the six synthetic types, a generic family, or "other"."""
    if threat_type in SYNTHETIC_TYPES:
        return threat_type
    text = str(threat_type or "")
    return next((name for name, pattern in FAMILY_RES if pattern.search(text)), "other")


def metadata(threat):
    meta = threat.raw.get("metadata") if isinstance(threat.raw, dict) else None
    return meta if isinstance(meta, dict) else {}


def metric(threat, name):
    """A number from the signal's metadata, or None (booleans and strings are not numbers)."""
    value = metadata(threat).get(name)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def text(threat, name):
    """One observable as a bounded string, or ""."""
    value = threat.observables.get(name) if isinstance(threat.observables, dict) else None
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def values(threat, name):
    """An observable as a list of bounded strings (a single string becomes a one-item list)."""
    value = threat.observables.get(name) if isinstance(threat.observables, dict) else None
    items = value if isinstance(value, list) else [value]
    return [v[:MAX_TEXT] for v in items[:50] if isinstance(v, str) and v]


def ip(value):
    try:
        return ipaddress.ip_address(value.strip()) if isinstance(value, str) else None
    except ValueError:
        return None


def network(value):
    try:
        return ipaddress.ip_network(value, strict=False) if isinstance(value, str) else None
    except ValueError:
        return None


# Internal = RFC 1918, loopback, link-local, carrier-grade NAT and IPv6 unique-local/link-local.
# Not Python's `is_private`, which also counts the RFC 5737 documentation ranges that the synthetic
# data uses in place of public addresses.
INTERNAL_NETWORKS = [ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10",
    "::1/128", "fc00::/7", "fe80::/10",
)]


def is_internal(address):
    return address is not None and any(address.version == n.version and address in n for n in INTERNAL_NETWORKS)


def untrusted_texts(threat):
    """(field path, text) for every string the signal's source controls: title, observables, raw."""
    found = [("signal.title", threat.title[:MAX_TEXT])]
    _walk(threat.observables, "signal.observables", found)
    _walk(threat.raw, "signal.raw", found)
    return found[:MAX_TEXTS]


def _walk(value, path, found, depth=0):
    if len(found) >= MAX_TEXTS or depth > MAX_DEPTH:
        return
    if isinstance(value, str):
        if value:
            found.append((path, value[:MAX_TEXT]))
    elif isinstance(value, dict):
        for key, item in list(value.items())[:100]:
            _walk(item, f"{path}.{str(key)[:64]}", found, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value[:100]):
            _walk(item, f"{path}[{index}]", found, depth + 1)
