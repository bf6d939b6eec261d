"""False-positive likelihood from the agents' results (README "False-positive score").

Benign true positives (real but expected activity) do not count as false positives.
"""

# Share of false positives per type before any evidence, a prior to be moved by evidence.
BASE_RATE = {
    "bot_traffic": 0.30,
    "proxy_network": 0.35,
    "device_compromise": 0.10,
    "anomaly_detection": 0.45,
    "rate_limit_breach": 0.40,
    "geo_anomaly": 0.45,
}


def assess(threat, results):
    score = BASE_RATE.get(threat.threat_type, 0.3)
    indicators = []

    def weigh(weight, text, source):
        nonlocal score
        score += weight
        indicators.append({"weight": weight, "indicator": text, "source": source})

    history = results["historical"].data.get("dispositions") if "historical" in results else None
    if history:
        fp, real = history["false_positive"], history["true_positive"] + history["benign_true_positive"]
        if fp + real:
            share = fp / (fp + real)
            weigh(round((share - 0.5) * 0.4, 3), f"{share:.0%} of similar closed threats were false positives",
                  "historical")
    for name, result in results.items():
        for item in result.risk:
            if item["points"] <= -10:
                weigh(0.15, item["reason"], name)
    confidence = sum(r.confidence for r in results.values()) / max(len(results), 1)
    score = min(max(score, 0.0), 1.0)
    return {
        "score": round(score, 3),
        "confidence": round(confidence, 3),
        "recommendation": _recommendation(score),
        "indicators": indicators,
    }


def _recommendation(score):
    if score >= 0.7:
        return "likely_false_positive"
    if score >= 0.4:
        return "needs_review"
    return "likely_real_threat"
