"""Alert importers, one module per format. Each has `SOURCE` and `parse(item) -> Alert`, raising
`ItemError` (not importable) or `Skip` (not an alert). `threats.ingest` does the rest."""

from .. import generator
from . import ecs, generic, suricata, wazuh
from .common import Alert, ItemError, Skip
from .signal import Signal, generic_behaviour

IMPORTERS = {module.SOURCE: module for module in (generic, wazuh, suricata, ecs)}
FORMATS = list(IMPORTERS)


def detect_format(item):
    """Guess the format of one decoded record (for `import_alerts` without --format)."""
    if not isinstance(item, dict):
        return None
    doc = item.get("all_fields") or item.get("_source") or item
    if not isinstance(doc, dict):
        return None
    if "event_type" in doc and ("src_ip" in doc or "flow_id" in doc or "timestamp" in doc):
        return suricata.SOURCE
    if isinstance(doc.get("rule"), dict) and ("agent" in doc or "level" in doc["rule"]):
        return wazuh.SOURCE
    if "@timestamp" in doc or any(str(key).startswith(("kibana.", "ecs")) for key in doc):
        return ecs.SOURCE
    if "title" in doc and "occurred_at" in doc:
        return generic.SOURCE
    return None


def signal_of(threat):
    """The threat's normalised signal; for a row stored before signals existed (or written directly,
    like the scenario fixtures or the admin), mapped now from its raw alert or synthetic metadata;
    what that leaves out falls back to the row's own severity hint and type."""
    if threat.signal:
        return threat.signal
    if threat.threat_type in generator.BUILDERS:
        metadata = threat.raw.get("metadata") if isinstance(threat.raw, dict) else None
        return generator.signal_for(threat.threat_type, metadata)
    found = {}
    if threat.source in IMPORTERS and isinstance(threat.raw, dict):
        try:
            found = IMPORTERS[threat.source].parse(threat.raw).signal
        except (ItemError, Skip, KeyError, TypeError, ValueError, AttributeError):
            found = {}
    return _fallback(threat, found)


def _fallback(threat, found):
    built = Signal()
    built.data.update({k: v for k, v in found.items() if v not in (None, "", [], {})})
    built.data["fields"] = dict(found.get("fields", {}))
    built.severity(threat.severity_hint, "severity_hint", threat.severity_hint)
    named = generic_behaviour(threat.threat_type.partition(":")[2] or threat.threat_type)
    if named and not built.data["behaviours"]:
        built.behaviour(named, "threat_type", threat.threat_type[:60])
    return built.finish()


__all__ = ["FORMATS", "IMPORTERS", "Alert", "ItemError", "Skip", "detect_format", "signal_of"]
