"""values.schema.json and validateValues: mistakes stop `helm install/upgrade/template/lint` with a
message that names the key, instead of being silently ignored."""

import json

import pytest

from tests.chart import helmchart as hc

pytestmark = pytest.mark.chart

SCHEMA = json.loads((hc.CHART_DIR / "values.schema.json").read_text())


@pytest.mark.parametrize(("values", "message"), [
    ({"backend": {"replicaCount": "two"}}, "/backend/replicaCount': got string, want integer"),
    ({"wroker": {"replicaCount": 2}}, "additional properties 'wroker' not allowed"),
    ({"backend": {"replicas": 2}}, "additional properties 'replicas' not allowed"),
    ({"backend": {"env": {"REDIS_HOST": "redis"}}}, "additional properties 'REDIS_HOST' not allowed"),
    ({"ingress": {"hosts": [{"host": "soc.example.com", "paths": ["/"]}]}}, "additional properties 'paths' not allowed"),
    ({"backend": {"image": {"tag": "latest"}}}, "/backend/image/tag"),
    ({"backend": {"image": {"pullPolicy": "Sometimes"}}}, "/backend/image/pullPolicy"),
    ({"backend": {"env": {"DJANGO_ALLOWED_HOSTS": "soc.example.com,*"}}}, "/backend/env/DJANGO_ALLOWED_HOSTS"),
    ({"backend": {"env": {"DJANGO_DEBUG": "yes"}}}, "/backend/env/DJANGO_DEBUG"),
    ({"backend": {"env": {"LOG_FORMAT": "xml"}}}, "/backend/env/LOG_FORMAT"),
    ({"backend": {"env": {"MAX_STORED_THREATS": "-5"}}}, "/backend/env/MAX_STORED_THREATS"),
    ({"backend": {"env": {"OTEL_EXPORTER_OTLP_PROTOCOL": "http"}}}, "/backend/env/OTEL_EXPORTER_OTLP_PROTOCOL"),
    ({"backend": {"resources": {"requests": {"cpu": "lots"}}}}, "/backend/resources/requests/cpu"),
    ({"backend": {"hpa": {"targetCPUUtilizationPercentage": 150}}}, "/backend/hpa/targetCPUUtilizationPercentage"),
    ({"redis": {"service": {"port": 70000}}}, "/redis/service/port"),
    ({"externalDatabase": {"url": "mysql://db/soc"}}, "/externalDatabase/url"),
])
def test_the_schema_rejects_unknown_keys_and_bad_types(values, message):
    with pytest.raises(hc.helm.HelmValuesError) as refused:
        hc.render(values)

    assert message in str(refused.value)


@pytest.mark.parametrize(("values", "message"), [
    ({"postgresql": {"enabled": False}}, "no database"),
    ({"externalDatabase": {"url": "postgres://u:p@db:5432/soc"}}, "choose one database"),
    ({"redis": {"enabled": False}}, "redis.enabled=false needs backend.env.REDIS_URL"),
    ({"backend": {"hpa": {"minReplicas": 5, "maxReplicas": 3}, "replicaCount": 4}}, "minReplicas (5) is above"),
    ({"ingress": {"hosts": []}}, "at least one ingress.hosts entry"),
])
def test_cross_field_mistakes_fail_the_render_with_a_clear_message(values, message):
    with pytest.raises(hc.helm.HelmRenderError, match=None) as refused:
        hc.render(values)

    assert message in str(refused.value)


def test_values_set_on_the_command_line_pass_the_schema():
    """--set turns `true` and `30` into a boolean and a number; the env keys accept both."""
    values = hc.helm.parse_set_string(
        "backend.env.DJANGO_DEBUG=false,backend.env.THREAT_GENERATION_INTERVAL=30,backend.env.MAX_STORED_THREATS=500")

    hc.chart().validate_schema(values)


def test_every_object_of_ours_in_the_schema_refuses_unknown_keys():
    open_objects = []

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and node.get("additionalProperties") is not False:
                open_objects.append(where)
            for key, child in node.items():
                walk(child, f"{where}/{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{where}/{index}")

    walk(SCHEMA, "#")
    assert open_objects == []


def test_the_schema_describes_exactly_the_keys_of_values_yaml():
    from tests.chart.test_seed_values import VALUE_KEYS

    def schema_keys(node, prefix=""):
        node = _resolve(node)
        for key, child in node.get("properties", {}).items():
            child = _resolve(child)
            # Kubernetes objects given whole (affinity, HPA behavior) are one value, like annotations.
            whole = f"{prefix}{key}" == "ingress.annotations" or key in ("affinity", "behavior")
            if child.get("type") == "object" and child.get("properties") and not whole:
                yield from schema_keys(child, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    # `global` is Helm's (what a parent chart shares with its subcharts), not a value of ours.
    assert sorted(key for key in schema_keys(SCHEMA) if key != "global") == sorted(VALUE_KEYS)


def _resolve(node):
    while "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].split("/")[-1]]
    return node
