"""The severity and human-review policy of docs/verdicts.md, as named rules.

Severity starts from the source's own rating (the prior) and moves only by rules that cite
evidence: caps (what the alert shows bounds it), floors (what it shows proves at least) and the
explanation cap (benign or false, with no attack evidence). Floors are applied last: proof of
success outranks "it was only an attempt". Every move is returned for the threat's risk factors.
"""

import re
import urllib.parse
from dataclasses import dataclass

from django.utils.dateparse import parse_datetime

from . import content, signal_model
from .analyzers import evidence
from .historical import agent as historical
from .priority.behaviours import (ADMINISTRATION, BANDS, FOOTHOLD, IMPACT, POLICIES, RANK, behaviour_of_technique,
                                  higher, lower)

BAND_FLOOR = {"LOW": 0, "MEDIUM": 25, "HIGH": 50, "CRITICAL": 75}
BAND_WIDTH = 24
EXPLAINED = ("likely_false_positive", "likely_benign_true_positive")
UNCERTAIN = (0.4, 0.6)  # a false-positive likelihood nobody should act on alone
EXFIL_CRITICAL_BYTES = 1_000_000_000
DISTRIBUTED_ADDRESSES = 100
STEP_LIMIT = "HIGH"
ACCESS_BEHAVIOURS = {"login_success", "impossible_travel", "unusual_location", "account_changed", "account_created",
                     "privileged_group_change", "persistence"}
FOOTHOLD_BEHAVIOURS = {"command_and_control", "exploit_success", "dns_tunnelling"}
SPREAD_BEHAVIOURS = {"exfiltration", "credential_dumping", "privilege_escalation", "lateral_movement",
                     "inhibit_recovery", "ransomware"}


@dataclass
class Band:
    """The band as it moves: each move is kept for the threat's risk factors."""

    band: str
    moves: list

    def move(self, to, rule, reason, evidence, kind, keep=False):
        """`keep`: recorded even when the band does not change (a disproof the false-positive call reads)."""
        if to and (to != self.band or keep):
            self.moves.append({"kind": kind, "rule": rule, "from": self.band, "to": to, "reason": reason,
                               "evidence": list(dict.fromkeys(evidence)), "points": 0, "agent": "policy"})
            self.band = to


def severity(threat, fp, attack_evidence, results, scan):
    """(band, moves) for an analysed threat: prior, caps, explanation, floors, then steps."""
    model, found = signal_model.model(threat), signal_model.behaviours(threat)
    state = _prior(model, found)
    _caps(state, threat, model, found)
    _declared_crawler(state, threat, found, results.get("config", {}))
    explained = fp["recommendation"] in EXPLAINED and (not attack_evidence or (
        fp["recommendation"] == "likely_benign_true_positive" and evidence.authorised(results_of(results))))
    if explained:
        cited = [e for i in fp["indicators"] if i["weight"] > 0 for e in i["evidence"]]
        state.move(lower(state.band, "LOW"), "explained", f"{fp['recommendation'].replace('_', ' ')}"
                   + (", authorised by a record naming this alert" if attack_evidence else " and no attack evidence")
                   + ": not a threat to act on", cited or ["false_positive"], "cap", keep=True)
    # Only an approval that names this alert (a business item keyed to its entities, a change of its very
    # service or host) authorises an administrator's action; a trusted source or a history does not.
    authorised = explained and fp["recommendation"] == "likely_benign_true_positive" and \
        evidence.authorised(results_of(results))
    _floors(state, threat, model, found, explained, authorised, results.get("priority", {}))
    if not explained:
        _disallowed_login(state, threat, found, results.get("config", {}), results.get("priority", {}))
        _confirmed_attacker(state, model, found, results.get("historical", {}))
        _root_login(state, model, found)
        _denied_login(state, model, found, results.get("context", {}))
        _domain_credential_theft(state, threat, model, found, results.get("priority", {}))
        _planted_then_used(state, model, found, results.get("priority", {}))
        _dual_use(state, threat, model, found, results.get("priority", {}))
        _reflected_flood(state, threat, model, found)
        _obfuscated_persistence(state, model, found)
        _web_account_persistence(state, threat, model, found)
        _document_ran_code(state, model, found)
    _distributed_step(state, threat, found)
    _advisory_step(state, results.get("context", {}))
    _contradicted(state, threat, model, found, scan, results.get("devops", {}), results.get("priority", {}))
    _critical_needs_impact(state, found)
    return state.band, state.moves


def _critical_needs_impact(state, found):
    """`critical_without_impact`: CRITICAL means compromise or impact in progress. When only the source's
    own rating says so and what the alert shows stops at a foothold (code ran, a login, a tool), the
    band is HIGH; a rule of ours that found impact (ransomware, recovery deleted, volume out, a
    foothold with spread) keeps it."""
    if state.band != "CRITICAL" or not found:
        return
    if any(m["to"] == "CRITICAL" and m["kind"] != "prior" for m in state.moves):
        return
    if any(POLICIES[name].stage >= IMPACT or POLICIES[name].typical == "CRITICAL" for name in found if name in POLICIES):
        return
    names = ", ".join(sorted(found)).replace("_", " ")
    state.move("HIGH", "critical_without_impact", f"the source rated it CRITICAL, but what the alert shows ({names}) "
               "is a foothold, not impact in progress", [_ref(entry) for entry in found.values()], "cap")


def results_of(data):
    """The analyzers' helpers read agent results ({kind: result with .data}); the policy has their data."""
    return {kind: _Result(value) for kind, value in data.items()}


@dataclass
class _Result:
    data: dict


def _prior(model, found):
    rated = model.get("severity") or {}
    if rated.get("level") in RANK:
        state = Band(rated["level"], [])
        state.moves.append({"kind": "prior", "rule": "source_severity", "from": "", "to": rated["level"],
                            "reason": f"the source rated it {rated['level']} ({rated.get('field')} = "
                                      f"{str(rated.get('value'))[:40]})", "evidence": [f"signal.{rated.get('field')}"],
                            "points": 0, "agent": "policy"})
        return state
    known = [(POLICIES[name], entry) for name, entry in found.items() if name in POLICIES]
    policy, entry = max(known, key=lambda pair: (pair[0].stage, RANK[pair[0].typical]), default=(None, None))
    band = policy.typical if policy else "MEDIUM"
    reason = (f"no source severity; {entry['name'].replace('_', ' ')} is typically {band}" if policy
              else "no source severity and no recognised behaviour: needs triage")
    return Band(band, [{"kind": "prior", "rule": "typical_band", "from": "", "to": band, "reason": reason,
                        "evidence": [_ref(entry)] if entry else ["signal"], "points": 0, "agent": "policy"}])


def _caps(state, threat, model, found):
    """The band a bare occurrence of every behaviour shown is held to; the least strict one wins
    (a single behaviour without a cap lifts it), and only an alert that shows behaviours is capped."""
    if not found:
        return
    failed, prevented = _failed(model), model.get("prevented") is True
    caps = []
    for name, entry in found.items():
        policy = POLICIES.get(name)
        infected = _shows_infection(name, model)  # blocking the traffic does not clean the host
        cap = policy and (policy.failed_cap if failed and policy.failed_cap and not infected else policy.cap)
        if policy and prevented and not cap and not infected:
            cap = "MEDIUM"  # a security control stopped it: nothing ran, whatever it was
        if policy and cap and name in ("network_scan", "vulnerability_scan", "recon_probe") and \
                not content.is_inbound(threat):
            cap = "MEDIUM"  # an internal host scanning is discovery from a foothold, not internet noise
        if name == "reputation_match" and content.is_outbound(threat):
            cap = "MEDIUM"
        if name == "credential_exposure" and model.get("direction") == "internal":
            cap = "LOW"  # `cleartext_inside`: a password in the clear between two of ours is a hygiene finding
        caps.append((cap, entry))
    if any(not cap for cap, _entry in caps):
        return
    bound = higher(*(cap for cap, _entry in caps))
    if RANK[bound] < RANK[state.band]:
        why = "the attempt failed or was prevented" if failed else "what the alert shows"
        names = ", ".join(sorted(found)).replace("_", " ")
        state.move(bound, "behaviour_cap", f"{why}: {names} is at most {bound}",
                   [_ref(entry) for _cap, entry in caps] + _failure_refs(model, failed), "cap")


def _shows_infection(name, model):
    """Traffic that only an infected host sends (C2, beacons): blocking it does not clean the host. An
    endpoint's own prevention (it names the process or file it stopped) is not traffic seen on the wire."""
    categories = set(model.get("category") or [])
    network = bool({"network", "intrusion_detection"} & categories) and not categories & ENDPOINT_CATEGORIES
    return name in ("command_and_control", "dns_tunnelling") or (name == "malware" and network)


def _floors(state, threat, model, found, explained, authorised, priority):
    """What the evidence proves. An administrator's action (a group change, a cleared log) is proof
    only when nothing authorises it; an attempt deserves MEDIUM unless it failed or is explained."""
    curated = model.get("trust") == "curated"
    found = {name: entry for name, entry in found.items() if not entry.get("tagged") or curated}
    failed = _failed(model)
    for name, entry in found.items():
        floor = _floor(name, POLICIES.get(name), threat, model, failed, explained, authorised)
        if floor and RANK[floor] > RANK[state.band]:
            state.move(floor, "behaviour_floor", f"{name.replace('_', ' ')} shows at least {floor}", [_ref(entry)],
                       "floor")
    if authorised:
        return  # an approved reason names this alert: nothing here is proof against it
    _exposed_service(state, threat, found, explained)
    foothold = [found[n] for n in found if n in FOOTHOLD_BEHAVIOURS or (n == "malware" and not _failed(model))]
    spread = [found[n] for n in found if n in SPREAD_BEHAVIOURS]
    # One rule tagged with two tactics is one detection, not two stages: at least one must be seen.
    if foothold and spread and not all(e.get("tagged") for e in foothold + spread):
        state.move(higher(state.band, "CRITICAL"), "compromise_with_impact", "a foothold together with "
                   "exfiltration, credential theft, privilege escalation or spread: compromise in progress",
                   [_ref(e) for e in foothold + spread], "floor")
    sent = content.sent_out(model)
    if "exfiltration" in found and sent and sent >= EXFIL_CRITICAL_BYTES and content.is_outbound(threat):
        state.move(higher(state.band, "CRITICAL"), "exfiltration_volume", f"{sent / 1e9:.1f} GB left the network",
                   [_ref(found["exfiltration"]), f"signal.{signal_model.field_of(threat, 'measures.src_bytes')}"], "floor")
    failures = {"brute_force", "password_spraying", "credential_stuffing", "login_failure"}
    earlier = priority.get("recent_failures", [])
    if "login_success" in found and (failures & set(found) or earlier):
        state.move(higher(state.band, "HIGH"), "login_after_failures", "a successful login after repeated failures "
                   "on the same source or user: the account is likely compromised",
                   [_ref(e) for e in found.values()] + [f"threat:{pk}" for pk in earlier], "floor")


# Services nobody should reach from the internet: databases, caches, search, remote administration.
INTERNAL_SERVICES = {1433, 1521, 3306, 5432, 6379, 9200, 27017, 5984, 11211, 3389, 5900, 5985, 5986, 445, 23}
ANSWERED_BYTES = 300  # more than a reset or a handshake (60-140 bytes): the service spoke


def _exposed_service(state, threat, found, explained):
    """`exposed_service`: an internet probe of a database, cache or remote-administration port that the
    service answered (more than a reset or a handshake came back) is MEDIUM: it is reachable from the
    internet, whatever the prober meant."""
    port, back = (threat.observables or {}).get("dst_port"), signal_model.measure(threat, "dst_bytes")
    if explained or "network_scan" not in found or not content.is_inbound(threat) or port not in INTERNAL_SERVICES:
        return
    if isinstance(back, (int, float)) and back >= ANSWERED_BYTES:
        state.move(higher(state.band, "MEDIUM"), "exposed_service", f"the service on port {port} answered an internet "
                   f"probe ({back:,.0f} bytes back): it is reachable from the internet",
                   [_ref(found["network_scan"]), "signal.measures.dst_bytes"], "floor")


def _disallowed_login(state, threat, found, config, priority):
    """`login_from_disallowed_country`: a successful login from a country the customer does not allow
    is at least MEDIUM, and HIGH when the same user logged in from another country within the hour
    (`impossible_travel`). Any other cloud audit action that did not fail, by an identity from such a
    country, is at least MEDIUM too (`cloud_action_from_disallowed_country`: a token or key at work from
    where the customer has nobody). A private address has no country: its geolocation proves nothing."""
    model = signal_model.model(threat)
    acted = model.get("cloud") and not _failed(model) and (model["account"] or signal_model.text(threat, "user"))
    if not config.get("outside_allowed_countries") or "login_success" not in found and not acted:
        return
    if signal_model.is_internal(signal_model.ip(signal_model.text(threat, "src_ip"))):
        return
    country = signal_model.text(threat, "country")
    if "login_success" not in found:  # `cloud_action_from_disallowed_country`: an identity at work, from there
        state.move(higher(state.band, "MEDIUM"), "cloud_action_from_disallowed_country",
                   f"a cloud identity acting from {country}, outside the customer's allowed countries",
                   ["signal.observables.country", f"customer:{threat.customer.slug}.allowed_countries"], "floor")
        return
    earlier = priority.get("travel") or []
    evidence = ["signal.observables.country", f"customer:{threat.customer.slug}.allowed_countries"]
    if earlier:
        state.move(higher(state.band, "HIGH"), "impossible_travel", f"a login from {country}, outside the allowed "
                   "countries, within an hour of the same user's login from another country",
                   evidence + [f"threat:{pk}" for pk in earlier], "floor")
    else:
        state.move(higher(state.band, "MEDIUM"), "login_from_disallowed_country",
                   f"a successful login from {country}, outside the customer's allowed countries", evidence, "floor")


def _document_ran_code(state, model, found):
    """`document_ran_code`: a script host or system binary started by an Office application is HIGH:
    the document is running code on the host (an attachment opened, its macro ran), not an attempt."""
    entry = found.get("phishing")
    if entry and not entry.get("tagged") and " started by " in str(entry.get("detail")) and not _failed(model) \
            and model.get("prevented") is not True:
        state.move(higher(state.band, "HIGH"), "document_ran_code", f"a document ran code ({entry['detail']})",
                   [_ref(entry)], "floor")


def _web_account_persistence(state, threat, model, found):
    """`web_account_persistence`: persistence (a key, unit, task, cron entry) written by a web server's
    own account is at least HIGH: the web server runs code someone sent it (a web shell)."""
    names = [model["account"].get(k) for k in ("writer", "actor")] + signal_model.values(threat, "user")
    writer = next((n for n in names if isinstance(n, str) and content.WEB_ACCOUNTS.match(n.strip())), None)
    if "persistence" in found and writer:
        state.move(higher(state.band, "HIGH"), "web_account_persistence", f"the web server's account {writer[:40]} "
                   "wrote something that survives a reboot", [_ref(found["persistence"]), "signal.account"], "floor")


def _obfuscated_persistence(state, model, found):
    """`obfuscated_persistence`: a service, task or run key whose command is encoded or obfuscated
    (a command-line rule names T1027) is at least HIGH: administrators do not hide what they install."""
    hidden = [h for h in model.get("command_techniques") or [] if str(h.get("technique_id", "")).startswith("T1027")]
    if "persistence" in found and hidden:
        state.move(higher(state.band, "HIGH"), "obfuscated_persistence", "something set to survive a reboot runs an "
                   f"obfuscated command ({hidden[0]['technique_id']})", [_ref(found["persistence"]), hidden[0]["field"]],
                   "floor")


def _reflected_flood(state, threat, model, found):
    """`reflected_flood`: a denial of service whose packets come from a reflector's service port (NTP,
    memcached, DNS, SSDP, CLDAP, chargen) and that delivered FLOOD_BYTES or more to one of ours, not
    blocked, is HIGH: the flood is reaching the service, not only detected."""
    arrived = signal_model.measure(threat, "src_bytes")
    if "denial_of_service" in found and signal_model.measure(threat, "service_port") and content.is_inbound(threat, model) \
            and isinstance(arrived, (int, float)) and arrived >= FLOOD_BYTES and model.get("prevented") is not True:
        state.move(higher(state.band, "HIGH"), "reflected_flood", f"{arrived / 1e6:,.0f} MB of reflected traffic "
                   "reached the host in one flow", [_ref(found["denial_of_service"]),
                                                   f"signal.{signal_model.field_of(threat, 'measures.src_bytes')}"], "floor")


def _dual_use(state, threat, model, found, priority):
    """`dual_use_outbound`: one of ours running a remote-access tool, Tor, a tunnelling service (T1572)
    or fetching a program from a bare address (T1105) is at least MEDIUM: a way in or out around the
    perimeter's controls, legitimate only when someone approved it (an approval explains it)."""
    named = [t for t in priority.get("techniques", []) if "signature" in (t.get("source"), *t.get("sources", []))
             and str(t.get("technique_id")) in DUAL_USE_TECHNIQUES]
    if any(signal_model.ip(d) is None for d in signal_model.values(threat, "domains")):
        named = [t for t in named if t["technique_id"] != "T1105"]  # a program from a named site, not a bare address
    shown = [found[n] for n in ("remote_access_tool", "tunnel", "anonymising_proxy") if n in found]
    # A lookup of a tunnelling service goes to the internal resolver: anything not from outside counts.
    if (shown or named) and not content.is_inbound(threat, model) and not _failed(model) \
            and model.get("prevented") is not True:
        state.move(higher(state.band, "MEDIUM"), "dual_use_outbound", "one of ours uses a way in or out around the "
                   "perimeter's controls (remote access, Tor, a tunnel, a program from a bare address)",
                   [_ref(e) for e in shown] + ["signal.title" for _t in named[:1]], "floor")


def _planted_then_used(state, model, found, priority):
    """`planted_then_used`: a successful login on the same account or from the same source as an alert
    of the last hour that put a way back in (a key, a service, a web shell, a new account) is HIGH."""
    earlier = priority.get("recent_planted") or []
    if "login_success" in found and earlier and not _failed(model):
        state.move(higher(state.band, "HIGH"), "planted_then_used", "a login within the hour of the same account or "
                   "source getting a way back in", [_ref(found["login_success"])] + [f"threat:{pk}" for pk in earlier],
                   "floor")


def _root_login(state, model, found):
    """`cloud_root_login`: a successful sign-in as a cloud account's root identity is at least HIGH: it
    can do anything, so its use is break-glass only (CIS AWS Foundations: alarm on root usage)."""
    if "login_success" in found and model["account"].get("kind") == "root" and not _failed(model):
        state.move(higher(state.band, "HIGH"), "cloud_root_login", "a sign-in as the cloud account's root identity",
                   [f"signal.{model['fields'].get('account.kind', 'account.kind')}", _ref(found["login_success"])],
                   "floor")


def _denied_login(state, model, found, context):
    """`login_the_customer_denies`: a successful sign-in on an account (or from an address) that the
    customer's own note, keyed to it, says does not sign in like this (from there, with a password,
    through a proxy) is HIGH: the customer's rule is the baseline, and the sign-in breaks it.
    `activity_the_customer_denies`: the same for any other act the alert shows (a scan, a tool, a
    command) that such a note says does not happen there ("the office VLAN must never reach TCP/502")."""
    denying = context.get("denying_by_entity") or []
    if not denying or _failed(model):
        return
    refs = [f"context_item:{pk}" for pk in denying]
    if "login_success" in found:
        state.move(higher(state.band, "HIGH"), "login_the_customer_denies", "a successful sign-in that the "
                   "customer's note on this account or address says does not happen",
                   [_ref(found["login_success"]), *refs], "floor")
    acts = [n for n, e in found.items() if n in POLICIES and n not in NOT_ACTS and not e.get("tagged")]
    if acts:
        state.move(higher(state.band, "HIGH"), "activity_the_customer_denies", "an act that the customer's note "
                   "on this host, account or address says does not happen", [_ref(found[acts[0]]), *refs], "floor")


NOT_ACTS = {"login_success", "policy_violation", "informational", "anomaly", "vulnerability", "integrity_change"}


# Taking every account's secret at once (the domain's hashes, krbtgt included): DCSync, which a rule
# tags only for itself, and a copy of NTDS.dit, which the command line or file must show (rules for
# credential utilities in general tag T1003.003 beside LSASS dumping).
NTDS_FILE = re.compile(r"\bntds\.dit\b", re.I)


def _domain_credential_theft(state, threat, model, found, priority):
    """`domain_credential_theft`: credential dumping by DCSync or of NTDS.dit is CRITICAL: every
    domain password is to be treated as stolen (docs/verdicts.md, the CRITICAL band's examples)."""
    named = {t.get("technique_id") for t in priority.get("techniques") or [] if isinstance(t, dict)}
    ntds = any(NTDS_FILE.search(value) for value in [*signal_model.values(threat, "command_line"), str(model.get("file") or "")])
    how = "DCSync" if "T1003.006" in named else "a copy of NTDS.dit" if "T1003.003" in named and ntds else ""
    if "credential_dumping" in found and how and not _failed(model) and model.get("prevented") is not True:
        state.move(higher(state.band, "CRITICAL"), "domain_credential_theft",
                   f"credential dumping by {how}: every domain password is exposed",
                   [_ref(found["credential_dumping"]), "priority.techniques"], "floor")


def _confirmed_attacker(state, model, found, historical):
    """`confirmed_attacker_returns`: access gained (a login, an account or persistence change, a foothold)
    from a public address an analyst confirmed malicious in the last week is at least HIGH: the
    attacker is back in. Its scans, floods and bots returning stay where their own rules put them."""
    earlier = historical.get("confirmed_attacker") or []
    acts = [entry for name, entry in found.items() if name in ACCESS_BEHAVIOURS or (
        name in POLICIES and POLICIES[name].stage >= FOOTHOLD)]
    if earlier and acts and not _failed(model) and model.get("prevented") is not True:
        state.move(higher(state.band, "HIGH"), "confirmed_attacker_returns", "it succeeded from an address an analyst "
                   "confirmed malicious in the last week", [_ref(e) for e in acts] + [f"threat:{pk}" for pk in earlier],
                   "floor")


def _floor(name, policy, threat, model, failed, explained, authorised):
    if policy is None:
        return ""
    if authorised:
        return ""  # an approved reason explains it: an administrator's action, or one a record names
    if name == "ransomware" and failed:
        return policy.failed_cap
    if name == "malware" and not failed and model.get("prevented") is False:
        return "HIGH"  # the endpoint saw it and let it run
    if name == "exploit_success" and _attack_response(threat):
        sender = signal_model.ip(signal_model.text(threat, "src_ip"))  # the packet that carried the output
        if sender is None or not signal_model.is_internal(sender):
            return ""  # output sent to one of ours from outside: a page that shows it (`output_from_outside`)
        if model.get("direction") == "internal":
            return "MEDIUM"  # command output between two of ours: a host attacked, or a page that documents it
        return "CRITICAL" if ROOT_OUTPUT.search(threat.title or "") else "HIGH"  # one of ours sent it out
    if name == "exploit_attempt" and model.get("direction") == "internal" and not failed:
        return "" if explained else "HIGH"  # one of ours throwing exploits at another: it is compromised
    if name in ("network_scan", "vulnerability_scan") and content.is_outbound(threat):
        return "" if explained else "HIGH"  # one of ours scanning the internet: it is compromised or misused
    if name in ("network_scan", "vulnerability_scan", "recon_probe") and not content.is_inbound(threat):
        return "" if explained else "MEDIUM"  # an internal host scanning: discovery from a foothold
    detail = str(signal_model.behaviours(threat).get(name, {}).get("detail"))
    if name == "oauth_consent" and detail.startswith("a user granted an app standing access") and not explained:
        return "HIGH"  # `illicit_consent_grant`: the app reads the mailbox whatever the password becomes
    if name == "suspicious_execution" and "runs a script it downloads" in detail and not explained:
        return "HIGH"  # `fetched_script_ran`: code from a bare address on the internet ran on the host
    if name == "suspicious_execution" and detail.startswith("PowerShell with a hidden window") and not explained:
        return "MEDIUM"  # `hidden_powershell`: a script someone took care nobody would see
    if name == "credential_exposure" and model.get("direction") == "internal":
        return ""  # `cleartext_inside`: nobody outside saw it
    if name in ("account_created", "account_changed") and not authorised and _second_root(threat, model):
        return "HIGH"  # `second_root`: another account with user id 0 is a hidden superuser
    if name == "discovery" and not explained and content.web_server_ran(model):
        return "MEDIUM"  # `web_server_discovery`: whoami or uname from the web tier is a web shell's first look
    if name == "discovery" and not explained and _domain_discovery(threat):
        return "MEDIUM"  # `domain_discovery`: someone maps the domain's accounts, admins or trusts from this host
    if policy.attempt_floor and not failed and not explained and not _words_only(name, threat, model):
        return policy.attempt_floor
    return policy.floor


def _attack_response(threat):
    """An IDS attack-response signature: command output seen in traffic (ET/GPL ATTACK_RESPONSE)."""
    entry = signal_model.behaviours(threat).get("exploit_success") or {}
    return "ATTACK_RESPONSE" in str(entry.get("detail")) or "ATTACK_RESPONSE" in (threat.title or "")


def _page_quotes_output(threat, model):
    """A whole HTML page (PAGE_BYTES or more) answering a request with no attack payload in its URL (no
    shell syntax either) or user agent: a shell's answer to an injected command is a few hundred bytes."""
    size = signal_model.measure(threat, "response_bytes")
    urls = [urllib.parse.unquote_plus(url) for name in ("urls", "endpoint") for url in signal_model.values(threat, name)]
    return str(model.get("content_type") or "").startswith("text/html") and isinstance(size, (int, float)) \
        and size >= PAGE_BYTES and not model.get("url_payloads") and not any(SHELL_SYNTAX.search(u) for u in urls) \
        and not SHELLSHOCK.search(signal_model.text(threat, "user_agent"))


# Domain-scope discovery (ATT&CK T1087.002 domain accounts, T1069.002 domain groups, T1482 trusts,
# T1018 remote systems) as a rule tags it or a command line shows it; ipconfig or whoami stay local.
DOMAIN_DISCOVERY_TECHNIQUES = ("T1087.002", "T1069.002", "T1482", "T1018")
DOMAIN_DISCOVERY = re.compile(r"\bnet1?(\.exe)?\s+(user|group|accounts)\b[^\n]*\s/do(main)?\b|\bnltest(\.exe)?\s+/"
                              r"(dclist|domain_trusts|dsgetdc)|\b(dsquery|adfind)(\.exe)?\b|\bget-ad(user|group|computer|"
                              r"domain|trust)\b", re.I)


# A command giving an account user id 0 beside root's (useradd/usermod -o -u 0: a non-unique id).
SECOND_ROOT = re.compile(r"\b(useradd|usermod|adduser)\b[^\n;|&]*\s-(o\s+-u\s*0|u\s*0\s+-o|ou\s*0)\b")


def _second_root(threat, model):
    account = model["account"]
    created = account.get("uid") == "0" and str(account.get("target", "")).lower() not in ("", "root")
    return created or any(SECOND_ROOT.search(line[:8_192]) for line in signal_model.values(threat, "command_line"))


def _domain_discovery(threat):
    tagged = any(isinstance(h, str) and h.upper().startswith(DOMAIN_DISCOVERY_TECHNIQUES) for h in threat.mitre_hints or [])
    return tagged or any(DOMAIN_DISCOVERY.search(line[:8_192]) for line in signal_model.values(threat, "command_line"))


def _words_only(name, threat, model):
    """A web attack only a coarse rule states (Wazuh's stock rules match words such as 'select' and
    'union' in a URL), whose URL we read and found no payload in: a match, not an attempt shown."""
    return (name == "web_attack" and model.get("trust") == "coarse" and not model.get("url_payloads")
            and bool(signal_model.values(threat, "urls") or signal_model.text(threat, "endpoint")))


LOCATION_CLAIMS = {"login_success", "impossible_travel", "unusual_location"}
INBOUND_RATIO = 10
FLOOD_BYTES = 10_000_000
DUAL_USE_TECHNIQUES = {"T1572", "T1105"}
ENDPOINT_CATEGORIES = {"process", "file", "library", "registry", "driver"}
STALE_DAYS = 365
FEW_ENGINES, MANY_ENGINES = 2, 40
PAGE_BYTES = 16_384
SHELLSHOCK = re.compile(r"\(\)\s*\{")
SHELL_SYNTAX = re.compile(r"[;|`$]")
ROOT_OUTPUT = re.compile(r"returned root|uid=0\b|\broot\b.*\boutput\b", re.I)
REVERSE_SHELL_RULE = re.compile(r"reverse[-_ ]?shell", re.I)
BASE64_RULE = re.compile(r"base64", re.I)
# Shellcode signatures that look for a run of one-byte NOPs (`x86 inc ebx NOOP`, `NOP sled`): any large
# binary stream (an image, an archive, a medical study) holds such runs by chance.
NOOP_RULE = re.compile(r"\bshellcode\b.*\bno?op\b|\bnop[-_ ]?sled\b", re.I)
BULK_BYTES = 1_000_000
EXECUTION_ONLY = {"suspicious_execution", "command_and_control"}  # what such rules' own tags name
SQL_RULE = re.compile(r"\bsql\b|injection", re.I)
COMMAND_RULE = re.compile(r"\b(chmod|chown|wget|curl|uname|whoami|netcat|nc|cmd\.exe|powershell|command)\b.*\b(uri|url)\b",
                          re.I)  # a rule that looks for a command in the requested URL


def _few_engines(state, threat, model, found):
    """`few_engines`: malware known only from a multi-engine scan in which at most FEW_ENGINES of
    MANY_ENGINES or more engines flag the file: one engine's heuristic, not a verdict."""
    flagged, engines = signal_model.measure(threat, "detections"), signal_model.measure(threat, "engines")
    if set(found) == {"malware"} and isinstance(flagged, (int, float)) and isinstance(engines, (int, float)) \
            and flagged <= FEW_ENGINES and engines >= MANY_ENGINES:
        state.move(lower(state.band, "LOW"), "few_engines", f"{flagged:.0f} of {engines:.0f} engines flag the file",
                   [f"signal.{signal_model.field_of(threat, 'measures.detections')}",
                    f"signal.{signal_model.field_of(threat, 'measures.engines')}"], "cap", keep=True)


def _stale_indicator(state, threat, model, found):
    """`stale_indicator`: an indicator match whose every indicator the feed itself rates low (or no)
    confidence and last saw over STALE_DAYS before the alert: the match is not evidence."""
    indicators = model.get("indicators") or []
    if set(found) != {"indicator_match"} or not indicators:
        return
    for indicator in indicators:
        seen = _moment(indicator.get("last_seen"))
        if str(indicator.get("confidence", "")).lower() not in ("low", "none") or seen is None or seen.tzinfo is None \
                or (threat.occurred_at - seen).days < STALE_DAYS:
            return
    state.move(lower(state.band, "LOW"), "stale_indicator", f"every matched indicator is low-confidence and was last "
               f"seen over {STALE_DAYS} days before the alert", ["signal.threat.enrichments"], "cap", keep=True)


def _moment(value):
    """A feed's ISO 8601 time with its zone, or None (absent, malformed, or out of the calendar)."""
    try:
        return parse_datetime(str(value)[:40]) if value else None
    except ValueError:
        return None


def _recovery_kept(state, threat, found, devops):
    """`recovery_kept`: shadow storage resized to a working size evicts no copy, so the alert's own
    command contradicts "recovery inhibited": MEDIUM, LOW when a planned change names this host."""
    kept = content.recovery_kept(threat) if "inhibit_recovery" in found else ""
    if kept and set(found) <= {"inhibit_recovery", "suspicious_execution"}:
        changes = devops.get("names_this") or []
        state.move(lower(state.band, "LOW" if changes else "MEDIUM"), "recovery_kept", f"shadow storage resized to "
                   f"{kept[:20]}, which keeps the copies" + (", in a planned change naming this host" if changes else ""),
                   ["signal.observables.command_line", *(f"infra_event:{pk}" for pk in changes)], "cap", keep=True)


# Homebrew names the launch agent of `brew services start <formula>` homebrew.mxcl.<formula>.plist.
BREW_PLIST = re.compile(r"/LaunchAgents/homebrew\.mxcl\.([\w@.+-]{1,100})\.plist$")
BREW_SERVICES = re.compile(r"\bbrew(\.rb)?\s+services\s+(start|restart|run)\s+([\w@.+-]{1,100})")


def _brew_service(model, found):
    """`brew_service`: persistence that is Homebrew's own launch agent, written by `brew services` for the
    very formula the plist is named after (both must agree). The formula's name, or ""."""
    plist = BREW_PLIST.search(str(model.get("file") or ""))
    started = BREW_SERVICES.search(str(model.get("parent_command") or ""))
    # launchctl loading it is the same act (a rule tags it T1569.001 beside the launch agent's T1543.001).
    if "persistence" in found and set(found) <= {"persistence", "suspicious_execution"} and plist and started \
            and plist.group(1) == started.group(3):
        return plist.group(1)
    return ""


def _contradicted(state, threat, model, found, scan, devops, priority):
    """Last: claims the alert's own data disproves. `location_disproven`: a sign-in or travel alert
    whose location rests on a private address placed abroad (a private address has no country).
    `volume_came_in`: an exfiltration alert whose byte counts say the volume came in, not out.
    `protection_switched_on`: a rule tagged for disabling a security tool whose command sets the
    -Disable* parameters to $false: it turned the protection on."""
    formula = _brew_service(model, found)
    if formula:
        state.move(lower(state.band, "LOW"), "brew_service", f"Homebrew's `brew services start {formula}` wrote and loaded "
                   "its own launch agent for that formula: a developer starting a local service",
                   [f"signal.{model['fields'].get('file', 'file')}", f"signal.{model['fields'].get('parent_command', 'parent_command')}"],
                   "cap", keep=True)
    if found and set(found) <= LOCATION_CLAIMS and any(f.get("kind") == "geo_mismatch" for f in scan.get("findings", [])):
        state.move(lower(state.band, "LOW"), "location_disproven", "the location the alert rests on is one a private "
                   "address cannot have", ["signal.observables.src_ip"], "cap", keep=True)
    sent, came = signal_model.measure(threat, "src_bytes"), signal_model.measure(threat, "dst_bytes")
    if set(found) == {"exfiltration"} and isinstance(sent, (int, float)) and isinstance(came, (int, float)) and \
            sent < content.EXFIL_BYTES and came >= INBOUND_RATIO * max(sent, 1):
        state.move(lower(state.band, "LOW"), "volume_came_in", f"{sent / 1e6:,.0f} MB went out and {came / 1e6:,.0f} MB "
                   "came in: the volume is a download", [f"signal.{signal_model.field_of(threat, 'measures.src_bytes')}",
                                                         f"signal.{signal_model.field_of(threat, 'measures.dst_bytes')}"], "cap", keep=True)
    _recovery_kept(state, threat, found, devops)
    _stale_indicator(state, threat, model, found)
    _few_engines(state, threat, model, found)
    sender = signal_model.ip(signal_model.text(threat, "src_ip"))
    if set(found) <= {"exploit_success", "web_attack"} and "exploit_success" in found and _attack_response(threat) \
            and sender is not None and not signal_model.is_internal(sender) and content.is_outbound(threat, model):
        state.move(lower(state.band, "LOW"), "output_from_outside", "the command output came from a server outside to "
                   "one of ours that asked for the page: it shows the output, nothing ran here",
                   ["signal.observables.src_ip", "signal.title"], "cap", keep=True)
    if set(found) <= {"exploit_success", "web_attack"} and "exploit_success" in found and _attack_response(threat) \
            and _page_quotes_output(threat, model):
        state.move(lower(state.band, "LOW"), "page_quotes_output", "the command output is inside a "
                   f"{signal_model.measure(threat, 'response_bytes') // 1024:,} KB HTML page answering a request that carried "
                   "no attack: a page that quotes it (documentation, an article), not a shell's answer",
                   [f"signal.{signal_model.field_of(threat, 'measures.response_bytes')}", "signal.content_type"], "cap", keep=True)
    if set(found) <= {"credential_dumping"} and model.get("lsass_reader") and \
            all(entry.get("tagged") for entry in found.values()):
        state.move(lower(state.band, "LOW"), "guard_reads_lsass", "the process reading LSASS is the antivirus, EDR or "
                   "operating system from its own folder, which reads it as its job",
                   [f"signal.{model['fields'].get('lsass_reader', 'lsass_reader')}"], "cap", keep=True)
    if set(found) == {"anomaly"} and str(found["anomaly"].get("detail", "")).startswith("rootcheck's generic"):
        state.move(lower(state.band, "LOW"), "generic_signature", "rootcheck's generic trojan signature matches strings "
                   "('bash', '/bin/sh') that ordinary binaries contain", ["signal.full_log"], "cap", keep=True)
    title = threat.title or ""
    if REVERSE_SHELL_RULE.search(title) and content.socket_without_shell(threat) and set(found) <= EXECUTION_ONLY:
        state.move(lower(state.band, "LOW"), "no_shell_on_the_socket", "the rule looks for a reverse shell, but no "
                   "command wires a shell's input and output to the socket: it only opens it (a port probe)",
                   ["signal.observables.command_line"], "cap", keep=True)
    if BASE64_RULE.search(title) and content.short_registry_data(threat) and set(found) <= EXECUTION_ONLY:
        state.move(lower(state.band, "LOW"), "not_base64", "the rule looks for a Base64-like value, but every value "
                   f"written is shorter than {content.MIN_ENCODED} characters", ["signal.observables.command_line"],
                   "cap", keep=True)
    tool = content.web_app_tool(threat, model) if all(e.get("tagged") for e in found.values()) and found else ""
    if tool:
        state.move(lower(state.band, "LOW"), "web_app_runs_its_own_tool", f"the rule looks for a web shell, but the "
                   f"web server's shell only started {tool.rsplit(chr(92), 1)[-1]} from the application's own "
                   "folder, nothing chained or redirected: the application running a program it ships",
                   ["signal.observables.command_line"], "cap", keep=True)
    carried = max(signal_model.measure(threat, "src_bytes") or 0, signal_model.measure(threat, "dst_bytes") or 0)
    if NOOP_RULE.search(title) and carried >= BULK_BYTES and set(found) <= {"exploit_attempt"}:
        state.move(lower(state.band, "LOW"), "nop_run_in_bulk_data", f"the rule looks for a run of NOP bytes, "
                   f"and the flow carried {carried / 1e6:.0f} MB of data: a large binary transfer holds such runs "
                   "by chance", ["signal.measures.src_bytes"], "cap", keep=True)
    # The rule names SQL injection, or is a coarse stock rule (Wazuh's match words such as 'select').
    sql_rule = SQL_RULE.search(threat.title or "") or model.get("trust") == "coarse"
    seen = {name for name, entry in found.items() if not entry.get("tagged")}
    if seen == {"web_attack"} and sql_rule and not model.get("url_payloads") and content.sql_words_only(threat):
        state.move(lower(state.band, "LOW"), "sql_words_not_syntax", "the rule looks for SQL injection, but the URL's "
                   "values hold SQL keywords only as words of text: no quote, comment or statement",
                   ["signal.observables.urls"], "cap", keep=True)
    if seen <= {"web_attack", "exploit_attempt"} and seen and COMMAND_RULE.search(title) \
            and not model.get("url_payloads") and content.command_words_only(threat):
        state.move(lower(state.band, "LOW"), "command_words_not_syntax", "the rule looks for a command in the URL, "
                   "but the URL holds it only as a word of a page name or search: no separator, substitution or "
                   "argument a shell needs", ["signal.observables.urls"], "cap", keep=True)
    kerberos = [h for h in threat.mitre_hints or [] if isinstance(h, str) and h.upper().startswith("T1558")]
    # Only a single ticket: the same account's ticket alerts within the hour are a harvest, not a server.
    if kerberos and content.machine_account_ticket(model) and set(found) <= {"login_success"} \
            and not priority.get("recent_tickets"):
        state.move(lower(state.band, "LOW"), "machine_account_ticket", f"the rule looks for {kerberos[0]}, but one "
                   "ticket asked for by a computer account is a server authenticating to the service it uses",
                   [f"signal.{model['fields'].get('account.actor', 'account.actor')}"], "cap", keep=True)
    tagged = [h for h in threat.mitre_hints or [] if isinstance(h, str)
              and behaviour_of_technique(h) == "security_tool_disabled"]
    if tagged and set(found) <= {"suspicious_execution"} and content.switches_protection_on(threat):
        state.move(lower(state.band, "LOW"), "protection_switched_on", f"the rule looks for {tagged[0]} but the command "
                   "sets the -Disable* parameters to $false: it turned the protection on",
                   ["signal.observables.command_line"], "cap", keep=True)


def _declared_crawler(state, threat, found, config):
    """Automated traffic that declares a search-engine crawler, within the customer's limit and doing
    nothing else, is indexing noise (a forged crawler abusing the site shows more: rate, attacks)."""
    ratio = config.get("rate_ratio")
    if set(found) == {"automation"} and content.CRAWLERS.search(signal_model.text(threat, "user_agent")) and \
            (ratio is None or ratio <= 1):
        state.move(lower(state.band, "LOW"), "declared_crawler", "a declared search-engine crawler within the "
                   "customer's rate limit", ["signal.observables.user_agent"], "cap")


def _distributed_step(state, threat, found):
    """Hundreds of rotating source addresses: an organised campaign built to evade per-source limits."""
    addresses = signal_model.measure(threat, "distinct_ips")
    if addresses and addresses >= DISTRIBUTED_ADDRESSES and {"automation", "rate_abuse", "credential_stuffing",
                                                             "anonymising_proxy", "brute_force"} & set(found):
        _step(state, "distributed_campaign", f"{addresses:.0f} rotating source addresses",
              [f"signal.{signal_model.field_of(threat, 'measures.distinct_ips') or 'measures.distinct_ips'}"])


def _step(state, rule, reason, evidence):
    """One band up, never past HIGH: context raises priority, only evidence of impact makes CRITICAL."""
    if RANK[state.band] < RANK[STEP_LIMIT]:
        state.move(BANDS[RANK[state.band] + 1], rule, reason, evidence, "step")


def _advisory_step(state, context):
    """A matching advisory about an active campaign: this alert is likely part of it, one band up."""
    advisories = context.get("advisories") or []
    if advisories:
        _step(state, "active_campaign", "a current advisory about an active campaign matches this alert",
              [f"context_item:{pk}" for pk in advisories])


def _failed(model):
    status = model["measures"].get("http_status")
    return model.get("outcome") == "failure" or model.get("prevented") is True or signal_model.rejected(status)


def _failure_refs(model, failed):
    if not failed:
        return []
    names = [n for n in ("outcome", "prevented", "measures.http_status") if n in model["fields"]]
    return [f"signal.{model['fields'][n]}" for n in names]


def _ref(entry):
    return f"signal.{entry['field']}" if entry and entry.get("field") else "signal.behaviours"


def _attempt_only(evidence):
    """Attack evidence ("web attack", "suspicious execution") naming an attempt, or what administration
    looks like, rather than a foothold, credential theft or impact."""
    name = str(evidence).replace(" ", "_")
    policy = POLICIES.get(name)
    return policy is not None and (policy.stage < FOOTHOLD or name in ADMINISTRATION)


def risk_score(band, adjustments):
    """0-100 inside the band: its middle, moved by the agents' smaller signed contributions."""
    total = sum(item["points"] for item in adjustments)
    return BAND_FLOOR[band] + max(0, min(BAND_WIDTH, BAND_WIDTH // 2 + total))


# --- Human review (docs/verdicts.md "Human review: explicit rules") ------------------------------


def review_reasons(threat, band, fp, scan, runs, attack_evidence, techniques, history, moves=()):
    """The review rules that fire, each as "rule: why"."""
    model, reasons = signal_model.model(threat), []
    prior = (model.get("severity") or {}).get("level")
    dismissed = fp["recommendation"] in EXPLAINED

    def fire(rule, why):
        reasons.append(f"{rule}: {why}")

    if band == "CRITICAL":
        fire("critical_severity", "compromise or impact in progress")
    elif band == "HIGH" and not dismissed:
        fire("containment_decision", "likely malicious with impact potential: someone must decide on containment")
    manipulation = [f for f in scan["findings"] if f["severity"] == "high"]
    if manipulation:
        kinds = sorted({f["kind"].replace("_", " ") for f in manipulation})
        fire("manipulation_attempt", ", ".join(kinds))
    # Settled at LOW on an explanation against attempts only (a scan's payloads, a tool an administrator
    # also runs), the disagreement stays on the threat; against a foothold or worse a human confirms.
    settled = band == "LOW" and dismissed and all(_attempt_only(e) for e in attack_evidence)
    for contradiction in [] if settled else scan["contradictions"]:
        fire("conflicting_evidence", f"{' vs '.join(contradiction['agents'])}: {contradiction['description']}")
    burst = (history or {}).get("closure_burst")
    if burst:
        reasons.append(historical.review_reason(burst))
    orders = (history or {}).get("standing_orders")
    if orders:
        fire("standing_order_closure", f"{len(orders)} closure(s) of similar threats give standing orders instead of "
                                       "judging that alert; not learned from")
    # `explained_on_record`: lowered because an approval or analysts' closures of this very activity
    # explain it, the disagreement with the source is answered on the threat; on our reading of the
    # content alone (a cap, a disproof), a human confirms once.
    on_record = dismissed and band == "LOW" and any(move.get("rule") == "explained" for move in moves)
    if dismissed and prior in ("HIGH", "CRITICAL") and not on_record:
        fire("dismissing_source_severity", f"called {fp['recommendation'].replace('_', ' ')} but the source rated "
                                           f"it {prior}")
    # `failed_on_record`: held at LOW because the alert itself shows the attempt failed (a 4xx answer, an
    # IPS drop): the source rated the attempt, the alert shows its outcome; nothing is left to confirm.
    failed_here = band == "LOW" and not dismissed and _failed(model) and any(
        move.get("rule") == "behaviour_cap" and move.get("to") == "LOW" for move in moves)
    if prior in RANK and abs(RANK[prior] - RANK[band]) >= 2 and not on_record and not failed_here:
        fire("severity_disagreement", f"the source rated it {prior}, the policy {band}")
    # Left at LOW, explained or as the source itself rated it: nothing was overruled, normal triage will do.
    kept_low = band == "LOW" and (dismissed or prior == "LOW")
    if not model["behaviours"] and not techniques and not kept_low:
        fire("unclassified", f"no behaviour and no ATT&CK technique recognised in {threat.threat_type[:60]!r}")
    if RANK[band] >= RANK["MEDIUM"] and UNCERTAIN[0] <= fp["score"] < UNCERTAIN[1]:
        fire("uncertain_false_positive", f"false-positive likelihood {fp['score']:.0%}")
    failed = [kind for kind, run in runs.items() if run["status"] == "failed"]
    if failed:
        fire("agent_failed", ", ".join(failed))
    return reasons
