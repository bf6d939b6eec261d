"""DevOps agent: could a deployment, scaling step, outage or maintenance explain the signal?

An infrastructure change that explains a signal makes it a *benign true positive* (the traffic
really happened, for an approved reason), not a false positive; the false-positive analyzer keeps
the two apart.
"""

import re
from datetime import timedelta

from threats import sql
from threats.models import InfraEvent

from .. import naming, signal_model
from ..base import Agent, AgentResult, field_ref, read_for_batch, with_article

WINDOW_BEFORE = timedelta(minutes=60)
WINDOW_AFTER = timedelta(minutes=5)
MAX_EVENTS = 20
# Families that infrastructure changes commonly cause, and which kinds of change can cause them.
EXPLAINS = {
    "rate_limit_breach": {"deployment", "scaling", "outage", "maintenance", "config_change"},
    "anomaly_detection": {"deployment", "scaling", "outage", "maintenance", "config_change"},
    "bot_traffic": {"deployment", "config_change"},
    "denial_of_service": {"scaling", "outage", "maintenance"},
    "policy": {"deployment", "maintenance", "config_change"},
    "authentication": {"outage", "maintenance", "config_change"},
    # An administrator's actions: an approved change explains them.
    "persistence": {"deployment", "maintenance", "config_change"},
    "account_manipulation": {"deployment", "maintenance", "config_change"},
    "defense_evasion": {"deployment", "maintenance", "config_change"},
    "privilege_escalation": {"maintenance", "config_change"},
    # Remote administration (PsExec, WinRM, SSH) is how patching and roll-outs reach their hosts.
    "lateral_movement": {"deployment", "maintenance", "config_change"},
}
# What no change explains, even one naming the host: impact, theft, malware and their channels.
NEVER_EXPLAINED = {"impact", "malware", "command_and_control", "credential_access", "exfiltration", "ransomware",
                   "exploit"}
APPROVED_KINDS = {"deployment", "maintenance", "config_change"}  # planned changes, unlike an outage
POINTS_EACH, POINTS_CAP = -10, -20
SERVICE_FIELDS = ("endpoint", "host", "urls", "user")  # a service identity is named for its service
TOKEN = re.compile(r"[a-z0-9]+")
EVENTS = sql.Columns(InfraEvent)


class DevOpsAgent(Agent):
    kind = "devops"

    def gather(self, threat):
        return self.gather_many([threat])[0]

    def gather_many(self, threats):
        # In SQL because it runs for every threat (threats/sql.py says why); one read for a batch.
        return read_for_batch(threats, _read_events, _in_window, MAX_EVENTS)

    def analyze(self, threat, infra):
        family = signal_model.family(threat)
        result = AgentResult(summary="", confidence=0.6)
        result.data = {"infra_events": [e.pk for e in infra], "explaining": []}
        if not infra:
            result.summary = "No infrastructure change in the hour before the signal."
            result.find(result.summary, "signal.occurred_at")
            return result
        # Which planned changes name this very host, service or service identity: whatever the family,
        # such a change explains it (attack evidence is weighed apart: agents/verdict.py).
        result.data["names_this"] = [e.pk for e in infra if e.kind in APPROVED_KINDS and _same_service(threat, e)]
        explaining = [e for e in infra if e.kind in EXPLAINS.get(family, ()) or (
            e.pk in result.data["names_this"] and family not in NEVER_EXPLAINED)]
        for event in infra:
            minutes = round((threat.occurred_at - event.started_at).total_seconds() / 60)
            when = f"{minutes} min before" if minutes >= 0 else f"{-minutes} min after"
            service = f" ({event.service})" if event.service else ""
            result.find(f"{event.get_kind_display()}{service} {when} the signal: {event.description}",
                        f"infra_event:{event.pk}", "signal.occurred_at")
        result.confidence = 0.8
        if explaining:
            refs = [f"infra_event:{e.pk}" for e in explaining]
            for event in explaining:
                where = _same_service(threat, event)
                if where:
                    result.data.setdefault("same_service", []).append(event.pk)
                    result.find(f"The changed service '{event.service}' is the one in the signal.",
                                f"infra_event:{event.pk}", where)
            points = max(POINTS_CAP, POINTS_EACH * len(explaining))
            kinds = ", ".join(sorted({e.get_kind_display().lower() for e in explaining}))
            result.score(points, f"{len(explaining)} infrastructure change(s) ({kinds}) in the window can explain "
                                 f"{with_article(family.replace('_', ' '))}", *refs)
            result.data["explaining"] = [e.pk for e in explaining]
            result.summary = f"{len(explaining)} infrastructure change(s) in the window may explain this signal."
            result.recommendations.append("Confirm with the change owner that the change caused this traffic "
                                          "and close as benign true positive if so.")
        else:
            result.summary = (f"{len(infra)} infrastructure change(s) in the window; none of them explains "
                              f"{with_article(family.replace('_', ' '))}.")
        return result


def _window(threat):
    return threat.occurred_at - WINDOW_BEFORE, threat.occurred_at + WINDOW_AFTER


def _read_events(threats, limit):
    """The infrastructure events of the threats' customers, or of all customers, that overlap any
    of their windows: oldest first, at most `limit`."""
    start, end = min(_window(t)[0] for t in threats), max(_window(t)[1] for t in threats)
    customers = sorted({threat.customer_id for threat in threats})
    start, end = sql.param(InfraEvent, "started_at", start), sql.param(InfraEvent, "started_at", end)
    return EVENTS.instances(
        f"SELECT {EVENTS} FROM {InfraEvent._meta.db_table}"
        f" WHERE (customer_id IN ({sql.placeholders(customers)}) OR customer_id IS NULL) AND started_at <= %s"
        " AND ((ended_at IS NULL AND started_at >= %s) OR ended_at >= %s)"
        f" ORDER BY started_at, id LIMIT {limit}",
        [*customers, end, start, start])


def _in_window(event, threat):
    """The SQL condition above, for one threat: its customer's or everyone's, and overlapping its window."""
    start, end = _window(threat)
    return event.customer_id in (None, threat.customer_id) and event.started_at <= end and (
        event.started_at >= start if event.ended_at is None else event.ended_at >= start)


# Deployment tools whose own user agent or program names them: a change saying "Terraform apply" is
# the change that made a call whose user agent is Terraform's (`change_tool_named`).
DEPLOY_TOOLS = re.compile(r"\b(terraform|pulumi|cloudformation|ansible|puppet|chef|saltstack|helm|argocd|"
                          r"flux|octopus|spinnaker|cdk)\b", re.I)
TOOL_FIELDS = ("user_agent", "process", "command_line")


# A change of an account's credential: devices still holding the old one fail to log on until they get
# the new one (`rotation_explains_failures`).
ROTATION = re.compile(r"\b(password|credential|secret|key)s?\b[^.;]{0,60}\b(rotat\w*|chang\w*|reset\w*|updat\w*)\b|"
                      r"\brotat\w*\b[^.;]{0,60}\b(password|credential|secret)s?\b", re.I)
FAILED_LOGONS = {"login_failure", "brute_force"}


def _rotated_account(threat, text):
    """The account field whose failed logons a credential rotation naming that account explains, or None."""
    if not FAILED_LOGONS & set(signal_model.behaviours(threat)) or not ROTATION.search(text):
        return None
    account = signal_model.model(threat)["account"]
    for field, value in (("signal.observables.user", signal_model.text(threat, "user")),
                         ("signal.account.target", account.get("target"))):
        if naming.names_account(value, text.lower()):
            return field
    return None


def _tool_named(threat, text):
    """The field showing a deployment tool that the change's description also names, or None."""
    tools = {found.lower() for found in DEPLOY_TOOLS.findall(text)}
    for name in TOOL_FIELDS if tools else ():
        for value in signal_model.values(threat, name):
            if tools & {found.lower() for found in DEPLOY_TOOLS.findall(value[:2_000])}:
                return field_ref(name)
    return None


def _same_service(threat, event):
    """The signal field the change names, or None: an address, account or host its service or
    description names (agents/naming.py), the deployment tool that made the call (`change_tool_named`),
    or a field holding every word of the changed service."""
    text = f"{event.service} {event.description}"
    named = naming.names(threat, text, fields=("host",)) or naming.names_artifact(threat, text) \
        or _tool_named(threat, text) or _rotated_account(threat, text)
    if named:
        return named
    words = set(TOKEN.findall(event.service.lower()))
    for name in SERVICE_FIELDS:
        for value in signal_model.values(threat, name):
            if words and words <= set(TOKEN.findall(value.strip().lower())):
                return field_ref(name)
    return None
