"""The chart's observability objects: off by default; when on, the dashboard, the alert rules and
the scrape targets are the ones the application serves (metric names: tests/test_observability.py)."""

import json

import pytest
import yaml

from tests.chart import helmchart as hc

pytestmark = pytest.mark.chart

ALL_ON = {"observability": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                            "dashboard": {"enabled": True}, "scrapeNamespace": "monitoring",
                            "labels": {"release": "kube-prometheus-stack"}}}
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def _one(objects, kind, component=None):
    found = [o for o in objects if o["kind"] == kind
             and (component is None or o["metadata"]["name"].endswith(f"-{component}"))]
    assert len(found) == 1, [o["metadata"]["name"] for o in found]
    return found[0]


def test_nothing_for_prometheus_or_grafana_is_rendered_by_default():
    objects = hc.render()
    assert not [o for o in objects if o["kind"] in MONITORING_KINDS]
    assert not [o for o in objects if o["metadata"].get("labels", {}).get("grafana_dashboard")]


def test_logs_are_json_by_default_in_the_chart():
    config = _one(hc.render(), "ConfigMap", "env")
    assert config["data"]["LOG_FORMAT"] == "json" and config["data"]["LOG_LEVEL"] == "INFO"


def test_the_dashboard_configmap_carries_the_sidecar_label_and_the_shipped_json():
    objects = hc.render(ALL_ON)
    dashboard = _one(objects, "ConfigMap", "dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    shipped = json.loads((hc.CHART_DIR / "files" / "grafana-dashboard.json").read_text())
    assert json.loads(dashboard["data"]["soc-agent-overview.json"]) == shipped


def test_the_prometheus_rule_holds_the_shipped_groups():
    rule = _one(hc.render(ALL_ON), "PrometheusRule")
    shipped = yaml.safe_load((hc.CHART_DIR / "files" / "prometheus-rules.yaml").read_text())
    assert rule["spec"] == shipped
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_scrapes_target_the_backend_service_port_and_the_worker_metrics_port():
    objects = hc.render({**ALL_ON, "observability": {**ALL_ON["observability"], "workerMetricsPort": 9200}})
    backend_service = _one(objects, "Service", "backend")
    monitor = _one(objects, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= backend_service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in backend_service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"

    worker = _one(objects, "Deployment", "worker")
    pod_monitor = _one(objects, "PodMonitor")
    assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= worker["spec"]["template"]["metadata"][
        "labels"].items()
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "metrics", "containerPort": 9200, "protocol": "TCP"} in container["ports"]
    assert container["command"][-2:] == ["--metrics-port", "9200"]
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_the_scrape_namespace_may_reach_only_the_two_metrics_ports():
    policy = _one(hc.render(ALL_ON), "NetworkPolicy", "metrics")
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert {p["port"] for p in rule["ports"]} == {8000, 9100}
    assert policy["spec"]["podSelector"]["matchExpressions"][0]["values"] == ["backend", "worker"]


def test_without_workers_there_is_no_pod_monitor():
    objects = hc.render({**ALL_ON, "worker": {"enabled": False}})
    assert not [o for o in objects if o["kind"] == "PodMonitor"]
