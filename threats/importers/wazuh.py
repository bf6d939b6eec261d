"""Wazuh alerts (`/var/ossec/logs/alerts/alerts.json` lines, `wazuh-alerts-*` hits, or Shuffle's
`{"all_fields": {...}}` envelope), any rule.

Field reference: the Wazuh index template (`extensions/elasticsearch/7.x/wazuh-template.json`)
and the alert samples in the Wazuh documentation. Rule level (0-15) becomes a severity hint
through the INGEST_WAZUH_LEVELS table (docs/ingestion.md); `rule.mitre.tactic` carries
tactic names, which are turned into ids.
"""

import re
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from threats.choices import Severity

from . import suricata
from .common import (ItemError, Reader, as_list, category, dig, parse_time, reference, scheduled_command, tactic_ids,
                     unwrap_source)
from .countries import country_code
from .signal import (ASSUMED_ROLE, CLOUD_ACTIONS, DEFENDER_EVENTS, WINDOWS_EVENTS, Signal, cloud_login_failed,
                     consent_grant, guardduty_finding, mail_rule, mail_verdict, shared_out)

SOURCE = "wazuh"
# level >= threshold -> severity; the common bucketing (soc-anchors.md §3.1), configurable.
# Rule groups that only name the log channel; the type comes from the first group after them.
CHANNEL_GROUPS = {"local", "syslog", "ossec", "windows", "linux", "json"}
SYSMON_HASH = re.compile(r"(?:MD5|SHA1|SHA256|SHA512)=([0-9A-Fa-f]+)")


# Decoders of the Linux tools that add a user to a group (Wazuh ruleset decoders gpasswd, usermod).
MEMBERSHIP_DECODERS = {"gpasswd", "usermod"}
# Common/combined access log: '"GET /path HTTP/1.1" 200 187442' - the request line, status, body size.
ACCESS_LOG = re.compile(r'"[A-Z]+ [^"]* HTTP/[0-9.]+" \d{3} (\d+)')

def level_table(spec):
    """[(15, "CRITICAL"), (12, "HIGH"), ...] from "0:LOW,7:MEDIUM,..." or from settings.py's pairs."""
    pairs = tuple(map(tuple, spec)) if isinstance(spec, (list, tuple)) else tuple(
        entry.replace("=", ":").partition(":")[::2] for entry in filter(None, map(str.strip, spec.split(","))))
    return _table(pairs)


@lru_cache(maxsize=8)
def _table(pairs):
    table = []
    for level, severity in pairs:
        level, severity = str(level).strip(), str(severity).strip().upper()
        if not level.isdigit() or not 0 <= int(level) <= 15 or severity not in Severity.values:
            raise ImproperlyConfigured(
                f"INGEST_WAZUH_LEVELS: {level}:{severity} is not LEVEL:SEVERITY with LEVEL 0-15 and SEVERITY one "
                f"of {', '.join(Severity.values)}"
            )
        table.append((int(level), severity))
    if not table or min(level for level, _ in table) != 0:
        raise ImproperlyConfigured("INGEST_WAZUH_LEVELS must give a severity for level 0")
    return sorted(table, reverse=True)


def severity_for(level):
    table = level_table(settings.INGEST_WAZUH_LEVELS)
    return next(severity for floor, severity in table if level >= floor)


def parse(item):
    doc = unwrap_source(item.get("all_fields") if isinstance(item.get("all_fields"), dict) else item)
    rule = doc.get("rule")
    if not isinstance(rule, dict):
        raise ItemError("rule", "A Wazuh alert has a `rule` object (id, level, description).")
    level = _level(rule.get("level"))
    read = Reader(doc)
    rule_id = read.text("rule.id", limit=40) or "unknown"
    agent = read.text("agent.name", limit=200)
    src_ip = read.ip("data.srcip", "data.src_ip", "data.win.eventdata.ipAddress", "data.aws.sourceIPAddress",
                     "data.office365.ClientIP", "data.office365.ActorIpAddress", "data.remip", "data.source_address",
                     name="src_ip")
    observables = {
        "src_ip": src_ip,
        "dst_ip": read.ip("data.dstip", "data.dst_ip", "data.destination_address", name="dst_ip"),
        "src_port": read.port("data.srcport", "data.win.eventdata.ipPort", name="src_port"),
        "dst_port": read.port("data.dstport", name="dst_port"),
        "proto": read.transport("data.protocol"),
        "user": read.text("data.dstuser", "data.srcuser", "data.win.eventdata.targetUserName",
                          "data.win.eventdata.subjectUserName", "syscheck.uname_after", "data.office365.UserId",
                          "data.aws.userIdentity.userName", name="user"),
        "host": agent,
        "urls": read.strings("data.url", limit=2_048, name="urls"),
        "hashes": list(dict.fromkeys(read.hashes(
            "syscheck.md5_after", "syscheck.sha1_after", "syscheck.sha256_after", "data.virustotal.source.md5",
            "data.virustotal.source.sha1", "data.md5", "data.sha1", "data.sha256") + _sysmon_hashes(read))),
        "process": read.text("data.win.eventdata.image", "data.audit.exe", "data.process.name",
                             "syscheck.audit.process.name", name="process"),  # who-data: the program that wrote
        "command_line": read.text("data.win.eventdata.commandLine", name="command_line") or _execve(doc) or read.text(
            "data.audit.command", "data.command", limit=8_192, name="command_line") or scheduled_command(
            dig(doc, "data.win.eventdata.taskContent"), dig(doc, "data.win.eventdata.imagePath")),
        # The indexer's GeoIP enrichment of data.srcip names the country, not its code.
        "country": country_code(read.text("GeoLocation.country_name", limit=100)),
    }
    mitre = rule.get("mitre") if isinstance(rule.get("mitre"), dict) else {}
    return read.alert(
        source=SOURCE,
        source_ref=_reference(doc, item),
        occurred_at=parse_time(doc.get("timestamp") or doc.get("@timestamp"), "timestamp"),
        title=read.text("rule.description", limit=200, name="rule.description") or f"Wazuh rule {rule_id}",
        threat_type=category(SOURCE, _type_group(rule.get("groups"))),
        raw=item,
        severity_hint=severity_for(level),
        observables=observables,
        mitre_hints=read.techniques(as_list(mitre.get("id"))),
        tactics=tactic_ids(as_list(mitre.get("tactic"))),
        signal=signal(doc, level),
        rule=f"rule:{rule_id}",
        entity=f"{agent}|{src_ip}",
        customer_hint=read.text("agent.labels.customer", "labels.customer", limit=100, name="agent.labels.customer"),
        hosts=list(dict.fromkeys(h for h in (agent, read.text("predecoder.hostname", limit=200)) if h)),
    )


def _level(value):
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 15:
        raise ItemError("rule.level", f"Rule level must be an integer 0-15, not {str(value)[:20]!r}.")
    return value


def _reference(doc, item):
    """`id` is unique per manager ("epoch.offset"), so it is qualified by the manager's name."""
    alert_id = doc.get("id") or item.get("_id")
    manager = doc.get("manager", {}).get("name") if isinstance(doc.get("manager"), dict) else None
    if alert_id and manager:
        alert_id = f"{manager}:{alert_id}"
    return reference(alert_id, doc)


def _type_group(groups):
    names = [g for g in as_list(groups) if isinstance(g, str) and g.strip()]
    specific = [g for g in names if g.lower() not in CHANNEL_GROUPS]
    return (specific or names or ["alert"])[0]


def _sysmon_hashes(read):
    """Sysmon's `Hashes` field packs several digests: "SHA1=...,MD5=...,SHA256=...,IMPHASH=..."."""
    packed = read.text("data.win.eventdata.hashes", limit=1_000, name="hashes")
    return [h.lower() for h in SYSMON_HASH.findall(packed) if len(h) in (32, 40, 64, 128)]


# --- The normalised signal (docs/signals.md, "Wazuh") ----------------------------------------------

# rule.groups -> (behaviour, outcome): the ruleset's own classification of what a rule detects.
# Rootcheck's trojan check with its catch-all signature (strings such as 'bash' or '/bin/sh' that many
# ordinary binaries contain): rootcheck/rootkit_trojans.txt in the Wazuh ruleset.
GENERIC_TROJAN = re.compile(r"Trojaned version of file .* Signature used: .*\(Generic\)", re.I)
GROUP_BEHAVIOURS = {
    "authentication_failed": ("login_failure", "failure"), "invalid_login": ("login_failure", "failure"),
    "login_denied": ("login_failure", "failure"), "authentication_failures": ("brute_force", "failure"),
    "authentication_success": ("login_success", "success"), "adduser": ("account_created", ""),
    "account_changed": ("account_changed", ""), "group_changed": ("group_member_added", ""),
    "logs_cleared": ("log_cleared", "success"), "virus": ("malware", ""), "exploit_attempt": ("exploit_attempt", ""),
    "attacks": ("exploit_attempt", ""), "sql_injection": ("web_attack", ""), "attack": ("web_attack", ""),
    "web_scan": ("vulnerability_scan", ""), "recon": ("recon_probe", ""), "connection_attempt": ("network_scan", ""),
    "vulnerability-detector": ("vulnerability", ""), "sudo": ("privileged_command", ""),
    "policy_changed": ("integrity_change", ""), "syscheck": ("integrity_change", ""),
    "rootcheck": ("anomaly", ""), "active_response": ("informational", ""),
    **{name: ("informational", "") for name in ("service_availability", "system_error", "low_diskspace",
                                                "agent_flooding", "upgrade", "hostinfo", "spam", "time_changed")},
}
CLOUD_GROUPS = {"amazon", "aws", "office365", "azure", "gcp", "google_workspace", "github"}
# Processes that read LSASS memory as part of their job (antivirus, EDR, the OS itself).
LSASS_READERS = {"msmpeng.exe", "mssense.exe", "sensecncproxy.exe", "csrss.exe", "wininit.exe", "services.exe",
                 "svchost.exe", "lsm.exe", "wmiprvse.exe", "taskmgr.exe", "vmtoolsd.exe"}
READER_HOMES = re.compile(r"^c:\\(windows\\system32\\|programdata\\microsoft\\windows defender( advanced threat "
                          r"protection)?\\|program files\\(windows defender( advanced threat protection)?|vmware\\vmware tools)\\)")
# A failed login as sshd, PAM, su, login and Windows write it in the log lines Wazuh keeps.
FAILED_LOGIN = re.compile(r"failed password|invalid user|authentication failure|failed publickey|failed login|"
                          r"login failed|an account failed to log on|logon failure|"
                          r"\blogin fail\b|\bssl-login-fail\b", re.I)  # FortiGate: logdesc/action of SSL-VPN failures
CRONTAB_REPLACED = re.compile(r"\bcrontab\[\d+\]:\s+\(([^)\s]+)\)\s+REPLACE\s+\(")
DEFENDER_STOPS = {"quarantine", "remove", "clean", "block"}  # Defender's actions that stop the file running
SYSCHECK_TYPES = {"added": "creation", "modified": "change", "deleted": "deletion"}
SYSMON_DETECTIONS = re.compile(r"^sysmon_eid\d+_detections$")
# The account each earlier failure was for (Windows 4625 targetUserName, sshd "for <user> from"): many
# accounts from one source is spraying, which nobody's mistyped password explains.
FAILED_EVENT = re.compile(r'"eventID"\s*:\s*"(4625|4771|4776)"')
TRIED_ACCOUNT = re.compile(r'"targetUserName"\s*:\s*"([^"]{1,100})"|\bfor\s+(?:invalid\s+user\s+)?([^\s"]{1,100})\s+from\b|'
                           r'\buser="([^"]{1,100})"')  # Windows 4625 JSON, sshd, FortiOS key=value logs
SPRAYED_ACCOUNTS = 5
REPEATED_FAILURES = 3  # failed logins before a success that make it guessing, not a mistyped password
RUN_KEYS = re.compile(r"\\(currentversion\\(run|runonce|policies\\explorer\\run)|winlogon\\(userinit|shell))\b", re.I)


# PAN-OS threat/content types (the THREAT log's subtype, PAN-OS "Threat Log Fields").
PAN_THREATS = {"vulnerability": "exploit_attempt", "spyware": "command_and_control", "virus": "malware",
               "wildfire-virus": "malware", "wildfire": "malware", "scan": "network_scan", "flood": "denial_of_service"}


def signal(doc, level):
    """The Wazuh alert as a normalised signal: rule groups, Windows/Sysmon event ids, decoded data."""
    rule, data = doc["rule"], doc.get("data") if isinstance(doc.get("data"), dict) else {}
    built = Signal().severity(severity_for(level), "rule.level", level)
    groups = [g.lower() for g in as_list(rule.get("groups")) if isinstance(g, str)]
    # Wazuh's Sysmon detection rules (groups sysmon_eid<N>_detections) are each written for one
    # technique, like an installation's own rules; the other stock families tag whole families.
    curated = _custom_rule(rule.get("id")) or any(SYSMON_DETECTIONS.match(g) for g in groups)
    built.set("trust", "curated" if curated else "coarse", "rule.groups" if curated and not _custom_rule(
        rule.get("id")) else "rule.id")
    _windows(built, dig(data, "win") or {})
    _audit(built, data)
    log = doc.get("full_log") if isinstance(doc.get("full_log"), str) else ""
    if "rootcheck" in groups and GENERIC_TROJAN.search(log[:2_000]):
        built.behaviour("anomaly", "full_log", "rootcheck's generic trojaned-binary signature")
    for group in groups:
        if group in GROUP_BEHAVIOURS:
            name, outcome = GROUP_BEHAVIOURS[group]
            built.behaviour(name, "rule.groups", group).set("outcome", outcome, "rule.groups")
    _crontab(built, groups, log)
    if ACCEPTED_LOGIN.search(log[:2_000]):  # sshd's own success line, whichever rule (40112 too) carries it
        built.behaviour("login_success", "full_log", "sshd accepted the login").set("outcome", "success", "full_log")
    created = NEW_ACCOUNT_UID.search(log[:2_000])
    built.account("uid", created.group(1) if created else "", "full_log")
    if "virustotal" in groups and str(dig(data, "virustotal.malicious")) == "1":
        built.behaviour("malware", "data.virustotal.malicious", f"{dig(data, 'virustotal.positives')} engines")
        built.measure("detections", dig(data, "virustotal.positives"), "data.virustotal.positives")
        built.measure("engines", dig(data, "virustotal.total"), "data.virustotal.total")
    _palo_alto_threat(built, data)
    # A remote-access gateway's log (FortiGate `subtype vpn`, an SSL/IPsec tunnel, a VPN rule group): a
    # login there comes in from outside through an external remote service (T1133).
    if str(dig(data, "subtype") or "").lower() == "vpn" or dig(data, "tunneltype") or {"vpn", "sslvpn"} & set(groups):
        built.set("protocol", "vpn", "data.subtype" if dig(data, "subtype") else "rule.groups")
    parent = dig(data, "win.eventdata.parentImage")
    built.set("parent_process", parent[:1000] if isinstance(parent, str) else "", "data.win.eventdata.parentImage")
    parent_command = dig(data, "win.eventdata.parentCommandLine")
    built.set("parent_command", parent_command[:8_192] if isinstance(parent_command, str) else "",
              "data.win.eventdata.parentCommandLine")
    for path in ("syscheck.audit.effective_user.name", "syscheck.audit.user.name"):  # who-data: who wrote it
        built.account("writer", dig(doc, path) if isinstance(dig(doc, path), str) else "", path)
    # The audit login user (auid): whose session it was. A daemon started at boot (a web server) has none.
    login = dig(doc, "syscheck.audit.login_user.name")
    if isinstance(login, str) and login.strip().lower() not in ("", "-", "unset", "(unset)", "4294967295"):
        built.account("session", login, "syscheck.audit.login_user.name")
    docker = str(dig(data, "docker.Action") or dig(data, "docker.status") or "")
    if docker.startswith("exec_start"):
        built.behaviour("suspicious_execution", "data.docker.Action", f"a shell opened in a container ({docker[:40]})")
    workdir = dig(doc, "syscheck.audit.process.cwd")  # who-data: where the writing program was working
    built.set("workdir", workdir[:1000] if isinstance(workdir, str) else "", "syscheck.audit.process.cwd")
    if "web" in groups or "accesslog" in groups:
        built.measure("http_status", data.get("id"), "data.id")
        logged = ACCESS_LOG.search(str(doc.get("full_log") or "")[:8192])  # the decoder keeps no size
        built.measure("response_bytes", logged.group(1) if logged else None, "full_log")
    if isinstance(dig(data, "alert"), dict):  # Suricata EVE forwarded by the Wazuh integration
        suricata.behaviours(built, data, "data.")
    _cloud(built, data)
    built.set("cloud", bool(set(groups) & CLOUD_GROUPS), "rule.groups")
    syscheck = doc.get("syscheck") if isinstance(doc.get("syscheck"), dict) else {}
    built.set("file", str(syscheck.get("path") or "")[:1000], "syscheck.path")
    event = str(syscheck.get("event") or "").lower()  # added, modified, deleted: as ECS's event.type says it
    built.ecs([], [SYSCHECK_TYPES[event]] if event in SYSCHECK_TYPES else [], "syscheck.event")
    if syscheck.get("value_name"):
        built.set("registry", f"{str(syscheck.get('path'))[:500]}\\{str(syscheck['value_name'])[:200]}", "syscheck.value_name")
    built.measure("events", rule.get("frequency"), "rule.frequency")
    built.account("target", dig(data, "dstuser"), "data.dstuser")
    built.account("actor", dig(data, "srcuser"), "data.srcuser")
    built.set("action", dig(doc, "decoder.name"), "decoder.name")
    if str(dig(doc, "decoder.name") or "").lower() in MEMBERSHIP_DECODERS and isinstance(data.get("group"), str):
        built.account("group", data["group"], "data.group")  # gpasswd/usermod: a member added to a group
        built.behaviour("group_member_added", "decoder.name", f"{dig(data, 'dstuser') or 'a user'} to {data['group']}")
    # Where the indexer's GeoIP enrichment placed data.srcip (country name only): kept to check, not trusted.
    for field in ("GeoLocation.country_name", "GeoLocation.city_name"):
        place = dig(doc, field)
        built.set("geo", place.strip()[:100] if isinstance(place, str) else "", field)
    if doc.get("previous_output"):
        built.set("kind", "alert", "previous_output")  # a composite rule: its children are in previous_output
        _failures_before(built, doc["previous_output"])
    return built.finish()


def _failures_before(built, previous):
    """A composite rule's earlier events (previous_output) that are failed logins, REPEATED_FAILURES or
    more: the guessing that came before this event (rule 40112, "failures followed by a success")."""
    lines = str(previous)[:20_000].splitlines()
    failed = [line for line in lines[:200] if FAILED_LOGIN.search(line)]
    if len(failed) >= REPEATED_FAILURES:
        built.behaviour("brute_force", "previous_output", f"{len(failed)} failed logins before it")
    accounts = {next(name for name in match.groups() if name).lower() for line in lines[:200] if FAILED_LOGIN.search(line) or FAILED_EVENT.search(line)
                for match in [TRIED_ACCOUNT.search(line)] if match}
    if len(accounts) >= SPRAYED_ACCOUNTS:
        built.behaviour("password_spraying", "previous_output", f"failed logins on {len(accounts)} accounts before it")


def _palo_alto_threat(built, data):
    """A PAN-OS THREAT log (Wazuh's paloalto decoder): its threat/content type says what the firewall
    recognised, its action whether the session was stopped (drop, reset-*, block-*, deny, sinkhole)."""
    if str(dig(data, "type") or "").upper() != "THREAT":
        return
    kind = str(dig(data, "threat_content_type") or dig(data, "subtype") or "").lower()
    if kind in PAN_THREATS:
        built.behaviour(PAN_THREATS[kind], "data.threat_content_type", f"PAN-OS {kind}: {str(dig(data, 'threat_id'))[:80]}")
    action = str(dig(data, "action") or "").lower()
    if action.startswith(("drop", "reset", "block", "deny", "sinkhole")):
        built.set("prevented", True, "data.action").set("outcome", "failure", "data.action")


def _cloud(built, data):
    """AWS (CloudTrail eventName, GuardDuty finding type) and Microsoft 365 (Operation) through the
    Wazuh integrations."""
    action = str(dig(data, "aws.eventName") or dig(data, "office365.Operation") or "").strip().lower()
    field = "data.aws.eventName" if dig(data, "aws.eventName") else "data.office365.Operation"
    if action:
        built.set("action", action[:60], field)
    consent_grant(built, action, dig(data, "office365.ModifiedProperties"), "data.office365.ModifiedProperties")
    if action in CLOUD_ACTIONS:
        # CloudTrail ConsoleLogin records failures too: responseElements.ConsoleLogin "Failure", errorMessage.
        failed = str(dig(data, "aws.responseElements.ConsoleLogin") or "").lower() == "failure" or \
            bool(dig(data, "aws.errorMessage"))
        built.behaviour(cloud_login_failed(CLOUD_ACTIONS[action], failed), field, action)
        if failed:
            built.set("outcome", "failure", "data.aws.responseElements.ConsoleLogin")
    mail_rule(built, action, dig(data, "office365.Parameters"), dig(data, "office365.UserId"),
              "data.office365.Parameters")
    mail_verdict(built, dig(data, "office365"), "data.office365")
    shared_out(built, action, dig(data, "aws.requestParameters"), "data.aws.requestParameters")
    assumed = ASSUMED_ROLE.search(str(dig(data, "aws.userIdentity.arn") or "")[:400])
    built.account("role", assumed.group(1) if assumed else "", "data.aws.userIdentity.arn")
    if str(dig(data, "aws.userIdentity.type") or "").lower() == "root":
        built.account("kind", "root", "data.aws.userIdentity.type")  # the account's owner identity
    guardduty_finding(built, str(dig(data, "aws.type") or ""), "data.aws.type")


ACCEPTED_LOGIN = re.compile(r"\bsshd\[\d+\]: Accepted (password|publickey|keyboard-interactive/pam|gssapi-with-mic) "
                            r"for \S+ from ")
# shadow-utils' own line for a new account ("new user: name=pgsync, UID=0, GID=0, …"): its user id.
NEW_ACCOUNT_UID = re.compile(r"\bnew user: name=[^,\s]+, UID=(\d+)\b")


def _custom_rule(rule_id):
    """Wazuh reserves ids 100000-120000 for an installation's own rules: their ATT&CK tags are written
    for that one rule, unlike the stock rule families' (every logon failure is tagged T1531)."""
    text = str(rule_id or "")
    return text.isdigit() and 100_000 <= int(text) <= 120_000


def _execve(doc):
    """An auditd EXECVE record's arguments (data.audit.execve.a0, a1, ...) as one command line."""
    args = dig(doc, "data.audit.execve")
    if not isinstance(args, dict):
        return ""
    parts = [str(args[f"a{i}"]) for i in range(64) if isinstance(args.get(f"a{i}"), (str, int))]
    return " ".join(parts)[:8_192]


def _crontab(built, groups, log):
    """cron's own log line for a crontab installed (`crontab[pid]: (who) REPLACE (owner)`): a program
    set to run again on a schedule, written by `who` (T1053.003)."""
    found = CRONTAB_REPLACED.search(log[:2_000]) if "cron" in groups else None
    if found:
        built.behaviour("persistence", "full_log", "cron")
        built.account("writer", found.group(1)[:150], "full_log")


def _audit(built, data):
    """auditd through Wazuh: where the command ran, and the file a watch saw written (a per-user
    crontab names its owner: /var/spool/cron/crontabs/<user>)."""
    cwd, written = dig(data, "audit.cwd"), dig(data, "audit.file.name")
    built.set("workdir", cwd[:1000] if isinstance(cwd, str) else "", "data.audit.cwd")
    if isinstance(written, str):
        built.set("file", written[:1000], "data.audit.file.name")
        if "/cron/crontabs/" in written:
            built.account("writer", written.rsplit("/", 1)[-1], "data.audit.file.name")


def _windows(built, win):
    """Windows Security / System / Sysmon events forwarded by the Wazuh agent (data.win.*)."""
    event_id, provider = str(dig(win, "system.eventID") or ""), str(dig(win, "system.providerName") or "")
    event = dig(win, "eventdata") if isinstance(dig(win, "eventdata"), dict) else {}
    if not event_id:
        return
    built.set("action", f"windows-event-{event_id}"[:60], "data.win.system.eventID")
    if "sysmon" in provider.lower():
        _sysmon(built, event_id, event)
        return
    if "defender" in provider.lower():
        _defender(built, event_id, win)
        return
    if event_id in WINDOWS_EVENTS:
        name, outcome = WINDOWS_EVENTS[event_id]
        built.behaviour(name, "data.win.system.eventID", f"event {event_id}").set(
            "outcome", outcome, "data.win.system.eventID")
    if event_id == "4769" and str(event.get("ticketEncryptionType", "")).lower() == "0x17":
        built.behaviour("kerberoasting", "data.win.eventdata.ticketEncryptionType", "RC4 service ticket")
    if event_id in ("4728", "4732", "4756"):
        built.account("group", event.get("targetUserName"), "data.win.eventdata.targetUserName")
        built.account("target", event.get("memberName") or event.get("memberSid"), "data.win.eventdata.memberName")
    else:
        built.account("target", event.get("targetUserName"), "data.win.eventdata.targetUserName")
        built.account("domain", event.get("targetDomainName"), "data.win.eventdata.targetDomainName")
    built.account("actor", event.get("subjectUserName"), "data.win.eventdata.subjectUserName")
    built.measure("logon_type", event.get("logonType"), "data.win.eventdata.logonType")


def _defender(built, event_id, win=None):
    # 5007 is any configuration change; one whose new value adds an exclusion blinds the scanner there.
    message = str(dig(win or {}, "system.message") or "")
    if event_id == "5007" and re.search(r"New value:[^\r\n]*\\Exclusions\\", message, re.I):
        built.behaviour("security_tool_disabled", "data.win.system.message", "Defender exclusion added")
    if event_id in DEFENDER_EVENTS:
        name, stopped = DEFENDER_EVENTS[event_id]
        built.behaviour(name, "data.win.system.eventID", f"Defender event {event_id}")
        taken = _defender_action(dig(win or {}, "eventdata"))
        path = str(dig(win or {}, "eventdata.path") or "")
        built.set("file", re.sub(r"^file:_", "", path)[:1000], "data.win.eventdata.path")
        if stopped is None and taken:  # a detection that states the action it took
            built.set("prevented", taken in DEFENDER_STOPS, "data.win.eventdata.action Name")
        built.set("prevented", stopped, "data.win.system.eventID")


def _defender_action(event):
    """Defender's `Action Name` (Quarantine, Remove, Clean, Block, Allow…) when it reports no error.
    Windows' own field names carry spaces ("action Name"); compared without them."""
    if not isinstance(event, dict):
        return ""
    fields = {re.sub(r"\W", "", str(key)).lower(): value for key, value in event.items()}
    error = str(fields.get("errorcode") or "0").lower()
    if error.strip("0x") not in ("",):
        return ""
    return str(fields.get("actionname") or "").strip().lower()


def _sysmon(built, event_id, event):
    target = str(event.get("targetImage") or "")
    if event_id in ("12", "13", "14"):
        built.set("registry", " = ".join(filter(None, (str(event.get("targetObject") or "")[:500],
                                                       str(event.get("details") or "")[:200]))),
                  "data.win.eventdata.targetObject")
    source = str(event.get("sourceImage") or "").lower()
    reader = source.rsplit("\\", 1)[-1]
    if event_id == "10" and target.lower().endswith("\\lsass.exe") and reader not in LSASS_READERS:
        built.behaviour("credential_dumping", "data.win.eventdata.targetImage", "process access to lsass.exe")
    elif event_id == "10" and target.lower().endswith("\\lsass.exe") and READER_HOMES.search(source):
        # Antivirus, EDR or the OS reading LSASS from its own folder: its job, whatever the rule tags.
        built.set("lsass_reader", source[-200:], "data.win.eventdata.sourceImage")
    elif event_id in ("12", "13") and RUN_KEYS.search(str(event.get("targetObject") or "")):
        built.behaviour("persistence", "data.win.eventdata.targetObject", "autostart registry key")
