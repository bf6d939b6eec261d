"""Every key of the seed README's configuration table: its default is the seed's, and setting it
with `--set` (parsed by Helm's own --set parser) changes the rendered cluster as documented.

Plus the keys the issue adds: redis.persistence.enabled, redis.auth.*, ingress.tls, worker.*,
beat.*, postgresql.* / externalDatabase.*, secrets.existingSecret, frontend.enabled.
A last test mutates *every* key of values.yaml and checks that some template reads it, so no key is
decoration (the original chart had several).
"""

import copy
import re
from pathlib import Path

import pytest

from tests.chart import helmchart as hc

pytestmark = pytest.mark.chart

SEED_README = hc.REPO_ROOT.parent / "shared" / "seed" / "helm-chart-README.md"
# The seed's configuration table, key by key (checked against the seed file when it is present).
SEED_KEYS = [
    "redis.enabled", "redis.image.repository", "redis.image.tag", "redis.service.port",
    "redis.resources.requests.cpu", "redis.resources.requests.memory",
    "backend.replicaCount", "backend.image.repository", "backend.image.tag", "backend.image.pullPolicy",
    "backend.service.port", "backend.resources.requests.cpu", "backend.resources.requests.memory",
    "backend.hpa.enabled", "backend.hpa.minReplicas", "backend.hpa.maxReplicas",
    "backend.hpa.targetCPUUtilizationPercentage", "backend.env.REDIS_URL",
    "backend.env.OTEL_EXPORTER_OTLP_ENDPOINT", "backend.env.LOG_LEVEL",
    "frontend.replicaCount", "frontend.image.repository", "frontend.image.tag", "frontend.image.pullPolicy",
    "ingress.enabled", "ingress.className", "ingress.hosts[0].host",
]
APP_COMPONENTS = ("backend", "worker", "beat", "migrate", "seed", "test")


def with_set(*expressions):
    """Values as `helm install --set a=b --set c=d` builds them."""
    values = {}
    for expression in expressions:
        _merge(values, hc.helm.parse_set_string(expression))
    return values


def _merge(into, update):
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def app_env(objects, component="backend"):
    spec = hc.pod_of(objects, component)[2]
    return hc.env_values(objects, spec["containers"][0])


def main_container(objects, component):
    return hc.pod_of(objects, component)[2]["containers"][0]


def test_the_seed_table_is_the_list_tested_here():
    if not SEED_README.exists():
        pytest.skip(f"seed README not beside the repository ({SEED_README})")
    table_keys = re.findall(r"^\| `([^`]+)` \|", SEED_README.read_text(), flags=re.MULTILINE)

    assert table_keys == SEED_KEYS


# --- defaults: what the seed's table says ---------------------------------------------------------


def test_defaults_are_the_seed_defaults():
    objects = hc.render()
    redis = main_container(objects, "redis")
    backend = main_container(objects, "backend")
    frontend = main_container(objects, "frontend")
    hpa = hc.find(objects, "HorizontalPodAutoscaler", "soc-agent-backend")["spec"]
    ingress = hc.find(objects, "Ingress", "soc-agent")["spec"]
    env = app_env(objects)

    assert redis["image"] == "redis:7.4.2-alpine"  # the seed's 7-alpine floated (issue 19)
    assert hc.find(objects, "Service", "soc-agent-redis")["spec"]["ports"][0]["port"] == 6379
    assert redis["resources"]["requests"] == {"cpu": "50m", "memory": "128Mi"}
    assert "replicas" not in hc.find(objects, "Deployment", "soc-agent-backend")["spec"]  # the HPA's (2-8)
    assert backend["image"].startswith("soc-backend:") and backend["imagePullPolicy"] == "Never"
    assert hc.find(objects, "Service", "soc-agent-backend")["spec"]["ports"][0]["port"] == 8000
    assert backend["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 8)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert env["REDIS_URL"] == "redis://soc-agent-redis:6379"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    assert env["LOG_LEVEL"] == "INFO"
    assert hc.find(objects, "Deployment", "soc-agent-frontend")["spec"]["replicas"] == 1
    assert frontend["image"].startswith("soc-frontend:") and frontend["imagePullPolicy"] == "Never"
    assert ingress["ingressClassName"] == "nginx"
    assert [rule["host"] for rule in ingress["rules"]] == ["localhost"]


def test_image_tags_default_to_the_app_version_not_latest():
    objects = hc.render()
    version = hc.chart().metadata["appVersion"]

    assert main_container(objects, "backend")["image"] == f"soc-backend:{version}"
    assert main_container(objects, "frontend")["image"] == f"soc-frontend:{version}"


def test_the_redis_url_default_follows_the_release_name():
    assert app_env(hc.render(release="prod"))["REDIS_URL"] == "redis://prod-redis:6379"


# --- each seed key, set on the command line ---------------------------------------------------------


def test_redis_enabled_false_removes_redis_and_uses_the_given_url():
    objects = hc.render(with_set("redis.enabled=false", "backend.env.REDIS_URL=redis://cache.example:6379/1"))

    assert not [o for o in objects if o["metadata"]["labels"].get("app") == "redis"]
    assert app_env(objects, "worker")["REDIS_URL"] == "redis://cache.example:6379/1"
    assert app_env(objects, "worker")["CELERY_BROKER_URL"] == "redis://cache.example:6379/1"


def test_redis_image_repository_and_tag():
    objects = hc.render(with_set("redis.image.repository=mirror.example/redis", "redis.image.tag=7.2.5-alpine"))

    assert main_container(objects, "redis")["image"] == "mirror.example/redis:7.2.5-alpine"


def test_redis_service_port_changes_the_service_and_every_url():
    objects = hc.render(with_set("redis.service.port=6380"))

    assert hc.find(objects, "Service", "soc-agent-redis")["spec"]["ports"][0]["port"] == 6380
    assert app_env(objects, "beat")["REDIS_URL"] == "redis://soc-agent-redis:6380"


def test_redis_resource_requests():
    objects = hc.render(with_set("redis.resources.requests.cpu=75m", "redis.resources.requests.memory=200Mi"))

    assert main_container(objects, "redis")["resources"]["requests"] == {"cpu": "75m", "memory": "200Mi"}


def test_backend_replica_count():
    # With the HPA on (the default) the autoscaler sets the count; replicaCount is for a fixed one.
    objects = hc.render(with_set("backend.replicaCount=4", "backend.hpa.enabled=false"))

    assert hc.find(objects, "Deployment", "soc-agent-backend")["spec"]["replicas"] == 4


def test_backend_image_is_the_one_image_of_every_application_pod():
    objects = hc.render(with_set(
        "backend.image.repository=gcr.io/my-project/soc-backend", "backend.image.tag=1.4.2", "backend.image.pullPolicy=Always"))

    for component in APP_COMPONENTS:
        for container in hc.containers(hc.pod_of(objects, component)[2]):
            assert container["image"] == "gcr.io/my-project/soc-backend:1.4.2", component
            assert container["imagePullPolicy"] == "Always", component


def test_backend_service_port_is_used_by_the_service_ingress_frontend_and_helm_test():
    objects = hc.render(with_set("backend.service.port=9000"))

    assert hc.find(objects, "Service", "soc-agent-backend")["spec"]["ports"][0] == {
        "name": "http", "port": 9000, "targetPort": "http", "protocol": "TCP"}
    api = next(p for p in hc.find(objects, "Ingress", "soc-agent")["spec"]["rules"][0]["http"]["paths"] if p["path"] == "/api")
    assert api["backend"]["service"]["port"]["number"] == 9000
    assert "server soc-agent-backend:9000;" in hc.find(objects, "ConfigMap", "soc-agent-frontend")["data"]["default.conf"]
    assert "http://soc-agent-backend:9000/health" in hc.find(objects, "Pod")["spec"]["containers"][0]["args"][0]


def test_backend_resource_requests():
    objects = hc.render(with_set("backend.resources.requests.cpu=250m", "backend.resources.requests.memory=384Mi"))

    assert main_container(objects, "backend")["resources"]["requests"] == {"cpu": "250m", "memory": "384Mi"}


def test_backend_hpa_disabled_removes_the_autoscaler():
    objects = hc.render(with_set("backend.hpa.enabled=false"))

    assert "soc-agent-backend" not in hc.named(objects, "HorizontalPodAutoscaler")


def test_backend_hpa_bounds_and_target():
    objects = hc.render(with_set(
        "backend.hpa.minReplicas=3", "backend.hpa.maxReplicas=12", "backend.hpa.targetCPUUtilizationPercentage=55",
        "backend.replicaCount=3"))
    hpa = hc.find(objects, "HorizontalPodAutoscaler", "soc-agent-backend")["spec"]

    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 55}
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "soc-agent-backend"}


def test_backend_env_redis_url_reaches_every_application_pod():
    objects = hc.render(with_set("backend.env.REDIS_URL=redis://shared-redis.cache:6379/3"))

    for component in APP_COMPONENTS[:-1]:
        assert app_env(objects, component)["REDIS_URL"] == "redis://shared-redis.cache:6379/3", component


def test_backend_env_otel_endpoint():
    objects = hc.render(with_set("backend.env.OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger.observability:4317"))

    assert app_env(objects, "worker")["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger.observability:4317"


def test_backend_env_log_level_sets_the_app_and_celery_log_levels():
    objects = hc.render(with_set("backend.env.LOG_LEVEL=WARNING"))

    assert app_env(objects)["LOG_LEVEL"] == "WARNING"
    for component in ("worker", "beat"):
        command = main_container(objects, component)["command"]
        assert command[command.index("-l") + 1] == "warning"


def test_frontend_replica_count_and_image():
    objects = hc.render(with_set(
        "frontend.replicaCount=3", "frontend.image.repository=gcr.io/my-project/soc-frontend",
        "frontend.image.tag=1.4.2", "frontend.image.pullPolicy=Always"))
    frontend = hc.find(objects, "Deployment", "soc-agent-frontend")

    assert frontend["spec"]["replicas"] == 3
    assert main_container(objects, "frontend")["image"] == "gcr.io/my-project/soc-frontend:1.4.2"
    assert main_container(objects, "frontend")["imagePullPolicy"] == "Always"


def test_ingress_disabled_removes_the_ingress():
    assert "Ingress" not in {o["kind"] for o in hc.render(with_set("ingress.enabled=false"))}


def test_ingress_class_name():
    assert hc.find(hc.render(with_set("ingress.className=traefik")), "Ingress", "soc-agent")["spec"]["ingressClassName"] == "traefik"


def test_ingress_host_is_routed_and_allowed_by_django():
    objects = hc.render(with_set("ingress.hosts[0].host=soc.example.com"))

    assert [r["host"] for r in hc.find(objects, "Ingress", "soc-agent")["spec"]["rules"]] == ["soc.example.com"]
    assert "soc.example.com" in app_env(objects)["DJANGO_ALLOWED_HOSTS"].split(",")


# --- routing -------------------------------------------------------------------------------------


def _routes(objects):
    """(path, type) -> Service over both Ingresses (`/ws` has its own, for its timeouts)."""
    paths = [p for ingress in hc.named(objects, "Ingress").values() for p in ingress["spec"]["rules"][0]["http"]["paths"]]
    return {(p["path"], p["pathType"]): p["backend"]["service"]["name"] for p in paths}


def test_ingress_routes_root_to_the_frontend_and_api_and_ws_to_the_backend():
    assert _routes(hc.render()) == {
        ("/", "Prefix"): "soc-agent-frontend",
        ("/api", "Prefix"): "soc-agent-backend",
        ("/ws", "Prefix"): "soc-agent-backend",
    }


def test_the_frontend_answers_metrics_itself_and_never_proxies_it():
    conf = hc.find(hc.render(), "ConfigMap", "soc-agent-frontend")["data"]["default.conf"]

    metrics_block = re.search(r"location ~ \^/metrics\(/\|\$\) \{\s*return 404;\s*\}", conf)
    assert metrics_block, conf


def _top_level_paths():
    """First path segment of every Django URL ("/api", "/admin", ...), looking into `include("")`."""
    from django.urls import get_resolver

    patterns = list(get_resolver().url_patterns)
    paths = set()
    while patterns:
        pattern = patterns.pop()
        prefix = str(pattern.pattern)
        if hasattr(pattern, "url_patterns") and not prefix:
            patterns += pattern.url_patterns
        else:
            paths.add("/" + prefix.split("/")[0].lstrip("^"))
    return paths


def test_without_the_frontend_every_page_prefix_goes_to_the_backend_and_metrics_to_nothing():
    routes = _routes(hc.render(with_set("frontend.enabled=false")))
    internal = {"/health", "/ready", "/metrics"}
    routed = {path for path, _ in routes}

    assert set(routes.values()) == {"soc-agent-backend"}
    assert ("/", "Exact") in routes
    assert _top_level_paths() - internal - {"/"} <= routed
    assert not routed & internal


# --- keys the issue adds -------------------------------------------------------------------------


def test_redis_persistence_adds_a_claim_and_an_append_only_file():
    objects = hc.render(with_set("redis.persistence.enabled=true", "redis.persistence.size=2Gi"))
    claim = hc.find(objects, "PersistentVolumeClaim", "soc-agent-redis")
    spec = hc.pod_of(objects, "redis")[2]

    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == "soc-agent-redis"
    args = spec["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert hc.find(objects, "Deployment", "soc-agent-redis")["spec"]["strategy"] == {"type": "Recreate"}


def test_without_persistence_redis_keeps_nothing_on_disk():
    objects = hc.render()
    args = main_container(objects, "redis")["args"]

    assert "PersistentVolumeClaim" not in {o["kind"] for o in objects if o["metadata"]["name"].endswith("redis")}
    assert args[args.index("--appendonly") + 1] == "no" and args[args.index("--save") + 1] == ""


def test_redis_auth_puts_a_generated_password_in_redis_and_in_every_url():
    objects = hc.render(with_set("redis.auth.enabled=true"))
    password = hc.secret_data(objects)["redis-password"]
    redis = main_container(objects, "redis")

    assert len(password) == 32
    assert redis["args"][redis["args"].index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert {e["name"] for e in redis["env"]} == {"REDIS_PASSWORD", "REDISCLI_AUTH"}
    assert app_env(objects, "worker")["REDIS_URL"] == f"redis://:{password}@soc-agent-redis:6379"


def test_a_given_redis_password_is_url_encoded():
    objects = hc.render({"redis": {"auth": {"enabled": True, "password": "p@ss/word"}}})

    assert app_env(objects)["REDIS_URL"] == "redis://:p%40ss%2Fword@soc-agent-redis:6379"


def test_ingress_tls_adds_the_block_and_trusts_the_https_origin():
    objects = hc.render({"ingress": {"hosts": [{"host": "soc.example.com"}],
                                     "tls": [{"secretName": "soc-tls", "hosts": ["soc.example.com"]}]}})

    assert hc.find(objects, "Ingress", "soc-agent")["spec"]["tls"] == [{"secretName": "soc-tls", "hosts": ["soc.example.com"]}]
    assert app_env(objects)["CSRF_TRUSTED_ORIGINS"] == "https://soc.example.com"


def test_worker_keys():
    objects = hc.render(with_set(
        "worker.replicaCount=3", "worker.concurrency=6", "worker.resources.limits.memory=1Gi",
        "worker.hpa.enabled=true", "worker.hpa.maxReplicas=9"))
    worker = main_container(objects, "worker")

    assert "replicas" not in hc.find(objects, "Deployment", "soc-agent-worker")["spec"]  # the HPA's
    assert hc.find(hc.render(with_set("worker.replicaCount=3")), "Deployment", "soc-agent-worker")["spec"]["replicas"] == 3
    assert worker["command"][:5] == ["celery", "-A", "socproject", "worker", "-l"]
    assert worker["command"][worker["command"].index("--concurrency") + 1] == "6"
    assert worker["resources"]["limits"]["memory"] == "1Gi"
    assert hc.find(objects, "HorizontalPodAutoscaler", "soc-agent-worker")["spec"]["maxReplicas"] == 9


def test_worker_and_beat_can_be_turned_off():
    objects = hc.render(with_set("worker.enabled=false", "beat.enabled=false"))

    assert set(hc.named(objects, "Deployment")) == {"soc-agent-backend", "soc-agent-frontend", "soc-agent-redis"}


def test_external_database_url_replaces_the_bundled_postgres():
    url = "postgres://soc:pw@db.internal:5432/soc"
    objects = hc.render({"postgresql": {"enabled": False}, "externalDatabase": {"url": url}})

    assert "StatefulSet" not in {o["kind"] for o in objects}
    assert app_env(objects, "migrate")["DATABASE_URL"] == url
    assert "postgres-password" not in hc.secret_data(objects)


def test_external_database_from_an_existing_secret():
    objects = hc.render({"postgresql": {"enabled": False},
                         "externalDatabase": {"existingSecret": "db-credentials", "existingSecretKey": "url"}})

    assert app_env(objects, "migrate")["DATABASE_URL"] == ("Secret", "db-credentials", "url")
    assert "database-url" not in hc.secret_data(objects)


def test_an_existing_secret_provides_the_django_and_llm_keys():
    objects = hc.render({"secrets": {"existingSecret": "soc-keys"}})
    env = app_env(objects)

    assert env["DJANGO_SECRET_KEY"] == ("Secret", "soc-keys", "django-secret-key")
    assert env["LLM_API_KEY"] == ("Secret", "soc-keys", "llm-api-key")
    assert "django-secret-key" not in hc.secret_data(objects)


def test_a_given_django_key_and_llm_key_are_used():
    objects = hc.render({"secrets": {"djangoSecretKey": "k" * 60, "llmApiKey": "sk-test"}})

    assert app_env(objects)["DJANGO_SECRET_KEY"] == "k" * 60
    assert app_env(objects, "worker")["LLM_API_KEY"] == "sk-test"


def test_without_an_llm_key_the_variable_is_simply_absent():
    env = app_env(hc.render())

    assert "LLM_API_KEY" not in env


def test_numbers_from_a_values_file_reach_the_environment_as_integers():
    objects = hc.render({"backend": {"env": {"MAX_STORED_THREATS": 1000000.0, "THREAT_GENERATION_INTERVAL": 2.5,
                                             "ENABLE_AUTO_THREAT_GENERATION": False}}})
    env = app_env(objects)

    assert (env["MAX_STORED_THREATS"], env["THREAT_GENERATION_INTERVAL"]) == ("1000000", "2.5")
    assert env["ENABLE_AUTO_THREAT_GENERATION"] == "false"


# --- no decorative keys: every values.yaml key changes the output ----------------------------------

# Fixed secrets, so that two renders differ only by the key under test.
BASE = {"secrets": {"djangoSecretKey": "k" * 50}, "postgresql": {"auth": {"password": "pg-pass"}},
        "redis": {"auth": {"password": "redis-pass"}}}
EXTERNAL_DB = {"postgresql": {"enabled": False}, "externalDatabase": {"url": "postgres://u:p@db:5432/x"}}
# Keys that only act together with others: (values before, values after).
SPECIAL = {
    "externalRedis.existingSecret": ({"redis": {"enabled": False}, "backend": {"env": {"REDIS_URL": "redis://r:6379"}}},
                                     {"redis": {"enabled": False}, "externalRedis": {"existingSecret": "my-redis"}}),
    "postgresql.enabled": ({}, EXTERNAL_DB),
    "externalDatabase.url": (EXTERNAL_DB, {**EXTERNAL_DB, "externalDatabase": {"url": "postgres://u:p@db2:5432/x"}}),
    "externalDatabase.existingSecret": (EXTERNAL_DB, {**EXTERNAL_DB, "externalDatabase": {"existingSecret": "db"}}),
    "externalDatabase.existingSecretKey": (
        {**EXTERNAL_DB, "externalDatabase": {"existingSecret": "db"}},
        {**EXTERNAL_DB, "externalDatabase": {"existingSecret": "db", "existingSecretKey": "other"}}),
    "redis.enabled": ({"backend": {"env": {"REDIS_URL": "redis://r:6379"}}},
                      {"redis": {"enabled": False}, "backend": {"env": {"REDIS_URL": "redis://r:6379"}}}),
}
CONTEXT = {
    "externalRedis.existingSecretKey": {"redis": {"enabled": False}, "externalRedis": {"existingSecret": "my-redis"}},
    "worker.hpa.behavior": {"worker": {"hpa": {"enabled": True}}},
    "backend.replicaCount": {"backend": {"hpa": {"enabled": False}}},
    "redis.persistence.size": {"redis": {"persistence": {"enabled": True}}},
    "redis.persistence.storageClass": {"redis": {"persistence": {"enabled": True}}},
    "redis.auth.password": {"redis": {"auth": {"enabled": True}}},
    "worker.hpa.minReplicas": {"worker": {"hpa": {"enabled": True}}},
    "worker.hpa.maxReplicas": {"worker": {"hpa": {"enabled": True}}},
    "worker.hpa.targetCPUUtilizationPercentage": {"worker": {"hpa": {"enabled": True}}},
    "observability.serviceMonitor.enabled": {"observability": {"scrapeNamespace": "monitoring"}},
    "observability.serviceMonitor.interval": {"observability": {"serviceMonitor": {"enabled": True},
                                                                "scrapeNamespace": "monitoring"}},
    "observability.labels": {"observability": {"dashboard": {"enabled": True}}},
}
# A different, valid value for keys whose type alone does not say which.
MUTATIONS = {
    "backend.replicaCount": 3,
    "backend.hpa.minReplicas": 1,
    "backend.hpa.maxReplicas": 3,
    "backend.env.REDIS_URL": "redis://r:6379",
    "backend.env.LOG_LEVEL": "DEBUG",
    "backend.env.SOC_SLA_WARN_FRACTION": "0.25",
    "backend.env.LOG_FORMAT": "text",
    "backend.env.OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "backend.env.DJANGO_DEBUG": "true",
    "backend.env.ENABLE_AUTO_THREAT_GENERATION": "false",
    "backend.env.TRUSTED_PROXIES": "10.244.0.0/16",
    "backend.env.OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.monitoring:4318",
    "backend.env.LLM_BASE_URL": "https://llm.example/v1",
    "redis.maxmemory": "300mb",
    "backend.env.AGENTS_SHARED_REPUTATION": "true",
    "backend.env.WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    "postgresql.auth.username": "soc2",
    "postgresql.auth.database": "soc2",
    "backend.image.pullPolicy": "Always",
    "frontend.image.pullPolicy": "Always",
    "redis.image.pullPolicy": "Always",
    "postgresql.image.pullPolicy": "Always",
    "ingress.hosts": [{"host": "soc.example.com"}],
    "ingress.tls": [{"secretName": "tls", "hosts": ["localhost"]}],
    "imagePullSecrets": [{"name": "regcred"}],
    "tolerations": [{"key": "dedicated", "operator": "Exists"}],
    "nodeSelector": {"pool": "soc"},
    "backend.podAnnotations": {"example.com/team": "soc"},
    "networkPolicy.appEgress": [{"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 8443}]}],
    "ingress.annotations": {"example.com/x": "y"},
    "observability.labels": {"release": "kube-prometheus-stack"},
    "observability.serviceMonitor.interval": "15s",
}

# A valid value for the per-component Kubernetes knobs, by the key's last part.
SAMPLES = {
    "podLabels": {"team": "soc"},
    "podAnnotations": {"example.com/team": "soc"},
    "annotations": {"example.com/team": "soc"},
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["soc"]}]}]}}},
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                   "whenUnsatisfiable": "ScheduleAnyway"}],
    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
    "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
    "extraEnvFrom": [{"secretRef": {"name": "more-env"}}],
    "extraVolumes": [{"name": "ca", "configMap": {"name": "corp-ca"}}],
    "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": True}],
}


def _leaf_keys(values, prefix=""):
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in MUTATIONS:
            yield from _leaf_keys(value, path + ".")
        else:
            yield path, value


def _mutated(path, value):
    if path in MUTATIONS:
        return MUTATIONS[path]
    if path.rsplit(".", 1)[-1] in SAMPLES:
        return SAMPLES[path.rsplit(".", 1)[-1]]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        quantity = re.fullmatch(r"(\d+)(m|Mi|Gi)?", value)
        if quantity:
            return f"{int(quantity.group(1)) + 1}{quantity.group(2) or ''}"
        return value + "-x" if value else "x"
    raise AssertionError(f"no mutation for {path}={value!r}: add it to MUTATIONS")


def _with(values, path, value):
    values = copy.deepcopy(values)
    node = values
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return values


def _merged(*layers):
    result = {}
    for layer in layers:
        _merge(result, copy.deepcopy(layer))
    return result


DEFAULTS = dict(_leaf_keys(hc.load_values(hc.CHART_DIR / "values.yaml")))
VALUE_KEYS = list(DEFAULTS)


# Keys that act only on `helm upgrade` against live objects: the test that shows their effect.
ELSEWHERE = {"upgradeChecks.enabled": "test_upgrades.py::test_the_checks_can_be_switched_off_and_never_run_on_install"}


@pytest.mark.parametrize("path", VALUE_KEYS)
def test_every_values_key_is_read_by_a_template(path):
    if path in ELSEWHERE:
        module, name = ELSEWHERE[path].split("::")
        assert f"def {name}(" in (hc.REPO_ROOT / "tests" / "chart" / module).read_text()
        return
    if path in SPECIAL:
        before, after = SPECIAL[path]
    else:
        before = CONTEXT.get(path, {})
        after = _with(before, path, _mutated(path, DEFAULTS[path]))
    base = BASE if path not in ("secrets.djangoSecretKey",) else {k: v for k, v in BASE.items() if k != "secrets"}
    if path == "secrets.djangoSecretKey":
        before, after = {"secrets": {"djangoSecretKey": "a" * 50}}, {"secrets": {"djangoSecretKey": "b" * 50}}

    rendered_before = hc.render_files(_merged(base, before))
    rendered_after = hc.render_files(_merged(base, after))

    assert rendered_after != rendered_before, f"{path} changes nothing"


def test_every_values_key_is_documented_with_a_param_line():
    documented = [key for key, _ in hc.values_params()]

    assert sorted(documented) == sorted(VALUE_KEYS)
    assert len(documented) == len(set(documented))


def test_with_fixed_secrets_two_renders_are_identical():
    """Otherwise the mutation test above would pass for every key."""
    assert hc.render_files(BASE) == hc.render_files(BASE)
