"""Context agent: business context of the customer at the time of the signal.

Context items apply by threat type and, when they carry keywords, only when a keyword occurs in
one of the signal's entity observables or the accounts, group or role an account change names (never in free text such as the user agent, which the
attacker writes: "pentest" in a user agent must not explain anything). A matching business item (an approved pentest, a marketing
launch, a known VPN egress) explains the signal; an advisory about an active campaign aggravates it.
A business item that says what is NOT approved or expected of the entity ("no cloud sync tool is
approved", "does not use any commercial proxy", "replication rights were never intended for it")
explains nothing: it aggravates, like an advisory (`context_denies`).
"""

import ipaddress
import re

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from threats import sql
from threats.choices import ContextKind, Tier
from threats.models import ContextItem

from .. import content, naming, signal_model
from ..base import Agent, AgentResult, customer_ref, field_ref, read_for_batch

TIER_POINTS = {Tier.ENTERPRISE: 5, Tier.BUSINESS: 2, Tier.STARTER: 0}
# Human-driven activity outside business hours is more suspicious than traffic-shaped activity.
OFF_HOURS_FAMILIES = {"device_compromise", "anomaly_detection", "geo_anomaly", "authentication", "exfiltration",
                      "command_and_control", "malware", "credential_access", "account_manipulation",
                      "privilege_escalation", "lateral_movement", "persistence", "defense_evasion", "execution", "impact"}
MAX_ITEMS = 50
ITEMS = sql.Columns(ContextItem)
KEYWORD_FIELDS = ("src_ip", "dst_ip", "user", "host", "domains", "endpoint", "country")
PROGRAM_FIELDS = ("process", "command_line")
# kind -> (points when a keyword matched, points when it applies by type only)
ITEM_POINTS = {ContextKind.ADVISORY: (8, 5), ContextKind.BUSINESS: (-12, -5), ContextKind.NEWS: (3, 0)}
ACTOR_FIELDS = {field_ref("src_ip"), field_ref("user")}  # who acted, as opposed to where it happened
UNEXPLAINABLE = {"inhibit_recovery"}  # behaviours no business note explains
DENIED_POINTS = (8, 5)  # a business item saying the activity is not approved weighs like an advisory

# `context_denies`: a sentence that says something is not approved, expected or done here. An item
# denies when one of its sentences does and none approves anything: "The pentest from 192.0.2.200 is
# approved; no other scanning is" still explains the pentest's own traffic.
SENTENCES = re.compile(r"(?<=[.;!?])\s+")
DENIAL = re.compile(
    r"\bno\b[^.;]{0,160}\b(is|are|was|were|has been|have been)\s+(ever\s+)?(approved|allowed|permitted|expected|"
    r"authori[sz]ed|sanctioned|planned|scheduled|registered|installed|in use|logged|recorded|booked|on file)\b"
    r"|\b(not|never)\s+(been\s+|be\s+|ever\s+)?(approved|allowed|permitted|expected|authori[sz]ed|sanctioned|"
    r"intended|planned|scheduled|registered|used|needed|required)\b"
    r"|\b(does|do|did)\s+not\s+(use|run|need|have|own|operate|travel|work)\b|\b(doesn't|don't|didn't)\s+(use|run|need|have)\b"
    r"|\bno\s+(business\s+|legitimate\s+)?(reason|need)\s+to\b"
    r"|\bno\s+(travel|change|maintenance|pentest|penetration test|approval|ticket)\b[^.;]{0,40}"
    r"\b(registered|approved|scheduled|planned|open|on file|filed)\b"
    r"|\b(should|must)\s+(not|never)\b|\bprohibited\b|\bforbidden\b"
    r"|\bno\s+(approved|authori[sz]ed|sanctioned|permitted)\b"
    r"|\b(has|have)\s+no\s+business\b|\bno\s+(one|human|user|person|staff|employee)s?\s+(uses?|logs?|signs?)\b"
    r"|\bnobody\s+(uses?|logs?|signs?|runs?|needs?)\b"
    r"|\bnone\s+(has|have)\s+been\s+(issued|granted|approved|raised|logged|filed|opened|booked)\b"
    r"|\bnever\s+(be\s+)?[a-z]{3,}\b|\b(has|have)\s+no\s+[\w-]+\s+(rights|access|permissions?|privileges?)\b"
    r"|\b(has|have)\s+no\s+(network\s+)?(route|path|connectivity)\b"
    r"|\bis\s+not\s+an?\s+[\w-]+\s+(account|host|server|tool)\b",
    re.I)
# "WinRM from any other source is not approved" approves the source the note names: a denial of
# everything else is an approval of what it excepts. "Dropbox or any other file-sharing service"
# extends the denial instead.
EXCEPTING = re.compile(r"(?<!\bor\s)(?<!\bnor\s)(?<!\band\s)\b(any\s+other|all\s+other)\b|"
                       r"\b(other\s+than|else|elsewhere|except|besides|apart\s+from)\b", re.I)
OBJECT_EXCEPTION = re.compile(r"other\s+than|except|besides|apart\s+from", re.I)  # the excepted thing follows
# `context_restricts`: a note that states a rule — who may act, from where, on what condition ("used
# only from the jump host", "require an approved change", "need a ticket") — approves no particular
# event: it neither explains an alert nor, by itself, accuses it. "…or approved changes" is such a
# condition, not an approval.
RESTRICTION = re.compile(r"\bonly\s+(from|by|through|via|as|with)\b|\b(from|by|through|via)\b[^.;]{1,40}\bonly\b|"
                         r"\brequires?\b|\brequired\b|"
                         r"\bneeds?\s+an?\s+(ticket|change|approval|request)\b|\bdiscouraged\b|\bby\s+design\b", re.I)
# "Logins are expected only from the VPN pool 10.60.200.0/24": a rule naming where sign-ins come from,
# which a sign-in (or guessing) from inside those addresses meets (explains) and one from outside breaks
# (denies): `login_outside_the_rule`.
ONLY_FROM = re.compile(r"\bonly\s+(from|via|through)\b|\b(from|via|through)\b[^.;]{1,60}\bonly\b", re.I)
LOGIN_WORDS = re.compile(r"\b(log-?ins?|log-?ons?|logs?\s+(in|on)|sign-?ins?|signs?\s+in|ssh|rdp|vpn|"
                         r"authenticat\w*|interactive)\b", re.I)
LOGINS = {"login_success", "login_failure", "brute_force", "password_spraying", "credential_stuffing"}
NETWORKS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\b")
# "Only the index rebuild (CHG-88213) is approved": an approval of one named thing, which this alert may
# not be — a rule, not an approval of this event.
EXCLUSIVE = re.compile(r"\bonly\b[^.;]{0,80}\b(is|are|was|were)\s+(approved|allowed|permitted|authori[sz]ed)\b", re.I)
# "Only X does Y" states who does Y: X's own Y is approved by it, anyone else's restricted.
ONLY_SUBJECT = re.compile(r"^\W*only\s+(the\s+)?[\w-]", re.I)
CONDITIONAL = re.compile(r"\b(requires?|required|needs?|or|outside|without|unless)\s+(an?\s+|the\s+)?"
                         r"(approved|authori[sz]ed)\b"
                         # "a known gap scheduled for removal" plans a fix, it approves nothing
                         r"|\b(scheduled|planned)\s+(for|to\s+be)\s+(removal|removed|decommission\w*|retire\w*|"
                         r"deprecat\w*|deletion|deleted|replacement|replaced|remediation|fixing|fixed)\b", re.I)
APPROVAL = re.compile(r"\b(approved|authori[sz]ed|sanctioned|expected|scheduled|planned|allowed|permitted|"
                      r"allow-?listed|whitelisted|routine|legitimate|engaged|contracted)\b", re.I)


class ContextAgent(Agent):
    kind = "context"

    def gather(self, threat):
        return self.gather_many([threat])[0]

    def gather_many(self, threats):
        # In SQL because it runs for every threat (threats/sql.py says why); one read for a batch.
        found = read_for_batch(threats, _read_items, _current, MAX_ITEMS)
        return [[i for i in items if _about(i.threat_types, threat)] for threat, items in zip(threats, found)]

    def analyze(self, threat, items):
        customer = threat.customer
        result = AgentResult(summary="", confidence=0.7)
        if TIER_POINTS.get(customer.tier):
            result.score(TIER_POINTS[customer.tier], f"{customer.get_tier_display()} tier customer",
                         customer_ref(customer, "tier"))
        in_hours, hours_text = self._hours(result, threat, customer)
        entities = _entities(threat)
        applied, named_items, actor_items, reads, read = [], set(), set(), {}, {}
        for item in items:
            matched = {k: entities[k.strip().lower()] for k in item.keywords
                       if isinstance(k, str) and k.strip().lower() in entities}
            if not matched and item.kind == ContextKind.BUSINESS:
                # A note that names the alert's host, address or acting account in its words ("pushes the
                # CU to EDU-SQL-01..04") is about this alert as much as a keyword. Filed under other
                # keywords, only its denial counts ("P2P is NOT permitted on staff networks 10.12.0.0/16"):
                # what it approves was approved for the things it was filed under.
                named = naming.names(threat, f"{item.title}\n{item.body}")
                if named and not item.keywords:
                    matched = {named.removeprefix("signal.observables."): named}
                elif named and _read(read, item, threat) == "denies":
                    matched = {named.removeprefix("signal.observables."): named}
            if item.keywords and not matched:
                continue
            applied.append(item)
            reads[item.pk] = _read(read, item, threat)
            if matched:
                named_items.add(item.pk)
            if set(matched.values()) & ACTOR_FIELDS:
                actor_items.add(item.pk)
            self._apply(result, item, matched, reads[item.pk])
        # Deleting every recovery point is no backup job's work (`recovery_never_explained`): a note saying
        # "vssadmin on file servers is the backup job" does not explain `delete shadows /all`.
        explainable = not UNEXPLAINABLE & set(signal_model.behaviours(threat))
        explaining = [pk for pk, how in reads.items() if how == "explains" and explainable]
        denying = [pk for pk, how in reads.items() if how == "denies"]
        by_entity = [i.pk for i in applied if i.pk in explaining and i.pk in named_items]
        result.data = {"business_hours": in_hours, "local_time": hours_text, "items": [i.pk for i in applied],
                       "explaining": explaining, "explaining_by_entity": by_entity,
                       "denying": denying,
                       "explaining_actor": [pk for pk in explaining if pk in actor_items],
                       "denying_by_entity": [pk for pk in denying if pk in named_items],
                       "advisories": [i.pk for i in applied if i.kind == ContextKind.ADVISORY]}
        if explaining:
            result.confidence = 0.85
        result.summary = (
            f"{customer.get_tier_display()} customer; signal {'inside' if in_hours else 'outside'} business hours; "
            f"{len(applied)} relevant context item(s)"
            + (f", {len(explaining)} of them explain the activity." if explaining else ".")
        )
        return result

    def _hours(self, result, threat, customer):
        local = _local_time(threat.occurred_at, customer.timezone)
        in_hours = customer.business_hours_start <= local.hour < customer.business_hours_end and local.weekday() < 5
        hours_text = f"{local:%a %H:%M} {customer.timezone}"
        evidence = ("signal.occurred_at", customer_ref(customer, "business_hours"))
        result.find(f"Signal at {hours_text}, {'inside' if in_hours else 'outside'} business hours.", *evidence)
        if not in_hours and signal_model.family(threat) in OFF_HOURS_FAMILIES:
            result.score(5, f"human-driven activity outside business hours ({hours_text})", *evidence)
        return in_hours, hours_text

    def _apply(self, result, item, matched, how):
        ref = f"context_item:{item.pk}"
        why = f" (matches {', '.join(repr(k) for k in matched)})" if matched else ""
        result.find(f"{item.get_kind_display()}: {item.title}{why}", ref, *dict.fromkeys(matched.values()))
        if how == "denies":
            result.score(DENIED_POINTS[0 if matched else 1], f"business context says it is not approved: {item.title}",
                         ref)
            return
        if how == "restricts":
            return  # a rule, not an approval of this event: the finding above cites it for the analyst
        points = ITEM_POINTS.get(item.kind, (0, 0))[0 if matched else 1]
        if points > 0:
            result.score(points, f"{item.get_kind_display().lower()}: {item.title}", ref)
        elif points < 0:
            result.score(points, f"explained by business context: {item.title}", ref)
            result.recommendations.append(f"Check the activity against '{item.title}' and close as benign true "
                                          "positive if it matches.")


def _about(types, threat):
    """A note filed under threat types applies to a threat of one of them: its type, its family, or a
    behaviour it shows, also by a whole word of one ("scan" for network_scan, as an analyst writes it)."""
    if not types:
        return True
    names = {threat.threat_type, signal_model.family(threat), *signal_model.behaviours(threat)}
    words = {word for name in names for word in str(name).replace(":", "_").split("_")}
    return any(isinstance(t, str) and (t in names or t.strip().lower() in words) for t in types)


def _read(reads, item, threat):
    """How a business note reads, decided once per threat (the sentences, their naming); None for
    other kinds of item."""
    if item.pk not in reads:
        reads[item.pk] = reading(item, threat) if item.kind == ContextKind.BUSINESS else None
    return reads[item.pk]


def reading(item, threat=None):
    """How a business note reads: "denies" (it says what is not approved or expected and approves
    nothing: `context_denies`), "restricts" (it only states a rule: `context_restricts`), else
    "explains". A note that approves one thing and denies another ("permitted on ResNet 10.88.0.0/16,
    NOT on staff networks 10.12.0.0/16") reads as the sentence that names this alert says, and as a
    rule when neither or both do."""
    denying, approving, restricting = [], [], []
    for sentence in SENTENCES.split(f"{item.title}. {item.body}"):
        if DENIAL.search(sentence):
            (approving if _excepts_this(sentence, threat) else denying).append(sentence)  # an exception approves
        elif EXCLUSIVE.search(sentence):
            restricting.append(sentence)
        elif (where := _only_from(sentence, threat)) is not None:
            (approving if where else denying).append(sentence)
        elif ONLY_SUBJECT.search(sentence):  # "Only the SCADA servers (10.80.1.10-11) poll PLCs": its actor
            actor = threat is not None and naming.names(threat, sentence, addresses=("src_ip",))
            (approving if actor else restricting).append(sentence)
        elif APPROVAL.search(CONDITIONAL.sub(" ", sentence)):
            approving.append(sentence)
        elif RESTRICTION.search(sentence):
            restricting.append(sentence)
    if approving and denying and threat is not None:
        names = lambda sentences: any(naming.names(threat, s) for s in sentences)  # noqa: E731
        approves, denies = names(approving), names(denying)
        if approves != denies:
            return "explains" if approves else "denies"
        return "restricts"  # which of the two this alert is, the note does not say: a rule, not an approval
    if approving:
        return "explains"
    return "denies" if denying else "restricts" if restricting else "explains"



def _only_from(sentence, threat):
    """For a rule naming the addresses sign-ins come from ("only from 10.60.200.0/24") and an alert that
    shows sign-ins or guessing: whether its source is among them (True/False); None when the sentence is
    no such rule, the alert no such activity, or it names no source address."""
    if threat is None or not ONLY_FROM.search(sentence) or not LOGIN_WORDS.search(sentence) \
            or not LOGINS & set(signal_model.behaviours(threat)):
        return None
    networks = [network for network in (_network(text) for text in NETWORKS.findall(sentence)) if network]
    sources = [ip for ip in (_address(text) for text in signal_model.values(threat, "src_ip")) if ip]
    if not networks or not sources:
        return None
    return any(ip in network for ip in sources for network in networks if ip.version == network.version)


def _network(text):
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _address(text):
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _excepts_this(sentence, threat):
    """A denial with an exception approves what it excepts: "from any other source" (the source named
    elsewhere in the note) always; "other than Windows Update via WSUS" only when that object names
    this alert — everything else stays denied."""
    found = EXCEPTING.search(sentence)
    if not found:
        return False
    if not OBJECT_EXCEPTION.match(found.group(0)):
        return True
    if threat is None:
        return False  # which alert it excepts is unknown: the denial stands
    named = sentence[found.end():]
    return bool(naming.names(threat, named) or naming.names_artifact(threat, named))


def _read_items(threats, limit):
    """The context items of the threats' customers, or of all customers, valid at any moment
    between the first and the last signal: newest first, at most `limit`."""
    earliest = sql.param(ContextItem, "valid_from", min(t.occurred_at for t in threats))
    latest = sql.param(ContextItem, "valid_from", max(t.occurred_at for t in threats))
    customers = sorted({threat.customer_id for threat in threats})
    return ITEMS.instances(
        f"SELECT {ITEMS} FROM {ContextItem._meta.db_table}"
        " WHERE valid_from <= %s AND (valid_until IS NULL OR valid_until >= %s)"
        f" AND (customer_id IN ({sql.placeholders(customers)}) OR customer_id IS NULL)"
        f" ORDER BY valid_from DESC, id DESC LIMIT {limit}",
        [latest, earliest, *customers])


def _current(item, threat):
    """The SQL condition above, for one threat: its customer's or everyone's, valid when the signal occurred."""
    when = threat.occurred_at
    return item.customer_id in (None, threat.customer_id) and item.valid_from <= when and (
        item.valid_until is None or item.valid_until >= when)


ACCOUNT_KEYS = ("target", "actor", "group", "role")


def _entities(threat):
    """Lower-cased entity values of the signal -> the field they came from (an e-mail-style account also
    by its local part; the accounts, group and role an account change names); a program also by each folder and file name of its path (an item naming the software "RMMAgent" matches
    C:\\Program Files\\RMMAgent\\RMMAgentService.exe), never by its arguments."""
    found = {}
    for name in KEYWORD_FIELDS:
        for value in signal_model.values(threat, name):
            found.setdefault(value.strip().lower(), field_ref(name))
            if name == "user" and "@" in value:  # an account is also named without its domain (adm.kbrennan)
                found.setdefault(value.strip().lower().split("@")[0], field_ref(name))
    account = signal_model.model(threat)["account"]  # whom an account change is for, the group or role it gives
    for key in ACCOUNT_KEYS:
        value = account.get(key)
        if isinstance(value, str) and value.strip():
            found.setdefault(value.strip().lower(), f"signal.account.{key}")
            found.setdefault(value.strip().lower().split("@")[0], f"signal.account.{key}")
    for name in PROGRAM_FIELDS:
        for value in signal_model.values(threat, name):
            parts = content.program(value).replace("\\", "/").lower().split("/")
            for part in parts[1:] if parts[0].endswith(":") else parts:
                if part.strip():
                    found.setdefault(part.strip(), field_ref(name))
    return found


def _local_time(moment: datetime, zone):
    try:
        return moment.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return moment
