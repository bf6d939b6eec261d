"""Generated secrets are made once and kept across upgrades.

The chart reads the release's Secret back with Helm's `lookup`. Offline, lookup finds nothing (so
every render generates new values, see test_render.py); here Helm renders against a minimal fake
Kubernetes API on loopback (fakeapi.py) that serves discovery and one existing Secret, the way an upgrade sees
the cluster.
"""

import base64

import pytest
import yaml

from tests.chart import helmchart as hc
from tests.chart.fakeapi import FakeCluster

pytestmark = pytest.mark.chart

EXISTING = {
    "django-secret-key": "k" * 50,
    "postgres-password": "kept-pg-password",
    "redis-password": "kept-redis-password",
}


@pytest.fixture
def cluster():
    """(helm Config bound to the fake API, the fake cluster to put the Secret in)."""
    with FakeCluster() as fake:
        yield fake.config, fake


def upgrade_render(config, values):
    rendered = config.render(hc.chart(), values, name="soc-agent", namespace="default", is_upgrade=True, is_install=False)
    secret = yaml.safe_load(rendered["soc-agent/templates/secret.yaml"])
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def existing_secret(data):
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "soc-agent", "namespace": "default"},
            "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}}


def test_an_upgrade_keeps_the_generated_key_and_passwords(cluster):
    config, fake = cluster
    fake.add(existing_secret(EXISTING))

    data = upgrade_render(config, {"redis": {"auth": {"enabled": True}}})

    assert data["django-secret-key"] == EXISTING["django-secret-key"]
    assert data["postgres-password"] == "kept-pg-password"
    assert data["database-url"] == "postgres://soc:kept-pg-password@soc-agent-postgresql:5432/soc"
    assert data["redis-url"] == "redis://:kept-redis-password@soc-agent-redis:6379"
    assert "/api/v1/namespaces/default/secrets/soc-agent" in fake.requests


def test_the_first_install_generates_new_values(cluster):
    config, _ = cluster

    data = upgrade_render(config, {})

    assert len(data["django-secret-key"]) == 50 and data["django-secret-key"] != EXISTING["django-secret-key"]
    assert len(data["postgres-password"]) == 32


def test_a_value_given_in_values_wins_over_the_kept_one(cluster):
    config, fake = cluster
    fake.add(existing_secret(EXISTING))

    data = upgrade_render(config, {"secrets": {"djangoSecretKey": "rotated-" + "r" * 50}})

    assert data["django-secret-key"] == "rotated-" + "r" * 50
    assert data["postgres-password"] == "kept-pg-password"
