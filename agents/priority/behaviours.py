"""What each behaviour of the signal model means to a verdict (docs/verdicts.md, docs/signals.md).

For every behaviour: the family a response plan is chosen by, its stage in an attack, the band it
typically deserves when the source gives none, the band its evidence proves (`floor`), the band an
attempt that failed or was prevented is held to (`failed_cap`), the band a bare occurrence is held
to (`cap`: a scan is reconnaissance, whatever a rule's author rated it), and its ATT&CK techniques.
"""

import re
from dataclasses import dataclass

RECON, ATTEMPT, FOOTHOLD, IMPACT = 1, 2, 3, 4
BANDS = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
RANK = {band: index for index, band in enumerate(BANDS)}


@dataclass(frozen=True)
class Policy:
    family: str
    stage: int
    typical: str
    floor: str = ""
    cap: str = ""
    failed_cap: str = ""
    techniques: tuple = ()
    attempt_floor: str = ""  # what the attempt deserves unless it failed or is explained
    admin: bool = False  # an administrator may do this legitimately: an approved reason explains it


P = Policy
POLICIES = {
    "network_scan": P("reconnaissance", RECON, "LOW", cap="LOW", techniques=("T1595",)),
    "vulnerability_scan": P("reconnaissance", RECON, "LOW", cap="LOW", techniques=("T1595.002",)),
    "recon_probe": P("reconnaissance", RECON, "LOW", cap="LOW"),
    "discovery": P("reconnaissance", RECON, "MEDIUM", cap="MEDIUM"),
    "login_failure": P("authentication", ATTEMPT, "LOW", cap="LOW"),
    "brute_force": P("authentication", ATTEMPT, "MEDIUM", cap="MEDIUM", techniques=("T1110",), attempt_floor="MEDIUM"),
    "password_spraying": P("authentication", ATTEMPT, "MEDIUM", cap="MEDIUM", techniques=("T1110.003",),
                           attempt_floor="MEDIUM"),
    "credential_stuffing": P("authentication", ATTEMPT, "MEDIUM", techniques=("T1110.004",), attempt_floor="MEDIUM"),
    "login_success": P("authentication", ATTEMPT, "LOW"),
    "impossible_travel": P("geo_anomaly", FOOTHOLD, "HIGH", floor="MEDIUM", techniques=("T1078",)),
    "unusual_location": P("geo_anomaly", ATTEMPT, "MEDIUM", techniques=("T1078",)),
    "web_attack": P("web_attack", ATTEMPT, "MEDIUM", cap="MEDIUM", failed_cap="LOW", techniques=("T1190",),
                    attempt_floor="MEDIUM"),
    "exploit_attempt": P("exploit", ATTEMPT, "MEDIUM", cap="MEDIUM", failed_cap="LOW", techniques=("T1190",),
                         attempt_floor="MEDIUM"),
    "exploit_success": P("exploit", FOOTHOLD, "HIGH", floor="HIGH", techniques=("T1190",)),
    "web_shell": P("exploit", FOOTHOLD, "HIGH", floor="HIGH", techniques=("T1505.003",)),
    "phishing": P("phishing", ATTEMPT, "MEDIUM", techniques=("T1566",)),
    "malware": P("malware", FOOTHOLD, "HIGH", floor="MEDIUM", failed_cap="MEDIUM"),
    "unwanted_software": P("malware", ATTEMPT, "LOW", cap="LOW"),
    "suspicious_execution": P("execution", ATTEMPT, "MEDIUM", techniques=("T1059",)),
    "command_and_control": P("command_and_control", FOOTHOLD, "HIGH", floor="HIGH", techniques=("T1071",)),
    "dns_tunnelling": P("command_and_control", FOOTHOLD, "HIGH", floor="HIGH", techniques=("T1071.004",)),
    "exfiltration": P("exfiltration", IMPACT, "HIGH", floor="HIGH", techniques=("T1048",)),
    "credential_dumping": P("credential_access", FOOTHOLD, "HIGH", floor="HIGH", techniques=("T1003",)),
    "kerberoasting": P("credential_access", FOOTHOLD, "HIGH", floor="HIGH", techniques=("T1558.003",)),
    "account_created": P("account_manipulation", ATTEMPT, "MEDIUM", techniques=("T1136",), attempt_floor="MEDIUM",
                         admin=True),
    "account_changed": P("account_manipulation", ATTEMPT, "LOW", techniques=("T1098",), admin=True),
    # Standing access to an account's mail and files without its password; an approved roll-out explains it.
    "oauth_consent": P("account_manipulation", FOOTHOLD, "HIGH", floor="MEDIUM", techniques=("T1528",), admin=True),
    "privileged_group_change": P("account_manipulation", FOOTHOLD, "HIGH", floor="HIGH", techniques=("T1098",),
                                 admin=True),
    "privilege_escalation": P("privilege_escalation", FOOTHOLD, "HIGH", floor="HIGH", techniques=("T1068",)),
    "privileged_command": P("privilege_escalation", ATTEMPT, "LOW", cap="LOW", admin=True),
    "persistence": P("persistence", FOOTHOLD, "MEDIUM", floor="MEDIUM", admin=True),
    "log_cleared": P("defense_evasion", FOOTHOLD, "HIGH", floor="HIGH", techniques=("T1070",), admin=True),
    "security_tool_disabled": P("defense_evasion", FOOTHOLD, "HIGH", floor="HIGH", techniques=("T1562.001",),
                                admin=True),
    "lateral_movement": P("lateral_movement", FOOTHOLD, "HIGH", floor="HIGH", techniques=("T1021",)),
    "masquerading": P("defense_evasion", FOOTHOLD, "HIGH", floor="HIGH", techniques=("T1036",)),
    # A program run from a hidden folder in a world-writable temporary place: an intruder's staging.
    "hidden_artifact": P("defense_evasion", FOOTHOLD, "HIGH", floor="HIGH", techniques=("T1564.001",)),
    "ransomware": P("impact", IMPACT, "CRITICAL", floor="CRITICAL", failed_cap="HIGH", techniques=("T1486",)),
    "inhibit_recovery": P("impact", IMPACT, "CRITICAL", floor="CRITICAL", techniques=("T1490",)),
    "data_destruction": P("impact", IMPACT, "HIGH", floor="HIGH", techniques=("T1485",)),
    "denial_of_service": P("denial_of_service", ATTEMPT, "MEDIUM", techniques=("T1498",)),
    # A miner running on one of ours: someone else's code runs there (the pool traffic proves it runs).
    "resource_hijacking": P("malware", FOOTHOLD, "HIGH", floor="HIGH", techniques=("T1496.001",)),
    "anonymising_proxy": P("proxy_network", ATTEMPT, "MEDIUM", cap="MEDIUM", techniques=("T1090",)),
    "reputation_match": P("threat_intel", RECON, "LOW", cap="LOW"),
    # A password or login crossing the network in the clear: anyone on the path can take it.
    "credential_exposure": P("credential_access", ATTEMPT, "MEDIUM", attempt_floor="MEDIUM"),
    "remote_access_tool": P("command_and_control", ATTEMPT, "MEDIUM", techniques=("T1219",)),
    "tunnel": P("command_and_control", ATTEMPT, "MEDIUM", techniques=("T1572",)),
    "dynamic_dns": P("command_and_control", ATTEMPT, "MEDIUM", techniques=("T1568",), attempt_floor="MEDIUM"),
    "indicator_match": P("threat_intel", ATTEMPT, "MEDIUM", floor="MEDIUM"),
    "automation": P("bot_traffic", ATTEMPT, "MEDIUM", techniques=("T1499.003",)),
    "rate_abuse": P("rate_limit_breach", ATTEMPT, "MEDIUM", techniques=("T1499.003",)),
    "anomaly": P("anomaly_detection", ATTEMPT, "MEDIUM"),
    "integrity_change": P("policy", ATTEMPT, "LOW", cap="MEDIUM"),
    "vulnerability": P("policy", RECON, "LOW", cap="MEDIUM"),
    "policy_violation": P("policy", RECON, "LOW", cap="LOW"),
    "informational": P("policy", 0, "LOW", cap="LOW"),
}
# What administration looks like even when it is attack evidence elsewhere (remote execution, a script):
# an approval naming the very alert settles it; credential theft, C2 or impact never are (docs/verdicts.md).
ADMINISTRATION = frozenset({"lateral_movement", "suspicious_execution"} | {n for n, p in POLICIES.items() if p.admin})
# Cloud calls that mint credentials for a user (T1098.001 Additional Cloud Credentials).
CLOUD_CREDENTIALS = frozenset({"createaccesskey", "createloginprofile", "updateloginprofile"})
MFA_REGISTRATIONS = frozenset({"user.mfa.factor.activate", "system.mfa.factor.activate", "user registered security info",
                               "register device", "createvirtualmfadevice", "enablemfadevice"})
# What an IDS signature's own words name (Emerging Threats ATTACK_RESPONSE, POLICY and INFO rules):
# the output of a discovery command coming back, a program downloaded, a tunnelling service looked up.
SIGNATURE_TECHNIQUES = [
    (re.compile(r"\bid (check|command)\b|uid=0\(root\)", re.I), ("T1033", "T1059.004")),
    (re.compile(r"\bnet user\b", re.I), ("T1087.001",)),
    (re.compile(r"command prompt|\bcmd\.exe\b.*(banner|output)|microsoft windows \[version", re.I), ("T1059.003",)),
    (re.compile(r"\b(exe|executable|pe exe|dll|msi)\b.*\bdownload|download.*\b(exe|executable)\b", re.I), ("T1105",)),
    (re.compile(r"ngrok|localtunnel|trycloudflare|serveo\.net", re.I), ("T1572",)),
    (re.compile(r"\bSMB\d?\b.*\b(executable|exe|dll)\b|\bADMIN\$", re.I), ("T1570",)),
]
# The synthetic anomaly's metric -> the technique its deviation suggests.
ANOMALY_TECHNIQUES = {"failed_logins": "T1110", "login_count": "T1078", "api_calls": "T1078",
                      "data_download_mb": "T1213"}
# Techniques a source or a command-line rule names -> the behaviour they show (by parent id).
TECHNIQUE_BEHAVIOURS = {
    "T1003": "credential_dumping", "T1558": "kerberoasting", "T1110": "brute_force", "T1110.003": "password_spraying",
    "T1110.004": "credential_stuffing", "T1486": "ransomware",
    "T1490": "inhibit_recovery", "T1485": "data_destruction", "T1070": "log_cleared",
    "T1562": "security_tool_disabled", "T1021": "lateral_movement", "T1570": "lateral_movement",
    "T1053": "persistence", "T1543": "persistence", "T1547": "persistence", "T1136": "account_created",
    "T1098": "account_changed", "T1068": "privilege_escalation", "T1548": "privilege_escalation",
    "T1071": "command_and_control", "T1573": "command_and_control", "T1572": "command_and_control",
    "T1041": "exfiltration", "T1048": "exfiltration", "T1567": "exfiltration", "T1190": "exploit_attempt",
    "T1203": "exploit_attempt", "T1210": "exploit_attempt", "T1566": "phishing", "T1059": "suspicious_execution",
    "T1218": "suspicious_execution", "T1105": "suspicious_execution", "T1046": "network_scan",
    "T1595": "network_scan", "T1496": "resource_hijacking", "T1498": "denial_of_service",
    "T1499": "denial_of_service", "T1078": "login_success", "T1133": "login_success", "T1528": "oauth_consent",
    "T1098.007": "privileged_group_change", "T1685.005": "log_cleared", "T1685.006": "log_cleared",
    "T1685": "security_tool_disabled", "T1686": "security_tool_disabled", "T1027": "suspicious_execution",
    "T1569": "suspicious_execution", "T1047": "suspicious_execution", "T1055": "suspicious_execution",
    "T1204": "malware", "T1505": "exploit_success", "T1219": "remote_access_tool", "T1572": "tunnel", "T1102": "command_and_control",
    "T1090": "anonymising_proxy", "T1087": "discovery", "T1082": "discovery", "T1016": "discovery",
    "T1049": "discovery", "T1057": "discovery", "T1069": "discovery", "T1033": "discovery", "T1018": "discovery",
    "T1135": "discovery", "T1482": "discovery",
}
# A bare behaviour (one with no technique of its own) and the behaviours whose techniques a coarse
# vendor tag may name for it: a failed login is one step of a brute force, an allowed sudo of elevation.
RELATED = {"login_failure": {"brute_force"}, "privileged_command": {"privilege_escalation"},
           "malware": {"malware"}, "login_success": {"login_success"}}


# Automation is how these are done: when one of them is shown, "automated traffic" adds nothing.
SUBSUMES_AUTOMATION = {"vulnerability_scan", "network_scan", "web_attack", "credential_stuffing", "brute_force",
                       "anonymising_proxy", "exploit_attempt"}


SPECIFIC_ACTS = {"credential_dumping", "lateral_movement", "persistence", "privilege_escalation", "security_tool_disabled",
                 "log_cleared", "inhibit_recovery", "ransomware", "exfiltration", "command_and_control", "kerberoasting"}


def effective(found):
    """The behaviours that decide ({name: entry}): automation is dropped when a specific behaviour
    says what the automation does."""
    if set(found) & SUBSUMES_AUTOMATION:
        found = {name: entry for name, entry in found.items() if name not in ("automation", "rate_abuse")}
    # An endpoint detection's category ("malware" for every Elastic Defend alert) says what the product is,
    # not what happened, when a behaviour says what happened.
    if str((found.get("malware") or {}).get("field")) == "event.category" and set(found) & SPECIFIC_ACTS:
        found = {name: entry for name, entry in found.items() if name != "malware"}
    return found


def family(names):
    """The family of the latest-stage behaviour among `names` (the response plan follows it)."""
    known = [POLICIES[name] for name in names if name in POLICIES]
    return max(known, key=lambda p: p.stage).family if known else "other"


def behaviour_of_technique(technique_id):
    """The behaviour a technique shows: a sub-technique's own entry first, then its parent's."""
    text = str(technique_id).strip().upper()
    return TECHNIQUE_BEHAVIOURS.get(text) or TECHNIQUE_BEHAVIOURS.get(text.split(".")[0])


def higher(*bands):
    return max((b for b in bands if b in RANK), key=RANK.get, default="")


def lower(*bands):
    return min((b for b in bands if b in RANK), key=RANK.get, default="")
