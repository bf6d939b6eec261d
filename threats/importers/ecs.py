"""Elastic Common Schema events and Elastic Security alerts (`.alerts-security.alerts-*`
documents, with `kibana.alert.*` keys flattened or nested, or `_search` hits).

Field reference: ECS field list (`elastic/ecs` `generated/ecs/ecs_flat.yml`) and Elastic's
"Alert schema" page. Risk-score buckets follow Elastic's rule defaults (low 21, medium 47,
high 73, critical 99).
"""

import re

from threats.choices import Severity

from .common import (ItemError, Reader, as_list, category, collect, dig, parse_time, reference, scheduled_command, tactic_ids,
                     unwrap_source)
from .signal import (ASSUMED_ROLE, CLOUD_ACTIONS, WINDOWS_EVENTS, Signal, cloud_login_failed, consent_grant, direction,
                     guardduty_finding, mail_rule, mail_verdict, shared_out)

SOURCE = "ecs"
RISK_BANDS = [(74, Severity.CRITICAL), (48, Severity.HIGH), (22, Severity.MEDIUM), (0, Severity.LOW)]
# The account as an integration names it, for the ES|QL rules that keep the integration's own column
# instead of ECS user.name (Entra ID sign-ins, Okta system log, ES|QL aggregations).
INTEGRATION_USERS = ("azure.signinlogs.properties.user_principal_name", "okta.actor.alternate_id",
                     "Esql.user_name_values")
RULE_THREAT = ("kibana.alert.rule.threat", "signal.rule.threat", "rule.threat")


def parse(item):
    doc = unwrap_source(item)
    read = Reader(doc)
    timestamp = read.get("kibana.alert.original_time", "@timestamp")
    if timestamp is None:
        raise ItemError("@timestamp", "An ECS document has an `@timestamp`.")
    rule_name = read.text("kibana.alert.rule.name", "signal.rule.name", "rule.name", limit=200, name="rule.name")
    # okta.client.ip: an ES|QL rule over the Okta integration keeps the column it grouped by; ES|QL
    # aggregations name theirs Esql.<field>_values (the first value is the source named).
    src_ip = read.ip("source.ip", "client.ip", "okta.client.ip", "Esql.source_ip_values", name="src_ip")
    host = read.text("host.name", "host.hostname", name="host")
    title = rule_name or read.text("kibana.alert.reason", "message", "event.action", limit=200, name="title")
    rule = read.text("kibana.alert.rule.uuid", "kibana.alert.rule.rule_id", "signal.rule.id", "rule.uuid", "rule.id",
                     limit=100) or rule_name or title
    normalised = signal(read, doc)
    return read.alert(
        source=SOURCE,
        source_ref=reference(read.text("kibana.alert.uuid", "event.id", limit=200) or item.get("_id"), doc),
        occurred_at=parse_time(timestamp, "@timestamp"),
        title=title or "Elastic alert",
        threat_type=category(SOURCE, read.text("event.category", limit=60) or rule_name or "alert"),
        raw=item,
        severity_hint=normalised["severity"].get("level", ""),
        observables={
            "src_ip": src_ip,
            "dst_ip": read.ip("destination.ip", "server.ip", name="dst_ip"),
            "src_port": read.port("source.port", "client.port", name="src_port"),
            "dst_port": read.port("destination.port", "server.port", name="dst_port"),
            "proto": read.transport("network.transport"),
            "user": read.text("user.name", "user.target.name", "kubernetes.audit.user.username", *INTEGRATION_USERS,
                              name="user"),
            "host": host,
            "user_agent": read.text("user_agent.original", name="user_agent"),
            "urls": read.strings("url.full", "url.original", limit=2_048, name="urls"),
            "domains": read.strings("url.domain", "destination.domain", "dns.question.name",
                                    "tls.client.server_name", limit=253, name="domains"),
            "hashes": read.hashes(*[f"{obj}.hash.{algo}" for obj in ("file", "process", "dll")
                                    for algo in ("md5", "sha1", "sha256", "sha512")]),
            "process": read.text("process.executable", "process.name", name="process"),
            "command_line": read.text("process.command_line", limit=8_192, name="command_line") or scheduled_command(
                dig(doc, "winlog.event_data.TaskContent"), dig(doc, "winlog.event_data.ImagePath")),
            "community_id": read.text("network.community_id", limit=100, name="community_id"),
            "country": _country(read),
        },
        mitre_hints=read.techniques(_techniques(read)),
        tactics=tactic_ids(read.strings("threat.tactic.id", *[f"{p}.tactic.id" for p in RULE_THREAT], limit=60)
                           or read.strings("threat.tactic.name", limit=60)),
        signal=normalised,
        rule=f"rule:{rule}",
        entity=f"{host}|{src_ip}",
        # Not organization.id: Elastic's integrations put the vendor's tenant there (the Microsoft 365
        # tenant GUID, the Okta org), which names the customer's account with the vendor, not the customer.
        customer_hint=read.text("organization.name", limit=100, name="organization.name"),
        hosts=list(dict.fromkeys(h for h in (host, read.text("agent.name", "observer.name", limit=200)) if h)),
    )


def _techniques(read):
    paths = ["threat.technique.id", "threat.technique.subtechnique.id"]
    for prefix in RULE_THREAT:
        paths += [f"{prefix}.technique.id", f"{prefix}.technique.subtechnique.id"]
    return read.strings(*paths, limit=20, name="mitre")


def _country(read):
    code = read.text("source.geo.country_iso_code", "client.geo.country_iso_code", limit=10)
    return code.upper() if len(code) == 2 and code.isalpha() else ""



# --- The normalised signal (docs/signals.md, "Elastic") --------------------------------------------

# ECS event.category -> behaviour, when the type and outcome say which (`_ecs_behaviours`).
ECS_CATEGORY = {"malware": "malware", "vulnerability": "vulnerability", "threat": "indicator_match"}
# Elastic Defend's alert kinds (event.code of logs-endpoint.alerts-*).
ENDPOINT_CODES = {"ransomware": "ransomware", "malicious_file": "malware", "memory_signature": "malware",
                  "shellcode_thread": "malware"}
FIM_MODULES = ("fim", "file_integrity", "syscheck")
# Identity and audit sources of cloud services (Elastic integrations' event.module / dataset / provider).
CLOUD_ORIGINS = ("okta", "azure", "entra", "o365", "m365", "aws", "cloudtrail", "gcp", "google_workspace",
                 "signinlogs", "github")
RULE_TYPES = {"threat_match": "indicator_match", "machine_learning": "anomaly"}
# event.action values of Elastic's Windows, system and cloud integrations (Winlogbeat, Auditbeat).
ACTIONS = {
    "logon-failed": "login_failure", "logged-in": "login_success", "added-user-account": "account_created",
    "user-account-created": "account_created", "added-member-to-group": "group_member_added",
    "added-group-account-member": "group_member_added", "audit-log-cleared": "log_cleared",
    "cleared-audit-log": "log_cleared", "service-installed": "persistence", "scheduled-task-created": "persistence",
    "user_added": "account_created", "user_group_changed": "group_member_added",
}
SEVERITY_NAMES = {"low": "LOW", "medium": "MEDIUM", "high": "HIGH", "critical": "CRITICAL", "informational": "LOW"}


def signal(read, doc, built=None):
    """The ECS event or Elastic Security alert as a normalised signal (onto `built`, if given)."""
    built = built or Signal()
    _severity_signal(built, read)
    event_signal(built, read)
    if read.text("kibana.alert.building_block_type", "signal.rule.building_block_type", limit=20):
        built.set("kind", "building_block", "kibana.alert.building_block_type")
    kind = read.text("event.kind", limit=20).lower()
    built.set("kind", "alert" if kind in ("alert", "signal") else kind, "event.kind")
    rule_type = read.text("kibana.alert.rule.type", "signal.rule.type", limit=40)
    if rule_type in RULE_TYPES:
        built.behaviour(RULE_TYPES[rule_type], "kibana.alert.rule.type", rule_type)
    built.measure("events", read.get("kibana.alert.threshold_result.count", "signal.threshold_result.count"),
                  "kibana.alert.threshold_result.count")
    built.measure("anomaly_score", read.get("anomaly_score", "kibana.alert.anomaly_score"), "anomaly_score")
    ancestors = collect(doc, "kibana.alert.ancestors") + collect(doc, "signal.ancestors")
    built.data["ancestors"] = list(dict.fromkeys(
        str(a["id"])[:200] for a in ancestors if isinstance(a, dict) and a.get("type") == "signal" and a.get("id")))[:20]
    for match in collect(doc, "threat.enrichments")[:10]:
        _enrichment(built, match)
    return built.finish()


def event_signal(built, read):
    """The ECS event fields any document may carry (Elastic alerts, generic alerts that use ECS names)."""
    categories, types = read.strings("event.category", limit=40), read.strings("event.type", limit=40)
    built.ecs(categories, types, "event.category")
    action = read.text("event.action", limit=80)
    built.set("action", action.lower(), "event.action")
    _outcome(built, read, [t.lower() for t in types])
    _ecs_behaviours(built, read, [c.lower() for c in categories], [t.lower() for t in types], action.lower())
    code = read.text("event.code", "winlog.event_id", limit=10)
    if code in WINDOWS_EVENTS:
        name, outcome = WINDOWS_EVENTS[code]
        built.behaviour(name, "event.code", f"event {code}").set("outcome", outcome, "event.code")
    built.set("parent_process", read.text("process.parent.executable", "process.parent.name", limit=1000),
              "process.parent.executable")
    built.set("parent_command", read.text("process.parent.command_line", limit=8_192), "process.parent.command_line")
    built.set("workdir", read.text("process.working_directory", limit=1000), "process.working_directory")
    named = LOGON_TYPES.get(str(read.get("winlog.logon.type")))
    built.measure("logon_type", named or read.get("winlog.event_data.LogonType"),
                  "winlog.logon.type" if named else "winlog.event_data.LogonType")
    for name, path in (("src_bytes", "source.bytes"), ("dst_bytes", "destination.bytes"), ("bytes", "network.bytes"),
                       ("http_status", "http.response.status_code"), ("response_bytes", "http.response.body.bytes"),
                       ("events", "event.count")):
        built.measure(name, read.get(path), path)
    registry = " = ".join(filter(None, (read.text("registry.path", limit=500),
                                        " ".join(read.strings("registry.data.strings", limit=200)[:3]))))
    built.set("registry", registry, "registry.path")
    built.set("file", read.text("file.path", "file.name", limit=1000), "file.path")
    named = read.text("network.direction", limit=20).lower()
    named = {"ingress": "inbound", "egress": "outbound"}.get(named, named)
    built.set("direction", named if named in ("inbound", "outbound", "internal", "external") else
              direction(read.text("source.ip", "client.ip", "okta.client.ip", limit=64),
                        read.text("destination.ip", "server.ip", limit=64)),
              "network.direction" if named else "source.ip")
    built.set("protocol", read.text("network.protocol", limit=20).lower(), "network.protocol")
    origin = " ".join((read.text("event.module", limit=40), read.text("event.dataset", limit=60),
                       read.text("event.provider", limit=60), read.text("cloud.provider", limit=20))).lower()
    built.set("cloud", any(name in origin for name in CLOUD_ORIGINS), "event.dataset")
    built.account("target", read.text("user.target.name", limit=200), "user.target.name")
    for path in ("user.target.domain", "winlog.event_data.TargetDomainName", "user.domain"):
        built.account("domain", read.text(path, limit=200), path)
    built.account("group", read.text("group.name", "user.target.group.name", limit=200), "group.name")
    built.account("group", _entra_role(read), "azure.auditlogs.properties.target_resources")
    built.account("group", read.text("google_workspace.admin.role.name", limit=200), "google_workspace.admin.role.name")
    # CloudTrail names the user and group an IAM call acts on only in its request parameters.
    for name, key in (("target", "userName"), ("group", "groupName")):
        path = f"aws.cloudtrail.flattened.request_parameters.{key}"
        built.account(name, read.text(path, limit=200), path)
    built.account("actor", read.text("user.name", limit=200), "user.name")
    assumed = ASSUMED_ROLE.search(read.text("aws.cloudtrail.user_identity.arn", limit=400))
    built.account("role", assumed.group(1) if assumed else "", "aws.cloudtrail.user_identity.arn")
    if read.text("aws.cloudtrail.user_identity.type", limit=40).lower() == "root":
        built.account("kind", "root", "aws.cloudtrail.user_identity.type")  # the account's owner identity
    built.forwarded(read.strings("network.forwarded_ip", "http.request.headers.x-forwarded-for",
                                 "http.request.headers.X-Forwarded-For", limit=200), "network.forwarded_ip")
    for value in read.strings("threat.indicator.ip", "threat.indicator.url.full", "threat.indicator.file.hash.sha256",
                              "threat.indicator.domain", limit=500)[:10]:
        built.indicator("indicator", value, "threat.indicator", read.text("threat.indicator.provider", limit=100))
    return built


def _entra_role(read):
    """The directory role an Entra ID audit record assigns: the target's modified property
    Role.DisplayName (new_value, JSON-quoted), as Elastic's azure.auditlogs keeps it."""
    targets = read.get("azure.auditlogs.properties.target_resources")
    for target in _items(targets)[:20]:
        changed = target.get("modified_properties") if isinstance(target, dict) else None
        for item in _items(changed)[:50]:
            if isinstance(item, dict) and item.get("display_name") == "Role.DisplayName":
                return str(item.get("new_value") or "").strip().strip('"')[:200]
    return ""


def _items(value):
    """A JSON array, or an object used as one (Elastic flattens arrays into {"0": …, "1": …}), as a list."""
    return list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else []


def _severity_signal(built, read):
    named = read.text("kibana.alert.severity", "signal.rule.severity", "event.severity_name", limit=20).lower()
    if named in SEVERITY_NAMES:
        built.severity(SEVERITY_NAMES[named], "kibana.alert.severity", named)
    score = read.get("kibana.alert.risk_score", "signal.rule.risk_score", "event.risk_score")
    if isinstance(score, (int, float)) and not isinstance(score, bool) and 0 <= score <= 100:
        built.severity(next(s for floor, s in RISK_BANDS if score >= floor), "kibana.alert.risk_score", score)


C2_INDICATOR = re.compile(r"\bc2\b|\bc&c\b|\bcnc\b|command[-_ ]and[-_ ]control|botnet_cc", re.I)
# winlog.logon.type names (Elastic's Windows integration) -> Windows logon type numbers.
LOGON_TYPES = {"Interactive": 2, "Network": 3, "Batch": 4, "Service": 5, "Unlock": 7, "NetworkCleartext": 8,
               "NewCredentials": 9, "RemoteInteractive": 10, "CachedInteractive": 11}
# event.action values by which a security control says it stopped the thing (an EDR's quarantine,
# an IPS's block or drop, a firewall's deny).
PREVENTED_ACTIONS = {"quarantine", "quarantined", "block", "blocked", "prevent", "prevented", "deny", "denied",
                     "drop", "dropped"}


def _outcome(built, read, types):
    """Elastic Defend marks a prevention with event.type "denied" (its event.outcome then says the
    prevention succeeded); elsewhere event.outcome is the activity's own outcome."""
    if "denied" in types:
        built.set("prevented", True, "event.type").set("outcome", "failure", "event.type")
    elif "allowed" in types:
        built.set("prevented", False, "event.type")
    elif read.text("event.action", limit=40).lower() in PREVENTED_ACTIONS:  # the control's own action
        built.set("prevented", True, "event.action")
    outcome = read.text("event.outcome", limit=20).lower()
    if "denied" not in types:
        built.set("outcome", outcome if outcome in ("success", "failure") else "", "event.outcome")


CONTROLLERS = re.compile(r"^system:(kube-controller-manager$|serviceaccount:kube-system:[\w-]+-controller$)")
WORKLOADS = {"pods", "deployments", "daemonsets", "statefulsets", "replicasets", "jobs", "cronjobs"}


def _node_reaching_pod(built, read):
    """A Kubernetes audit record creating a workload whose pod reaches its node — a privileged
    container, the host's PID namespace, or the node's root filesystem mounted (T1611 Escape to Host;
    the Pod Security Standards' baseline forbids each)."""
    audit = read.get("kubernetes.audit")
    if not isinstance(audit, dict) or str(audit.get("verb")) != "create" or \
            str((audit.get("objectRef") or {}).get("resource")) not in WORKLOADS:
        return
    if CONTROLLERS.match(str((audit.get("user") or {}).get("username") or "")):
        return  # a controller expanding a workload admitted earlier (a DaemonSet's pods): not anyone's request
    spec = (audit.get("requestObject") or {}).get("spec") or {}
    spec = ((spec.get("template") or {}).get("spec") or spec) if isinstance(spec, dict) else {}
    if not isinstance(spec, dict):
        return
    containers = [c for c in as_list(spec.get("containers"))[:20] + as_list(spec.get("initContainers"))[:20]
                  if isinstance(c, dict)]
    reaches = [what for what, present in (
        ("privileged", any((c.get("securityContext") or {}).get("privileged") is True for c in containers)),
        ("hostPID", spec.get("hostPID") is True),
        ("the node's root filesystem", any(str((v.get("hostPath") or {}).get("path")) == "/"
                                           for v in as_list(spec.get("volumes"))[:50] if isinstance(v, dict))),
    ) if present]
    if reaches:
        built.behaviour("privilege_escalation", "kubernetes.audit.requestObject",
                        f"a pod that reaches its node: {', '.join(reaches)} (T1611)")
        code = (audit.get("responseStatus") or {}).get("code")
        if isinstance(code, int) and code >= 400:
            built.set("outcome", "failure", "kubernetes.audit.responseStatus.code")


def _ecs_behaviours(built, read, categories, types, action):
    """Behaviours from ECS keywords; an action the tables know says more than its category."""
    outcome = read.text("event.outcome", limit=20).lower()
    code = read.text("event.code", limit=40).lower()
    if code in ENDPOINT_CODES:
        built.behaviour(ENDPOINT_CODES[code], "event.code", code)
    mail_rule(built, action, read.get("o365.audit.Parameters"), read.text("o365.audit.UserId", "user.email", "user.id"),
              "o365.audit.Parameters")
    mail_verdict(built, read.get("o365.audit"), "o365.audit")
    shared_out(built, action, read.get("aws.cloudtrail.request_parameters", "aws.cloudtrail.flattened.request_parameters"),
               "aws.cloudtrail.request_parameters")
    consent_grant(built, action, read.get("o365.audit.ModifiedProperties"), "o365.audit.ModifiedProperties")
    _node_reaching_pod(built, read)
    guardduty_finding(built, read.text("aws.guardduty.type", limit=200), "aws.guardduty.type")
    if action in ACTIONS or action in CLOUD_ACTIONS:
        built.behaviour(cloud_login_failed(ACTIONS.get(action) or CLOUD_ACTIONS[action], outcome == "failure"),
                        "event.action", action)
        return
    if "file" in categories and any(m in read.text("event.module", "event.dataset", limit=60).lower()
                                    for m in FIM_MODULES):
        built.behaviour("integrity_change", "event.module", "file integrity monitoring")
    if "authentication" in categories and outcome in ("success", "failure"):
        built.behaviour("login_failure" if outcome == "failure" else "login_success", "event.category",
                        f"authentication {outcome}")
    if "iam" in categories and "creation" in types and "user" in types:
        built.behaviour("account_created", "event.type", "iam user creation")
    if "iam" in categories and "group" in types and "change" in types and read.text("group.name", limit=200):
        built.behaviour("group_member_added", "event.type", "iam group change")
    for category in categories:
        if category in ECS_CATEGORY:
            built.behaviour(ECS_CATEGORY[category], "event.category", category)


def _enrichment(built, match):
    """An indicator-match alert's `threat.enrichments[]`: what matched, and the feed."""
    if not isinstance(match, dict):
        return
    atomic = dig(match, "matched.atomic")
    feed = dig(match, "indicator.provider") or dig(match, "feed.name") or ""
    built.indicator(str(dig(match, "matched.type") or "indicator")[:40], atomic if isinstance(atomic, str) else "",
                    "threat.enrichments", feed, dig(match, "indicator.confidence"), dig(match, "indicator.last_seen"))
    built.behaviour("indicator_match", "threat.enrichments", f"matched {dig(match, 'matched.field') or 'an indicator'}")
    # The feed says the address is a command-and-control server and one of ours reached it (a contact
    # the firewall refused is an attempt: no channel was opened).
    said = f"{dig(match, 'indicator.description') or ''} {dig(match, 'indicator.threat_type') or ''}"
    refused = built.data["prevented"] is True or built.data["outcome"] == "failure"
    if C2_INDICATOR.search(said) and str(dig(match, "matched.field") or "").startswith(("destination.", "dns.")) \
            and not refused:
        built.behaviour("command_and_control", "threat.enrichments", "contacted a listed C2 server")
