"""The seed README's `helm install` and `helm upgrade` command lines, run through Helm's own install
action (client-side dry run: chart loading, schema, kubeVersion check, hooks, NOTES; no cluster),
with `-f` files and `--set` flags parsed by Helm's parsers and layered in Helm's order.

Where the other seed commands are checked: deploy.sh / teardown.sh in test_scripts.py; the
kubectl label and name lines in test_render.py and test_docs.py; upgrades' hook and kept secrets
in test_render.py and test_kept_secrets.py.
"""

import shlex

import pytest

from tests.chart import helmchart as hc

pytestmark = pytest.mark.chart

INSTALLS = [
    "helm install soc-agent ./charts/soc-agent",
    "helm install soc-agent ./charts/soc-agent -f values-production.yaml",
    "helm install soc-agent ./charts/soc-agent --set backend.replicaCount=4",
    "helm install soc-agent ./charts/soc-agent -f values-production.yaml"
    " --set backend.image.repository=gcr.io/my-project/soc-backend"
    " --set frontend.image.repository=gcr.io/my-project/soc-frontend",
]


def parse(command):
    """(release, chart path, user values) from a `helm install/upgrade` line run in helm/."""
    words = shlex.split(command)
    assert words[:2] in (["helm", "install"], ["helm", "upgrade"])
    release, chart_path, rest = words[2], hc.HELM_DIR / words[3], words[4:]
    values = {}
    files = [rest[i + 1] for i, word in enumerate(rest) if word == "-f"]
    sets = [rest[i + 1] for i, word in enumerate(rest) if word == "--set"]
    for name in files:  # helm applies -f files first, then --set, later ones winning
        _merge(values, hc.helm.values_from_yaml((hc.HELM_DIR / name).read_text()))
    for expression in sets:
        _merge(values, hc.helm.parse_set_string(expression))
    return release, chart_path, values


def _merge(into, update):
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


@pytest.fixture(scope="module")
def helm_client():
    # No cluster: an address nothing listens on, releases kept in memory.
    config = hc.helm.Config(storage_driver="memory", kube_apiserver="http://127.0.0.1:9", namespace="default")
    yield config
    config.close()


@pytest.mark.parametrize("command", INSTALLS)
def test_the_seed_install_commands_pass_helms_install_action(helm_client, command):
    release, chart_path, values = parse(command)

    result = helm_client.install(str(chart_path), release, values, dry_run="client")

    assert result["name"] == "soc-agent" and result["chart_version"] == hc.chart().metadata["version"]
    assert "name: soc-agent-backend" in result["manifest"]
    assert "SOC Agent System" in result["notes"]


def test_the_production_overrides_reach_the_manifest(helm_client):
    _, chart_path, values = parse(INSTALLS[-1])

    manifest = helm_client.install(str(chart_path), "soc-agent", values, dry_run="client")["manifest"]

    assert f"image: gcr.io/my-project/soc-backend:{hc.chart().metadata['appVersion']}" in manifest
    assert "image: gcr.io/my-project/soc-frontend:" in manifest
    assert "imagePullPolicy: Always" in manifest and "imagePullPolicy: Never" not in manifest


def test_a_typo_on_the_command_line_is_refused_by_the_install_action(helm_client):
    _, chart_path, values = parse("helm install soc-agent ./charts/soc-agent --set wroker.replicaCount=2")

    with pytest.raises(hc.helm.HelmError, match="wroker"):
        helm_client.install(str(chart_path), "soc-agent", values, dry_run="client")
