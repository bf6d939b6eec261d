"""Configuration agent: does the signal break the customer's own rules? Each rule is cited."""

from .. import signal_model
from ..base import Agent, AgentResult, customer_ref, field_ref

SENSITIVITY_POINTS = {"low": -5, "medium": 0, "high": 5}
# Families whose traffic the customer's rate limit and bot sensitivity speak about.
TRAFFIC = {"bot_traffic", "proxy_network", "rate_limit_breach", "denial_of_service", "reconnaissance", "web_attack"}
RATE_STEPS = [(5, 25), (2, 15), (1, 8)]  # ratio above the limit -> points


class ConfigAgent(Agent):
    kind = "config"

    def analyze(self, threat, gathered):
        customer = threat.customer
        result = AgentResult(summary="", confidence=0.5)
        result.data = {"rate_ratio": None, "allow_listed": None, "outside_allowed_countries": None,
                       "auto_block": customer.auto_block}
        self._rate_limit(result, threat, customer)
        self._geo(result, threat, customer)
        self._allow_list(result, threat, customer)
        if signal_model.family(threat) in TRAFFIC and SENSITIVITY_POINTS[customer.bot_sensitivity]:
            result.score(SENSITIVITY_POINTS[customer.bot_sensitivity],
                         f"customer's bot sensitivity is {customer.bot_sensitivity}",
                         customer_ref(customer, "bot_sensitivity"))
        result.find(f"Automatic blocking is {'allowed' if customer.auto_block else 'not allowed'} for this customer.",
                    customer_ref(customer, "auto_block"))
        applied = [f for f in result.findings if any(".auto_block" not in e for e in f["evidence"])]
        if applied:
            result.confidence = 0.9
        broken = [r["reason"] for r in result.risk if r["points"] > 0]
        result.summary = ("Customer rules broken: " + "; ".join(broken) + ".") if broken else (
            "No customer rule is broken." if applied else "No customer rule applies to this signal.")
        return result

    def _rate_limit(self, result, threat, customer):
        rpm = signal_model.measure(threat, "requests_per_minute")
        if rpm is None:
            return
        limit = max(customer.rate_limit_per_minute, 1)
        ratio = rpm / limit
        result.data["rate_ratio"] = round(ratio, 2)
        evidence = ("signal.measures.requests_per_minute", customer_ref(customer, "rate_limit_per_minute"))
        result.find(f"{rpm:g} req/min against a limit of {limit} ({ratio:.1f}x).", *evidence)
        points = next((p for floor, p in RATE_STEPS if ratio >= floor and ratio > 1), 0)
        if points:
            result.score(points, f"rate limit exceeded {ratio:.1f}x", *evidence)
        elif threat.threat_type == "rate_limit_breach":
            result.score(-10, f"observed rate {rpm:g} req/min is within this customer's limit of {limit}", *evidence)

    def _geo(self, result, threat, customer):
        country = signal_model.text(threat, "country").upper()
        if not customer.allowed_countries or not country:
            return
        evidence = (field_ref("country"), customer_ref(customer, "allowed_countries"))
        outside = country not in customer.allowed_countries
        result.data["outside_allowed_countries"] = outside
        if outside:
            result.score(15, f"country {country} is outside the allowed list "
                             f"({', '.join(customer.allowed_countries)})", *evidence)
        else:
            result.find(f"Country {country} is on the allowed list.", *evidence)

    def _allow_list(self, result, threat, customer):
        address = signal_model.ip(signal_model.text(threat, "src_ip"))
        if address is None or not customer.allow_listed_ips:
            return
        result.data["allow_listed"] = False
        for entry in customer.allow_listed_ips:
            network = signal_model.network(entry)
            if network is not None and address in network:
                result.data["allow_listed"] = True
                result.score(-25, f"source {address} is allow-listed ({entry})", field_ref("src_ip"),
                             customer_ref(customer, "allow_listed_ips"))
                return
        result.find(f"Source {address} is not on the customer's allow-list.", field_ref("src_ip"),
                    customer_ref(customer, "allow_listed_ips"))
