"""Synthetic threat signals: six threat types with realistic per-type metadata, four named scenarios.

`build_signal()` is pure (a seeded `random.Random` makes it deterministic); `services.create_threat`
stores what it returns. IP addresses come from the documentation ranges of RFC 5737 and the
private ranges of RFC 1918, so generated data never points at a real host.
"""

import random
from dataclasses import dataclass, field
from datetime import timedelta
from math import asin, cos, radians, sin, sqrt

from django.utils import timezone

from .choices import Scenario, ThreatType
from .importers.signal import Signal as Normalised

# Customers the generator and `seed_demo` know; the scenarios refer to four of them by name.
CUSTOMER_CATALOGUE = {
    "CryptoExchange Pro": dict(
        tier="enterprise", rate_limit_per_minute=150, allowed_countries=[], bot_sensitivity="high",
        auto_block=True, timezone="America/New_York", escalation_contacts=["soc@cryptoexchange.example"],
    ),
    "RetailMax": dict(
        tier="business", rate_limit_per_minute=500, allowed_countries=["US", "CA", "GB"],
        bot_sensitivity="medium", timezone="America/Chicago",
        escalation_contacts=["security@retailmax.example"],
    ),
    "Global Finance": dict(
        tier="enterprise", rate_limit_per_minute=200, allowed_countries=["US", "GB", "JP", "SG"],
        bot_sensitivity="high", auto_block=True, timezone="America/New_York",
        escalation_contacts=["ciso@globalfinance.example", "soc@globalfinance.example"],
    ),
    "HealthCare Plus": dict(
        tier="enterprise", rate_limit_per_minute=100, allowed_countries=["US"],
        bot_sensitivity="high", timezone="America/Los_Angeles",
        escalation_contacts=["privacy@healthcareplus.example"], allow_listed_ips=["10.20.0.0/16"],
    ),
    "TechStart Inc": dict(
        tier="starter", rate_limit_per_minute=60, bot_sensitivity="low", timezone="Europe/Berlin",
    ),
    "MediaStream": dict(
        tier="business", rate_limit_per_minute=1000, bot_sensitivity="low", timezone="Europe/London",
        allow_listed_ips=["198.51.100.10"],
    ),
    "EduLearn": dict(
        tier="starter", rate_limit_per_minute=120, bot_sensitivity="medium", timezone="Asia/Singapore",
    ),
    "GovSecure": dict(
        tier="enterprise", rate_limit_per_minute=80, allowed_countries=["US"], bot_sensitivity="high",
        auto_block=True, timezone="America/New_York", escalation_contacts=["watch@govsecure.example"],
    ),
}

USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "python-requests/2.32.3",
    "curl/8.7.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "sqlmap/1.8.4#stable (https://sqlmap.org)",
    "Go-http-client/1.1",
]
ENDPOINTS = ["/api/login", "/api/checkout", "/api/search", "/api/v2/orders", "/api/quotes", "/account/reset"]
CITIES = [
    ("New York", "US", 40.71, -74.01), ("London", "GB", 51.51, -0.13), ("Tokyo", "JP", 35.68, 139.69),
    ("Singapore", "SG", 1.35, 103.82), ("Frankfurt", "DE", 50.11, 8.68), ("São Paulo", "BR", -23.55, -46.63),
    ("Lagos", "NG", 6.52, 3.38), ("Moscow", "RU", 55.76, 37.62), ("Toronto", "CA", 43.65, -79.38),
    ("Sydney", "AU", -33.87, 151.21),
]
DEVICE_INDICATORS = ["c2_beacon", "data_exfiltration", "suspicious_process", "privilege_escalation"]
METRIC_LABELS = {"login_count": "login count", "data_download_mb": "download volume (MB)",
                 "api_calls": "API call count", "failed_logins": "failed logins"}
PROCESSES = ["powershell.exe", "rundll32.exe", "certutil.exe", "bash", "svchost.exe"]


@dataclass
class Signal:
    """A threat signal before it is stored."""

    threat_type: str
    customer_name: str
    title: str
    occurred_at: object
    observables: dict
    metadata: dict
    scenario: str = ""
    mitre_hints: list = field(default_factory=list)


def public_ip(rng):
    net = rng.choice(["192.0.2", "198.51.100", "203.0.113"])
    return f"{net}.{rng.randint(1, 254)}"


def private_ip(rng):
    return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _bot_traffic(rng):
    count = rng.choice([240, 600, 1200, 2400, 3500, 5200])
    window = rng.choice([5, 10, 15])
    ua = rng.choice(USER_AGENTS)
    city = rng.choice(CITIES)
    obs = {"src_ip": public_ip(rng), "user_agent": ua, "country": city[1], "endpoint": rng.choice(ENDPOINTS)}
    meta = {"request_count": count, "window_minutes": window, "requests_per_minute": count // window,
            "distinct_paths": rng.randint(1, 40), "city": city[0]}
    return f"Automated traffic: {count:,} requests in {window} min from {obs['src_ip']}", obs, meta


def _proxy_network(rng):
    kind = rng.choice(["residential", "datacenter", "tor"])
    ips = rng.randint(5, 400)
    countries = sorted({rng.choice(CITIES)[1] for _ in range(rng.randint(2, 6))})
    obs = {"src_ip": public_ip(rng), "country": countries[0], "endpoint": rng.choice(ENDPOINTS)}
    meta = {"proxy_type": kind, "distinct_ips": ips, "countries": countries,
            "request_count": ips * rng.randint(3, 20), "requests_per_minute": ips * rng.randint(1, 4)}
    return f"{kind.capitalize()} proxy network: {ips} rotating IPs", obs, meta


def _device_compromise(rng):
    indicators = sorted(rng.sample(DEVICE_INDICATORS, rng.randint(1, 3)))
    host = f"ws-{rng.randint(100, 999)}"
    obs = {"host": host, "user": f"user{rng.randint(1, 400)}", "src_ip": private_ip(rng),
           "dst_ip": public_ip(rng), "domains": [f"cdn-{rng.randint(10, 99)}.update-check.example"],
           "hashes": [f"{rng.getrandbits(256):064x}"]}
    meta = {"device_id": f"dev-{rng.getrandbits(32):08x}", "os": rng.choice(["Windows 11", "macOS 14", "Ubuntu 22.04"]),
            "process": rng.choice(PROCESSES), "indicators": indicators,
            "bytes_out": rng.choice([12_000, 250_000, 4_800_000, 96_000_000])}
    obs["process"] = meta["process"]
    return f"Device {host} shows {', '.join(i.replace('_', ' ') for i in indicators)}", obs, meta


def _anomaly_detection(rng):
    metric = rng.choice(["login_count", "data_download_mb", "api_calls", "failed_logins"])
    baseline = rng.randint(5, 200)
    observed = int(baseline * rng.uniform(1.5, 12))
    obs = {"user": f"user{rng.randint(1, 400)}", "src_ip": public_ip(rng), "country": rng.choice(CITIES)[1]}
    meta = {"metric": metric, "baseline": baseline, "observed": observed,
            "deviation_sigma": round((observed - baseline) / max(baseline * 0.25, 1), 1)}
    return f"Anomalous {METRIC_LABELS[metric]}: {observed} vs baseline {baseline}", obs, meta


def _rate_limit_breach(rng):
    rpm = rng.choice([90, 180, 400, 850, 1500, 3000])
    duration = rng.randint(1, 30)
    obs = {"src_ip": public_ip(rng), "endpoint": rng.choice(ENDPOINTS), "user_agent": rng.choice(USER_AGENTS),
           "country": rng.choice(CITIES)[1]}
    meta = {"requests_per_minute": rpm, "duration_minutes": duration, "request_count": rpm * duration}
    return f"Rate limit breached: {rpm} req/min on {obs['endpoint']}", obs, meta


def _geo_anomaly(rng):
    first, second = rng.sample(CITIES, 2)
    minutes = rng.choice([10, 45, 120, 600, 1440])
    return _travel_signal(rng, first, second, minutes, f"user{rng.randint(1, 400)}")


def _travel_signal(rng, first, second, minutes, user):
    km = round(_distance_km(first[2], first[3], second[2], second[3]))
    obs = {"user": user, "src_ip": public_ip(rng), "country": second[1]}
    meta = {"previous_location": {"city": first[0], "country": first[1]},
            "current_location": {"city": second[0], "country": second[1]},
            "distance_km": km, "minutes_between": minutes,
            "required_speed_kmh": round(km / (minutes / 60))}
    return f"Login by {user} from {second[0]} {minutes} min after {first[0]}", obs, meta


def _distance_km(lat1, lon1, lat2, lon2):
    dlat, dlon = radians(lat2 - lat1), radians(lon2 - lon1)
    a = sin(dlat / 2) ** 2 + cos(radians(lat1)) * cos(radians(lat2)) * sin(dlon / 2) ** 2
    return 2 * 6371 * asin(sqrt(a))


BUILDERS = {
    ThreatType.BOT_TRAFFIC: _bot_traffic,
    ThreatType.PROXY_NETWORK: _proxy_network,
    ThreatType.DEVICE_COMPROMISE: _device_compromise,
    ThreatType.ANOMALY_DETECTION: _anomaly_detection,
    ThreatType.RATE_LIMIT_BREACH: _rate_limit_breach,
    ThreatType.GEO_ANOMALY: _geo_anomaly,
}


def _crypto_surge(rng):
    obs = {"src_ip": public_ip(rng), "endpoint": "/api/v2/orders", "user_agent": "python-requests/2.32.3",
           "country": "SG"}
    meta = {"requests_per_minute": 850, "duration_minutes": 12, "request_count": 850 * 12}
    title = "Trading API surge: 850 req/min against a 150 req/min limit"
    return ThreatType.RATE_LIMIT_BREACH, "CryptoExchange Pro", title, obs, meta


def _bot_attack(rng):
    obs = {"src_ip": public_ip(rng), "user_agent": "Suspicious-Bot/1.0", "country": "RU", "endpoint": "/api/checkout"}
    meta = {"request_count": 3500, "window_minutes": 10, "requests_per_minute": 350, "distinct_paths": 3}
    return ThreatType.BOT_TRAFFIC, "RetailMax", "Checkout bot: 3,500 requests in 10 min", obs, meta


def _geo_impossible(rng):
    title, obs, meta = _travel_signal(rng, CITIES[0], CITIES[2], 10, "j.doe")
    return ThreatType.GEO_ANOMALY, "Global Finance", f"Impossible travel: {title}", obs, meta


def _critical_threat(rng):
    obs = {"host": "ehr-db-02", "user": "svc_backup", "src_ip": "10.40.3.17", "dst_ip": public_ip(rng),
           "domains": ["exfil.c2-relay.example"], "hashes": [f"{rng.getrandbits(256):064x}"]}
    meta = {"device_id": "dev-ehr-db-02", "os": "Windows Server 2022", "process": "rundll32.exe",
            "indicators": ["c2_beacon", "data_exfiltration", "privilege_escalation"], "bytes_out": 2_400_000_000}
    obs["process"] = meta["process"]
    title = "Patient-records server beaconing to C2 and exfiltrating 2.4 GB"
    return ThreatType.DEVICE_COMPROMISE, "HealthCare Plus", title, obs, meta


SCENARIOS = {
    Scenario.CRYPTO_SURGE: _crypto_surge,
    Scenario.BOT_ATTACK: _bot_attack,
    Scenario.GEO_IMPOSSIBLE: _geo_impossible,
    Scenario.CRITICAL_THREAT: _critical_threat,
}


def build_signal(threat_type=None, scenario=None, customer_name=None, rng=None, now=None):
    """A synthetic signal: a named scenario, a given type, or a random type for a random customer."""
    rng = rng or random.Random()
    now = now or timezone.now()
    if scenario:
        threat_type, scenario_customer, title, obs, meta = SCENARIOS[scenario](rng)
        customer_name = customer_name or scenario_customer
    else:
        threat_type = threat_type or rng.choice(list(ThreatType))
        title, obs, meta = BUILDERS[threat_type](rng)
        customer_name = customer_name or rng.choice(list(CUSTOMER_CATALOGUE))
    occurred = now - timedelta(seconds=rng.randint(0, 20))
    return Signal(str(threat_type), customer_name, title, occurred, obs, meta, scenario=str(scenario or ""))


# --- The generator's signals in the normalised model (docs/signals.md, "Synthetic") ---------------

DEVICE_BEHAVIOURS = {"c2_beacon": "command_and_control", "data_exfiltration": "exfiltration",
                     "privilege_escalation": "privilege_escalation", "suspicious_process": "suspicious_execution"}
MEASURES = ("request_count", "requests_per_minute", "window_minutes", "duration_minutes", "distinct_paths",
            "distinct_ips", "deviation_sigma", "baseline", "observed", "distance_km", "minutes_between")


def signal_for(threat_type, metadata):
    """A synthetic threat's metadata in the normalised model: its type is what it shows."""
    built, meta = Normalised().set("trust", "curated", "threat_type"), metadata if isinstance(metadata, dict) else {}
    for name in MEASURES:
        built.measure(name, meta.get(name), f"raw.metadata.{name}")
    built.measure("src_bytes", meta.get("bytes_out"), "raw.metadata.bytes_out")
    built.measure("speed_kmh", meta.get("required_speed_kmh"), "raw.metadata.required_speed_kmh")
    SYNTHETIC_BEHAVIOURS.get(threat_type, _nothing)(built, meta)
    return built.finish()


def _nothing(built, meta):
    return built


def _device(built, meta):
    for name in meta.get("indicators", []) if isinstance(meta.get("indicators"), list) else []:
        if name in DEVICE_BEHAVIOURS:
            built.behaviour(DEVICE_BEHAVIOURS[name], "raw.metadata.indicators", name)
    return built.set("process", str(meta.get("process", ""))[:200], "raw.metadata.process")


def _travel(built, meta):
    speed = meta.get("required_speed_kmh")
    fast = isinstance(speed, (int, float)) and speed > IMPOSSIBLE_KMH
    built.behaviour("impossible_travel" if fast else "unusual_location", "raw.metadata.required_speed_kmh",
                    f"{speed} km/h")
    return built.behaviour("login_success", "threat_type", "login").set("outcome", "success", "threat_type")


IMPOSSIBLE_KMH = 1000  # faster than an airliner: nobody travelled that way
SYNTHETIC_BEHAVIOURS = {
    ThreatType.BOT_TRAFFIC: lambda built, meta: built.behaviour("automation", "raw.metadata.request_count"),
    ThreatType.PROXY_NETWORK: lambda built, meta: built.behaviour("anonymising_proxy", "raw.metadata.proxy_type",
                                                                  meta.get("proxy_type", "")),
    ThreatType.DEVICE_COMPROMISE: _device,
    ThreatType.ANOMALY_DETECTION: lambda built, meta: built.behaviour("anomaly", "raw.metadata.metric",
                                                                      meta.get("metric", "")),
    ThreatType.RATE_LIMIT_BREACH: lambda built, meta: built.behaviour("rate_abuse", "raw.metadata.requests_per_minute"),
    ThreatType.GEO_ANOMALY: _travel,
}
