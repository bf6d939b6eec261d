"""Every rendered manifest against the Kubernetes API schemas (1.24, the seed's minimum, and current
releases) and against checkov's security checks; the Dockerfiles against hadolint.

kubernetes-validate 1.37 (in the app venv) knows Kubernetes 1.25-1.37; 1.24 needs its 1.29 release,
which lives with checkov and hadolint in .venv-scan (tests/chart/requirements-scan.txt, made by
.ci/run). Without that venv these tests skip locally and fail in CI.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.chart import helmchart as hc

pytestmark = [pytest.mark.chart, pytest.mark.integration]

SCAN_BIN = hc.REPO_ROOT / ".venv-scan" / "bin"
SKIPS = yaml.safe_load((hc.REPO_ROOT / "tests" / "chart" / "checkov-skips.yaml").read_text())
SCAN_NAMESPACE = "soc"
VALUE_SETS = {
    "default": {},
    "production": hc.load_values(hc.PRODUCTION_VALUES),
    **{path.stem: hc.load_values(path) for path in sorted(hc.CI_VALUES_DIR.glob("*.yaml"))},
}
CURRENT_VERSIONS = ["1.25.0", "1.30.0", "1.37.0"]


def scan_tool(name):
    tool = SCAN_BIN / name
    if not tool.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing: .ci/run must create .venv-scan")
        pytest.skip(f"{tool} not installed: python3 -m venv .venv-scan && .venv-scan/bin/pip install -r tests/chart/requirements-scan.txt")
    return str(tool)


def manifests(values):
    """Rendered objects as they would be applied (without the test's bookkeeping annotation)."""
    objects = hc.render(values, namespace=SCAN_NAMESPACE)
    for obj in objects:
        obj["metadata"]["annotations"].pop("test/source")
        if not obj["metadata"]["annotations"]:
            del obj["metadata"]["annotations"]
    return objects


@pytest.fixture(scope="module")
def manifest_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("manifests")
    files = {}
    for name, values in VALUE_SETS.items():
        files[name] = directory / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump_all(manifests(values)))
    return files


@pytest.mark.parametrize("version", CURRENT_VERSIONS)
@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_manifest_is_valid_for_current_kubernetes(name, version):
    for obj in manifests(VALUE_SETS[name]):
        kubernetes_validate.validate(obj, version, strict=True)


def validate_1_24(path):
    """(resources that passed, the validator's output) with Kubernetes 1.24 schemas."""
    result = subprocess.run([scan_tool("kubernetes-validate"), "--strict", "--kubernetes-version", "1.24.0", str(path)],
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    return len(re.findall(r"^INFO .* passed for resource .* against version 1\.24$", output, re.MULTILINE)), output


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_manifest_is_valid_for_kubernetes_1_24(manifest_files, name):
    documents = list(yaml.safe_load_all(manifest_files[name].read_text()))

    passed, output = validate_1_24(manifest_files[name])

    assert passed == len(documents), output
    assert "WARN" not in output and "ERROR" not in output, output


def test_the_1_24_check_fails_for_an_api_version_1_24_does_not_have(tmp_path):
    """extensions/v1beta1 Ingress was removed in 1.22: the validator finds no schema, nothing passes."""
    ingress = next(o for o in manifests({}) if o["kind"] == "Ingress")
    ingress["apiVersion"] = "extensions/v1beta1"
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(ingress))

    passed, output = validate_1_24(path)

    assert passed == 0 and "Couldn't find schema" in output


@pytest.fixture(scope="module")
def checkov_failures(manifest_files):
    """checkov over every value set at once: {value set name: [(check id, "Kind/name")]}."""
    arguments = [scan_tool("checkov")]
    for path in manifest_files.values():
        arguments += ["--file", str(path)]
    result = subprocess.run([*arguments, "--framework", "kubernetes", "--skip-download", "--output", "json",
                             "--quiet", "--compact"], capture_output=True, text=True, timeout=600)
    report = json.loads(result.stdout)
    assert report["summary"]["passed"] > 500, result.stderr[-2000:]
    failures = {name: [] for name in manifest_files}
    by_file = {path.name: name for name, path in manifest_files.items()}
    for failure in report["results"]["failed_checks"]:
        kind, namespace, name = failure["resource"].split(".", 2)
        assert namespace == SCAN_NAMESPACE, failure["resource"]
        failures[by_file[Path(failure["file_path"]).name]].append((failure["check_id"], f"{kind}/{name}"))
    return failures


def _skipped(check_id, resource):
    entry = SKIPS.get(check_id)
    return entry is not None and (entry["resources"] == "*" or resource in entry["resources"])


@pytest.mark.parametrize("name", VALUE_SETS)
def test_checkov_finds_nothing_beyond_the_justified_skip_list(checkov_failures, name):
    unexpected = [failure for failure in checkov_failures[name] if not _skipped(*failure)]

    assert unexpected == []


def test_every_skip_is_still_needed_and_justified(checkov_failures):
    found = {failure for failures in checkov_failures.values() for failure in failures}

    for check_id, entry in SKIPS.items():
        assert len(entry["reason"]) > 40, check_id
        resources = {resource for check, resource in found if check == check_id}
        assert resources, f"{check_id} is skipped but never found: remove it from checkov-skips.yaml"
        if entry["resources"] != "*":
            assert set(entry["resources"]) <= resources, f"{check_id}: stale resources in the skip list"
    assert len(SKIPS) <= 6


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "docker/frontend/Dockerfile"])
def test_the_dockerfiles_pass_hadolint(dockerfile):
    hadolint = scan_tool("hadolint")

    result = subprocess.run([hadolint, str(hc.REPO_ROOT / dockerfile)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout
