"""Render the Helm chart with Helm's own engine (helm-python-sdk: Helm's Go SDK, no `helm` binary)
and read the result as Kubernetes objects.

`render()` returns the list of objects of one `helm template`-like run; the helpers pick pods
(every pod template: Deployments, StatefulSets, Jobs, bare Pods), containers and their
environment, so tests can ask "what would the cluster run" without a cluster.
"""

import base64
import functools
import re
from pathlib import Path

import helm_python as helm
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
HELM_DIR = REPO_ROOT / "helm"
CHART_DIR = HELM_DIR / "charts" / "soc-agent"
PRODUCTION_VALUES = HELM_DIR / "values-production.yaml"
CI_VALUES_DIR = CHART_DIR / "ci"
RELEASE = "soc-agent"
NAMESPACE = "default"
POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "Job")


@functools.cache
def chart():
    return helm.Chart.load(CHART_DIR)


def load_values(path):
    return yaml.safe_load(Path(path).read_text()) or {}


def render_files(values=None, release=RELEASE, namespace=NAMESPACE, **options):
    """Template path -> rendered text, without the blanks Helm returns for disabled templates."""
    rendered = chart().render(values or {}, name=release, namespace=namespace, **options)
    return {path: text for path, text in rendered.items() if text.strip()}


def render(values=None, release=RELEASE, namespace=NAMESPACE, **options):
    """Every Kubernetes object the chart renders (NOTES.txt excluded)."""
    objects = []
    for path, text in sorted(render_files(values, release, namespace, **options).items()):
        if path.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                document.setdefault("metadata", {}).setdefault("annotations", {})
                document["metadata"]["annotations"].setdefault("test/source", path)
                objects.append(document)
    return objects


def notes(values=None, release=RELEASE, **options):
    return render_files(values, release, **options).get("soc-agent/templates/NOTES.txt", "")


def find(objects, kind, name=None):
    """The one object of `kind` (and `name`); fails when there is not exactly one."""
    matches = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in matches]}"
    return matches[0]


def named(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_templates(objects):
    """(owner object, pod metadata, pod spec) for everything that runs containers."""
    pods = []
    for obj in objects:
        if obj["kind"] in POD_TEMPLATE_KINDS:
            template = obj["spec"]["template"]
            pods.append((obj, template["metadata"], template["spec"]))
        elif obj["kind"] == "Pod":
            pods.append((obj, obj["metadata"], obj["spec"]))
    return pods


def pod_of(objects, component):
    """(owner, metadata, spec) of the pod template whose component label is `component`."""
    matches = [p for p in pod_templates(objects) if p[1]["labels"].get("app.kubernetes.io/component") == component]
    assert len(matches) == 1, f"expected one pod template for {component}, found {len(matches)}"
    return matches[0]


def containers(spec, init=True):
    return list(spec.get("initContainers", []) if init else []) + list(spec["containers"])


def container(spec, name):
    return next(c for c in containers(spec) if c["name"] == name)


def env_names(objects, container_spec):
    """Every variable name the container gets: `env` entries plus the keys of `envFrom` sources."""
    names = [item["name"] for item in container_spec.get("env", [])]
    for source in container_spec.get("envFrom", []):
        if "configMapRef" in source:
            names += list(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            names += list(find(objects, "Secret", source["secretRef"]["name"])["data"])
    return names


def env_values(objects, container_spec):
    """Variable -> value as the pod would see it, resolving ConfigMaps and the chart's Secret."""
    values = {}
    for source in container_spec.get("envFrom", []):
        if "configMapRef" in source:
            values.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container_spec.get("env", []):
        if "value" in item:
            values[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"].get("secretKeyRef") or item["valueFrom"].get("configMapKeyRef")
        kind = "Secret" if "secretKeyRef" in item["valueFrom"] else "ConfigMap"
        sources = named(objects, kind)
        if ref["name"] not in sources:
            values[item["name"]] = ExternalRef(kind, ref["name"], ref["key"])
            continue
        data = sources[ref["name"]].get("data", {})
        if ref["key"] not in data:
            assert ref.get("optional"), f"{item['name']}: key {ref['key']} missing from {kind} {ref['name']}"
            continue
        values[item["name"]] = base64.b64decode(data[ref["key"]]).decode() if kind == "Secret" else data[ref["key"]]
    return values


class ExternalRef(tuple):
    """A value read from a Secret the chart does not create (existingSecret)."""

    def __new__(cls, kind, name, key):
        return super().__new__(cls, (kind, name, key))


def secret_data(objects, name=RELEASE):
    return {k: base64.b64decode(v).decode() for k, v in find(objects, "Secret", name).get("data", {}).items()}


def labels_match(selector, labels):
    """Kubernetes label-selector semantics (matchLabels + matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def values_params(values_file=CHART_DIR / "values.yaml"):
    """The `## @param key description` lines of values.yaml, in order."""
    params = []
    for line in Path(values_file).read_text().splitlines():
        match = re.match(r"\s*## @param (\S+) (.+)", line)
        if match:
            params.append((match.group(1), match.group(2)))
    return params
