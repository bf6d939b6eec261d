"""The labelled scenario suite (tests/fixtures/scenarios/): each one is stored, analysed by the real
coordinator and compared with what an analyst expects (severity band, review flag, key ATT&CK
techniques, and where it matters the false-positive recommendation and adversarial detection)."""

import pytest

from agents import coordinator, scenarios
from agents.models import AgentRun
from threats.models import Threat

SCENARIOS = scenarios.all_scenarios()


def test_there_are_at_least_thirty_labelled_scenarios():
    assert len(SCENARIOS) >= 30
    for scenario in SCENARIOS:
        assert {"severity", "review"} <= set(scenario.expect), scenario.name
        assert scenario.spec["description"], scenario.name


@pytest.mark.django_db
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_the_scenario_gets_the_expected_verdict(scenario):
    threat = scenarios.load(scenario)
    coordinator.analyze(threat.pk)
    threat = Threat.objects.get(pk=threat.pk)
    assert scenarios.check(scenario, threat) == []
    assert AgentRun.objects.filter(threat=threat, status="succeeded").count() == 5
