"""What an upgrade does to a running release: rendered as Helm's upgrade (`.Release.IsUpgrade`)
with `lookup` answered by a fake API holding the release's live objects (tests/chart/fakeapi.py)."""

import copy

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


# --- 4. pre-flight: an upgrade Kubernetes would refuse half-way, or one without the release's values --

def merged(base, *layers):
    """Values layered as Helm layers -f files and --set: nested keys merge, later ones win."""
    result = copy.deepcopy(base)
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(result.get(key), dict):
                result[key] = merged(result[key], value)
            else:
                result[key] = copy.deepcopy(value)
    return result


# The seed's production install: values-production.yaml plus the two --set image lines.
PRODUCTION = merged(hc.load_values(hc.PRODUCTION_VALUES),
                    {"backend": {"image": {"repository": "gcr.io/my-project/soc-backend"}},
                     "frontend": {"image": {"repository": "gcr.io/my-project/soc-frontend"}}})


def running(cluster, previous_values):
    """Put in the fake cluster what a release installed with `previous_values` runs."""
    for obj in hc.render(previous_values):
        if obj["kind"] in ("StatefulSet", "Deployment"):
            obj["metadata"]["annotations"].pop("test/source", None)
            cluster.add(obj)


def test_an_upgrade_without_the_production_values_is_refused_before_the_migration_runs(cluster):
    # `helm upgrade soc-agent ./charts/soc-agent --set backend.image.tag=1.2.4`: Helm takes chart
    # defaults plus that --set, i.e. pullPolicy Never on a release that pulls from a registry.
    running(cluster, PRODUCTION)

    with pytest.raises(hc.helm.HelmRenderError, match="pullPolicy Never") as refused:
        cluster.render({"backend": {"image": {"tag": "1.2.4"}}, "postgresql": {"persistence": {"size": "50Gi"}}})

    assert "--reuse-values" in str(refused.value)


def test_production_values_on_a_default_release_are_refused_for_the_database_volume(cluster):
    # `helm upgrade ... -f values-production.yaml` on a release installed with defaults: 8Gi -> 50Gi.
    running(cluster, {})

    with pytest.raises(hc.helm.HelmRenderError, match="volumeClaimTemplates") as refused:
        cluster.render(PRODUCTION)

    assert "8Gi" in str(refused.value) and "50Gi" in str(refused.value)


def test_an_upgrade_with_the_release_values_passes(cluster):
    running(cluster, PRODUCTION)

    objects = cluster.render(merged(PRODUCTION, {"backend": {"image": {"tag": "1.2.4"}}}))

    assert hc.find(objects, "StatefulSet")["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert "/apis/apps/v1/namespaces/default/statefulsets/soc-agent-postgresql" in cluster.requests


def test_the_checks_can_be_switched_off_and_never_run_on_install(cluster):
    running(cluster, {})

    assert cluster.render(merged(PRODUCTION, {"upgradeChecks": {"enabled": False}}))
    assert cluster.render(PRODUCTION, is_upgrade=False, is_install=True)
