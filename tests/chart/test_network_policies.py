"""NetworkPolicies that select the real pods (the original chart's selected none).

The rendered policies are evaluated with Kubernetes' rules against the rendered pod labels: a
connection from pod A to pod B on a port is allowed when every policy isolating A for egress (if
any) has a rule admitting B:port, and every policy isolating B for ingress (if any) has a rule
admitting A:port. Namespace selectors match the `kubernetes.io/metadata.name` label Kubernetes
puts on every namespace (1.21+).
"""

import pytest

from tests.chart import helmchart as hc

pytestmark = pytest.mark.chart

NAMESPACE = hc.NAMESPACE
INGRESS_CONTROLLER = {"namespace": "ingress-nginx", "labels": {"app.kubernetes.io/name": "ingress-nginx"}}
OUTSIDE = {"namespace": NAMESPACE, "labels": {"app": "something-else"}}


def pods_by_component(objects):
    return {
        metadata["labels"]["app.kubernetes.io/component"]: {"namespace": NAMESPACE, "labels": metadata["labels"]}
        for _, metadata, _ in hc.pod_templates(objects)
    }


def policies(objects):
    return [o for o in objects if o["kind"] == "NetworkPolicy"]


def _peer_matches(peer, pod, policy_namespace):
    namespace_selector, pod_selector = peer.get("namespaceSelector"), peer.get("podSelector")
    if "ipBlock" in peer:
        return False  # pods have cluster addresses; the chart uses no ipBlock for pods
    if namespace_selector is None:
        namespace_ok = pod["namespace"] == policy_namespace
    else:
        namespace_ok = hc.labels_match(namespace_selector, {"kubernetes.io/metadata.name": pod["namespace"]})
    return namespace_ok and (pod_selector is None or hc.labels_match(pod_selector, pod["labels"]))


def _rule_admits(rule, peers_key, other, port):
    peers = rule.get(peers_key)
    ports = rule.get("ports")
    peer_ok = not peers or any(_peer_matches(peer, other, NAMESPACE) for peer in peers)
    port_ok = not ports or any(p.get("port") in (None, port) and p.get("protocol", "TCP") == "TCP" for p in ports)
    return peer_ok and port_ok


def _isolating(all_policies, pod, direction):
    return [
        p for p in all_policies
        if pod["namespace"] == NAMESPACE and hc.labels_match(p["spec"]["podSelector"], pod["labels"])
        and direction in p["spec"].get("policyTypes", ["Ingress"])
    ]


def allowed(all_policies, source, destination, port):
    egress = _isolating(all_policies, source, "Egress")
    if egress and not any(_rule_admits(r, "to", destination, port) for p in egress for r in p["spec"].get("egress") or []):
        return False
    ingress = _isolating(all_policies, destination, "Ingress")
    if ingress and not any(_rule_admits(r, "from", source, port) for p in ingress for r in p["spec"].get("ingress") or []):
        return False
    return True


@pytest.fixture(scope="module")
def rendered():
    objects = hc.render()
    return policies(objects), pods_by_component(objects)


def test_every_pod_is_isolated_both_ways(rendered):
    all_policies, pods = rendered

    for component, pod in pods.items():
        assert _isolating(all_policies, pod, "Ingress"), f"{component}: no ingress policy selects it"
        assert _isolating(all_policies, pod, "Egress"), f"{component}: no egress policy selects it"
    assert set(pods) == {"backend", "worker", "beat", "migrate", "seed", "frontend", "redis", "postgresql", "test"}


def test_every_selector_in_every_policy_matches_a_rendered_pod(rendered):
    all_policies, pods = rendered

    for policy in all_policies:
        name = policy["metadata"]["name"]
        assert any(hc.labels_match(policy["spec"]["podSelector"], p["labels"]) for p in pods.values()), name
        for rule in (policy["spec"].get("ingress") or []) + (policy["spec"].get("egress") or []):
            for peer in rule.get("from", []) + rule.get("to", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    assert any(hc.labels_match(peer["podSelector"], p["labels"]) for p in pods.values()), (name, peer)


@pytest.mark.parametrize(("source", "destination", "port"), [
    ("frontend", "backend", 8000),
    ("ingress-controller", "backend", 8000),
    ("ingress-controller", "frontend", 8080),
    ("test", "backend", 8000),
    ("test", "frontend", 8080),
    ("backend", "redis", 6379),
    ("worker", "redis", 6379),
    ("beat", "redis", 6379),
    ("backend", "postgresql", 5432),
    ("worker", "postgresql", 5432),
    ("migrate", "postgresql", 5432),
    ("seed", "postgresql", 5432),
    ("seed", "redis", 6379),
])
def test_the_connections_the_system_needs_are_allowed(rendered, source, destination, port):
    all_policies, pods = rendered
    pods = {**pods, "ingress-controller": INGRESS_CONTROLLER}

    assert allowed(all_policies, pods[source], pods[destination], port)


@pytest.mark.parametrize(("source", "destination", "port"), [
    ("frontend", "redis", 6379),
    ("frontend", "postgresql", 5432),
    ("ingress-controller", "redis", 6379),
    ("ingress-controller", "worker", 8000),
    ("outside", "backend", 8000),
    ("outside", "redis", 6379),
    ("outside", "postgresql", 5432),
    ("backend", "worker", 8000),
    ("redis", "backend", 8000),
    ("redis", "postgresql", 5432),
    ("postgresql", "redis", 6379),
    ("test", "redis", 6379),
    ("frontend", "backend", 5432),
])
def test_everything_else_is_refused(rendered, source, destination, port):
    all_policies, pods = rendered
    pods = {**pods, "ingress-controller": INGRESS_CONTROLLER, "outside": OUTSIDE}

    assert not allowed(all_policies, pods[source], pods[destination], port)


ANYWHERE = {"namespace": "elsewhere", "labels": {"k8s-app": "anything"}}


def test_application_pods_may_reach_dns_and_the_collector(rendered):
    all_policies, pods = rendered

    for component in ("backend", "worker", "beat", "migrate"):
        for port in (53, 4317):
            assert allowed(all_policies, pods[component], ANYWHERE, port), (component, port)
        assert not allowed(all_policies, pods[component], ANYWHERE, 22), component


@pytest.mark.parametrize("port", [443, 4318, 5432, 6379])
def test_with_the_bundled_databases_nothing_else_leaves_the_release(rendered, port):
    # Issue 19: 443, 4318, 5432 and 6379 were open to any destination, bundled databases or not.
    all_policies, pods = rendered

    assert not allowed(all_policies, pods["backend"], ANYWHERE, port)
    assert allowed(all_policies, pods["backend"], pods["postgresql"], 5432)


def test_the_egress_follows_the_urls_configured():
    objects = hc.render({
        "postgresql": {"enabled": False}, "externalDatabase": {"url": "postgres://soc:pw@db.internal:6432/soc"},
        "redis": {"enabled": False},
        "backend": {"env": {"REDIS_URL": "rediss://:pw@cache.internal:6380/0", "LLM_BASE_URL": "https://llm.example/v1",
                            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.monitoring:4318",
                            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}}})
    all_policies, pods = policies(objects), pods_by_component(objects)

    for port in (6432, 6380, 443, 4318):
        assert allowed(all_policies, pods["worker"], ANYWHERE, port), port
    for port in (5432, 6379, 4317):
        assert not allowed(all_policies, pods["worker"], ANYWHERE, port), port


def test_extra_egress_rules_are_added():
    rule = {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 8443, "protocol": "TCP"}]}
    objects = hc.render({"networkPolicy": {"appEgress": [rule]}})

    assert rule in hc.find(objects, "NetworkPolicy", "soc-agent-app")["spec"]["egress"]


def test_a_service_monitor_without_a_scrape_namespace_is_refused():
    # The pods' policies would silently drop Prometheus's scrapes.
    with pytest.raises(hc.helm.HelmRenderError, match="observability.scrapeNamespace"):
        hc.render({"observability": {"serviceMonitor": {"enabled": True}}})

    objects = hc.render({"observability": {"serviceMonitor": {"enabled": True}, "scrapeNamespace": "monitoring"}})
    prometheus = {"namespace": "monitoring", "labels": {"app.kubernetes.io/name": "prometheus"}}
    assert allowed(policies(objects), prometheus, pods_by_component(objects)["backend"], 8000)


def test_with_external_services_the_policies_still_select_only_existing_pods():
    objects = hc.render(hc.load_values(hc.CI_VALUES_DIR / "external-services-values.yaml"))
    pods = pods_by_component(objects)

    assert "redis" not in pods and "postgresql" not in pods and "frontend" not in pods
    for policy in policies(objects):
        assert any(hc.labels_match(policy["spec"]["podSelector"], p["labels"]) for p in pods.values()), policy["metadata"]["name"]


def test_services_select_their_pods_and_target_a_named_container_port():
    objects = hc.render()
    pods = hc.pod_templates(objects)

    for service in hc.named(objects, "Service").values():
        matching = [spec for _, metadata, spec in pods if hc.labels_match({"matchLabels": service["spec"]["selector"]}, metadata["labels"])]
        assert len(matching) == 1, service["metadata"]["name"]
        port_names = {p["name"] for c in matching[0]["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_disruption_budgets_select_their_pods():
    objects = hc.render()
    pods = hc.pod_templates(objects)

    budgets = hc.named(objects, "PodDisruptionBudget")
    assert set(budgets) == {"soc-agent-backend", "soc-agent-worker", "soc-agent-frontend"}
    for name, budget in budgets.items():
        selected = [o["metadata"]["name"] for o, metadata, _ in pods if hc.labels_match(budget["spec"]["selector"], metadata["labels"])]
        assert selected == [name]


def test_disabling_network_policies_renders_none():
    assert policies(hc.render({"networkPolicy": {"enabled": False}})) == []
