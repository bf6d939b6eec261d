"""The chart renders and lints with Helm's own engine for every values set we ship, and the objects
it renders have the properties the README promises (hardening, probes, hooks, names)."""

import pytest

from tests.chart import helmchart as hc

pytestmark = pytest.mark.chart

VALUE_SETS = {
    "default": {},
    "production": hc.load_values(hc.PRODUCTION_VALUES),
    **{path.stem: hc.load_values(path) for path in sorted(hc.CI_VALUES_DIR.glob("*.yaml"))},
}
# The seed's prerequisite (Kubernetes 1.24+) and a current release.
KUBE_VERSIONS = ["v1.24.0", "v1.33.0"]
SEVERITY_WARNING = 2


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_strict_passes_without_a_warning(name, kube_version):
    report = hc.helm.lint(hc.CHART_DIR, VALUE_SETS[name], strict=True, kube_version=kube_version)

    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= SEVERITY_WARNING] == []


def test_helm_lint_reports_a_values_mistake():
    report = hc.helm.lint(hc.CHART_DIR, {"wroker": {"replicaCount": 2}}, strict=True)

    assert any("wroker" in message["error"] for message in report["messages"])


def test_the_chart_declares_the_seed_prerequisite_kubernetes_1_24():
    assert hc.chart().metadata["kubeVersion"] == ">=1.24.0-0"
    assert hc.chart().metadata["apiVersion"] == "v2"  # Helm 3 chart format


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_value_set_renders_objects_with_unique_names_in_the_release_namespace(name):
    objects = hc.render(VALUE_SETS[name], namespace="soc")

    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys))
    assert {o["metadata"].get("namespace") for o in objects} == {"soc"}


def test_resource_names_follow_the_seed():
    objects = hc.render(release="demo")

    assert set(hc.named(objects, "Deployment")) == {
        "demo-backend", "demo-worker", "demo-beat", "demo-frontend", "demo-redis"}
    assert set(hc.named(objects, "Service")) == {"demo-backend", "demo-frontend", "demo-redis", "demo-postgresql"}
    assert set(hc.named(objects, "StatefulSet")) == {"demo-postgresql"}


def test_the_seed_kubectl_label_selectors_find_the_backend_and_redis_pods():
    objects = hc.render()

    by_app = {}
    for owner, metadata, _ in hc.pod_templates(objects):
        by_app.setdefault(metadata["labels"]["app"], []).append(owner["metadata"]["name"])
    assert by_app["soc-backend"] == ["soc-agent-backend"]
    assert by_app["redis"] == ["soc-agent-redis"]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_pod_is_non_root_read_only_seccomp_confined_with_no_capabilities_or_token(name):
    objects = hc.render(VALUE_SETS[name])

    for owner, _, spec in hc.pod_templates(objects):
        where = owner["metadata"]["name"]
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in hc.containers(spec):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert container["resources"]["limits"] and container["resources"]["requests"], where
            assert not container["image"].endswith(":latest"), where


def test_application_pods_run_as_the_image_user():
    dockerfile = (hc.REPO_ROOT / "Dockerfile").read_text()
    objects = hc.render()

    assert "USER 10001:10001" in dockerfile
    for component in ("backend", "worker", "beat", "migrate", "seed", "test"):
        assert hc.pod_of(objects, component)[2]["securityContext"]["runAsUser"] == 10001


def test_the_service_account_never_mounts_a_token():
    account = hc.find(hc.render(), "ServiceAccount")

    assert account["automountServiceAccountToken"] is False


def test_backend_probes_use_the_seed_timings_and_an_allowed_host_header():
    objects = hc.render()
    backend = hc.container(hc.pod_of(objects, "backend")[2], "backend")
    allowed = hc.env_values(objects, backend)["DJANGO_ALLOWED_HOSTS"].split(",")

    readiness, liveness = backend["readinessProbe"], backend["livenessProbe"]
    # The seed's timings; readiness on /health, not the seed's /ready (issue 19: Redis down must not
    # pull every pod), see test_operations.py.
    assert (readiness["httpGet"]["path"], readiness["initialDelaySeconds"]) == ("/health", 5)
    assert (liveness["httpGet"]["path"], liveness["initialDelaySeconds"], liveness["periodSeconds"]) == ("/health", 10, 30)
    for probe in (readiness, liveness):
        host = {h["name"]: h["value"] for h in probe["httpGet"]["httpHeaders"]}["Host"]
        assert host in allowed


def test_rolling_updates_never_take_a_pod_away_and_beat_is_never_doubled():
    objects = hc.render({"backend": {"replicaCount": 3}})
    deployments = hc.named(objects, "Deployment")

    for name in ("soc-agent-backend", "soc-agent-worker", "soc-agent-frontend"):
        assert deployments[name]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployments["soc-agent-beat"]["spec"]["replicas"] == 1
    assert deployments["soc-agent-beat"]["spec"]["strategy"] == {"type": "Recreate"}


def test_beat_has_no_replica_count_to_set():
    with pytest.raises(hc.helm.HelmValuesError, match="replicaCount"):
        hc.render({"beat": {"replicaCount": 2}})


def test_workers_get_longer_than_the_task_time_limit_to_shut_down():
    from socproject import settings

    spec = hc.pod_of(hc.render(), "worker")[2]

    assert spec["terminationGracePeriodSeconds"] > settings.CELERY_TASK_TIME_LIMIT


def test_replicas_spread_over_nodes():
    objects = hc.render()

    for component in ("backend", "worker", "frontend"):
        _, metadata, spec = hc.pod_of(objects, component)
        term = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert hc.labels_match(term["labelSelector"], metadata["labels"])


def test_only_the_migration_job_migrates_and_every_app_pod_waits_for_it():
    objects = hc.render()

    migrating = [
        (owner["metadata"]["name"], c["name"]) for owner, _, spec in hc.pod_templates(objects)
        for c in hc.containers(spec) if "migrate" in (c.get("command") or []) and "--check" not in " ".join(c["command"])
    ]
    assert migrating == [("soc-agent-migrate-1", "migrate")]
    for component in ("backend", "worker", "beat", "seed"):
        init = hc.pod_of(objects, component)[2]["initContainers"]
        assert [c["name"] for c in init] == ["wait-for-migrations"]
        assert "migrate --check" in init[0]["command"][-1]


def test_the_migration_job_is_a_pre_upgrade_hook_on_upgrade_and_a_plain_job_on_install():
    installed = hc.find(hc.render(is_install=True), "Job", "soc-agent-migrate-1")
    upgraded = hc.find(hc.render(is_upgrade=True, is_install=False, revision=4), "Job", "soc-agent-migrate-4")

    assert "helm.sh/hook" not in installed["metadata"]["annotations"]
    assert upgraded["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    assert upgraded["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "manage.py", "migrate", "--noinput"]


def test_demo_data_is_seeded_once_after_install_and_never_in_production():
    seed = hc.find(hc.render(), "Job", "soc-agent-seed")

    assert seed["metadata"]["annotations"]["helm.sh/hook"] == "post-install"
    assert "Job" not in {o["kind"] for o in hc.render(VALUE_SETS["production"]) if o["metadata"]["name"].endswith("seed")}


def test_the_generated_django_key_is_long_random_and_kept_on_uninstall():
    first, second = hc.render(), hc.render()

    key = hc.secret_data(first)["django-secret-key"]
    assert len(key) == 50 and key != hc.secret_data(second)["django-secret-key"]
    assert hc.find(first, "Secret")["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_the_database_password_in_the_url_is_the_one_postgres_is_given():
    objects = hc.render()
    data = hc.secret_data(objects)
    postgres = hc.container(hc.pod_of(objects, "postgresql")[2], "postgresql")
    password_ref = next(e for e in postgres["env"] if e["name"] == "POSTGRES_PASSWORD")["valueFrom"]["secretKeyRef"]

    assert password_ref == {"name": "soc-agent", "key": "postgres-password"}
    assert data["database-url"] == f"postgres://soc:{data['postgres-password']}@soc-agent-postgresql:5432/soc"


def test_notes_tell_how_to_reach_the_dashboard_and_follow_the_workers():
    text = hc.notes()

    assert "http://localhost:8080/" in text
    assert "analyst / analyst" in text
    assert "logs -l app=soc-worker" in text
    assert "helm test soc-agent" in text


def test_notes_use_https_and_no_demo_login_in_production():
    text = hc.notes(VALUE_SETS["production"])

    assert "https://soc.example.com/" in text
    assert "analyst / analyst" not in text
    assert "createsuperuser" in text


def test_helm_test_checks_the_backend_and_the_frontend():
    pod = hc.find(hc.render(), "Pod", "soc-agent-test")

    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    assert "http://soc-agent-backend:8000/ready" in script
    assert "http://soc-agent-frontend:80/accounts/login/" in script
    compile(script, "test-connection", "exec")
