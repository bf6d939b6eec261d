"""The normalised signal model: what an alert says, in one vocabulary whatever its source.

Each importer maps its vendor's *structured* fields (Wazuh rule groups and Windows event ids,
Suricata classtypes and rule-set categories, ECS event.kind/category/type/action/outcome, ...) into a
`Signal`; the agents read only this model (agents/signal_model.py), never vendor or generator key names.
Every value remembers the vendor field it came from (`fields`), so a finding can cite the source's
own words. docs/signals.md documents the mapping per format.
"""

import ipaddress
import re

from threats.choices import Severity

from .common import as_list

VERSION = 1
# RFC 1918, loopback, link-local, carrier-grade NAT, IPv6 unique-local/link-local (not Python's
# is_private, which also counts the documentation ranges that stand for public addresses here).
INTERNAL_NETWORKS = [ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10",
    "::1/128", "fc00::/7", "fe80::/10")]
OUTCOMES = ("success", "failure", "unknown")
# What an alert can show, by name. Importers name the behaviours their vendor's structure states;
# the agents add the ones they infer from content (command lines, user agents, URLs, volumes).
BEHAVIOURS = {
    "network_scan": "host or port scanning",
    "vulnerability_scan": "a vulnerability or web scanner probing for weaknesses",
    "recon_probe": "a probe for information (version, configuration, directory listing)",
    "discovery": "internal discovery of systems, accounts or network configuration",
    "login_failure": "a failed authentication",
    "brute_force": "repeated failed authentications against one target",
    "password_spraying": "one password tried across many accounts",
    "credential_stuffing": "automated logins with breached credentials",
    "login_success": "a successful authentication",
    "oauth_consent": "an application granted delegated access to an account's data (OAuth consent)",
    "impossible_travel": "logins from places too far apart for the time between them",
    "unusual_location": "a login or access from an unexpected country or network",
    "web_attack": "an attack payload against a web application (SQL injection, XSS, traversal, RCE)",
    "exploit_attempt": "an exploit against a service or a known vulnerability",
    "exploit_success": "evidence that an exploit or attack worked (attack response, privilege gained)",
    "phishing": "phishing or social-engineering delivery",
    "malware": "malicious software detected on a host or in transit",
    "unwanted_software": "adware or a potentially unwanted program",
    "suspicious_execution": "a suspicious process or command (encoded script, living-off-the-land binary)",
    "command_and_control": "command-and-control or beaconing traffic",
    "dns_tunnelling": "data or commands carried over DNS",
    "exfiltration": "data leaving to an external destination",
    "credential_dumping": "reading credentials from memory, the SAM or the domain database",
    "kerberoasting": "requesting service tickets to crack offline",
    "account_created": "a new user account",
    "account_changed": "an account modified (password reset, enabled, unlocked)",
    "privileged_group_change": "a member added to a privileged group",
    "privilege_escalation": "gaining higher privileges than granted",
    "privileged_command": "a command run with elevated rights by a user allowed to",
    "persistence": "a service, scheduled task, run key or cron entry that survives a reboot",
    "log_cleared": "audit or event logs cleared or logging stopped",
    "security_tool_disabled": "security tooling disabled or tampered with",
    "masquerading": "a name built to be mistaken for another (a right-to-left override, zero-width characters)",
    "hidden_artifact": "a program run from a hidden folder in a world-writable temporary place",
    "credential_exposure": "a password or login sent over the network in the clear",
    "lateral_movement": "moving from one internal host to another",
    "ransomware": "files encrypted or a ransom note dropped",
    "inhibit_recovery": "backups or shadow copies deleted, recovery disabled",
    "data_destruction": "data wiped or deleted at scale",
    "denial_of_service": "flooding or exhausting a service",
    "resource_hijacking": "computing resources used for cryptocurrency mining",
    "anonymising_proxy": "traffic through Tor or an anonymising proxy network",
    "web_shell": "a script dropped where the web server would run it",
    "remote_access_tool": "remote-access software (AnyDesk, TeamViewer, ScreenConnect) in use",
    "tunnel": "a tunnelling service (ngrok, Cloudflare quick tunnels) publishing one of ours to the internet",
    "dynamic_dns": "a name under a free dynamic-DNS provider looked up or reached (where C2 often lives)",
    "reputation_match": "traffic with an address on a reputation block list",
    "indicator_match": "a threat-intelligence indicator matched",
    "automation": "automated (bot) traffic against an application",
    "rate_abuse": "request rate above the customer's limit",
    "anomaly": "a statistical deviation from the entity's baseline",
    "integrity_change": "a monitored file or registry value changed",
    "vulnerability": "a vulnerable package or configuration found",
    "policy_violation": "activity against policy (P2P, cleartext credentials, unapproved software)",
    "informational": "an informational or health event, not an attack",
}
# Group names whose membership gives administrative power (Windows built-ins, AD, Unix).
PRIVILEGED_GROUPS = re.compile(
    r"admin|\boperators\b|\bowners?\b|^(sudo|wheel|root|adm|docker|remote desktop users|remote management users)$|"
    r"privileged|superuser", re.I)
# Windows Security / System / Sysmon event ids (Microsoft's event documentation) -> behaviour, outcome.
WINDOWS_EVENTS = {
    "4625": ("login_failure", "failure"), "4771": ("login_failure", "failure"), "4776": ("login_failure", ""),
    "4740": ("brute_force", "failure"), "4624": ("login_success", "success"), "4648": ("login_success", "success"),
    "4720": ("account_created", "success"), "4722": ("account_changed", "success"),
    "4723": ("account_changed", ""), "4724": ("account_changed", "success"), "4738": ("account_changed", "success"),
    "4725": ("account_changed", "success"), "4726": ("account_changed", "success"),
    "4728": ("group_member_added", "success"), "4732": ("group_member_added", "success"),
    "4756": ("group_member_added", "success"),
    "1102": ("log_cleared", "success"), "104": ("log_cleared", "success"),
    "7045": ("persistence", "success"), "4697": ("persistence", "success"), "4698": ("persistence", "success"),
    "4672": ("privileged_command", "success"),
}
SYSMON_EVENTS = {"1": "process", "3": "network", "8": "remote_thread", "10": "process_access", "11": "file",
                 "12": "registry", "13": "registry", "22": "dns"}
# Microsoft Defender Antivirus events (Microsoft-Windows-Windows Defender/Operational) -> behaviour,
# and whether the engine stopped it: 1116 detected, 1117 action taken, 1118/1119 remediation failed,
# 5001/5010/5012 protection turned off.
DEFENDER_EVENTS = {"1116": ("malware", None), "1117": ("malware", True), "1118": ("malware", False),
                   "1119": ("malware", False), "1006": ("malware", None), "1015": ("malware", None),
                   "5001": ("security_tool_disabled", None), "5010": ("security_tool_disabled", None),
                   "5012": ("security_tool_disabled", None)}
# AWS GuardDuty finding types start with the threat purpose (docs.aws.amazon.com GuardDuty finding format).
GUARDDUTY_PURPOSES = {
    "backdoor": "command_and_control", "behavior": "anomaly", "cryptocurrency": "resource_hijacking",
    "credentialaccess": "credential_dumping", "defenseevasion": "security_tool_disabled", "discovery": "discovery",
    "execution": "suspicious_execution", "exfiltration": "exfiltration", "impact": "data_destruction",
    "initialaccess": "exploit_attempt", "pentest": "vulnerability_scan", "persistence": "persistence",
    "policy": "policy_violation", "privilegeescalation": "privilege_escalation", "recon": "network_scan",
    "stealth": "security_tool_disabled", "trojan": "malware", "unauthorizedaccess": "unusual_location",
}


def guardduty_finding(built, finding, field):
    """An AWS GuardDuty finding type (`Purpose:ResourceType/Family.Mechanism`), as Wazuh's aws module
    or Elastic's aws.guardduty integration carry it: its purpose is the behaviour; an EC2 instance
    role's temporary credentials used from outside (InstanceCredentialExfiltration) were taken."""
    if "instancecredentialexfiltration" in finding.lower():
        built.behaviour("credential_dumping", field, f"instance credentials used elsewhere: {finding[:100]}")
    purpose = finding.split(":")[0].lower()
    if ":" in finding and purpose in GUARDDUTY_PURPOSES:
        built.behaviour(GUARDDUTY_PURPOSES[purpose], field, finding[:120])


# Cloud audit actions (AWS CloudTrail eventName, Microsoft 365 Operation, Okta eventType, Entra ID).
CLOUD_ACTIONS = {
    "createuser": "account_created", "createloginprofile": "account_changed", "createaccesskey": "account_changed",
    "updateloginprofile": "account_changed",
    "attachuserpolicy": "privilege_escalation", "putuserpolicy": "privilege_escalation",
    "attachrolepolicy": "privilege_escalation", "addusertogroup": "group_member_added",
    "stoplogging": "log_cleared", "deletetrail": "log_cleared", "updatetrail": "security_tool_disabled",
    "deletedetector": "security_tool_disabled", "disablesecurityhub": "security_tool_disabled",
    "deletebucket": "data_destruction", "deletedbinstance": "data_destruction",
    "user.account.privilege.grant": "privilege_escalation", "group.user_membership.add": "group_member_added",
    "user.lifecycle.create": "account_created", "add member to role.": "group_member_added",
    "add member to role": "group_member_added", "add eligible member to role": "group_member_added",
    "assign_role": "group_member_added",  # Google Workspace admin audit: a user given an admin role
    "add user.": "account_created", "new-inboxrule": "persistence", "set-inboxrule": "persistence",
    "userloginfailed": "login_failure", "userloggedin": "login_success", "consolelogin": "login_success",
    "add-mailboxpermission": "account_changed", "add-recipientpermission": "account_changed",
    "user.session.start": "login_success", "user.authentication.sso": "login_success",
    # A second factor or device registered to an account (Okta, Entra ID, AWS IAM): T1098.005.
    "user.mfa.factor.activate": "account_changed", "system.mfa.factor.activate": "account_changed",
    "user registered security info": "account_changed", "register device": "account_changed",
    "createvirtualmfadevice": "account_changed", "enablemfadevice": "account_changed",
    # An application granted delegated access to an account's mail and files (Entra ID / Microsoft 365
    # audit operations): how illicit-consent phishing takes standing access without a password (T1528).
    "consent to application.": "oauth_consent", "consent to application": "oauth_consent",
    "add oauth2permissiongrant.": "oauth_consent", "add oauth2permissiongrant": "oauth_consent",
    "add delegated permission grant.": "oauth_consent", "add delegated permission grant": "oauth_consent",
}
# The generic format's `category` words (our own format's vocabulary) -> behaviour. First match wins.
GENERIC_CATEGORIES = [
    ("ransomware", r"ransom"),
    ("exfiltration", r"exfil|data[-_ ]?loss|\bdlp\b"),
    ("command_and_control", r"\bc2\b|c2[-_]|command[-_ ]?and[-_ ]?control|beacon"),
    ("credential_dumping", r"credential[-_ ]?(dump|theft)|lsass|mimikatz"),
    ("malware", r"malware|virus|trojan|\bav\b|antivirus|\bedr\b"),
    ("phishing", r"phish"),
    ("web_attack", r"web[-_ ]?attack|sqli|sql[-_ ]?injection|xss|\bwaf\b"),
    ("exploit_attempt", r"exploit|\brce\b|\bcve\b"),
    ("password_spraying", r"spray"),
    ("credential_stuffing", r"stuffing"),
    ("brute_force", r"brute|password[-_ ]?guess"),
    ("impossible_travel", r"impossible[-_ ]?travel"),
    ("privileged_group_change", r"admin[-_ ]?group|privileged[-_ ]?group|role[-_ ]?assign"),
    ("account_created", r"account[-_ ]?creat|new[-_ ]?(user|account)|user[-_ ]?creat"),
    ("privilege_escalation", r"privilege|escalat"),
    ("lateral_movement", r"lateral"),
    ("persistence", r"persist|scheduled[-_ ]?task|autorun"),
    ("log_cleared", r"log[-_ ]?clear"),
    ("security_tool_disabled", r"tamper|defen[cs]e[-_ ]?evasion|disable[-_ ]?(av|edr|security)"),
    ("denial_of_service", r"\bd?dos\b|flood|denial"),
    ("automation", r"\bbots?\b|automation|scrap"),
    ("rate_abuse", r"rate[-_ ]?limit"),
    ("anonymising_proxy", r"\btor\b|proxy"),
    ("vulnerability_scan", r"vuln[-_ ]?scan|scanner"),
    ("network_scan", r"scan|sweep|recon"),
    ("login_failure", r"login[-_ ]?fail|auth[-_ ]?fail|failed[-_ ]?login"),
    ("login_success", r"login|logon|sign[-_ ]?in|vpn"),
    ("indicator_match", r"\bioc\b|indicator|threat[-_ ]?intel"),
    ("integrity_change", r"integrity|\bfim\b|syscheck"),
    ("vulnerability", r"vulnerab"),
    ("policy_violation", r"policy|complian"),
    ("anomaly", r"anomal"),
]
GENERIC_CATEGORY_RES = [(name, re.compile(words, re.I)) for name, words in GENERIC_CATEGORIES]


class Signal:
    """Builds one normalised signal; each setter records the vendor field it read."""

    def __init__(self):
        self.data = {"v": VERSION, "kind": "alert", "category": [], "type": [], "action": "", "outcome": "unknown",
                     "prevented": None, "severity": {}, "behaviours": [], "measures": {}, "indicators": [],
                     "account": {}, "process": "", "registry": "", "file": "", "cloud": False, "protocol": "", "direction": "",
                     "forwarded_for": [], "geo": "", "parent": "", "ancestors": [],
                     "trust": "curated",
                     "fields": {}}

    def set(self, name, value, field):
        """kind, action, outcome, prevented, parent, trust, geo: set once, from the first field that has it."""
        if value in (None, "", []) or self.data["fields"].get(name):
            return self
        self.data[name] = value
        self.data["fields"][name] = field
        return self

    def severity(self, level, field, value):
        if level in Severity.values and not self.data["severity"]:
            self.data["severity"] = {"level": level, "field": field, "value": value}
        return self

    def behaviour(self, name, field, detail=""):
        if name not in BEHAVIOURS and name != "group_member_added":
            raise ValueError(f"unknown behaviour {name!r}")
        if name == "group_member_added":  # privileged only when the group is one (decided in `finish`)
            self.data.setdefault("_members", []).append((field, detail))
            return self
        if not any(b["name"] == name for b in self.data["behaviours"]):
            self.data["behaviours"].append({"name": name, "field": field, "detail": str(detail)[:200]})
        return self

    def measure(self, name, value, field):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and name not in self.data["measures"]:
            self.data["measures"][name] = value
            self.data["fields"][f"measures.{name}"] = field
        return self

    def indicator(self, kind, value, field, feed="", confidence="", last_seen=""):
        """`confidence` and `last_seen` as the feed states them (ECS threat.indicator.*), when it does."""
        if isinstance(value, str) and value.strip() and len(self.data["indicators"]) < 20:
            self.data["indicators"].append({"type": kind, "value": value.strip()[:500], "field": field,
                                            "feed": str(feed)[:100],
                                            **({"confidence": confidence[:20]} if isinstance(confidence, str)
                                               and confidence else {}),
                                            **({"last_seen": last_seen[:40]} if isinstance(last_seen, str)
                                               and last_seen else {})})
        return self

    def account(self, name, value, field):
        if isinstance(value, str) and value.strip() and name not in self.data["account"]:
            self.data["account"][name] = value.strip()[:200]
            self.data["fields"][f"account.{name}"] = field
        return self

    def ecs(self, category, types, field):
        """ECS event.category / event.type values (lists of keywords)."""
        self.data["category"] += [c for c in _keywords(category) if c not in self.data["category"]]
        self.data["type"] += [t for t in _keywords(types) if t not in self.data["type"]]
        if category or types:
            self.data["fields"].setdefault("category", field)
        return self

    def forwarded(self, values, field):
        """Client addresses a forwarding header claims (X-Forwarded-For): kept apart, never trusted."""
        for value in values:
            for part in str(value).split(","):
                part = part.strip()[:64]
                if part and part not in self.data["forwarded_for"]:
                    self.data["forwarded_for"].append(part)
        if self.data["forwarded_for"]:
            self.data["fields"].setdefault("forwarded_for", field)
        return self

    def finish(self):
        members = self.data.pop("_members", [])
        group = self.data["account"].get("group", "")
        for field, detail in members:
            if PRIVILEGED_GROUPS.search(group.strip()):
                self.behaviour("privileged_group_change", field, detail or f"member added to {group}")
            else:
                self.behaviour("account_changed", field, detail or f"member added to {group or 'a group'}")
        if self.data["outcome"] not in OUTCOMES:
            self.data["outcome"] = "unknown"
        return self.data


# Exchange inbox-rule parameters (New-InboxRule / Set-InboxRule): where a rule sends mail, and how it
# keeps the owner from seeing it (folders nobody reads, marked read, deleted).
MAIL_RULE_ACTIONS = {"new-inboxrule", "set-inboxrule", "updateinboxrules"}
FORWARDS = ("ForwardTo", "ForwardAsAttachmentTo", "RedirectTo")
UNREAD_FOLDERS = re.compile(r"^(rss (subscriptions|feeds)|conversation history|archive|deleted items|junk email)$", re.I)


def mail_rule(built, action, parameters, owner, field):
    """An inbox rule that forwards mail outside the owner's domain (T1114.003) or hides what it matches
    (T1564.008): exfiltration / hidden_artifact. `parameters`: Exchange's [{Name, Value}] or a mapping."""
    if action not in MAIL_RULE_ACTIONS:
        return
    if isinstance(parameters, list):
        parameters = {str(p.get("Name")): p.get("Value") for p in parameters[:100] if isinstance(p, dict)}
    if not isinstance(parameters, dict):
        return
    domain = str(owner or "").rpartition("@")[2].lower()
    targets = [t.strip() for key in FORWARDS for t in re.split(r"[;,]", str(parameters.get(key) or "")) if "@" in t]
    outside = [t for t in targets if not domain or not t.lower().rstrip(">").endswith("@" + domain)]
    if outside:
        built.behaviour("exfiltration", field, f"inbox rule forwards mail outside to {outside[0][:80]}")
    # Moved where nobody reads or deleted; marked read only counts beside a forward outside.
    hides = UNREAD_FOLDERS.match(str(parameters.get("MoveToFolder") or "").strip()) or \
        str(parameters.get("DeleteMessage")).lower() == "true" or (
            outside and str(parameters.get("MarkAsRead")).lower() == "true")
    if hides and (outside or parameters.get("SubjectOrBodyContainsWords") or parameters.get("FromAddressContainsWords")):
        built.behaviour("hidden_artifact", field, "inbox rule hides the mail it matches")


# Microsoft Defender for Office 365 mail verdicts (Office 365 Management Activity API, Threat
# Intelligence `TIMailData` records): the filter's verdict, and where the message ended up.
MAIL_THREAT_VERDICTS = {"phish", "malware"}
MAIL_KEPT_OUT = {"quarantine", "dropped", "failed", "deleteditems"}  # LatestDeliveryLocation values


def mail_verdict(built, record, prefix):
    """A message the mail filter judged phish or malware is phishing (T1566: .001 with an attachment,
    .002 with a link); blocked, or pulled back to quarantine since (ZAP), it no longer reaches anyone."""
    if not isinstance(record, dict) or str(record.get("Verdict") or "").strip().lower() not in MAIL_THREAT_VERDICTS:
        return
    attached = [a for a in as_list(record.get("AttachmentData"))[:50] if isinstance(a, dict) and a.get("FileName")]
    carrier = f"attachment {str(attached[0]['FileName'])[:80]}" if attached else "link"
    built.behaviour("phishing", f"{prefix}.Verdict", f"mail with a malicious {carrier}: {str(record.get('Subject'))[:80]}")
    where = str(record.get("LatestDeliveryLocation") or "").strip().lower()
    if str(record.get("DeliveryAction") or "").strip().lower() == "blocked":
        built.set("prevented", True, f"{prefix}.DeliveryAction").set("outcome", "failure", f"{prefix}.DeliveryAction")
    elif where in MAIL_KEPT_OUT:
        built.set("prevented", True, f"{prefix}.LatestDeliveryLocation")


ASSUMED_ROLE = re.compile(r":assumed-role/([\w+=,.@-]{1,64})/")  # arn:aws:sts::<account>:assumed-role/<role>/<session>
# Snapshot and image sharing calls (CloudTrail): what they grant is in the request parameters, as
# `valuesToAdd=[…]` (RDS) or `createVolumePermission={add={items=[…]}}` (EC2).
SHARING_ACTIONS = {"modifysnapshotattribute", "modifydbsnapshotattribute", "modifydbclustersnapshotattribute",
                   "modifyimageattribute"}
SHARE_ADDED = re.compile(r"valuestoadd[\"'=:\s]+\[\s*[\"']?[\w-]|\badd[\"'=:\s]+\{\s*[\"']?items", re.I)


def shared_out(built, action, parameters, field):
    """A snapshot or machine image shared with another account (T1537: Transfer Data to Cloud Account):
    the data can now be restored outside. Removing a permission is not."""
    if action in SHARING_ACTIONS and SHARE_ADDED.search(str(parameters or "")[:4_000]):
        built.behaviour("exfiltration", field, f"{action}: shared with another account")


# Delegated Microsoft Graph scopes that hand an app a user's mail or files (Microsoft's guidance on
# illicit consent grants lists these): with offline_access the app keeps them without the user.
MAIL_FILE_SCOPES = re.compile(r"\b(mail\.(read|readwrite|send)(\.shared)?|mailboxsettings\.readwrite|"
                              r"files\.(read|readwrite)\.all|sites\.(read|readwrite)\.all|full_access_as_user|"
                              r"eas\.accessasuser\.all|ews\.accessasuser\.all)\b", re.I)
CONSENT_ACTIONS = {"consent to application.", "consent to application", "add delegated permission grant.",
                   "add delegated permission grant", "add oauth2permissiongrant.", "add oauth2permissiongrant"}


def consent_grant(built, action, properties, field):
    """A user (not an administrator) consenting for an app to read or send their mail or files, with
    offline_access: a standing way into the mailbox that survives a password reset (T1528), the
    illicit-consent pattern. Entra ID's ModifiedProperties: [{Name, NewValue}]."""
    if action not in CONSENT_ACTIONS or not isinstance(properties, list):
        return
    values = {str(p.get("Name")): str(p.get("NewValue"))[:2_000] for p in properties[:50] if isinstance(p, dict)}
    scopes = values.get("ConsentAction.Permissions", "")
    if values.get("ConsentContext.IsAdminConsent", "").lower() == "true" or "offline_access" not in scopes.lower():
        return
    risky = sorted({m.group(0) for m in MAIL_FILE_SCOPES.finditer(scopes)})
    if risky:
        built.behaviour("oauth_consent", field, f"a user granted an app standing access to mail or files: "
                                                f"{' '.join(risky[:5])} offline_access")


def cloud_login_failed(behaviour, failed):
    """A console or sign-in action whose own response says it failed is a failed login."""
    return "login_failure" if behaviour == "login_success" and failed else behaviour


def direction(source, destination):
    """inbound, outbound, internal or external, from the addresses of who started the connection."""
    def inside(value):
        try:
            address = ipaddress.ip_address(str(value).strip())
        except ValueError:
            return None
        return any(address.version == n.version and address in n for n in INTERNAL_NETWORKS)

    src, dst = inside(source), inside(destination)
    if src is None:
        return ""
    if dst is None:  # where it went is unknown: from outside it is inbound, from inside nothing is known
        return "" if src else "inbound"
    return {(True, True): "internal", (True, False): "outbound", (False, True): "inbound"}.get((src, dst), "external")


def generic_behaviour(text):
    """The behaviour a generic alert's `category` names, or None."""
    return next((name for name, pattern in GENERIC_CATEGORY_RES if pattern.search(str(text or ""))), None)


def _keywords(value):
    items = value if isinstance(value, list) else [value]
    return [str(v).strip().lower()[:40] for v in items[:10] if isinstance(v, str) and v.strip()]
