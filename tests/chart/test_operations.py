"""What running the chart in production needs beyond a clean render (issue 19): proxies sized to
the API's limits, probes that say whether this pod can serve, knobs platform teams expect, policies
no wider than the release needs, and GitOps-friendly jobs."""

import re

import pytest

from tests.chart import helmchart as hc

pytestmark = pytest.mark.chart

MIB = 1024 * 1024


def nginx_size_in_bytes(size):
    number, unit = re.fullmatch(r"(\d+)([km]?)", size).groups()
    return int(number) * {"": 1, "k": 1024, "m": MIB}[unit]


def body_limits(objects):
    """(ingress-nginx proxy-body-size, frontend nginx client_max_body_size) in bytes."""
    ingress = hc.find(objects, "Ingress", "soc-agent")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    conf = hc.find(objects, "ConfigMap", "soc-agent-frontend")["data"]["default.conf"]
    frontend = re.search(r"client_max_body_size (\S+);", conf).group(1)
    return nginx_size_in_bytes(ingress), nginx_size_in_bytes(frontend)


# --- 3. one body limit for the API and the proxies in front of it -----------------------------------


def test_the_proxies_let_a_full_ingest_batch_through_to_the_api():
    from django.conf import settings

    objects = hc.render()
    app_limit = int(hc.env_values(objects, hc.container(hc.pod_of(objects, "backend")[2], "backend"))["INGEST_MAX_BODY_BYTES"])

    assert app_limit == settings.INGEST_MAX_BODY_BYTES == 10 * MIB
    # Above the app's limit, so the API (not nginx) answers 413, and not far above.
    for proxy_limit in body_limits(objects):
        assert app_limit < proxy_limit <= app_limit + 2 * MIB


def test_raising_the_ingest_limit_raises_both_proxies():
    objects = hc.render({"backend": {"env": {"INGEST_MAX_BODY_BYTES": "52428800"}}})

    assert body_limits(objects) == (51 * MIB, 51 * MIB)


def test_an_explicit_ingress_annotation_wins():
    objects = hc.render({"ingress": {"annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "64m"}}})

    assert body_limits(objects)[0] == 64 * MIB


def test_the_ingestion_doc_states_the_ingest_body_limit_the_code_has():
    from django.conf import settings

    doc = (hc.REPO_ROOT / "docs" / "ingestion.md").read_text()  # the limits table moved there from the README
    mib = settings.INGEST_MAX_BODY_BYTES // MIB

    assert f"| `INGEST_MAX_BODY_BYTES` | {mib} MiB |" in doc
    for path in [hc.REPO_ROOT / "README.md", *sorted((hc.REPO_ROOT / "docs").glob("*.md"))]:
        assert "client_max_body_size`, 3 MB" not in path.read_text(), path


# --- 2. readiness is this pod's own state, not Redis's ---------------------------------------------


def probe_response(client, probe):
    headers = {f"HTTP_{h['name'].upper()}": h["value"] for h in probe["httpGet"].get("httpHeaders", [])}
    return client.get(probe["httpGet"]["path"], **headers)


@pytest.mark.django_db
def test_a_backend_pod_stays_ready_while_redis_is_unreachable(client, settings):
    backend = hc.container(hc.pod_of(hc.render(), "backend")[2], "backend")
    settings.ALLOWED_HOSTS = ["soc-agent-backend"]
    settings.REDIS_URL = "redis://127.0.0.1:1"  # nothing listens there

    assert probe_response(client, backend["readinessProbe"]).status_code == 200
    # The deep check still sees the outage: it is what `helm test` runs.
    assert client.get("/ready", HTTP_HOST="soc-agent-backend").status_code == 503


def test_helm_test_still_runs_the_deep_readiness_check():
    args = hc.find(hc.render(), "Pod", "soc-agent-test")["spec"]["containers"][0]["args"][0]

    assert "http://soc-agent-backend:8000/ready" in args


# --- 6. the knobs platform teams expect -------------------------------------------------------------

KNOBS = hc.load_values(hc.CI_VALUES_DIR / "platform-knobs-values.yaml")


def test_zone_spread_priority_and_pod_metadata_reach_the_pods():
    objects = hc.render(KNOBS)
    _, backend_meta, backend = hc.pod_of(objects, "backend")
    _, _, frontend = hc.pod_of(objects, "frontend")

    assert backend["priorityClassName"] == "soc-critical"
    spread = backend["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    # Defaulted to the component's own pods, so the constraint counts something.
    assert hc.labels_match(spread["labelSelector"], backend_meta["labels"])
    assert not hc.labels_match(frontend["topologySpreadConstraints"][0]["labelSelector"], backend_meta["labels"])
    assert backend_meta["labels"]["team"] == "soc" and backend_meta["labels"]["app"] == "soc-backend"
    assert backend_meta["annotations"]["example.com/owner"] == "soc-team"
    assert "checksum/config" in backend_meta["annotations"]
    assert hc.pod_of(objects, "postgresql")[1]["annotations"] == {"backup.velero.io/backup-volumes": "data"}
    assert hc.pod_of(objects, "migrate")[1]["labels"]["team"] == "soc"


def test_a_given_affinity_replaces_the_default_spread_and_only_for_its_component():
    objects = hc.render(KNOBS)

    worker = hc.pod_of(objects, "worker")[2]
    assert list(worker["affinity"]) == ["nodeAffinity"] and worker["priorityClassName"] == "soc-batch"
    assert "podAntiAffinity" in hc.pod_of(objects, "backend")[2]["affinity"]


def test_pod_labels_cannot_move_a_pod_out_of_its_selectors():
    objects = hc.render({"backend": {"podLabels": {"app": "other", "app.kubernetes.io/component": "x"}}})
    deployment, meta, _ = hc.pod_of(objects, "backend")

    assert meta["labels"]["app"] == "soc-backend"
    assert hc.labels_match(deployment["spec"]["selector"], meta["labels"])


def test_extra_env_and_volumes_reach_every_application_container():
    objects = hc.render(KNOBS)

    for component in ("backend", "worker", "beat", "migrate"):
        spec = hc.pod_of(objects, component)[2]
        assert {"name": "corp-ca", "configMap": {"name": "corp-ca"}} in spec["volumes"]
        for container in hc.containers(spec):
            assert {"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"} in container["env"]
            assert {"secretRef": {"name": "soc-extra-env"}} in container["envFrom"]
            assert {"name": "corp-ca", "mountPath": "/etc/ssl/corp", "readOnly": True} in container["volumeMounts"]


def test_hpa_behavior_service_annotations_and_startup_probe():
    objects = hc.render(KNOBS)
    backend = hc.container(hc.pod_of(objects, "backend")[2], "backend")

    assert hc.find(objects, "HorizontalPodAutoscaler", "soc-agent-backend")["spec"]["behavior"] == {
        "scaleDown": {"stabilizationWindowSeconds": 600}}
    assert hc.find(objects, "Service", "soc-agent-backend")["metadata"]["annotations"]["example.com/scrape"] == "true"
    startup = backend["startupProbe"]
    assert (startup["httpGet"]["path"], startup["periodSeconds"], startup["failureThreshold"]) == ("/health", 10, 60)


def test_the_redis_url_can_come_from_a_secret_you_manage():
    objects = hc.render(KNOBS)
    env = hc.env_values(objects, hc.container(hc.pod_of(objects, "worker")[2], "worker"))

    assert env["REDIS_URL"] == hc.ExternalRef("Secret", "soc-redis", "redis-url")
    assert env["CELERY_BROKER_URL"] == hc.ExternalRef("Secret", "soc-redis", "redis-url")
    assert "redis-url" not in hc.secret_data(objects)
    assert not any("redis" in value for value in hc.secret_data(objects).values())


@pytest.mark.parametrize(("values", "message"), [
    ({"externalRedis": {"existingSecret": "soc-redis"}}, "set redis.enabled=false"),
    ({"redis": {"enabled": False}, "externalRedis": {"existingSecret": "soc-redis"},
      "backend": {"env": {"REDIS_URL": "redis://r:6379"}}}, "not both"),
])
def test_an_external_redis_secret_is_one_choice(values, message):
    with pytest.raises(hc.helm.HelmRenderError, match=message):
        hc.render(values)


# --- 5. a subchart, and GitOps ------------------------------------------------------------------------

HELM_DEFAULT_TIMEOUT = 300  # seconds, `helm install/upgrade --timeout`


def test_the_chart_works_as_a_subchart_receiving_global_values(tmp_path):
    import shutil

    parent = tmp_path / "platform"
    (parent / "charts").mkdir(parents=True)
    (parent / "Chart.yaml").write_text("apiVersion: v2\nname: platform\nversion: 1.0.0\n"
                                       "dependencies:\n  - name: soc-agent\n    version: '>=0.0.0'\n")
    (parent / "values.yaml").write_text("global:\n  imageRegistry: registry.example\n")
    shutil.copytree(hc.CHART_DIR, parent / "charts" / "soc-agent")

    rendered = hc.helm.Chart.load(parent).render({"soc-agent": {"demo": {"seed": False}}}, name="soc", namespace="soc")

    assert any("name: soc-backend" in text for text in rendered.values())


def test_the_migration_job_syncs_under_argo_cd_and_gives_up_before_helm_does():
    job = hc.find(hc.render(), "Job", "soc-agent-migrate-1")  # what `helm template` gives Argo CD
    spec = job["spec"]
    # Kubernetes' back-off: 10 s doubling, at most 6 min, before each retry.
    backoff = sum(min(10 * 2 ** attempt, 360) for attempt in range(spec["backoffLimit"]))

    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "Sync"
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    assert backoff < spec["activeDeadlineSeconds"] < HELM_DEFAULT_TIMEOUT
    assert spec["ttlSecondsAfterFinished"] > 0


def test_on_a_helm_upgrade_the_job_is_still_a_pre_upgrade_hook_with_the_same_limits():
    job = hc.find(hc.render(is_upgrade=True, is_install=False, revision=7), "Job", "soc-agent-migrate-7")

    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    assert job["spec"]["activeDeadlineSeconds"] < HELM_DEFAULT_TIMEOUT


# --- 8. the smaller ones ------------------------------------------------------------------------------


def test_the_frontend_passes_on_the_scheme_the_ingress_saw():
    conf = hc.find(hc.render(), "ConfigMap", "soc-agent-frontend")["data"]["default.conf"]

    # $scheme is http behind a TLS-ending ingress: Django would build http:// URLs and refuse CSRF.
    assert "proxy_set_header X-Forwarded-Proto $scheme;" not in conf
    header = re.search(r"proxy_set_header X-Forwarded-Proto (\$\w+);", conf).group(1)
    mapping = re.search(r"map \$http_x_forwarded_proto " + re.escape(header) + r" \{([^}]*)\}", conf).group(1)
    assert re.search(r"default\s+\$http_x_forwarded_proto;", mapping) and re.search(r'""\s+\$scheme;', mapping)


def test_images_of_the_bundled_services_do_not_float():
    objects = hc.render()

    for component in ("redis", "postgresql"):
        image = hc.containers(hc.pod_of(objects, component)[2])[0]["image"]
        assert re.search(r":\d+\.\d+(\.\d+)?-\w+$", image), image  # 16.6-alpine, 7.4.2-alpine; not 7-alpine


def test_redis_refuses_writes_at_its_memory_cap_instead_of_being_killed():
    objects = hc.render()
    redis = hc.containers(hc.pod_of(objects, "redis")[2])[0]
    args = redis["args"]
    cap = args[args.index("--maxmemory") + 1]

    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert int(cap.removesuffix("mb")) * 1_000_000 < 256 * MIB == nginx_size_in_bytes("256m")  # the 256Mi limit
    production = hc.render(hc.load_values(hc.PRODUCTION_VALUES))
    args = hc.containers(hc.pod_of(production, "redis")[2])[0]["args"]
    assert int(args[args.index("--maxmemory") + 1].removesuffix("mb")) * 1_000_000 < 1024 * MIB


def test_postgresql_gets_a_shared_memory_volume():
    spec = hc.pod_of(hc.render(), "postgresql")[2]
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}

    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"


def test_only_websockets_get_the_hour_long_proxy_timeouts():
    objects = hc.render({"ingress": {"annotations": {"example.com/team": "soc"}}})
    main, ws = hc.find(objects, "Ingress", "soc-agent"), hc.find(objects, "Ingress", "soc-agent-ws")
    conf = hc.find(objects, "ConfigMap", "soc-agent-frontend")["data"]["default.conf"]
    root_location = re.search(r"location / \{([^}]*)\}", conf).group(1)
    ws_location = re.search(r"location /ws \{([^}]*)\}", conf).group(1)

    assert "nginx.ingress.kubernetes.io/proxy-read-timeout" not in main["metadata"]["annotations"]
    assert ws["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert [p["path"] for p in ws["spec"]["rules"][0]["http"]["paths"]] == ["/ws"]
    assert ws["metadata"]["annotations"]["example.com/team"] == main["metadata"]["annotations"]["example.com/team"]
    assert "proxy_read_timeout" not in root_location and "proxy_read_timeout 3600s;" in ws_location
