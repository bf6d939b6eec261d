"""Priority agent: how dangerous is this kind of signal, and which ATT&CK techniques does it show?"""

import re

from ..base import Agent, AgentResult, field_ref, observable
from ..config.agent import metric
from .techniques import ATTACK_SOURCE, BY_INDICATOR, BY_TYPE, technique

# Starting points per threat type (README "Risk score").
BASE_POINTS = {
    "device_compromise": 40,
    "geo_anomaly": 30,
    "proxy_network": 25,
    "rate_limit_breach": 25,
    "anomaly_detection": 25,
    "bot_traffic": 20,
}
INDICATOR_POINTS = {"c2_beacon": 15, "data_exfiltration": 20, "privilege_escalation": 10, "suspicious_process": 5}
ATTACK_TOOLS = re.compile(r"sqlmap|nikto|nmap|masscan|burp|metasploit|w3af|zgrab|nuclei|hydra", re.I)
LOGIN_PATHS = re.compile(r"login|signin|auth|reset", re.I)
TECHNIQUE_ID = re.compile(r"^T\d{4}(\.\d{3})?$")


class PriorityAgent(Agent):
    kind = "priority"

    def analyze(self, threat, gathered):
        result = AgentResult(summary="", confidence=0.75)
        base = BASE_POINTS.get(threat.threat_type, 20)
        result.score(base, f"base level for {threat.threat_type.replace('_', ' ')}", "signal.threat_type")
        techniques = {t: technique(t, "type", 0.6) for t in BY_TYPE.get(threat.threat_type, [])}
        self._indicators(result, threat, techniques)
        self._travel(result, threat)
        self._volume(result, threat, techniques)
        self._hints(threat, techniques)
        result.data = {"attack_source": ATTACK_SOURCE, "techniques": list(techniques.values())}
        names = ", ".join(f"{t['technique_id']} {t['name']}" for t in techniques.values()) or "none"
        result.summary = f"ATT&CK: {names}."
        result.find(result.summary, "signal.threat_type")
        return result

    def _indicators(self, result, threat, techniques):
        indicators = threat.raw.get("metadata", {}).get("indicators", []) if isinstance(threat.raw, dict) else []
        for name in indicators if isinstance(indicators, list) else []:
            if name in INDICATOR_POINTS:
                result.score(INDICATOR_POINTS[name], f"indicator {name.replace('_', ' ')}",
                             "signal.raw.metadata.indicators")
                techniques[BY_INDICATOR[name]] = technique(BY_INDICATOR[name], "indicator", 0.8)
        if len(indicators) >= 3:
            result.confidence = 0.9

    def _travel(self, result, threat):
        speed = metric(threat, "required_speed_kmh")
        if speed is not None and speed > 1000:
            result.score(20, f"impossible travel ({speed:,} km/h needed)", "signal.raw.metadata.required_speed_kmh")
            result.confidence = 0.9
        elif speed is not None and speed > 500:
            result.score(8, f"unlikely travel ({speed:,} km/h needed)", "signal.raw.metadata.required_speed_kmh")

    def _volume(self, result, threat, techniques):
        count = metric(threat, "request_count")
        if count is not None and count >= 3000:
            result.score(10, f"high volume ({count:,} requests)", "signal.raw.metadata.request_count")
        agent = observable(threat, "user_agent", "")
        if isinstance(agent, str) and ATTACK_TOOLS.search(agent):
            result.score(15, "user agent of an attack tool", field_ref("user_agent"))
            techniques["T1595"] = technique("T1595", "user_agent", 0.8)
        endpoint = observable(threat, "endpoint", "")
        if isinstance(endpoint, str) and LOGIN_PATHS.search(endpoint) and threat.threat_type in (
            "bot_traffic", "rate_limit_breach", "proxy_network"
        ):
            result.score(5, f"targets an authentication endpoint ({endpoint})", field_ref("endpoint"))
            techniques["T1110"] = technique("T1110", "endpoint", 0.7)

    def _hints(self, threat, techniques):
        for hint in threat.mitre_hints or []:
            if isinstance(hint, str) and TECHNIQUE_ID.match(hint):
                techniques[hint] = technique(hint, "alert", 1.0)
