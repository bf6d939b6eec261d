"""Adversarial-input detector: does the signal try to steer the analysis, or contradict itself?

Every string the alert's source controls (title, observables, the whole raw alert, bounded) is
scanned for instruction-like text aimed at an AI or an analyst, chat-template markers and hidden
control characters. A private source address with a public geolocation is forged or mis-enriched
metadata. Contradictions between agents (history says "false positive" while the signal carries
attack evidence; an allow-list or a deployment explains away a signal with attack evidence) do not
add risk but force a human review. A manipulation attempt adds risk: an alert that tries to talk
to the AI is itself a strong malicious signal, and it may never be closed automatically.
"""

import re
import urllib.parse

from threats import hidden_text

from .. import signal_model
from ..content import EXPLOIT_TOOLS, SCANNER_TOOLS
from ..priority.behaviours import ADMINISTRATION
from .evidence import attack_evidence, authorised, hostile_attempts

EXCERPT = 60
SEPARATORS = re.compile(r"[_+]|%20|%2[bB]")
ATTEMPT_POINTS = 20  # once per threat, whatever the number of hits
GEO_MISMATCH_POINTS = 10
HIDDEN_POINTS = 5
# History that dismissed similar threats (false positive or benign, by weight) against attack
# evidence: a contradiction once it carries weight (a quarter of what counts fully, in
# agents/analyzers/false_positive.py) — whatever the likelihoods, a human decides.
DISMISSED_HISTORY_SHARE, DISMISSED_HISTORY_WEIGHT = 0.6, 0.5

PATTERNS = [  # (kind, severity, pattern) — all written for this project
    ("instruction_override", "high",
     r"\b(ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}?\b(previous|prior|above|earlier|all|any|your|the|these)\b"
     r"[^.\n]{0,30}?\b(instructions?|prompts?|rules|guidelines|directives|context)\b"),
    ("role_override", "high",
     r"\byou are now\b|\bfrom now on,? you\b|\bpretend (to be|you are)\b|\bact as (an?|the) (ai|assistant|analyst|model|system)"
     r"|\b(developer|god|jailbreak|dan) mode\b"),
    ("chat_template", "high", r"<\|(im_start|im_end|system|user|assistant|endoftext)\|>|\[/?INST\]|<</?SYS>>"
     r"|###\s*(system|instruction)s?\b|</?(system|instructions?)>"),
    ("verdict_manipulation", "high",
     r"\b(mark|classify|label|report|treat|flag|close|resolve|set|rate)\b[^.\n]{0,30}?\b(as|to)\b[^.\n]{0,15}?"
     r"\b(benign|false[ -]?positives?|safe|harmless|legitimate|informational|resolved|closed|low severity)\b"
     r"|\b(this|the) (alert|event|request|traffic|activity|signal) (is|was) (an? )?(benign|false[ -]?positive|safe|"
     r"harmless|authori[sz]ed|legitimate|expected)\b"
     r"|\bdo not (escalate|alert|flag|report|block|investigate)\b|\bno (action|escalation|investigation) (is )?(needed|required)\b"
     r"|\bsafe to ignore\b|\b\d{2,3}\s?% of (similar )?(alerts|incidents|events) (are|were) false positives?\b"),
    ("prompt_extraction", "high",
     r"\b(reveal|print|show|repeat|output|leak)\b[^.\n]{0,20}?\b(system prompt|your (instructions|prompt)|hidden prompt|api key)\b"),
    ("addressed_to_ai", "medium",
     r"\b(dear|attention|note to|hey|hello)\b[^.\n]{0,12}?\b(ai|llm|gpt|assistant|model|agent|soc bot)\b"
     r"|\b(ai|llm)[ -](agent|assistant|analyst|model|triage)s?\b"),
]
COMPILED = [(kind, severity, re.compile(pattern, re.I)) for kind, severity, pattern in PATTERNS]


def scan(threat, results):
    findings = _text_findings(threat) + _tool_findings(threat) + _geo_findings(threat) + _forwarding_findings(threat)
    contradictions = _contradictions(results, findings)
    attempts = [f for f in findings if f["severity"] == "high" and f["kind"] not in ("geo_mismatch", "hidden_characters")]
    factors = []
    if attempts:
        fields = ", ".join(sorted({f["field"] for f in attempts})[:4])
        factors.append({"points": ATTEMPT_POINTS, "reason": f"manipulation attempt in alert text ({fields})",
                        "evidence": sorted({f["field"] for f in attempts})})
    if any(f["kind"] == "geo_mismatch" for f in findings):
        factors.append({"points": GEO_MISMATCH_POINTS, "reason": "private source address with a public geolocation",
                        "evidence": [f["field"] for f in findings if f["kind"] == "geo_mismatch"][:1] +
                        ["signal.observables.src_ip"]})
    if any(f["kind"] == "hidden_characters" for f in findings):
        factors.append({"points": HIDDEN_POINTS, "reason": "hidden control characters in alert text",
                        "evidence": [f["field"] for f in findings if f["kind"] == "hidden_characters"][:4]})
    detected = any(f["severity"] == "high" for f in findings)
    return {
        "detected": detected,
        "risk_points": sum(f["points"] for f in factors),
        "factors": factors,
        "findings": findings,
        "contradictions": contradictions,
        "summary": _summary(detected, findings, contradictions),
    }


def _text_findings(threat):
    findings = []
    for path, value in signal_model.untrusted_texts(threat):
        for kind, severity, pattern in COMPILED:
            for text in dict.fromkeys((value, _readable(value))):  # as written, and as a reader takes it
                match = pattern.search(text)
                if match:
                    findings.append(_finding(kind, severity, path, text, match.start(), match.end(),
                                             f"{kind.replace('_', ' ')} text"))
                    break
        # Characters that hide or reorder what an analyst reads ("exe.pdf"): the same class every view
        # shows escaped (threats/hidden_text.py), so they count as an attempt.
        hidden = next(hidden_text.runs(value), None)
        if hidden:
            findings.append(_finding("hidden_characters", "high", path, value, hidden[0], hidden[1],
                                     f"invisible character U+{ord(value[hidden[0]]):04X}"))
    return findings


def _readable(value):
    """The text as a reader would take it: percent-encoding decoded, and the separators that stand for
    spaces where spaces cannot go (a user name, a URL) read as spaces: "mark_this_as_benign"."""
    if not SEPARATORS.search(value):
        return value
    decoded = urllib.parse.unquote_plus(value) if "%" in value or "+" in value else value
    return SEPARATORS.sub(" ", decoded)


def _tool_findings(threat):
    """Attack-tool user agents: shown here, scored by the priority agent (not twice)."""
    agent = signal_model.text(threat, "user_agent")
    match = EXPLOIT_TOOLS.search(agent) or SCANNER_TOOLS.search(agent)
    if not match:
        return []
    return [_finding("attack_tool_user_agent", "medium", "signal.observables.user_agent", agent, match.start(),
                     match.end(), f"user agent of the attack tool {match.group(0)!r} (scored by the priority agent)")]


def _geo_findings(threat):
    """A private address that an enrichment places in a country: the enrichment, or the alert, lies."""
    address = signal_model.ip(signal_model.text(threat, "src_ip"))
    country, field = signal_model.text(threat, "country"), "signal.observables.country"
    if signal_model.model(threat).get("geo"):  # the enrichment's own words, cited by its own field
        country, field = str(signal_model.model(threat)["geo"]), f"signal.{signal_model.field_of(threat, 'geo') or 'geo'}"
    if not signal_model.is_internal(address) or not country:
        return []
    return [{"kind": "geo_mismatch", "severity": "high", "field": field,
             "excerpt": f"{address} -> {country[:EXCERPT]}",
             "reason": f"{address} is a private/internal address, yet the alert places it in {country[:8]!r}"}]


def _forwarding_findings(threat):
    """A forwarding header (X-Forwarded-For) that claims an internal or allow-listed client while the
    connection came from outside: the client wrote it to borrow trust (docs/security.md)."""
    peer = signal_model.ip(signal_model.text(threat, "src_ip"))
    if peer is None or signal_model.is_internal(peer):
        return []
    trusted = [signal_model.network(entry) for entry in threat.customer.allow_listed_ips or []]
    claimed = [signal_model.ip(value) for value in signal_model.model(threat)["forwarded_for"]]
    spoofed = [a for a in claimed if a is not None and (signal_model.is_internal(a) or any(
        n is not None and a.version == n.version and a in n for n in trusted))]
    if not spoofed:
        return []
    field = f"signal.{signal_model.field_of(threat, 'forwarded_for') or 'forwarded_for'}"
    return [{"kind": "spoofed_forwarding_header", "severity": "high", "field": field,
             "excerpt": f"{peer} claims {', '.join(map(str, spoofed[:3]))}",
             "reason": f"the connection came from {peer} outside, but a forwarding header claims the trusted "
                       f"address {spoofed[0]}"}]


def _contradictions(results, findings):
    def data(kind):
        return results[kind].data if kind in results else {}

    attack = attack_evidence(results)
    shown = ", ".join(attack[:3])
    found = []
    history = data("historical")
    dismissed = (history.get("fp_share") or 0) + (history.get("benign_share") or 0)
    weight = history.get("evidence_weight") or 0
    if attack and dismissed >= DISMISSED_HISTORY_SHARE and weight >= DISMISSED_HISTORY_WEIGHT:
        found.append(_contradiction(["historical", "priority"],
                                    f"{dismissed:.0%} of the similar threats analysts closed (weight {weight:.2f}) "
                                    f"were false positive or benign, but this one shows {shown}"))
    hostile = attack + hostile_attempts(results)
    if hostile and data("config").get("allow_listed"):
        found.append(_contradiction(["config", "priority"], f"the source is allow-listed, yet shows "
                                                            f"{', '.join(hostile[:3])}"))
    settled = authorised(results) and all(name.replace(" ", "_") in ADMINISTRATION for name in attack)
    for kind in ("devops", "context"):
        if attack and data(kind).get("explaining") and not settled:
            found.append(_contradiction([kind, "priority"], f"{kind} explains the signal away, yet it shows {shown}"))
    if any(f["severity"] == "high" for f in findings):
        explainers = [k for k in ("devops", "context") if data(k).get("explaining")]
        explainers += ["config"] if data("config").get("allow_listed") else []
        if explainers:
            found.append(_contradiction(["adversarial", *explainers],
                                        f"{' and '.join(explainers)} explain the signal away while its text "
                                        "tries to steer the analysis"))
    return found


def _finding(kind, severity, path, value, start, end, reason):
    low, high = max(0, start - 20), min(len(value), end + 20)
    excerpt = ("…" if low else "") + value[low:high][: EXCERPT * 2] + ("…" if high < len(value) else "")
    return {"kind": kind, "severity": severity, "field": path, "excerpt": excerpt, "reason": reason}


def _contradiction(agents, description):
    return {"agents": agents, "description": description}


def _summary(detected, findings, contradictions):
    if not findings and not contradictions:
        return "No manipulation attempt or contradiction found in the alert's text and the agents' results."
    parts = []
    if detected:
        parts.append("This alert tries to steer the analysis: treat it as hostile and do not auto-close it.")
    elif findings:
        parts.append(f"{len(findings)} suspicious text finding(s), none of them a clear manipulation attempt.")
    if contradictions:
        parts.append(f"{len(contradictions)} contradiction(s) between agents.")
    return " ".join(parts)
