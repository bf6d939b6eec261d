"""Priority agent: what does this alert show, and which ATT&CK techniques, with what reason?

It reads the signal model (agents/signal_model.py): the behaviours the source's structure states and the
ones its content shows. Techniques come from those behaviours (agents/priority/behaviours.py), the
source's own mapping, command-line rules and the anomaly's metric — each with a reason, its tactic
and the ATT&CK version; revoked ids resolve to their replacement and both are shown. A coarse
vendor mapping (Wazuh's stock rules tag whole rule families) is kept only where the alert's
behaviour supports it; what is dropped is listed with why. The band itself is decided by the
policy (agents/verdict.py); this agent adds small within-band contributions and names the attack
evidence that explanations may not outvote.
"""

import re
from datetime import timedelta

from threats import sql
from threats.models import Threat

from .. import content, signal_model
from ..historical.agent import _same_entity
from ..base import Agent, AgentResult
from . import attack
from .behaviours import (ANOMALY_TECHNIQUES, CLOUD_CREDENTIALS, FOOTHOLD, IMPACT, MFA_REGISTRATIONS, POLICIES, RANK, RELATED,
                         SIGNATURE_TECHNIQUES, behaviour_of_technique)

MIN_RULE_CONFIDENCE = 0.7  # command-line rules below this are too noisy to name a technique
BREADTH_TACTICS = 3
VOLUME_REQUESTS = 3000
ROTATING_ADDRESSES = 100
PROXY_TECHNIQUES = {"tor": "T1090.003", "residential": "T1090.002", "datacenter": "T1090.002"}
WINDOWS_LOGS = ("data.win", "event.code", "winlog")
RDP_LOGON = 10  # Windows logon type RemoteInteractive
LOCAL_DOMAINS = {"nt authority", "builtin", "workgroup", "window manager", "font driver host", "."}
WEB_PROTOCOLS = {"http", "http2", "tls", "https", "quic"}
RECENT_ENTITIES = ("src_ip", "user")
RECENT_WINDOW = timedelta(hours=1)
RECENT_ROWS = 20
RECENT = sql.Columns(Threat, ("id", "signal", "mitre_hints", "observables"))
FAILURES = {"brute_force", "password_spraying", "credential_stuffing", "login_failure"}
PLANTED = {"persistence", "web_shell", "hidden_artifact", "account_created"}  # a way back in, put there
REPEATED = 3
HOSTILE = {"web_attack", "exploit_attempt", "brute_force", "password_spraying", "credential_stuffing"}
BITS_AGENT = re.compile(r"^\s*Microsoft BITS/", re.I)
MAX_RULE_TECHNIQUES = 3  # a rule tagging more techniques than this is a catch-all, not a statement


class PriorityAgent(Agent):
    kind = "priority"

    def gather(self, threat):
        """What the customer's alerts on this source or user showed in the last hour: a success after
        them reads differently (a brute force that got in)."""
        branches = [_same_entity(threat, name) for name in RECENT_ENTITIES if signal_model.text(threat, name)]
        if not branches:
            return []
        since = sql.param(Threat, "received_at", threat.received_at - RECENT_WINDOW)
        until = sql.param(Threat, "received_at", threat.received_at)
        parts = " UNION ".join(
            f"SELECT id FROM (SELECT id FROM {Threat._meta.db_table} WHERE {condition} AND customer_id = %s"
            f" AND received_at >= %s AND received_at <= %s AND id <> %s ORDER BY received_at DESC"
            f" LIMIT {RECENT_ROWS}) AS b{index}" for index, (condition, _values) in enumerate(branches))
        params = [value for condition, values in branches
                  for value in (*values, threat.customer_id, since, until, sql.param(Threat, "id", threat.pk))]
        rows = RECENT.rows(f"SELECT {RECENT} FROM {Threat._meta.db_table} WHERE id IN ({parts})", params)
        rows = [dict(zip(RECENT.attnames, row)) for row in rows]  # columns come in model order
        return [{"id": str(row["id"]), "behaviours": _names(row["signal"], row["mitre_hints"]),
                 "planted": _planted(row["signal"]), **_who_where(row["observables"])} for row in rows]

    def analyze(self, threat, gathered):
        return _Analysis(threat, gathered or []).run()


class _Analysis:
    """One analysis: agents are shared by threads, so what accumulates lives here, not on the agent."""

    def __init__(self, threat, recent):
        self.threat, self.model, self.found = threat, signal_model.model(threat), signal_model.behaviours(threat)
        self.recent = recent
        self.techniques, self.dismissed, self.tactic_hints = {}, [], []

    def run(self):
        result = AgentResult(summary="", confidence=0.5)
        for name, entry in self.found.items():
            how = "inferred from " if entry.get("inferred") else "stated by "
            result.find(f"Shows {name.replace('_', ' ')} ({entry.get('detail') or name}), {how}{entry['field']}.",
                        f"signal.{entry['field']}")
            if self._scanner_explains(name, entry):
                continue
            for technique_id in self._behaviour_techniques(name, entry):
                if entry.get("tagged") and not self._refines_a_hint(technique_id):
                    continue  # a tag says what the rule looks for; it only makes the rule's own id more precise
                self._add(technique_id, "behaviour", 0.8, f"signal.{entry['field']}",
                          f"{name.replace('_', ' ')} shown by {entry['field']}")
        self._guessed_in()
        self._signature()
        self._vendor_hints(result)
        self._commands()
        self._anomaly()
        self._bits_transfer()
        self._within_band(result)
        return self._finish(result)

    # --- techniques ----------------------------------------------------------------------------

    def _behaviour_techniques(self, name, entry):
        inbound = content.is_inbound(self.threat)
        if name == "vulnerability_scan" and signal_model.measure(self.threat, "http_status") == 404:
            return ["T1595.002", "T1595.003"]  # paths probed and not found: content discovery (wordlist)
        if name == "network_scan":
            return ["T1595.001"] if inbound else ["T1046"]
        if name == "remote_access_tool" and self.model.get("protocol") in WEB_PROTOCOLS:
            return ["T1219.002"]
        if name == "command_and_control" and self.model.get("protocol"):
            return [self._c2_technique()]
        if name in ("login_success", "impossible_travel", "unusual_location") and self.model.get("cloud"):
            return ["T1078.004"]  # a cloud identity's sign-in
        if name == "login_success" and str(self.model.get("action")).lower() == "sshd" and not self._account_kind():
            return ["T1078.003"]  # sshd let a local account in: Valid Accounts: Local Accounts
        if name == "login_success" and self.model.get("protocol") == "vpn":
            return ["T1133", "T1078"]  # in from outside through the VPN gateway: External Remote Services
        if name == "brute_force":
            return ["T1110.003" if "password_spraying" in self.found else "T1110.001"]
        if name == "denial_of_service" and signal_model.measure(self.threat, "service_port"):
            return ["T1498.002"]  # a UDP service reflecting and amplifying the flood
        if name == "denial_of_service" and self.model.get("protocol") in WEB_PROTOCOLS:
            return ["T1499.002"]  # requests that exhaust the application: Service Exhaustion Flood
        if name in ("exploit_attempt",) and not inbound and signal_model.is_internal(signal_model.ip(signal_model.text(self.threat,
                                                                                                      "dst_ip"))):
            return ["T1210"]
        if name == "log_cleared" and self.model.get("cloud"):
            return ["T1562.008"]  # a cloud trail stopped or deleted: Disable or Modify Cloud Logs
        if name == "log_cleared":
            return ["T1070.001"] if str(entry["field"]).startswith(WINDOWS_LOGS) else ["T1070"]
        if name == "phishing" and str(entry.get("detail", "")).startswith("mail with a malicious "):
            return ["T1566.001" if "malicious attachment" in entry["detail"] else "T1566.002"]
        if name == "phishing" and " started by " in str(entry.get("detail", "")):
            return ["T1566.001", "T1204.002"]  # an attachment opened and its code ran
        if name == "persistence" and str(entry.get("detail", "")).startswith("kernel module") and \
                "hidden_artifact" in self.found:
            return ["T1547.006", "T1014"]  # a kernel module from a hidden folder: a rootkit
        if name == "login_failure" and inbound and signal_model.ip(signal_model.text(self.threat, "src_ip")) is not None and \
                not signal_model.is_internal(signal_model.ip(signal_model.text(self.threat, "src_ip"))):
            return ["T1110.001"]  # an outsider's failed login is a password guess
        if name == "suspicious_execution" and "in a container" in str(entry.get("detail", "")):
            return ["T1609"]  # Container Administration Command
        named = re.findall(r"\((T\d{4}(?:\.\d{3})?)\)", str(entry.get("detail", "")))
        if name in ("suspicious_execution", "privilege_escalation", "command_and_control") and named:  # the rule names what it saw
            return named + (["T1059.004"] if "in a shell" in entry["detail"] else [])
        if name in ("suspicious_execution", "lateral_movement") and "WMI" in str(entry.get("detail", "")):
            return ["T1047"]  # Windows Management Instrumentation ran it
        if name == "lateral_movement" and str(entry.get("detail", "")).startswith("output written"):
            return ["T1021.002"]  # read back over SMB from the admin share
        if name == "lateral_movement" and signal_model.measure(self.threat, "logon_type") == RDP_LOGON:
            return ["T1021.001", *self._account_kind()]
        if name == "lateral_movement" and self.model.get("remote_service"):
            return ["T1021.002", "T1569.002"]  # over an admin share (SMB), run as a service
        detail = str(entry.get("detail", "")).lower()
        if name == "credential_dumping" and detail.startswith("instance credentials"):
            return ["T1552.005", "T1078.004"]  # an instance role's credentials, taken and used elsewhere
        if name == "exploit_success" and detail.startswith("the instance metadata service"):
            return ["T1190", "T1552.005"]  # a server-side request forgery read the cloud instance's credentials
        if name == "lateral_movement" and re.search(r"\b(psexec|paexec|remcom|csexec|psexesvc)\b", detail):
            return ["T1569.002", "T1021.002"]  # a remote-execution tool's service, over SMB
        if name == "lateral_movement" and str(entry.get("field")) == "smb.share":
            return ["T1570", "T1021.002"]  # a program copied to another host's admin share
        if name == "credential_dumping" and self._names_lsass(entry):
            return ["T1003.001"]
        if name == "exfiltration" and "shared with another account" in str(entry.get("detail", "")):
            return ["T1537"]  # Transfer Data to Cloud Account
        if name == "exfiltration" and str(entry.get("detail", "")).startswith("inbox rule"):
            return ["T1114.003"]  # Email Collection: Email Forwarding Rule
        if name == "hidden_artifact" and str(entry.get("detail", "")).startswith("inbox rule"):
            return ["T1564.008"]  # Hide Artifacts: Email Hiding Rules
        if name == "exfiltration":
            if str(entry.get("detail", "")).endswith("files downloaded"):
                return ["T1213.002"]  # SharePoint / OneDrive: the repository the files were taken from
            if "command_and_control" in self.found:
                return ["T1041"]
            return ["T1567.002"] if self.model.get("protocol") in WEB_PROTOCOLS else ["T1048"]
        if name == "account_created":
            return [self._account_technique()]
        if name == "account_changed" and self.model.get("action") in CLOUD_CREDENTIALS:
            return ["T1098.001"]
        if name == "account_changed" and self.model["account"].get("group") and not self.model.get("cloud"):
            return ["T1098.007"]  # a member added to a local or domain group: Additional Local or Domain Groups
        if name == "account_changed" and self.model.get("action") in MFA_REGISTRATIONS:
            return ["T1098.005"]  # a device or second factor registered: Device Registration
        if name == "privileged_group_change" and self.model.get("cloud"):
            return ["T1098.003"]  # a cloud directory role: Additional Cloud Roles
        if name == "privileged_group_change":
            return ["T1098.007"]
        if name == "privilege_escalation" and str(entry.get("detail", "")).startswith("cloud credentials"):
            return ["T1098.001"]
        if name == "privilege_escalation" and (entry.get("detail") in ("sudoers", "sudoers written by a command") or (
                str(entry.get("detail", "")).startswith("shell escape") and "privileged_command" in self.found)):
            return ["T1548.003"]  # sudo abused (a sudoers entry, or a shell escaped from a sudo command)
        if name == "persistence":
            return [_persistence_technique(entry)] if _persistence_technique(entry) else []
        if name == "anonymising_proxy":
            words = str(entry.get("detail", "")).lower().split()
            return [next((PROXY_TECHNIQUES[w] for w in words if w in PROXY_TECHNIQUES), "T1090")]
        if name == "login_success" and signal_model.measure(self.threat, "logon_type") == RDP_LOGON and not inbound:
            return ["T1021.001", *self._account_kind()]  # a remote desktop logon from inside: a hop between hosts
        if name == "denial_of_service" and not inbound:
            return ["T1499"]
        if name == "masquerading":  # a system name out of place, a hidden override, a lookalike account name
            detail = str(entry.get("detail", ""))
            if detail.startswith("system name"):
                return ["T1036.005"]
            return ["T1036.010"] if "account" in detail else ["T1036.002"] if "U+202E" in detail else ["T1036"]
        if name == "malware" and self._network() and content.is_outbound(self.threat) and \
                "resource_hijacking" not in self.found:  # a miner's pool traffic is its work, not its C2
            return [self._c2_technique()]  # an infected host's own traffic out is its command channel
        if name == "malware" and USER_DOWNLOADS.search(str(self.model.get("file") or "")):
            return ["T1204.002"]  # a file the user fetched or saved: a malicious file put before the user
        return list(POLICIES[name].techniques) if name in POLICIES else []

    def _network(self):
        return bool({"network", "intrusion_detection"} & set(self.model.get("category") or []))

    def _c2_technique(self):
        protocol = self.model.get("protocol")
        if protocol == "failed":
            return "T1095"  # the sensor found no application protocol in it: a raw or custom channel
        return "T1071.001" if protocol in WEB_PROTOCOLS else "T1071.004" if protocol == "dns" else "T1071"

    def _guessed_in(self):
        """A successful login after this source's or user's repeated failures is the guessing that got
        in: the failures' technique belongs to it too (spraying if any earlier alert was spraying)."""
        earlier = self.recent_failures()
        if "login_success" not in self.found or not earlier:
            return
        seen = {name for r in self.recent if r["id"] in earlier for name in r["behaviours"]} | set(self.found)
        technique = ("T1110.003" if "password_spraying" in seen else "T1110.004" if "credential_stuffing" in seen
                     else "T1110.001")
        self._add(technique, "behaviour", 0.8, f"threat:{earlier[0]}",
                  "a successful login after repeated failures on the same source or user")

    def _signature(self):
        """Techniques an IDS signature's own words name (SIGNATURE_TECHNIQUES), for Suricata alerts."""
        if self.threat.source != "suricata":
            return
        for pattern, techniques in SIGNATURE_TECHNIQUES:
            if pattern.search(self.threat.title or ""):
                for technique_id in techniques:
                    self._add(technique_id, "signature", 0.8, "signal.title", f"the signature names it: {pattern.pattern}")

    def _account_kind(self):
        """T1078.002 when the account that logged on is a domain's (its domain is not the host's name)."""
        domain = str(self.model["account"].get("domain") or "").strip().lower()
        host = signal_model.text(self.threat, "host").lower().split(".")[0]
        return ["T1078.002"] if domain and host and domain != host and domain not in LOCAL_DOMAINS else []

    def _scanner_explains(self, name, entry):
        """A vulnerability scanner's requests are its scan (T1595.002): the web-attack classification and
        the port scan a rule reads in them are the same requests, not an exploit (T1190) or another scan."""
        return "vulnerability_scan" in self.found and (
            name == "network_scan" and content.is_inbound(self.threat)  # inside, it is discovery: T1046 stands
            or name == "web_attack" and not str(entry.get("field", "")).startswith("observables"))

    def _bits_transfer(self):
        """A download made by the Background Intelligent Transfer Service (its HTTP user agent is
        "Microsoft BITS/<version>"): a BITS job fetched it (T1197), the way malware hides a download
        in a Windows service."""
        agent = signal_model.text(self.threat, "user_agent")
        if BITS_AGENT.match(agent) and "T1105" in self.techniques:
            self._add("T1197", "behaviour", 0.8, "signal.observables.user_agent", "the download was a BITS job")

    def _names_lsass(self, entry):
        """LSASS's memory is where the credentials are (T1003.001): the detail, process or command says so."""
        texts = [str(entry.get("detail", ""))] + signal_model.values(self.threat, "command_line") + signal_model.values(
            self.threat, "process") + [str(self.model.get("process") or "")]
        return any("lsass" in text.lower() for text in texts)

    def _refines_a_hint(self, technique_id):
        """A sub-technique of one the source's rule names (T1136.001 for a rule tagged T1136)."""
        parents = {str(h).strip().upper() for h in self.threat.mitre_hints or [] if isinstance(h, str)}
        return "." in technique_id and technique_id.split(".")[0] in parents

    def _account_technique(self):
        action = str(self.model.get("action") or "")
        if action in ("createuser", "createloginprofile", "user.lifecycle.create", "add user."):
            return "T1136.003"
        domain = str(self.model["account"].get("domain") or "").lower()
        host = signal_model.text(self.threat, "host").lower().split(".")[0]
        return "T1136.002" if domain and host and domain != host else "T1136.001"

    def _vendor_hints(self, result):
        """The source's own mapping: a curated rule is believed; a coarse one only where the alert's
        behaviour supports it (`_supported`)."""
        hints = self.threat.mitre_hints if isinstance(self.threat.mitre_hints, list) else []
        # A coarse source, or a catch-all rule tagging many techniques: believed only where supported.
        coarse = self.model.get("trust") == "coarse" or len(_distinct_techniques(hints)) > MAX_RULE_TECHNIQUES
        for index, hint in enumerate(self.threat.mitre_hints[:20] if isinstance(self.threat.mitre_hints, list) else []):
            ref, found = f"signal.mitre_hints[{index}]", attack.technique(hint) if isinstance(hint, str) else None
            if found is None and attack.tactic_id(hint):
                self._tactic_hint(hint, ref)
            elif found is None:
                if isinstance(hint, str) and hint.strip():
                    result.find(f"Technique hint {hint[:40]!r} is not in ATT&CK {attack.version()}; ignored.", ref)
            elif found["status"] == "deprecated":
                self.dismissed.append({"technique_id": found["technique_id"], "reason": "deprecated in ATT&CK "
                                       f"{attack.version()} with no successor", "evidence": [ref]})
            elif coarse and not self._supported(hint, found):
                self.dismissed.append({"technique_id": found["technique_id"], "name": found["name"],
                                       "reason": f"the source tags its whole rule family {hint}; nothing in this "
                                                 "alert shows it", "evidence": [ref]})
            else:
                self._add(hint, "alert", 1.0, ref, "named by the source's rule")

    def _tactic_hint(self, hint, ref):
        """A tactic the source names (by id, current or legacy name: v19 renamed TA0005 to Stealth)."""
        tactic = attack.tactic_id(hint)
        legacy = hint if attack.tactic_name(tactic).lower() != str(hint).strip().lower() else ""
        self.tactic_hints.append({"id": tactic, "name": attack.tactic_name(tactic), "legacy_name": legacy,
                                  "evidence": [ref]})

    def _supported(self, hint, found):
        """A coarse hint stands when the alert shows no behaviour at all, when it refines a technique the
        behaviours give, or when it names a behaviour of the same family as one with no technique of its own."""
        if not self.found:
            return True
        parents = {t.split(".")[0] for t in self.techniques} | {t.split(".")[0] for t in self._original_ids()}
        if found["technique_id"].split(".")[0] in parents or str(hint).upper().split(".")[0] in parents:
            return True
        named = behaviour_of_technique(hint)
        if named in self.found:
            return True
        bare = [n for n in self.found if n in POLICIES and not self._behaviour_techniques(n, self.found[n])]
        return any(named in RELATED.get(name, ()) for name in bare)

    def _original_ids(self):
        return [t["original_id"] for t in self.techniques.values() if "original_id" in t]

    def _commands(self):
        for hit in self.model.get("command_techniques", []):
            if hit["confidence"] >= MIN_RULE_CONFIDENCE:
                self._add(hit["technique_id"], "command_line", hit["confidence"], hit["field"],
                          f"command-line rule {hit['rule']}")

    def _anomaly(self):
        entry = self.found.get("anomaly")
        metric = str(entry.get("detail", "")) if entry else ""
        if metric in ANOMALY_TECHNIQUES:
            self._add(ANOMALY_TECHNIQUES[metric], "metric", 0.6, f"signal.{entry['field']}",
                      f"a deviation in {metric.replace('_', ' ')}")

    def _add(self, technique_id, source, confidence, ref, reason):
        found = attack.technique(technique_id)
        if found is None or found["status"] == "deprecated":
            return None
        key = found["technique_id"]
        known = self.techniques.get(key)
        if known:
            known["confidence"] = max(known["confidence"], confidence)
            known["sources"] = sorted(set(known["sources"]) | {source})
            known["evidence"] = list(dict.fromkeys(known["evidence"] + [ref]))
            known["reasons"] = list(dict.fromkeys(known["reasons"] + [reason]))
            return known
        self.techniques[key] = {
            "technique_id": key, "name": found["name"],
            "tactic_id": found["tactic_ids"][0] if found["tactic_ids"] else "",
            "tactic": found["tactics"][0] if found["tactics"] else "",
            "tactic_ids": found["tactic_ids"], "tactics": found["tactics"],
            "source": source, "sources": [source], "confidence": confidence, "evidence": [ref], "reasons": [reason],
            **({"original_id": found["original_id"]} if "original_id" in found else {}),
        }
        return self.techniques[key]

    # --- within-band contributions and attack evidence --------------------------------------------

    def _within_band(self, result):
        requests = signal_model.measure(self.threat, "request_count")
        if requests is not None and requests >= VOLUME_REQUESTS:
            result.score(5, f"high volume ({requests:,.0f} requests)", "signal.measures.request_count")
        addresses = signal_model.measure(self.threat, "distinct_ips")
        if addresses is not None and addresses >= ROTATING_ADDRESSES:
            result.score(3, f"{addresses:.0f} rotating source addresses", "signal.measures.distinct_ips")
        speed = signal_model.measure(self.threat, "speed_kmh")
        if speed is not None and speed > 1000:
            result.score(5, f"impossible travel ({speed:,.0f} km/h needed)", "signal.measures.speed_kmh")
        sigma = signal_model.measure(self.threat, "deviation_sigma")
        if sigma is not None and sigma >= 4:
            result.score(5 if sigma >= 10 else 3, f"{sigma:g} sigma above the baseline", "signal.measures.deviation_sigma")

    def recent_failures(self):
        """The last hour's alerts on this source or user that were repeated failures: a brute force,
        spraying or stuffing alert, or at least REPEATED single failures (one mistyped password is not)."""
        attacks = [r["id"] for r in self.recent if set(r["behaviours"]) & FAILURES - {"login_failure"}]
        singles = [r["id"] for r in self.recent if "login_failure" in r["behaviours"]]
        return (attacks + (singles if len(singles) >= REPEATED else []))[:10]

    def travel(self):
        """The last hour's successful logins of this user from another country: this one is far from
        that one in less time than travel takes (the country is the source's geolocation)."""
        user, country = signal_model.text(self.threat, "user"), signal_model.text(self.threat, "country")
        if "login_success" not in self.found or not user or not country:
            return []
        return [r["id"] for r in self.recent if "login_success" in r["behaviours"] and r.get("user") == user
                and r.get("country") and r["country"].upper() != country.upper()][:10]

    def hostile_attempts(self):
        """Attacks attempted that did not fail (a scan is not one): an allow-listed source does not make them.
        Failed logons are how password guessing is attempted, so only a block stops that being one."""
        prevented = self.model.get("prevented") is True
        failed = prevented or self.model.get("outcome") == "failure" or signal_model.rejected(
            signal_model.measure(self.threat, "http_status"))
        return [name.replace("_", " ") for name, entry in self.found.items()
                if name in HOSTILE and not entry.get("tagged")
                and not (prevented if name in FAILURES else failed)]

    def attack_evidence(self):
        """What history may not outvote: footholds and impact that no legitimate user causes (an
        administrator's action, like a group change, is explained by an approved reason), code that ran,
        an attack the content itself proves (an exploitation tool, a payload in the URL: a rule that only
        matched may be a false positive analysts taught us), and a successful login among failures."""
        failed = self.model.get("prevented") is True or self.model.get("outcome") == "failure"
        evidence = [name.replace("_", " ") for name, entry in self.found.items()
                    if name in POLICIES and not entry.get("tagged") and not POLICIES[name].admin
                    and POLICIES[name].stage >= FOOTHOLD and not (failed and name == "malware")
                    and name not in ("impossible_travel", "resource_hijacking")
                    or name == "suspicious_execution" and not entry.get("tagged")
                    or name in HOSTILE and entry.get("inferred") and not entry.get("tagged") and not failed]
        if "login_success" in self.found and {"brute_force", "password_spraying", "credential_stuffing"} & set(self.found):
            evidence.append("a successful login among repeated failures")
        if str(self.found.get("password_spraying", {}).get("detail", "")).startswith("failed logins on "):
            evidence.append("failed logins on many accounts from one source")  # no one mistypes many people's passwords
        return evidence

    def _finish(self, result):
        techniques = _most_specific(sorted(self.techniques.values(), key=lambda t: (-t["confidence"], t["technique_id"])))
        for found in techniques:
            found["source"] = "+".join(found.pop("sources"))
            found["reason"] = "; ".join(found.pop("reasons"))
            renamed = f" (alert sent {found['original_id']}, revoked in favour of it)" if "original_id" in found else ""
            result.find(f"{found['technique_id']} {found['name']} [{', '.join(found['tactics'])}]{renamed}: "
                        f"{found['reason']}.", *found["evidence"])
        tactics = {t["tactic_id"] for t in techniques if t["tactic_id"]}
        if len(tactics) >= BREADTH_TACTICS:
            result.score(5, f"activity spans {len(tactics)} ATT&CK tactics", *[t["evidence"][0] for t in techniques])
        evidence = self.attack_evidence()
        known = [name for name in self.found if name in POLICIES]
        top = max((POLICIES[n].stage for n in known), default=0)
        result.confidence = min(0.95, 0.5 + 0.1 * min(len(techniques), 2) + (0.15 if known else -0.1)
                                + (0.1 if self.model.get("severity") else 0) + (0.05 if top >= IMPACT else 0))
        context = {t["technique_id"]: attack.context(t["technique_id"]) for t in techniques[:3]}
        for technique_id, found in context.items():
            for mitigation in found["mitigations"][:2]:
                result.recommendations.append(f"{mitigation['id']} {mitigation['name']} (mitigates {technique_id})")
        family = signal_model.family(self.threat)
        result.data = {
            "family": family, "attack_version": attack.version(), "techniques": techniques,
            "dismissed_hints": self.dismissed, "tactic_hints": self.tactic_hints, "context": context, "attack_evidence": evidence, "hostile_attempts": self.hostile_attempts(),
            "recent_failures": self.recent_failures(), "travel": self.travel(),
            "recent_tickets": [r["id"] for r in self.recent if "kerberoasting" in r["behaviours"]],
            "recent_planted": [r["id"] for r in self.recent if PLANTED & set(r["behaviours"]) or r.get("planted")],
            "behaviours": [{k: v for k, v in b.items()} for b in self.model["behaviours"]],
            "typical_band": max((POLICIES[n].typical for n in known), key=RANK.get, default=""),
        }
        names = ", ".join(f"{t['technique_id']} {t['name']}" for t in techniques[:4]) or "no technique"
        shown = ", ".join(n.replace("_", " ") for n in self.found) or "no recognised behaviour"
        result.summary = f"{family.replace('_', ' ').capitalize()}: {shown}; ATT&CK {attack.version()}: {names}."
        return result


# Where a user's own downloads and saved attachments land (Windows and macOS).
USER_DOWNLOADS = re.compile(r"[\\/]+users[\\/]+[^\\/]+[\\/]+(downloads|desktop)[\\/]|\\+content\.outlook\\|"
                            r"\\+inetcache\\", re.I)  # separators doubled as Windows event logs escape them
PERSISTENCE_TECHNIQUES = {"registry run key": "T1547.001", "autostart registry key": "T1547.001",
                          "startup folder": "T1547.001", "cron": "T1053.003", "systemd unit": "T1543.002",
                          "ssh authorized keys": "T1098.004", "init script": "T1037.004"}


def _planted(found):
    """The stored signal names a file in an autostart place (an authorized_keys, a unit, a cron file):
    a way back in, though the behaviour was inferred and not stored."""
    path = found.get("file") if isinstance(found, dict) else None
    return isinstance(path, str) and any(pattern.search(path[:2000]) for _name, pattern in content.AUTOSTART)


def _who_where(observables):
    """The user and country an earlier alert names (untrusted JSON: bounded strings only)."""
    observables = observables if isinstance(observables, dict) else {}
    return {key: observables[key][:200] for key in ("user", "country") if isinstance(observables.get(key), str)}


def _names(found, hints=None):
    """Behaviour names of a stored signal (untrusted JSON: only names that are strings), with those its
    rule's ATT&CK tags name when they were written for that rule (an ES|QL spray alert names no field)."""
    found = found if isinstance(found, dict) else {}
    listed = found.get("behaviours")
    names = [b["name"] for b in listed or [] if isinstance(b, dict) and isinstance(b.get("name"), str)]
    if found.get("trust") == "curated" and isinstance(hints, list):
        names += [behaviour_of_technique(h) for h in hints[:20] if isinstance(h, str) and behaviour_of_technique(h)]
    return list(dict.fromkeys(names))[:20]


def _persistence_technique(entry):
    detail = str(entry.get("detail", ""))
    if detail.startswith("kernel module"):
        return "T1547.006"
    if "LaunchAgents" in detail:
        return "T1543.001"
    if "7045" in detail or "4697" in detail:
        return "T1543.003"
    if "4698" in detail:
        return "T1053.005"
    return PERSISTENCE_TECHNIQUES.get(detail, "")


def _most_specific(techniques):
    """A parent is dropped when one of its sub-techniques is named: say the most specific thing known."""
    subs = {t["technique_id"].split(".")[0] for t in techniques if "." in t["technique_id"]}
    return [t for t in techniques if "." in t["technique_id"] or t["technique_id"] not in subs]


def _distinct_techniques(hints):
    """The techniques a rule names, a parent listed beside its own sub-technique counted once (Elastic
    lists T1553 with T1553.001): how many things the rule says, to tell a statement from a catch-all."""
    found = {attack.technique(h)["technique_id"] for h in hints if isinstance(h, str) and attack.technique(h)}
    return {t for t in found if not any(other.startswith(t + ".") for other in found)}
