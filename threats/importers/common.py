"""What every importer shares: the normalised `Alert`, per-item errors, and careful readers of
untrusted JSON (bounded strings, timestamps, IP addresses, ATT&CK ids).

An importer turns one decoded JSON object into an `Alert`, raises `ItemError(field, detail)` when
the object cannot be an alert of its format, or `Skip(reason)` when it is a valid record that is not
an alert (a Suricata `flow` event). Nothing here touches the database.
"""

import hashlib
import html
import ipaddress
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from threats.choices import Severity

TEXT_MAX = 1_024  # one observable string (user, host, process, ...)
LIST_MAX = 50  # urls, domains, hashes per alert
REF_MAX = 200  # Threat.source_ref
KEY_MAX = 255  # ThreatGroup.key
TYPE_MAX = 40  # Threat.threat_type

# Alert times accepted: anything earlier is a clock that was never set, anything later a typo.
TIME_RANGE = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))

TRANSPORTS = {"tcp", "udp", "icmp", "icmpv6", "ipv6-icmp", "sctp", "gre", "esp", "ah", "igmp"}
SEVERITY_RANK = {"": 0, Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}

TECHNIQUE_ID = re.compile(r"^T\d{4}(?:\.\d{3})?$")
TACTIC_ID = re.compile(r"^TA\d{4}$")
HEX_HASH = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{128})$")
# ATT&CK Enterprise tactic names -> ids (attack.mitre.org/tactics/enterprise). Wazuh and Sigma send
# names; v19 renamed TA0005 to "Stealth" and added TA0112 "Defense Impairment", so both the old
# and the new names are kept (soc-anchors.md §3.2).
TACTIC_NAMES = {
    "reconnaissance": "TA0043",
    "resource development": "TA0042",
    "initial access": "TA0001",
    "execution": "TA0002",
    "persistence": "TA0003",
    "privilege escalation": "TA0004",
    "defense evasion": "TA0005",
    "stealth": "TA0005",
    "defense impairment": "TA0112",
    "credential access": "TA0006",
    "discovery": "TA0007",
    "lateral movement": "TA0008",
    "collection": "TA0009",
    "command and control": "TA0011",
    "exfiltration": "TA0010",
    "impact": "TA0040",
}


class ItemError(Exception):
    """This item cannot be imported; `field` names the offending field (a dotted path)."""

    def __init__(self, field, detail):
        super().__init__(detail)
        self.field, self.detail = field, detail


class Skip(Exception):
    """A well-formed record that is not an alert (counted as skipped, not as an error)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Alert:
    """One alert of any format, normalised for `threats.ingest`."""

    source: str
    source_ref: str
    occurred_at: datetime
    title: str
    threat_type: str
    raw: dict
    severity_hint: str = ""
    observables: dict = field(default_factory=dict)
    mitre_hints: list = field(default_factory=list)
    tactics: list = field(default_factory=list)
    rule: str = ""  # rule / signature id: the first half of the grouping key
    entity: str = ""  # host / address pair: the second half
    signal: dict = field(default_factory=dict)  # the normalised signal model (docs/signals.md)
    customer_hint: str = ""  # a customer the payload names explicitly
    hosts: list = field(default_factory=list)  # names tried against INGEST_HOST_CUSTOMERS
    truncated: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def group_key(self):
        return f"{self.rule}|{self.entity}"[:KEY_MAX]

    @property
    def user(self):
        return self.observables.get("user", "")


class Reader:
    """Reads fields of one untrusted document, remembering what it had to cut or drop."""

    def __init__(self, doc):
        self.doc = doc
        self.truncated = []
        self.warnings = []

    def get(self, *paths):
        """The first present value among dotted `paths` (flattened or nested keys both work)."""
        for path in paths:
            value = dig(self.doc, path)
            if value not in (None, "", [], {}):
                return value
        return None

    def text(self, *paths, limit=TEXT_MAX, name=None):
        """A bounded string (numbers are accepted and written out), or ""."""
        for path in paths:
            value = dig(self.doc, path)
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                value = value[0]  # ECS allows arrays for most keyword fields
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, (int, float)):
                value = str(value)
            if isinstance(value, str) and value.strip():
                return self.cut(value.strip(), limit, name or path)
        return ""

    def cut(self, value, limit, name):
        if len(value) <= limit:
            return value
        self.truncated.append(name)
        return value[:limit]

    def strings(self, *paths, limit=TEXT_MAX, name=None):
        """Every string found under `paths` (through lists too), deduplicated, bounded."""
        found = []
        for path in paths:
            for item in collect(self.doc, path):
                if isinstance(item, str) and item.strip():
                    found.append(self.cut(item.strip(), limit, name or path))
        unique = list(dict.fromkeys(found))
        if len(unique) > LIST_MAX:
            self.truncated.append(name or paths[0])
        return unique[:LIST_MAX]

    def ip(self, *paths, name):
        value = self.text(*paths, name=name)
        if not value:
            return ""
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            self.warnings.append(f"{name}: {value[:60]!r} is not an IP address; left out of the observables")
            return ""

    def port(self, *paths, name):
        value = self.get(*paths)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
            return value
        if value is not None:
            self.warnings.append(f"{name}: {str(value)[:20]!r} is not a port; left out of the observables")
        return None

    def transport(self, *paths):
        """A transport protocol (tcp, udp, icmp ...): Wazuh's web decoders put the HTTP method in
        `protocol`, and ECS `network.protocol` is the application protocol, so other words are ignored."""
        value = self.text(*paths, limit=20, name="proto").lower()
        return value if value in TRANSPORTS else ""

    def hashes(self, *paths):
        found = []
        for value in self.strings(*paths, limit=200, name="hashes"):
            lowered = value.lower()
            if HEX_HASH.match(lowered):
                found.append(lowered)
            else:
                self.warnings.append(f"hashes: {value[:40]!r} is not an MD5/SHA-1/SHA-256/SHA-512 hex digest")
        return list(dict.fromkeys(found))

    def techniques(self, values):
        found = []
        for value in values:
            text = str(value).strip().upper()
            if TECHNIQUE_ID.match(text):
                found.append(text)
            elif text:
                self.warnings.append(f"mitre: {str(value)[:40]!r} is not an ATT&CK technique id; ignored")
        return list(dict.fromkeys(found))[:LIST_MAX]

    def alert(self, observables, **fields):
        """Build the Alert with only the known observables, attaching what this reader cut or dropped."""
        known = {k: v for k, v in observables.items() if v not in (None, "", [], {})}
        return Alert(observables=known, truncated=list(dict.fromkeys(self.truncated)), warnings=self.warnings,
                     **fields)


def dig(doc, path):
    """`dig(d, "a.b.c")` finds d["a"]["b"]["c"], d["a.b.c"], d["a.b"]["c"], ... (Elastic documents
    mix flattened dotted keys with nested objects)."""
    if not isinstance(doc, dict):
        return None
    if path in doc:
        return doc[path]
    head, _, rest = path.partition(".")
    while rest:
        if head in doc:
            found = dig(doc[head], rest)
            if found is not None:
                return found
        next_part, _, rest = rest.partition(".")
        head = f"{head}.{next_part}"
    return None


def collect(doc, path, depth=0):
    """Every value at dotted `path`, walking through lists at any level: ECS `threat` may be a list
    of objects whose `technique` is a list of objects whose `id` is a string."""
    if depth > 8:
        return []
    if isinstance(doc, list):
        return [value for item in doc[:LIST_MAX] for value in collect(item, path, depth + 1)]
    if not isinstance(doc, dict):
        return []
    found = list(as_list(doc[path])) if path in doc else []
    head, _, rest = path.partition(".")
    while rest:
        if head in doc:
            found += collect(doc[head], rest, depth + 1)
        next_part, _, rest = rest.partition(".")
        head = f"{head}.{next_part}"
    return found


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def tactic_ids(values):
    """ATT&CK tactic ids from ids or names ("Credential Access", "credential-access", "TA0006")."""
    found = []
    for value in values:
        text = str(value).strip()
        if TACTIC_ID.match(text.upper()):
            found.append(text.upper())
            continue
        name = re.sub(r"[-_\s]+", " ", text).strip().lower()
        if name in TACTIC_NAMES:
            found.append(TACTIC_NAMES[name])
        elif name:
            found.append(name[:60])  # unknown name: still a distinct tactic for grouping
    return sorted(set(found))[:LIST_MAX]


def parse_time(value, field_name):
    """ISO-8601 (with or without a zone: naive means UTC) or epoch seconds / milliseconds, in UTC and
    within TIME_RANGE."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _in_range(_epoch_time(value, field_name), field_name)
    if not isinstance(value, str) or not value.strip():
        raise ItemError(field_name, "A timestamp is required.")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        parsed = _kibana_time(text)
        if parsed is None:
            raise ItemError(field_name, f"{text[:60]!r} is not an ISO-8601 timestamp.") from None
    return _in_range(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC), field_name)


def _epoch_time(value, field_name):
    try:
        return datetime.fromtimestamp(value / 1000 if value > 10**11 else value, tz=UTC)
    except (OverflowError, OSError, ValueError):  # also an integer too large to divide as a float
        raise ItemError(field_name, f"{str(value)[:40]} is not a valid epoch time.") from None


def _in_range(moment, field_name):
    """`moment` in UTC, refused outside TIME_RANGE: at the calendar's edges (year 1 or 9999 with an
    offset) it cannot even be converted, and the grouping window and look-backs add and subtract
    hours and days from it."""
    earliest, latest = TIME_RANGE
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not earliest <= utc < latest:
        raise ItemError(field_name, f"{moment.isoformat()} is not between {earliest:%Y-%m-%d} and "
                                    f"{latest:%Y-%m-%d} (UTC).")
    return utc


def _kibana_time(text):
    """Kibana's display format, which some Shuffle workflows forward: "Nov 26, 2026 @ 10:00:00.000"."""
    for pattern in ("%b %d, %Y @ %H:%M:%S.%f", "%b %d, %Y @ %H:%M:%S"):
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None


def slug(text, limit):
    """Lowercase words joined by underscores, cut at a word boundary: safe in types and keys."""
    words = re.findall(r"[a-z0-9]+", str(text).lower())
    result = ""
    for word in words:
        candidate = f"{result}_{word}" if result else word
        if len(candidate) > limit:
            break
        result = candidate
    return result or (words[0][:limit] if words else "")


def category(prefix, value):
    """A generic threat type such as `wazuh:authentication_failed` (at most 40 characters)."""
    return f"{prefix}:{slug(value, TYPE_MAX - len(prefix) - 1) or 'alert'}"


def fingerprint(doc):
    """A stable reference for alerts that carry no id of their own: SHA-256 of the canonical JSON."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def reference(value, fallback_doc):
    text = str(value).strip() if value not in (None, "") else ""
    return text[:REF_MAX] if text else fingerprint(fallback_doc)


def unwrap_source(doc):
    """The document inside an Elasticsearch/OpenSearch hit ({"_id", "_source": {...}}), else `doc`.
    Importers map from it but store the item as received in `raw`."""
    return doc["_source"] if isinstance(doc.get("_source"), dict) else doc


def severity_max(*values):
    return max(values, key=lambda s: SEVERITY_RANK.get(s, 0))


TASK_EXEC = re.compile(r"<Exec>.*?<Command>(.*?)</Command>(?:\s*<Arguments>(.*?)</Arguments>)?", re.S | re.I)


def scheduled_command(task_content, image_path=""):
    """What a Windows scheduled task (event 4698's TaskContent XML: <Exec><Command>/<Arguments>) or a
    new service (7045/4697's ImagePath) runs, as one command line; "" when neither says."""
    found = TASK_EXEC.search(task_content[:65_536]) if isinstance(task_content, str) else None
    if found:
        return html.unescape(" ".join(part.strip() for part in found.groups() if part))[:8_192]
    return image_path.strip()[:8_192] if isinstance(image_path, str) else ""
