"""Response plan: ordered actions by family x severity, with urgency, SLA and escalation chain,
adjusted by the false-positive assessment, the adversarial scan and the customer's configuration.

Recommendations only: nothing here executes. `auto_executable` is true only for a blocking action
of a customer with `auto_block`, a low false-positive likelihood, no manipulation attempt in the
alert and an external target (an attacker who can forge an alert must not get a victim blocked).
"""

from threats.choices import SLA_MINUTES

from .. import signal_model

URGENCY = {"CRITICAL": "immediate", "HIGH": "urgent", "MEDIUM": "normal", "LOW": "low"}
ESCALATION = {
    "CRITICAL": ["Tier 1 analyst", "Tier 2 analyst", "SOC manager", "CISO"],
    "HIGH": ["Tier 1 analyst", "Tier 2 analyst", "SOC manager"],
    "MEDIUM": ["Tier 1 analyst", "Tier 2 analyst"],
    "LOW": ["Tier 1 analyst"],
}
# Families (agents/priority/behaviours.py) by what a responder contains: a host, traffic, or an identity.
HOST = {"device_compromise", "malware", "command_and_control", "exfiltration", "credential_access", "persistence",
        "defense_evasion", "lateral_movement", "impact", "execution", "privilege_escalation"}
TRAFFIC = {"bot_traffic", "proxy_network", "rate_limit_breach", "denial_of_service", "reconnaissance", "web_attack",
           "exploit", "threat_intel"}
IDENTITY = {"geo_anomaly", "anomaly_detection", "authentication", "account_manipulation", "phishing"}
BLOCKING = {"block_ip", "isolate_host", "block_indicator", "disable_account"}
SEVERE = ("HIGH", "CRITICAL")
AUTO_BLOCK_MAX_FP = 0.4


def plan(threat, severity, fp, adversarial):
    customer, family = threat.customer, signal_model.family(threat)
    notes = []
    if fp["recommendation"] == "likely_false_positive":
        actions = [_action("monitor", _target(threat), f"likely false positive ({fp['score']:.0%}): watch for "
                                                       "recurrence, then close as false positive")]
    elif fp["recommendation"] == "likely_benign_true_positive":
        actions = [_action("confirm_with_owner", _target(threat), f"likely benign true positive "
                                                                  f"({fp['benign_score']:.0%}): confirm the approved "
                                                                  "change or activity"),
                   _action("monitor", _target(threat), "close as benign true positive once confirmed")]
    else:
        actions = _actions(threat, family, severity)
    if adversarial["detected"]:
        actions.insert(0, _action("preserve_evidence", "signal.raw", "the alert's text tries to steer the "
                                                                      "analysis: keep it for investigation"))
        notes.append("Manipulation attempt: no action may run automatically and the threat may not be auto-closed.")
    urgency = URGENCY[severity]
    if fp["recommendation"] == "needs_review" and severity not in SEVERE:
        notes.append(f"False-positive likelihood {fp['score']:.0%}: verify before acting.")
    for action in actions:
        action["urgency"] = urgency
        _automation(action, customer, fp, adversarial, notes)
    escalation = list(ESCALATION[severity])
    if severity == "CRITICAL" or (severity == "HIGH" and customer.tier == "enterprise"):
        escalation += [f"customer contact {c}" for c in customer.escalation_contacts]
    return {
        "actions": actions,
        "urgency": urgency,
        "sla_minutes": SLA_MINUTES[severity],
        "escalate_after_minutes": SLA_MINUTES[severity] // 2,
        "escalation": escalation,
        "notes": list(dict.fromkeys(notes)),
        "evidence": [f"customer:{customer.slug}.auto_block", f"customer:{customer.slug}.escalation_contacts"],
    }


def _actions(threat, family, severity):
    severe = severity in SEVERE
    target, user, host = _target(threat), signal_model.text(threat, "user"), signal_model.text(threat, "host")
    if family in HOST:
        steps = [_action("isolate_host", host or target, "contain the device")] if severe else []
        steps.append(_action("collect_forensics", host or target, "preserve memory, disk and process evidence"))
        indicators = signal_model.values(threat, "domains") + signal_model.values(threat, "dst_ip")
        if indicators:
            steps.append(_action("block_indicator", ", ".join(indicators[:3]), "cut the command-and-control or "
                                                                               "exfiltration channel"))
        if user:
            steps.append(_action("reset_credentials", user, "the account was used on a compromised device"))
    elif family in TRAFFIC:
        steps = [_action("rate_limit", target, "slow the source down"),
                 _action("challenge", target, "CAPTCHA or proof-of-work for the source")]
        if severe:
            steps.insert(0, _action("block_ip", target, "stop the traffic at the edge"))
    elif family in IDENTITY:
        steps = [_action("verify_user", user or target, "confirm the activity with the account owner")]
        if severity != "LOW":
            steps.append(_action("force_reauthentication", user or target, "revoke the account's sessions"))
        if severity == "CRITICAL":
            steps.append(_action("disable_account", user or target, "stop the account until verified"))
    else:
        steps = [_action("investigate", target, "review the raw alert and the affected asset"),
                 _action("monitor", target, "watch for related alerts")]
    if severe:
        steps.append(_action("escalate", target, f"{severity.lower()} severity"))
    return steps


def _automation(action, customer, fp, adversarial, notes):
    blocking = action["action"] in BLOCKING
    action["auto_executable"] = False
    action["requires_approval"] = blocking
    if not blocking:
        return
    internal = signal_model.is_internal(signal_model.ip(action["target"])) if action["action"] == "block_ip" else False
    if not customer.auto_block:
        notes.append(f"Automatic blocking is not allowed by the customer (customer:{customer.slug}.auto_block).")
    elif adversarial["detected"]:
        pass  # noted above
    elif fp["score"] >= AUTO_BLOCK_MAX_FP:
        notes.append(f"False-positive likelihood {fp['score']:.0%} is too high for automatic blocking.")
    elif internal:
        notes.append("An internal address is contained on the host, not blocked at the edge.")
    else:
        action["auto_executable"], action["requires_approval"] = True, False


def _target(threat):
    for name in ("src_ip", "host", "user", "dst_ip"):
        if signal_model.text(threat, name):
            return signal_model.text(threat, name)
    return None


def _action(name, target, reason):
    return {"action": name, "target": target, "reason": reason}
