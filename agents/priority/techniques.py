"""ATT&CK techniques the priority agent maps signals to (Enterprise matrix; ids, names and tactic ids
as published by MITRE at attack.mitre.org). Keyed by id: names may change between versions, ids do not.

ATT&CK(R) is a registered trademark of The MITRE Corporation. This table reproduces technique and
tactic identifiers and names from MITRE ATT&CK(R), (c) The MITRE Corporation, used under its terms of use.
"""

ATTACK_SOURCE = "builtin-table"

TECHNIQUES = {
    "T1595": ("Active Scanning", "TA0043", "Reconnaissance"),
    "T1110": ("Brute Force", "TA0006", "Credential Access"),
    "T1110.004": ("Credential Stuffing", "TA0006", "Credential Access"),
    "T1090": ("Proxy", "TA0011", "Command and Control"),
    "T1090.003": ("Multi-hop Proxy", "TA0011", "Command and Control"),
    "T1071": ("Application Layer Protocol", "TA0011", "Command and Control"),
    "T1041": ("Exfiltration Over C2 Channel", "TA0010", "Exfiltration"),
    "T1068": ("Exploitation for Privilege Escalation", "TA0004", "Privilege Escalation"),
    "T1059": ("Command and Scripting Interpreter", "TA0002", "Execution"),
    "T1078": ("Valid Accounts", "TA0001", "Initial Access"),
    "T1499": ("Endpoint Denial of Service", "TA0040", "Impact"),
    "T1498": ("Network Denial of Service", "TA0040", "Impact"),
}

# threat type -> techniques always implied by it
BY_TYPE = {
    "bot_traffic": ["T1595"],
    "proxy_network": ["T1090"],
    "device_compromise": [],
    "anomaly_detection": ["T1078"],
    "rate_limit_breach": ["T1499"],
    "geo_anomaly": ["T1078"],
}

# device indicator -> technique
BY_INDICATOR = {
    "c2_beacon": "T1071",
    "data_exfiltration": "T1041",
    "privilege_escalation": "T1068",
    "suspicious_process": "T1059",
}


def technique(technique_id, source, confidence):
    name, tactic_id, tactic = TECHNIQUES.get(technique_id, ("", "", ""))
    return {"technique_id": technique_id, "name": name, "tactic_id": tactic_id, "tactic": tactic,
            "source": source, "confidence": confidence}
