"""One vocabulary (ARCHITECTURE §8): the variables rendered into every application container are
exactly the ones socproject/settings.py reads, found by reading settings.py itself. A variable
added to settings without the chart (or a chart variable nothing reads) fails here."""

import ast
import re

import pytest

from tests.chart import helmchart as hc

pytestmark = pytest.mark.chart

SETTINGS = hc.REPO_ROOT / "socproject" / "settings.py"
ENV_HELPERS = {"env_str", "env_bool", "env_int", "env_float", "env_list", "env_pairs", "env_networks", "env_secret"}
APP_COMPONENTS = ("backend", "worker", "beat", "migrate", "seed")


def variables_read_by_settings():
    """(plain names, names also readable as NAME_FILE) from the env_* calls and os.environ reads."""
    tree = ast.parse(SETTINGS.read_text())
    names, secrets = set(), set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
            continue
        function = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        name = node.args[0].value
        if not isinstance(name, str):
            continue
        if function in ENV_HELPERS:
            names.add(name)
            if function == "env_secret":
                secrets.add(name)
        elif function in ("get", "getenv") and ast.unparse(node.func) in ("os.environ.get", "os.getenv"):
            if name.isupper() and name != "DJANGO_SETTINGS_MODULE":
                names.add(name)
    return names, secrets


def test_the_settings_parser_finds_the_documented_variables():
    names, secrets = variables_read_by_settings()

    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "LOG_LEVEL", "LLM_TIMEOUT"} <= names
    assert secrets >= {"DJANGO_SECRET_KEY", "LLM_API_KEY"}


@pytest.mark.parametrize("values_name", ["default", "production", "external-services-values"])
@pytest.mark.parametrize("component", APP_COMPONENTS)
def test_every_application_container_gets_exactly_the_variables_settings_reads(component, values_name):
    values = {"default": {}, "production": hc.load_values(hc.PRODUCTION_VALUES)}.get(values_name)
    if values is None:
        values = hc.load_values(hc.CI_VALUES_DIR / f"{values_name}.yaml")
    objects = hc.render(values)
    pods = [p for p in hc.pod_templates(objects) if p[1]["labels"]["app.kubernetes.io/component"] == component]
    if not pods:
        pytest.skip(f"no {component} pod with these values")
    names, secrets = variables_read_by_settings()

    for container in hc.containers(pods[0][2]):
        rendered = hc.env_names(objects, container)
        assert len(rendered) == len(set(rendered)), f"{container['name']}: a variable is set twice"
        # Each secret may come as NAME or NAME_FILE (settings reads either), never both.
        expected = {name for name in names if name not in secrets}
        for name in secrets:
            assert (name in rendered) != (f"{name}_FILE" in rendered), name
            expected.add(name if name in rendered else f"{name}_FILE")
        missing, extra = sorted(expected - set(rendered)), sorted(set(rendered) - expected)
        assert not missing, (f"{component}/{container['name']}: settings.py reads {missing} but the chart does not set "
                             "them: add each to backend.env in helm/charts/soc-agent/values.yaml (with its ## @param "
                             "line and a values.schema.json entry), or to the Secret if it is a secret")
        assert not extra, f"{component}/{container['name']}: the chart sets {extra}, which settings.py never reads"


def test_backend_env_keys_in_values_are_settings_variables():
    names, _ = variables_read_by_settings()
    keys = set(hc.load_values(hc.CHART_DIR / "values.yaml")["backend"]["env"])

    assert keys <= names
    assert names - keys == {"DJANGO_SECRET_KEY", "DATABASE_URL", "LLM_API_KEY"}


def test_the_configuration_doc_lists_every_variable():
    doc = (hc.REPO_ROOT / "docs" / "configuration.md").read_text()  # the README's Configuration section, moved
    section = doc.split("# Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", section))
    names, _ = variables_read_by_settings()

    assert names <= documented
