"""What an upgrade does to a running release: rendered as Helm's upgrade (`.Release.IsUpgrade`)
with `lookup` answered by a fake API holding the release's live objects (tests/chart/fakeapi.py)."""

import pytest

from tests.chart import helmchart as hc
from tests.chart.fakeapi import FakeCluster

pytestmark = pytest.mark.chart


@pytest.fixture
def cluster():
    with FakeCluster() as cluster:
        yield cluster


def live_deployment(name, replicas):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": hc.NAMESPACE}, "spec": {"replicas": replicas}}


# --- 1. the HPA owns the replica count ----------------------------------------------------------


def test_with_the_hpa_on_the_deployments_leave_the_replica_count_to_it():
    objects = hc.render({"worker": {"hpa": {"enabled": True}}})
    deployments = hc.named(objects, "Deployment")

    assert "replicas" not in deployments["soc-agent-backend"]["spec"]
    assert "replicas" not in deployments["soc-agent-worker"]["spec"]


def test_without_the_hpa_replica_count_sets_the_replicas():
    objects = hc.render({"backend": {"hpa": {"enabled": False}, "replicaCount": 5}, "worker": {"replicaCount": 3}})
    deployments = hc.named(objects, "Deployment")

    assert deployments["soc-agent-backend"]["spec"]["replicas"] == 5
    assert deployments["soc-agent-worker"]["spec"]["replicas"] == 3


def test_an_upgrade_keeps_the_count_the_hpa_chose(cluster):
    # An HPA at 20 pods: the upgrade must neither set the chart's 4 nor drop the field (= 1 pod).
    cluster.add(live_deployment("soc-agent-backend", 20))
    cluster.add(live_deployment("soc-agent-worker", 7))

    objects = cluster.render(hc.load_values(hc.PRODUCTION_VALUES))
    deployments = hc.named(objects, "Deployment")

    assert deployments["soc-agent-backend"]["spec"]["replicas"] == 20
    assert deployments["soc-agent-worker"]["spec"]["replicas"] == 7
    assert "/apis/apps/v1/namespaces/default/deployments/soc-agent-backend" in cluster.requests


def test_an_upgrade_that_finds_no_deployment_leaves_the_count_out(cluster):
    objects = cluster.render(hc.load_values(hc.PRODUCTION_VALUES))

    assert "replicas" not in hc.find(objects, "Deployment", "soc-agent-backend")["spec"]
