"""The container images, checked without a container engine: the Dockerfile's own build steps run
here with the environment it gives them, the build context keeps what the app needs and nothing
else, and the image agrees with the chart (user, command, nginx config)."""

import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from tests.chart import helmchart as hc

pytestmark = pytest.mark.chart

DOCKERFILE = (hc.REPO_ROOT / "Dockerfile").read_text()
FRONTEND_DOCKERFILE = (hc.REPO_ROOT / "docker" / "frontend" / "Dockerfile").read_text()
DOCKERIGNORE = [
    line.strip() for line in (hc.REPO_ROOT / ".dockerignore").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


def instructions(text):
    """(INSTRUCTION, arguments) pairs with continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [tuple(line.split(None, 1)) for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def stages(text):
    return [args for name, args in instructions(text) if name == "FROM"]


def test_the_backend_image_is_multi_stage_on_a_pinned_base():
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE).group(1)

    assert stages(DOCKERFILE) == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base)


def test_the_image_installs_the_runtime_requirements_only():
    runs = " ".join(args for name, args in instructions(DOCKERFILE) if name in ("RUN", "COPY"))

    assert "requirements.txt" in runs
    assert "requirements-dev" not in runs
    assert "requirements-dev.txt" in DOCKERIGNORE


def test_the_image_runs_as_a_numeric_non_root_user_by_default():
    users = [args for name, args in instructions(DOCKERFILE) if name == "USER"]

    assert users == ["10001:10001"]


def test_the_default_command_is_the_web_pod_command():
    cmd = [args for name, args in instructions(DOCKERFILE) if name == "CMD"][-1]
    backend = hc.pod_of(hc.render(), "backend")[2]["containers"][0]

    assert yaml.safe_load(cmd) == backend["command"]


def test_collectstatic_succeeds_with_exactly_the_build_time_environment(tmp_path):
    """The Dockerfile's collectstatic RUN line, run here: settings accept its throw-away values."""
    run_line = next(args for name, args in instructions(DOCKERFILE) if name == "RUN" and "collectstatic" in args)
    words = shlex.split(run_line.split("&&")[0])
    assignments = dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_]+=", word))
    command = [word for word in words if not re.match(r"^[A-Z_]+=", word)]
    assert command[:2] == ["/opt/venv/bin/python", "manage.py"]
    assignments["DATABASE_URL"] = f"sqlite:///{tmp_path}/build.sqlite3"
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "socproject.settings", **assignments}

    result = subprocess.run([sys.executable, "manage.py", *command[2:], "--dry-run"], cwd=hc.REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert set(assignments) == {"DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL"}


def test_without_those_values_settings_would_refuse_to_build(tmp_path):
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "socproject.settings",
           "DATABASE_URL": f"sqlite:///{tmp_path}/build.sqlite3"}

    result = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "--dry-run"],
                            cwd=hc.REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def _ignored(path):
    """Docker's rule for these simple patterns: the path or one of its parents matches."""
    import fnmatch

    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(candidate, pattern.lstrip("/")) or fnmatch.fnmatch(parts[-1], pattern.replace("**/", ""))
               for pattern in DOCKERIGNORE for candidate in candidates)


@pytest.mark.parametrize("path", [
    "manage.py", "requirements.txt", "socproject/settings.py", "threats/models.py", "agents/tasks.py",
    "templates/base.html", "static/js/live.js",
])
def test_the_build_context_keeps_what_the_app_needs(path):
    assert (hc.REPO_ROOT / path).exists()
    assert not _ignored(path)


@pytest.mark.parametrize("path", [
    ".venv/bin/python", ".git/HEAD", "var/db.sqlite3", "tests/conftest.py", "helm/deploy.sh", "bench/x.py",
    "requirements-dev.txt", "threats/__pycache__/models.cpython-311.pyc", "staticfiles/css/app.css",
])
def test_the_build_context_leaves_out_local_state_tests_and_tooling(path):
    assert _ignored(path)


def test_the_frontend_image_takes_the_static_files_from_the_backend_image():
    assert stages(FRONTEND_DOCKERFILE) == ["${BACKEND_IMAGE} AS backend", "${NGINX_IMAGE}"]
    assert "COPY --from=backend /app/staticfiles /usr/share/nginx/html/static" in FRONTEND_DOCKERFILE
    assert re.search(r"^ARG NGINX_IMAGE=nginxinc/nginx-unprivileged:\d+\.\d+\.\d+-alpine$", FRONTEND_DOCKERFILE, re.MULTILINE)
    assert [args for name, args in instructions(FRONTEND_DOCKERFILE) if name == "USER"] == ["10001:10001"]


def test_the_frontend_image_config_is_the_chart_config_with_a_generic_backend_host():
    chart_conf = hc.find(hc.render(), "ConfigMap", "soc-agent-frontend")["data"]["default.conf"]
    image_conf = (hc.REPO_ROOT / "docker" / "frontend" / "default.conf").read_text()
    image_body = "\n".join(line for line in image_conf.splitlines()[2:])

    assert image_body.strip() == chart_conf.replace("soc-agent-backend:8000", "backend:8000").strip()


def test_the_frontend_pod_runs_the_image_command_and_serves_where_the_image_puts_files():
    frontend = hc.pod_of(hc.render(), "frontend")[2]["containers"][0]
    cmd = [args for name, args in instructions(FRONTEND_DOCKERFILE) if name == "CMD"][-1]
    conf = hc.find(hc.render(), "ConfigMap", "soc-agent-frontend")["data"]["default.conf"]

    assert frontend["command"] == yaml.safe_load(cmd)
    assert "alias /usr/share/nginx/html/static/;" in conf
    assert frontend["ports"][0]["containerPort"] == 8080 and "listen 8080;" in conf
