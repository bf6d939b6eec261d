"""Alert importers, one module per format. Each has `SOURCE` and `parse(item) -> Alert`, raising
`ItemError` (not importable) or `Skip` (not an alert). `threats.ingest` does the rest."""

from . import ecs, generic, suricata, wazuh
from .common import Alert, ItemError, Skip

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


__all__ = ["FORMATS", "IMPORTERS", "Alert", "ItemError", "Skip", "detect_format"]
