"""helm/deploy.sh and helm/teardown.sh: shellcheck-clean, clear failures when a tool is missing, and
the seed's six steps in order. kind, kubectl, helm and docker are replaced by recording stubs on
PATH (this machine has no container engine); the scripts themselves run for real in bash."""

import os
import shutil
import subprocess
import textwrap

import pytest

from tests.chart import helmchart as hc

pytestmark = pytest.mark.chart

SCRIPTS = [hc.HELM_DIR / "deploy.sh", hc.HELM_DIR / "teardown.sh"]
TOOLS = ("kind", "kubectl", "helm", "docker")
# What the scripts may use from the system besides the four tools.
BASE_COMMANDS = ("bash", "sh", "dirname", "sed", "grep", "cat", "printf", "env")


@pytest.fixture
def bin_dir(tmp_path):
    """A PATH with only the basic commands (linked from the system) and no kind/kubectl/helm/docker."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for command in BASE_COMMANDS:
        found = shutil.which(command)
        if found:
            (directory / command).symlink_to(found)
    return directory


def add_stub(bin_dir, tool, log, script=""):
    """A stand-in for `tool` that appends its arguments to `log`, then runs `script` (exit 0 by default)."""
    stub = bin_dir / tool
    stub.write_text(textwrap.dedent(f"""\
        #!/bin/bash
        echo "{tool} $*" >> {log}
        {script}
        exit 0
        """))
    stub.chmod(0o755)


def run(script, bin_dir, **env):
    return subprocess.run(
        ["bash", str(script)], env={"PATH": str(bin_dir), "HOME": str(bin_dir.parent), **env},
        capture_output=True, text=True, timeout=60,
    )


def calls(log):
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (.ci/run installs it)")
def test_the_scripts_pass_shellcheck():
    result = subprocess.run(["shellcheck", "--severity=style", *map(str, SCRIPTS)], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout


def test_the_scripts_are_executable():
    for script in SCRIPTS:
        assert os.access(script, os.X_OK), script


def test_deploy_names_every_missing_tool_and_stops_before_doing_anything(bin_dir, tmp_path):
    log = tmp_path / "calls.log"
    add_stub(bin_dir, "docker", log)

    result = run(hc.HELM_DIR / "deploy.sh", bin_dir)

    assert result.returncode == 1
    for tool in ("kind", "kubectl", "helm"):
        assert f"deploy.sh: missing: {tool} (install: https://" in result.stderr
    assert "not found on PATH: kind kubectl helm" in result.stderr
    assert "missing: docker" not in result.stderr
    assert calls(log) == []


def test_deploy_explains_a_docker_engine_that_does_not_answer(bin_dir, tmp_path):
    log = tmp_path / "calls.log"
    for tool in ("kind", "kubectl", "helm"):
        add_stub(bin_dir, tool, log)
    add_stub(bin_dir, "docker", log, script='[ "$1" = info ] && exit 1')

    result = run(hc.HELM_DIR / "deploy.sh", bin_dir)

    assert result.returncode == 1
    assert "docker is installed but its engine does not answer" in result.stderr
    assert calls(log) == ["docker info"]


IMAGE_ID = "0123456789abcdef" * 4


def _all_stubs(bin_dir, log, existing_cluster=False, existing_release=False):
    clusters = "soc-demo" if existing_cluster else ""
    add_stub(bin_dir, "kind", log, script=f'[ "$1 $2" = "get clusters" ] && echo "{clusters}"')
    add_stub(bin_dir, "kubectl", log)
    add_stub(bin_dir, "docker", log, script=f'[ "$1 $2" = "image inspect" ] && echo "sha256:{IMAGE_ID}"')
    add_stub(bin_dir, "helm", log, script="" if existing_release else '[ "$1" = status ] && exit 1')


def test_deploy_runs_the_seed_steps_in_order(bin_dir, tmp_path):
    log = tmp_path / "calls.log"
    _all_stubs(bin_dir, log)
    version = hc.chart().metadata["appVersion"]
    # A tag per build (the image ID): the same tag every time would roll nothing out (issue 19).
    tag = f"{version}-{IMAGE_ID[:12]}"

    result = run(hc.HELM_DIR / "deploy.sh", bin_dir)

    assert result.returncode == 0, result.stderr
    chart, root = hc.CHART_DIR, hc.REPO_ROOT
    assert calls(log) == [
        "docker info",
        "kind get clusters",
        f"kind create cluster --name soc-demo --config {hc.HELM_DIR}/kind-config.yaml --wait 120s",
        "kubectl config use-context kind-soc-demo",
        f"docker build -t soc-backend:{version} {root}",
        f"docker image inspect --format {{{{.Id}}}} soc-backend:{version}",
        f"docker tag soc-backend:{version} soc-backend:{tag}",
        f"docker build --build-arg BACKEND_IMAGE=soc-backend:{tag} -t soc-frontend:{tag} {root}/docker/frontend",
        f"kind load docker-image soc-backend:{tag} soc-frontend:{tag} --name soc-demo",
        "kubectl apply -f https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.12.1/deploy/static/provider/kind/deploy.yaml",
        # Not `kubectl wait pod -l ...`: right after apply the pod may not exist yet (issue 19).
        "kubectl rollout status deployment/ingress-nginx-controller --namespace ingress-nginx --timeout=180s",
        "helm status soc-agent",
        f"helm install soc-agent {chart} --set backend.image.tag={tag} --set frontend.image.tag={tag} --wait --timeout 10m",
        "kubectl rollout status deployment/soc-agent-backend --timeout=180s",
        "kubectl get pods -l app.kubernetes.io/instance=soc-agent -o wide",
        "kubectl get hpa,ingress -l app.kubernetes.io/instance=soc-agent",
        "helm test soc-agent --timeout 2m",
    ]
    assert "http://localhost:8080" in result.stdout
    for step in range(1, 7):
        assert f"==> {step}/6 " in result.stdout


def test_deploy_reuses_the_cluster_and_upgrades_an_existing_release(bin_dir, tmp_path):
    log = tmp_path / "calls.log"
    _all_stubs(bin_dir, log, existing_cluster=True, existing_release=True)

    result = run(hc.HELM_DIR / "deploy.sh", bin_dir)

    assert result.returncode == 0, result.stderr
    assert not [c for c in calls(log) if c.startswith("kind create")]
    assert [c.split()[1] for c in calls(log) if c.startswith("helm ")] == ["status", "upgrade", "test"]


def test_deploy_says_which_step_failed(bin_dir, tmp_path):
    log = tmp_path / "calls.log"
    _all_stubs(bin_dir, log)
    add_stub(bin_dir, "docker", log, script='[ "$1" = build ] && exit 3')

    result = run(hc.HELM_DIR / "deploy.sh", bin_dir)

    assert result.returncode == 3
    assert 'failed during "3/6 Building and loading the images' in result.stderr
    assert not [c for c in calls(log) if c.startswith("helm ")]


def test_the_kind_config_publishes_the_ingress_on_8080_and_names_the_cluster():
    config = hc.load_values(hc.HELM_DIR / "kind-config.yaml")
    control_plane = config["nodes"][0]

    assert config["name"] == "soc-demo"
    assert {"containerPort": 80, "hostPort": 8080, "protocol": "TCP"} in control_plane["extraPortMappings"]
    assert 'node-labels: "ingress-ready=true"' in control_plane["kubeadmConfigPatches"][0]


def test_teardown_uninstalls_the_release_then_deletes_the_cluster(bin_dir, tmp_path):
    log = tmp_path / "calls.log"
    _all_stubs(bin_dir, log, existing_cluster=True, existing_release=True)

    result = run(hc.HELM_DIR / "teardown.sh", bin_dir)

    assert result.returncode == 0, result.stderr
    assert calls(log) == [
        "kind get clusters",
        "helm status soc-agent --kube-context kind-soc-demo",
        "helm uninstall soc-agent --kube-context kind-soc-demo",
        "kind delete cluster --name soc-demo",
    ]


def test_teardown_without_a_cluster_does_nothing(bin_dir, tmp_path):
    log = tmp_path / "calls.log"
    _all_stubs(bin_dir, log)

    result = run(hc.HELM_DIR / "teardown.sh", bin_dir)

    assert result.returncode == 0
    assert "nothing to remove" in result.stdout
    assert calls(log) == ["kind get clusters"]


def test_teardown_without_kind_says_so(bin_dir):
    result = run(hc.HELM_DIR / "teardown.sh", bin_dir)

    assert result.returncode == 1
    assert "kind is not on PATH" in result.stderr


def test_deploy_keeps_a_tag_given_in_image_tag(bin_dir, tmp_path):
    log = tmp_path / "calls.log"
    _all_stubs(bin_dir, log)

    result = run(hc.HELM_DIR / "deploy.sh", bin_dir, IMAGE_TAG="1.2.3")

    assert result.returncode == 0, result.stderr
    assert not [c for c in calls(log) if c.startswith("docker image inspect")]
    assert [c for c in calls(log) if c.startswith("helm install")][0].count("image.tag=1.2.3") == 2
