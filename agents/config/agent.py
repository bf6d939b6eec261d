"""Configuration agent: does the signal break the customer's own rules?"""

import ipaddress

from threats.choices import ThreatType

from ..base import Agent, AgentResult, field_ref, observable

SENSITIVITY_POINTS = {"low": -5, "medium": 0, "high": 5}
BOT_TYPES = {ThreatType.BOT_TRAFFIC, ThreatType.PROXY_NETWORK, ThreatType.RATE_LIMIT_BREACH}


def metric(threat, name):
    value = threat.raw.get("metadata", {}).get(name) if isinstance(threat.raw, dict) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class ConfigAgent(Agent):
    kind = "config"

    def analyze(self, threat, gathered):
        customer = threat.customer
        rule = f"customer:{customer.slug}"
        result = AgentResult(summary="", confidence=0.6)
        self._rate_limit(result, threat, customer, rule)
        self._geo(result, threat, customer, rule)
        self._allow_list(result, threat, customer, rule)
        if threat.threat_type in BOT_TYPES and SENSITIVITY_POINTS[customer.bot_sensitivity]:
            result.score(SENSITIVITY_POINTS[customer.bot_sensitivity],
                         f"bot sensitivity is {customer.bot_sensitivity}", f"{rule}.bot_sensitivity")
        if customer.auto_block:
            result.find("Customer allows automatic blocking.", f"{rule}.auto_block")
        if result.risk:
            result.confidence = 0.9
        broken = [r["reason"] for r in result.risk if r["points"] > 0]
        result.summary = ("; ".join(broken).capitalize() + ".") if broken else "No customer rule is broken."
        return result

    def _rate_limit(self, result, threat, customer, rule):
        rpm = metric(threat, "requests_per_minute")
        if rpm is None:
            return
        ratio = rpm / max(customer.rate_limit_per_minute, 1)
        result.data["rate_ratio"] = round(ratio, 2)
        text = f"{rpm} req/min against a limit of {customer.rate_limit_per_minute} ({ratio:.1f}x)"
        evidence = ("signal.raw.metadata.requests_per_minute", f"{rule}.rate_limit_per_minute")
        if ratio >= 5:
            result.score(25, f"rate limit exceeded {ratio:.1f}x", *evidence)
        elif ratio >= 2:
            result.score(15, f"rate limit exceeded {ratio:.1f}x", *evidence)
        elif ratio > 1:
            result.score(8, f"rate limit exceeded {ratio:.1f}x", *evidence)
        result.find(text, *evidence)

    def _geo(self, result, threat, customer, rule):
        country = observable(threat, "country")
        if not customer.allowed_countries or not country:
            return
        if country not in customer.allowed_countries:
            result.score(15, f"country {country} is outside the allowed list", field_ref("country"),
                         f"{rule}.allowed_countries")
        else:
            result.find(f"Country {country} is allowed.", field_ref("country"), f"{rule}.allowed_countries")

    def _allow_list(self, result, threat, customer, rule):
        address = _ip(observable(threat, "src_ip"))
        if address is None:
            return
        for entry in customer.allow_listed_ips:
            network = _network(entry)
            if network is not None and address in network:
                result.score(-25, f"source {address} is allow-listed ({entry})", field_ref("src_ip"),
                             f"{rule}.allow_listed_ips")
                return


def _ip(value):
    try:
        return ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _network(value):
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None
