"""Does a text an analyst or a change ticket wrote name this alert's entity?

Change tickets (infra events) and business notes (context items) are written in prose: "pushes the
CU to EDU-SQL-01..04", "scanner 192.0.2.10", "adm.pkhan deploys". A name counts when it stands whole
in the text, or (a host) inside a numbered range of names, a decade of them (sql-1x) or a fleet named by prefix (edu-*); short
names (db, ws1) occur in any text.
"""

import re

from . import signal_model
from .base import field_ref

MIN_NAME = 4
ADDRESS_FIELDS = ("src_ip", "dst_ip")
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*[a-z0-9]")
# An identifier a change deploys: a reverse-DNS bundle or daemon label (edu.edulearn.wifi-cert-renew), a
# package with its version (agent-8.17.4): at least three parts, so that ordinary words never match.
ARTIFACT = re.compile(r"(?<![\w.-])[a-z][a-z0-9]*(?:[._-][a-z0-9]+){2,}(?![\w-])")
ARTIFACT_FIELDS = ("command_line", "process")
CIDR = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}/\d{1,2}(?!\d)")
# A numbered range as tickets write it: lms-db-01..04, edge-lon-01..08, web1..web4.
RANGE = re.compile(r"\b([a-z][a-z0-9_.-]*?)(\d+)\s*(?:\.\.|–|\bto\b)\s*(?:\1)?(\d+)\b")
# A fleet as tickets write it: "all edu-* servers", "HCP-WS-RAD-*": a prefix ending at a separator.
WILDCARD = re.compile(r"(?<![\w.-])([a-z][a-z0-9_.-]*[-_.])\*")
MIN_PREFIX = 4
# A decade of numbered hosts as tickets write it: "the GF-SQL-1x collection" (GF-SQL-10 … GF-SQL-19).
DECADE = re.compile(r"(?<![\w.-])([a-z][a-z0-9_.-]*\d)x(?![\w-])")
# The product folder a Windows program runs from ("C:\\Program Files\\Zabbix Agent 2\\zabbix_agent2.exe"), and
# the program whose configuration a Linux file is (/etc/nginx/sites-enabled/app.conf).
PRODUCT_FOLDER = re.compile(r"program files(?: \(x86\))?\\([^\\\"]+)\\", re.I)
CONFIG_FOLDER = re.compile(r"^/etc/([a-z][a-z0-9_-]+)/")
MIN_PRODUCT = 6


def names(threat, text, fields=("host",), accounts=True, addresses=ADDRESS_FIELDS):
    """The signal field whose value `text` names (an address in `addresses` written whole, the acting
    account when the alert has no host of its own, a host in `fields` whole or in a range), or None."""
    text = text.lower()
    networks = [signal_model.network(cidr) for cidr in CIDR.findall(text)]
    for name in addresses:
        for value in signal_model.values(threat, name):
            address = signal_model.ip(value)
            if address is not None and re.search(rf"(?<![\d.]){re.escape(value.strip())}(?![\d.]*\d)", text):
                return field_ref(name)
            if address is not None and any(n is not None and address.version == n.version and address in n
                                           for n in networks):
                return field_ref(name)  # inside a range the text names (10.12.0.0/16)
    # An account for an alert with no host of its own (a cloud identity's action): where there is a
    # host, the text must name it.
    for value in [] if not accounts or signal_model.text(threat, "host") else signal_model.values(threat, "user"):
        if names_account(value, text):
            return field_ref("user")
    # A cloud call made through an assumed role (a pipeline's session name changes every run; its role does not).
    role = str(signal_model.model(threat)["account"].get("role") or "").lower()
    if accounts and len(role) >= MIN_NAME and re.search(rf"(?<![\w.-]){re.escape(role)}(?![\w-]|\.\w)", text):
        return "signal.account.role"
    found = {part for name in NAME.findall(text) for part in (name, name.split(".")[0])}
    for name in fields:
        for value in signal_model.values(threat, name):
            if names_host(value.strip().lower(), found, text):
                return field_ref(name)
    return None


def names_account(value, text):
    """The account (without its domain or NetBIOS prefix) is a whole name in the lower-cased text."""
    account = str(value or "").strip().lower().split("@")[0].rsplit("\\", 1)[-1]
    return len(account) >= MIN_NAME and bool(re.search(rf"(?<![\w.-]){re.escape(account)}(?![\w-]|\.\w)", text))


def names_host(host, found, text):
    """The host, or its first DNS label, is a whole name in the text, inside a range of it, or of a fleet
    the text names by prefix (edu-*)."""
    candidates = {host, host.split(".")[0]} - {""}
    if any(len(c) >= MIN_NAME and c in found for c in candidates):
        return True
    if any(len(p) >= MIN_PREFIX and c.startswith(p) for p in WILDCARD.findall(text) for c in candidates):
        return True
    if any(len(p) >= MIN_PREFIX and re.fullmatch(re.escape(p) + r"\d", c) for p in DECADE.findall(text)
           for c in candidates):
        return True
    for prefix, low, high in RANGE.findall(text):
        for candidate in candidates:
            rest = candidate[len(prefix):] if candidate.startswith(prefix) and len(prefix) >= 2 else ""
            if rest.isdigit() and int(low) <= int(rest) <= int(high):
                return True
    return False


def names_artifact(threat, text):
    """The program field (command line, process) holding an identifier the text names — the daemon,
    bundle or package a change deploys, or the product whose folder the program runs from — or the
    file whose program's configuration folder the text names ("behind nginx": /etc/nginx/…), or
    None. Addresses and host names are left to names()."""
    lowered = text.lower()
    for name in ARTIFACT_FIELDS:
        for value in signal_model.values(threat, name):
            product = PRODUCT_FOLDER.search(value)
            if product and len(product.group(1)) >= MIN_PRODUCT and _whole(product.group(1).lower(), lowered):
                return field_ref(name)
    config = CONFIG_FOLDER.match(str(signal_model.model(threat).get("file") or ""))
    if config and len(config.group(1)) >= MIN_NAME and _whole(config.group(1).lower(), lowered):
        return "signal.file"
    wanted = [a for a in ARTIFACT.findall(lowered) if len(a) >= 12 and signal_model.ip(a) is None]
    for name in ARTIFACT_FIELDS:
        for value in signal_model.values(threat, name):
            # Whole, or followed by a suffix the text leaves out (the label's .plist, the package's .msi).
            if any(re.search(rf"(?<![\w-]){re.escape(a)}(?![\w-])", value.lower()) for a in wanted):
                return field_ref(name)
    return None


def _whole(name, text):
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text) is not None
