"""Reading a stored signal the same way in every agent, whatever its source.

Agents read the normalised signal model (threats/importers/signal.py, docs/signals.md) through
`model(threat)`: what the source's structure states, plus what the alert's content shows
(agents/content.py: command lines, user agents, URLs, volumes). They never read vendor or
generator key names. Observables (src_ip, user, host, ...) are read with `text`/`values`. Every
value read here is untrusted: strings are bounded before any pattern runs over them.
"""

import copy
import ipaddress

from threats.choices import ThreatType
from threats.importers import signal_of
from threats.importers.signal import INTERNAL_NETWORKS

from .priority import behaviours as policy

MAX_TEXT = 4_000  # characters of one field that the pattern scans look at
MAX_TEXTS = 200  # fields of one signal that are scanned
MAX_DEPTH = 6
SYNTHETIC_TYPES = frozenset(ThreatType.values)


def model(threat):
    """The threat's signal with the behaviours its content shows added (computed once per object:
    every agent of one analysis sees the same model)."""
    cached = getattr(threat, "_signal_model", None)
    if cached is None:
        from . import content

        cached = copy.deepcopy(signal_of(threat) or {})
        for key, empty in (("behaviours", []), ("measures", {}), ("indicators", []), ("account", {}),
                           ("forwarded_for", []), ("severity", {}), ("fields", {})):
            cached.setdefault(key, empty)
        cached.setdefault("outcome", "unknown")
        if not cached["severity"] and threat.severity_hint:  # rows written directly keep their hint
            cached["severity"] = {"level": threat.severity_hint, "field": "severity_hint", "value": threat.severity_hint}
        content.infer(threat, cached)
        threat._signal_model = cached  # published whole: agents on other threads may read it at once
    return cached


def behaviours(threat):
    """{name: behaviour entry} of the model that decide the verdict, in the order found (automation is
    left out when a specific behaviour says what it does: agents/priority/behaviours.py `effective`)."""
    return policy.effective({b["name"]: b for b in model(threat)["behaviours"]})


def measure(threat, name):
    value = model(threat)["measures"].get(name)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def rejected(status):
    """An HTTP answer that refused the request (4xx). A 5xx is not a failed attack: the server choked
    on what it was sent (for an injection, often the sign that it reached the query)."""
    return isinstance(status, int) and 400 <= status < 500


def field_of(threat, name):
    """The vendor field a model value came from (`measures.src_bytes` -> `flow.bytes_toserver`)."""
    return model(threat)["fields"].get(name, "")


def family(threat):
    """A synthetic type as it is, else the family of the latest-stage behaviour the alert shows."""
    if isinstance(threat, str):
        return threat if threat in SYNTHETIC_TYPES else "other"
    if threat.threat_type in SYNTHETIC_TYPES:
        return threat.threat_type
    return policy.family(behaviours(threat))


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
