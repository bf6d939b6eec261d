"""False-positive analyzer: was the detection wrong (false positive), right about something expected
(benign true positive), or right about an attack?

Two separate likelihoods, each moved by weighted, cited indicators from a per-family prior:
- `score`: false positive — the thing did not happen or is not what the rule meant (analysts called
  similar threats false positives; a rate-limit alert below the customer's own limit; an impossible
  travel explained by a known VPN egress, because then the travel never happened).
- `benign_score`: benign true positive — it happened, for an approved reason (a deployment or a
  business event explains it, an allow-listed source did it, analysts closed similar ones as
  benign). Benign true positives are never counted as false positives, or per-type FP rates lie.
Attack evidence and a manipulation attempt lower both; with a manipulation attempt neither
recommendation may close the threat. History is weighed last and, against attack evidence, never
raises either likelihood to a closing call: strong evidence is not outvoted by past closures (the
disagreement goes to a human, agents/analyzers/adversarial.py). Other customers' confirmations of
an indicator (opt-in shared reputation) only ever lower both.
"""

from .. import signal_model
from .evidence import attack_evidence, authorised, host_actions, hostile_attempts

# Base rates, all below POSSIBLE: a prior alone never sends a threat to review, evidence must.
PRIOR = {
    "bot_traffic": 0.25, "proxy_network": 0.25, "device_compromise": 0.10, "anomaly_detection": 0.35,
    "rate_limit_breach": 0.30, "geo_anomaly": 0.35, "authentication": 0.30, "web_attack": 0.25,
    "reconnaissance": 0.25, "policy": 0.30, "malware": 0.15, "command_and_control": 0.10, "exfiltration": 0.10,
    "denial_of_service": 0.25, "defense_evasion": 0.15, "other": 0.30, "credential_access": 0.10,
    "account_manipulation": 0.30, "privilege_escalation": 0.20, "persistence": 0.20, "lateral_movement": 0.15,
    "impact": 0.05, "threat_intel": 0.30, "phishing": 0.25, "exploit": 0.25, "execution": 0.20,
}
BENIGN_PRIOR = 0.10
LIKELY, POSSIBLE = 0.6, 0.4
# Weighted closures (historical agent: match x recency, each analyst capped at 1) for history to
# count fully: two analysts' worth. One analyst's closures alone move a likelihood half-way.
FULL_WEIGHT_AT = 2.0
DECIDED = ("true_positive", "benign_true_positive", "false_positive")
REPUTATION_WEIGHT = 0.15
# Where an explanation means the detection itself was wrong (the travel did not happen).
LOCATION_FAMILIES = {"geo_anomaly"}


def assess(threat, results, adversarial):
    family = signal_model.family(threat)
    state = {"score": PRIOR.get(family, PRIOR["other"]), "benign_score": BENIGN_PRIOR, "indicators": []}

    def weigh(kind, weight, text, source, evidence=()):
        state[kind] = state[kind] + weight
        state["indicators"].append({"kind": "false_positive" if kind == "score" else "benign_true_positive",
                                    "weight": round(weight, 3), "indicator": text, "source": source,
                                    "evidence": list(evidence)})

    def data(kind):
        return results[kind].data if kind in results else {}

    history_moves = _history(data("historical"), state["score"])
    explanation = "score" if family in LOCATION_FAMILIES else "benign_score"
    if data("config").get("allow_listed") and not hostile_attempts(results) and not host_actions(results):
        # A trusted source explains a scan or traffic, never an attack it attempts or what it does on a host.
        weigh(explanation, 0.5, "source is on the customer's allow-list", "config", _refs(results, "config", -1))
    ratio = data("config").get("rate_ratio")
    if threat.threat_type == "rate_limit_breach" and ratio is not None and ratio <= 1:
        weigh("score", 0.3, f"observed rate is {ratio:.0%} of the customer's limit", "config",
              _refs(results, "config", -1))
    if ratio is not None and ratio >= 2:
        weigh("score", -0.1, f"the customer's rate limit is exceeded {ratio:.1f}x", "config",
              _refs(results, "config", 1))
    if data("devops").get("explaining"):
        events, same_service = data("devops")["explaining"], data("devops").get("same_service", [])
        weigh(explanation, min(0.5, 0.35 * len(events)), f"{len(events)} infrastructure change(s) explain the signal",
              "devops", [f"infra_event:{pk}" for pk in events])
        if same_service:  # a change of the very service or host the alert is about explains it outright
            weigh(explanation, 0.25, "the changed service is the one the signal is about", "devops",
                  [f"infra_event:{pk}" for pk in same_service])
    # A note about the target ("the login nodes accept SSH from the internet") does not make an attack on it
    # benign; one naming who acts (the pentest's address, the scanner's account) may (`attack_needs_its_actor`).
    # An attack attempted (even one that failed: it is still a true positive, only a harmless one), or the
    # login that ends a run of guessing.
    attempted = hostile_attempts(results) or data("priority").get("recent_failures") or any(
        isinstance(b, dict) and b.get("name") in ATTACKS for b in data("priority").get("behaviours", []))
    about_target_only = attempted and not data("context").get("explaining_actor")
    if data("context").get("explaining") and not about_target_only:
        items, named = data("context")["explaining"], data("context").get("explaining_by_entity", [])
        # An item that names this very source, user or host (an approved pentest from 192.0.2.10) explains
        # more than one that applies to the whole threat type.
        weigh(explanation, 0.5 if named else 0.35, f"{len(items)} business context item(s) explain the signal"
              + (" and name its entities" if named else ""), "context", [f"context_item:{pk}" for pk in items])
    attack = attack_evidence(results)
    if attack:
        weight = -min(0.45, 0.15 * len(attack))
        weigh("score", weight, f"attack evidence: {', '.join(attack[:3])}", "priority")
        if not authorised(results):  # an approved reason naming this very alert still explains it
            weigh("benign_score", weight, f"attack evidence: {', '.join(attack[:3])}", "priority")
    if adversarial["detected"]:
        weigh("score", -0.3, "the alert's text tries to steer the analysis", "adversarial")
        weigh("benign_score", -0.3, "the alert's text tries to steer the analysis", "adversarial")
    # `denied_on_record`: the customer's own note on this host, account or address says the activity is
    # not approved there; closures of similar threats cannot turn that into a closing call.
    _apply_history(weigh, state, history_moves, attack or _elsewhere(results, data("historical"))
                   or bool(data("context").get("denying_by_entity")))
    _reputation(weigh, data("historical"))
    score, benign = (min(max(state[k], 0.0), 1.0) for k in ("score", "benign_score"))
    history = data("historical")
    labelled = history.get("labelled", 0)
    return {
        "score": round(score, 3),
        "benign_score": round(benign, 3),
        "prior": PRIOR.get(family, PRIOR["other"]),
        "confidence": round(min(0.9, 0.4 + 0.08 * labelled + (0.1 if len(state["indicators"]) >= 2 else 0)), 3),
        "recommendation": _recommendation(score, benign, adversarial["detected"]),
        "indicators": state["indicators"],
        "historical": {"labelled": labelled, "dispositions": history.get("dispositions", {}),
                       "evidence_weight": history.get("evidence_weight", 0), "analysts": history.get("analysts", 0),
                       "fp_share": history.get("fp_share"), "benign_share": history.get("benign_share"),
                       "closure_burst": bool(history.get("closure_burst"))},
        "explanation": _explain(score, benign, family, state["indicators"], adversarial["detected"]),
    }


# Policy caps whose reason is that the alert's own data disproves its claim (agents/verdict.py
# `_contradicted`): the detection was wrong. `recovery_kept` in a planned change: right, and approved.
ATTACKS = {"web_attack", "exploit_attempt", "exploit_success", "brute_force", "password_spraying", "credential_stuffing"}
DISPROVING = {"location_disproven", "volume_came_in", "protection_switched_on", "machine_account_ticket",
              "stale_indicator", "sql_words_not_syntax", "command_words_not_syntax", "nop_run_in_bulk_data", "web_app_runs_its_own_tool", "few_engines", "no_shell_on_the_socket", "not_base64",
              "generic_signature", "output_from_outside", "page_quotes_output", "guard_reads_lsass"}


# Policy caps whose reason shows the activity is a known tool doing its own job (agents/verdict.py).
BENIGN_ON_ITS_FACE = {"brew_service"}


# Behaviours that only describe software doing its job (a policy or inventory rule, an informational
# event): at LOW, with nothing else shown, the activity happened and is expected.
ROUTINE = {"policy_violation", "informational", "vulnerability"}


def routine(fp, threat, band, attack, manipulated, denied=False):
    """`fp` after the policy: a LOW alert that shows only ROUTINE behaviours and no attack evidence,
    with no call yet, is a benign true positive (`routine_activity`) — unless the customer's note on
    this entity says it is not allowed there (`denied`): then it is the violation the note forbids."""
    found = set(signal_model.behaviours(threat))
    if band != "LOW" or attack or manipulated or denied or not found or not found <= ROUTINE \
            or fp["recommendation"] != "likely_real_threat":
        return fp
    raised = max(fp["benign_score"], LIKELY)
    fp["indicators"].append({"kind": "benign_true_positive", "weight": round(raised - fp["benign_score"], 3),
                             "indicator": "routine activity: only " + ", ".join(sorted(found)).replace("_", " ")
                             + " at LOW, nothing that shows an attack", "source": "policy",
                             "evidence": [f"signal.{signal_model.behaviours(threat)[name]['field']}" for name in sorted(found)]})
    fp["benign_score"] = round(raised, 3)
    fp["recommendation"] = _recommendation(fp["score"], fp["benign_score"], manipulated)
    return fp


def disproven(fp, moves, manipulated):
    """`fp` after the policy: a claim its own data disproves is likely a false positive; an inhibited
    recovery that kept the copies, in a planned change naming the host, a benign true positive."""
    for move in moves:
        approved = move["rule"] == "recovery_kept" and any(e.startswith("infra_event:") for e in move["evidence"]) \
            or move["rule"] in BENIGN_ON_ITS_FACE
        if move["rule"] not in DISPROVING and not approved:
            continue
        kind = "benign_score" if approved else "score"
        raised = max(fp[kind], LIKELY)
        fp["indicators"].append({"kind": "benign_true_positive" if approved else "false_positive",
                                 "weight": round(raised - fp[kind], 3), "indicator": move["reason"],
                                 "source": "policy", "evidence": list(move["evidence"])})
        fp[kind] = round(raised, 3)
        fp["recommendation"] = _recommendation(fp["score"], fp["benign_score"], manipulated)
    return fp


def _history(history, prior):
    """(likelihood, weight, text): what the customer's weighted closures of similar threats say,
    measured from the prior; `assess` applies them after the other indicators."""
    weighted = history.get("weighted") or {}
    evidence = sum(weighted.get(k, 0) for k in DECIDED)
    if not evidence:
        return []
    trust = min(1.0, evidence / FULL_WEIGHT_AT)
    fp_share = weighted.get("false_positive", 0) / evidence
    benign_share = weighted.get("benign_true_positive", 0) / evidence
    source = f"weight {evidence:.2f} from {history.get('analysts', 0)} analyst(s)"
    moves = [("score", (fp_share - prior) * trust,
              f"{fp_share:.0%} of the similar threats analysts closed were false positives ({source})")]
    if benign_share:
        moves.append(("benign_score", benign_share * trust * 0.8,
                      f"{benign_share:.0%} of the similar threats analysts closed were benign true positives ({source})"))
    return moves


def _elsewhere(results, history):
    """An attack attempted here, that history knows mostly from other entities: "this rule is noisy"
    elsewhere is no reason to dismiss an attack on this host or from this address."""
    evidence = history.get("evidence_weight") or 0
    return bool(hostile_attempts(results)) and evidence > 0 and (history.get("entity_weight") or 0) < evidence / 2


def _apply_history(weigh, state, moves, attack):
    """History goes last: against attack evidence a move may not lift a likelihood to LIKELY."""
    for kind, weight, text in moves:
        allowed = _bounded(weight, state[kind]) if attack else weight
        if allowed < weight:
            text += f" (bounded from {weight:+.2f}: attack evidence is not outvoted by history)"
        weigh(kind, allowed, text, "historical")


def _bounded(weight, current):
    """A history move against attack evidence: it may not lift the likelihood to LIKELY."""
    return weight if weight <= 0 else max(0.0, min(weight, LIKELY - 0.01 - current))


def _reputation(weigh, history):
    """Other customers' confirmations (opt-in): lower both likelihoods, never raise them."""
    customers = (history.get("reputation") or {}).get("customers", 0)
    if customers:
        text = f"{customers} other customers confirmed this indicator as malicious"
        weigh("score", -REPUTATION_WEIGHT, text, "historical")
        weigh("benign_score", -REPUTATION_WEIGHT, text, "historical")


def _refs(results, kind, sign):
    """Evidence of an agent's contributions with the given sign (its exculpatory ones for -1)."""
    return list(dict.fromkeys(ref for item in results[kind].risk if item["points"] * sign > 0
                              for ref in item["evidence"])) if kind in results else []


def _recommendation(score, benign, manipulated):
    if manipulated:
        return "needs_review" if max(score, benign) >= POSSIBLE else "likely_real_threat"
    if score >= LIKELY and score >= benign:
        return "likely_false_positive"
    if benign >= LIKELY:
        return "likely_benign_true_positive"
    if max(score, benign) >= POSSIBLE:
        return "needs_review"
    return "likely_real_threat"


def _explain(score, benign, family, indicators, manipulated):
    top = sorted(indicators, key=lambda i: -abs(i["weight"]))[:3]
    because = "; ".join(f"{i['indicator']} ({i['weight']:+.2f})" for i in top) or "no indicator beyond the prior"
    text = (f"False-positive likelihood {score:.0%}, benign-true-positive likelihood {benign:.0%} "
            f"(prior for {family.replace('_', ' ')} {PRIOR.get(family, PRIOR['other']):.0%}): {because}.")
    if manipulated:
        text += " The alert tries to steer the analysis, so it must not be closed automatically."
    return text
