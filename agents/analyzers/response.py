"""Response plan: ordered actions by severity, with urgency, SLA and escalation chain."""

SLA_MINUTES = {"CRITICAL": 15, "HIGH": 30, "MEDIUM": 60, "LOW": 240}
URGENCY = {"CRITICAL": "immediate", "HIGH": "urgent", "MEDIUM": "normal", "LOW": "low"}
ESCALATION = {
    "CRITICAL": ["Tier 1 analyst", "Tier 2 analyst", "SOC manager", "CISO"],
    "HIGH": ["Tier 1 analyst", "Tier 2 analyst", "SOC manager"],
    "MEDIUM": ["Tier 1 analyst", "Tier 2 analyst"],
    "LOW": ["Tier 1 analyst"],
}
TRAFFIC_TYPES = {"bot_traffic", "proxy_network", "rate_limit_breach"}


def plan(threat, severity, fp_score):
    customer = threat.customer
    target = threat.observables.get("src_ip") or threat.observables.get("host") or threat.observables.get("user")
    actions = _actions(threat.threat_type, severity, target, fp_score)
    for action in actions:
        blocking = action["action"] in ("block_ip", "isolate_host")
        action["auto_executable"] = blocking and customer.auto_block and fp_score < 0.4
        action["requires_approval"] = blocking and not action["auto_executable"]
    return {
        "actions": actions,
        "urgency": URGENCY[severity],
        "sla_minutes": SLA_MINUTES[severity],
        "escalation": ESCALATION[severity] + list(customer.escalation_contacts if severity == "CRITICAL" else []),
    }


def _actions(threat_type, severity, target, fp_score):
    if fp_score >= 0.7:
        return [_action("monitor", target, "likely false positive: watch for recurrence")]
    if threat_type == "device_compromise":
        steps = [_action("isolate_host", target, "contain the device"), _action("collect_forensics", target,
                 "preserve evidence before remediation")]
    elif threat_type in TRAFFIC_TYPES:
        steps = [_action("rate_limit", target, "slow the source down"), _action("challenge", target,
                 "CAPTCHA for suspicious clients")]
        if severity in ("HIGH", "CRITICAL"):
            steps.insert(0, _action("block_ip", target, "stop the traffic at the edge"))
    else:
        steps = [_action("verify_user", target, "confirm the activity with the account owner"),
                 _action("force_reauthentication", target, "revoke sessions of the account")]
    if severity in ("HIGH", "CRITICAL"):
        steps.append(_action("escalate", target, f"{severity.lower()} severity"))
    return steps


def _action(name, target, reason):
    return {"action": name, "target": target, "reason": reason}
