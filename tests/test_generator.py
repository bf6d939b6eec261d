"""The synthetic signal generator and the management commands that use it."""

import io
import ipaddress
import random
from dataclasses import asdict
from datetime import datetime, timedelta
from datetime import UTC

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from threats import generator
from threats.choices import CLOSED_STATUSES, Scenario, ThreatType
from threats.management.commands import seed_demo
from threats.models import ContextItem, Customer, InfraEvent, Threat

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
DOCUMENTATION_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]

EXPECTED = {
    "bot_traffic": ({"src_ip", "user_agent", "country", "endpoint"},
                    {"request_count", "window_minutes", "requests_per_minute", "distinct_paths", "city"}),
    "proxy_network": ({"src_ip", "country", "endpoint"},
                      {"proxy_type", "distinct_ips", "countries", "request_count", "requests_per_minute"}),
    "device_compromise": ({"host", "user", "src_ip", "dst_ip", "domains", "hashes", "process"},
                          {"device_id", "os", "process", "indicators", "bytes_out"}),
    "anomaly_detection": ({"user", "src_ip", "country"}, {"metric", "baseline", "observed", "deviation_sigma"}),
    "rate_limit_breach": ({"src_ip", "endpoint", "user_agent", "country"},
                          {"requests_per_minute", "duration_minutes", "request_count"}),
    "geo_anomaly": ({"user", "src_ip", "country"},
                    {"previous_location", "current_location", "distance_km", "minutes_between", "required_speed_kmh"}),
}


def safe_ip(value):
    address = ipaddress.ip_address(value)
    return address.is_private or any(address in net for net in DOCUMENTATION_NETS)


# --- build_signal ------------------------------------------------------------------------------------


def test_it_knows_exactly_the_six_documented_threat_types():
    assert set(EXPECTED) == set(ThreatType.values) == set(generator.BUILDERS)


@pytest.mark.parametrize("threat_type", ThreatType.values)
def test_it_builds_per_type_metadata_and_observables(threat_type):
    observable_keys, metadata_keys = EXPECTED[threat_type]
    for seed in range(20):
        signal = generator.build_signal(threat_type, rng=random.Random(seed), now=NOW)

        assert signal.threat_type == threat_type
        assert set(signal.observables) == observable_keys
        assert set(signal.metadata) == metadata_keys
        assert signal.customer_name in generator.CUSTOMER_CATALOGUE
        assert signal.scenario == ""
        assert signal.title
        assert NOW - timedelta(seconds=20) <= signal.occurred_at <= NOW


def test_it_keeps_bot_traffic_metadata_consistent():
    for seed in range(20):
        meta = generator.build_signal("bot_traffic", rng=random.Random(seed), now=NOW).metadata
        assert meta["requests_per_minute"] == meta["request_count"] // meta["window_minutes"]


def test_it_keeps_rate_limit_metadata_consistent():
    for seed in range(20):
        meta = generator.build_signal("rate_limit_breach", rng=random.Random(seed), now=NOW).metadata
        assert meta["request_count"] == meta["requests_per_minute"] * meta["duration_minutes"]


def test_it_builds_device_compromise_with_known_indicators():
    for seed in range(20):
        signal = generator.build_signal("device_compromise", rng=random.Random(seed), now=NOW)
        indicators = signal.metadata["indicators"]
        assert 1 <= len(indicators) <= 3
        assert set(indicators) <= set(generator.DEVICE_INDICATORS)
        assert len(signal.observables["hashes"][0]) == 64


def test_it_builds_geo_anomalies_between_two_different_places():
    for seed in range(20):
        meta = generator.build_signal("geo_anomaly", rng=random.Random(seed), now=NOW).metadata
        assert meta["previous_location"] != meta["current_location"]
        assert meta["distance_km"] > 0
        assert meta["required_speed_kmh"] == round(meta["distance_km"] / (meta["minutes_between"] / 60))


def test_it_uses_the_given_customer():
    signal = generator.build_signal("bot_traffic", customer_name="Acme", rng=random.Random(1), now=NOW)
    assert signal.customer_name == "Acme"


def test_it_picks_a_random_type_when_none_is_given():
    types = {generator.build_signal(rng=random.Random(seed), now=NOW).threat_type for seed in range(60)}
    assert types == set(ThreatType.values)


def test_it_maps_crypto_surge_to_a_cryptoexchange_rate_limit_breach():
    signal = generator.build_signal(scenario="crypto_surge", rng=random.Random(1), now=NOW)

    assert (signal.customer_name, signal.threat_type, signal.scenario) == (
        "CryptoExchange Pro", "rate_limit_breach", "crypto_surge")
    assert signal.metadata["requests_per_minute"] == 850
    assert "850 req/min" in signal.title


def test_it_maps_bot_attack_to_retailmax_bot_traffic():
    signal = generator.build_signal(scenario="bot_attack", rng=random.Random(1), now=NOW)

    assert (signal.customer_name, signal.threat_type) == ("RetailMax", "bot_traffic")
    assert signal.metadata["request_count"] == 3500
    assert "3,500 requests" in signal.title


def test_it_maps_geo_impossible_to_global_finance_new_york_to_tokyo_in_ten_minutes():
    signal = generator.build_signal(scenario="geo_impossible", rng=random.Random(1), now=NOW)

    assert (signal.customer_name, signal.threat_type) == ("Global Finance", "geo_anomaly")
    meta = signal.metadata
    assert meta["previous_location"]["city"] == "New York"
    assert meta["current_location"]["city"] == "Tokyo"
    assert meta["minutes_between"] == 10
    assert 10_000 < meta["distance_km"] < 11_500
    assert meta["required_speed_kmh"] > 50_000  # no aircraft does that
    assert "New York" in signal.title and "Tokyo" in signal.title


def test_it_maps_critical_threat_to_healthcare_device_compromise():
    signal = generator.build_signal(scenario="critical_threat", rng=random.Random(1), now=NOW)

    assert (signal.customer_name, signal.threat_type) == ("HealthCare Plus", "device_compromise")
    assert {"c2_beacon", "data_exfiltration"} <= set(signal.metadata["indicators"])


def test_it_knows_exactly_the_four_documented_scenarios():
    assert set(generator.SCENARIOS) == set(Scenario.values) == {
        "crypto_surge", "bot_attack", "geo_impossible", "critical_threat"}


def test_it_lets_a_given_customer_override_the_scenario_customer():
    signal = generator.build_signal(scenario="bot_attack", customer_name="EduLearn", rng=random.Random(1), now=NOW)
    assert (signal.customer_name, signal.threat_type) == ("EduLearn", "bot_traffic")


@pytest.mark.parametrize("kwargs", [{}, {"threat_type": "device_compromise"}, {"scenario": "geo_impossible"}])
def test_it_is_deterministic_with_a_seeded_random(kwargs):
    first = generator.build_signal(**kwargs, rng=random.Random(42), now=NOW)
    second = generator.build_signal(**kwargs, rng=random.Random(42), now=NOW)
    other = generator.build_signal(**kwargs, rng=random.Random(43), now=NOW)

    assert asdict(first) == asdict(second)
    assert asdict(first) != asdict(other)


@pytest.mark.parametrize("kwargs", [{"threat_type": t} for t in ThreatType.values] +
                         [{"scenario": s} for s in Scenario.values])
def test_it_only_generates_documentation_or_private_ip_addresses(kwargs):
    for seed in range(30):
        observables = generator.build_signal(**kwargs, rng=random.Random(seed), now=NOW).observables
        addresses = [observables[key] for key in ("src_ip", "dst_ip") if key in observables]
        assert addresses
        for address in addresses:
            assert safe_ip(address), address


# --- Management commands ---------------------------------------------------------------------------
# Transactional: the commands commit like in production, so analysis runs at each commit.


@pytest.mark.django_db(transaction=True)
def test_it_seeds_the_demo(client):
    call_command("seed_demo", history=6, insecure_demo_login=True, stdout=io.StringIO())

    assert Customer.objects.count() == 8
    assert set(Customer.objects.values_list("name", flat=True)) == set(generator.CUSTOMER_CATALOGUE)
    assert InfraEvent.objects.count() == len(seed_demo.INFRA)
    assert ContextItem.objects.count() == len(seed_demo.CONTEXT)
    assert InfraEvent.objects.filter(customer__name="CryptoExchange Pro").exists()
    assert ContextItem.objects.filter(customer__name="RetailMax").exists()

    analyst = authenticate(username="analyst", password="analyst")
    assert analyst is not None
    for perm in ("threats.view_threat", "threats.add_threat", "threats.change_threat"):
        assert analyst.has_perm(perm), perm
    assert client.login(username="analyst", password="analyst")
    assert client.get("/api/threats").status_code == 200

    threats = list(Threat.objects.all())
    assert len(threats) == 6
    assert {t.analysis_status for t in threats} == {"completed"}
    assert all(t.agent_runs.count() == 5 for t in threats)
    closed = [t for t in threats if t.status in CLOSED_STATUSES]
    assert 0 < len(closed) < len(threats)
    for threat in closed:
        assert threat.disposition and threat.disposition_reason
        assert threat.closed_at > threat.acknowledged_at > threat.received_at
    open_ones = [t for t in threats if t.status not in CLOSED_STATUSES]
    assert all(t.disposition == "" and t.closed_at is None for t in open_ones)


@pytest.mark.django_db(transaction=True)
def test_it_does_not_duplicate_demo_data_when_seeded_twice():
    sink = io.StringIO()
    call_command("seed_demo", history=2, insecure_demo_login=True, stdout=sink)
    counts = (Customer.objects.count(), InfraEvent.objects.count(), ContextItem.objects.count(), Threat.objects.count())

    call_command("seed_demo", history=2, insecure_demo_login=True, stdout=sink)

    assert (Customer.objects.count(), InfraEvent.objects.count(), ContextItem.objects.count(),
            Threat.objects.count()) == counts
    assert counts[0] == 8


@pytest.mark.django_db(transaction=True)
def test_it_generates_analysed_threats_of_a_given_type():
    call_command("generate_threats", count=3, threat_type="geo_anomaly", stdout=io.StringIO())

    threats = list(Threat.objects.all())
    assert len(threats) == 3
    assert {t.threat_type for t in threats} == {"geo_anomaly"}
    assert {t.analysis_status for t in threats} == {"completed"}
    assert all(t.severity for t in threats)


@pytest.mark.django_db(transaction=True)
def test_it_generates_a_named_scenario():
    call_command("generate_threats", scenario="critical_threat", stdout=io.StringIO())

    threat = Threat.objects.get()
    assert (threat.customer.name, threat.threat_type) == ("HealthCare Plus", "device_compromise")


@pytest.mark.django_db
def test_it_refuses_an_unknown_customer_in_generate_threats():
    with pytest.raises(CommandError, match="customer"):
        call_command("generate_threats", count=1, customer="no-such-customer")
    assert not Threat.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_negative_count_in_generate_threats():
    with pytest.raises(CommandError):
        call_command("generate_threats", count=-1)
    assert not Threat.objects.exists()


def test_a_long_seed_reports_progress_on_lines_of_its_own(db):
    sink = io.StringIO()
    call_command("seed_demo", history=20, insecure_demo_login=True, stdout=sink)
    lines = sink.getvalue().splitlines()
    progress = [line for line in lines if line.startswith("history ")]
    assert progress == [f"history {n}/20" for n in range(2, 21, 2)]
    assert "\r" not in sink.getvalue()
