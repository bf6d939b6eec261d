"""Deployment hardening (docs/security.md): `manage.py check --deploy` passes on production settings
(plain environment and the Helm-rendered production environment), every silenced check has a written
reason, dangerous configuration fails at start-up, HTTPS turns on secure cookies and HSTS, and every
HTML and JSON route carries the browser-side headers (S1, S2)."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests import factories

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS_SOURCE = REPO_ROOT / "socproject" / "settings.py"


def _production_env(**overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CSRF_", "WS_", "TRUSTED_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="socproject.settings", DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50), DJANGO_ALLOWED_HOSTS="soc.example.com",
        CSRF_TRUSTED_ORIGINS="https://soc.example.com", TRUSTED_PROXY_COUNT="2",
    )
    env.update(overrides)
    return env


def _manage(env, *args):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, check=False,
                          text=True, timeout=120)


def test_check_deploy_passes_with_production_settings():
    result = _manage(_production_env(), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (2 silenced)." in result.stdout


@pytest.mark.chart
def test_check_deploy_passes_with_the_helm_rendered_production_environment(tmp_path):
    """S1 on the exact environment a production backend pod gets (values-production.yaml)."""
    from tests.chart import helmchart as hc

    objects = hc.render(hc.load_values(hc.PRODUCTION_VALUES))
    _owner, _meta, spec = hc.pod_of(objects, "backend")
    rendered = hc.env_values(objects, hc.container(spec, "backend"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CSRF_", "WS_", "TRUSTED_"))}
    env.update({name: value if isinstance(value, str) else "unused" for name, value in rendered.items()})
    env.update(DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",  # no database is reached by the check
               OTEL_EXPORTER_OTLP_ENDPOINT="")
    assert env["TRUSTED_PROXY_COUNT"] == "2" and env["CSRF_TRUSTED_ORIGINS"] == "https://soc.example.com"
    result = _manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues (2 silenced)" in result.stdout


def test_every_silenced_check_has_a_written_reason():
    source = SETTINGS_SOURCE.read_text()
    block = source[source.index("SILENCED_SYSTEM_CHECKS = [") :].split("\n]", 1)[0].splitlines()[1:]
    entries = [i for i, line in enumerate(block) if line.strip().startswith('"')]
    assert entries
    for index in entries:
        reason = []
        for line in reversed(block[:index]):
            if not line.strip().startswith("#"):
                break
            reason.append(line)
        assert len(" ".join(reason)) > 60, f"{block[index].strip()} has no written reason"


HTTPS_PROBE = """
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
print("cookies", settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SESSION_COOKIE_NAME)
print("hsts", settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS)
print("ws", ",".join(settings.WS_ALLOWED_ORIGINS))
client = Client(HTTP_HOST="soc.example.com")
page = client.get("/accounts/login/")
print("hsts-header", page.get("Strict-Transport-Security"))
print("csp", page.get("Content-Security-Policy"))
print("csrf-cookie", page.cookies["csrftoken"]["secure"], page.cookies["csrftoken"]["samesite"])
"""


def test_https_origins_turn_on_secure_cookies_hsts_and_wss_only(tmp_path):
    env = _production_env(DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3")
    result = _manage(env, "shell", "-c", HTTPS_PROBE)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert lines["cookies"] == "True True __Host-sessionid"
    assert lines["hsts"] == "31536000 True"
    assert lines["ws"] == "https://soc.example.com"
    assert lines["hsts-header"] == "max-age=31536000; includeSubDomains"
    assert "wss://soc.example.com" in lines["csp"] and "ws://" not in lines["csp"]
    assert lines["csrf-cookie"] == "True Lax"


def test_plain_http_keeps_cookies_usable_and_sends_no_hsts(tmp_path):
    env = _production_env(CSRF_TRUSTED_ORIGINS="", TRUSTED_PROXY_COUNT="0",
                          DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3")
    result = _manage(env, "shell", "-c", HTTPS_PROBE)
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert lines["cookies"] == "False False sessionid" and lines["hsts-header"] == "None"


@pytest.mark.parametrize("name,value,message", [
    ("WS_ALLOWED_ORIGINS", "*", "'*' is not allowed"),
    ("WS_ALLOWED_ORIGINS", "https://*.example.com", "'*' is not allowed"),
    ("WS_ALLOWED_ORIGINS", "https://soc.example.com/app", "is not an origin"),
    ("WS_ALLOWED_ORIGINS", "soc.example.com", "is not an origin"),
    ("DJANGO_ALLOWED_HOSTS", "*", "'*' is not allowed"),
    ("TRUSTED_PROXY_COUNT", "-1", "must be at least 0"),
    ("TRUSTED_PROXY_COUNT", "two", "expected an integer"),
    ("TRUSTED_PROXIES", "10.0.0.1/8", "is not an IP network"),  # host bits set: a typo
    ("TRUSTED_PROXIES", "10.0.0.0/8,ingress", "'ingress' is not an IP network"),
])
def test_dangerous_configuration_stops_start_up(name, value, message):
    # Start-up stops where every process starts: loading settings.py (in-process, as tests/test_settings.py does).
    from tests.test_settings import evaluate

    result = evaluate("settings.DEBUG", _production_env(**{name: value}))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


# --- S2: the browser-side headers on every route -----------------------------------------------------------


@pytest.fixture
def https(settings):
    settings.SERVED_OVER_HTTPS = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True


def _routes(threat):
    return ["/", "/threats/", f"/threats/{threat.pk}/", "/accounts/login/", "/admin/", "/admin/login/",
            "/api/threats", f"/api/threats/{threat.pk}", "/api/analytics", "/api/events", "/api/groups",
            "/api/openapi.json", "/api/docs", "/health", "/ready", "/no-such-page/", "/api/no-such-endpoint"]


@pytest.mark.django_db
def test_every_route_carries_the_browser_side_headers(https, alice_client, customer):
    threat = factories.make_threat(customer=customer)
    for path in _routes(threat):
        response = alice_client.get(path, secure=True)
        assert response.status_code < 500, path
        csp = response["Content-Security-Policy"]
        for directive in ("object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "script-src 'self'"):
            assert directive in csp, (path, directive)
        assert "unsafe-inline" not in re.search(r"script-src[^;]*", csp).group(0), path
        assert response["X-Content-Type-Options"] == "nosniff", path
        assert response["Referrer-Policy"] == "same-origin", path
        assert response["X-Frame-Options"] == "DENY", path
        assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains", path


@pytest.mark.django_db
def test_the_session_cookie_is_httponly_and_samesite(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice"})
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert cookie["max-age"] == 12 * 3600


# --- S16: no known ASGI-layer hole in the installed versions ----------------------------------------------

PATCHED = {
    "daphne": (4, 2, 2),  # CVE-2026-44545 (unbounded frames), CVE-2026-44546 (smuggled duplicate headers)
    "django": (5, 2, 13),  # CVE-2026-33034 (ASGI bodies with a missing or understated Content-Length)
    "channels": (3, 0, 3),  # responses crossing between requests
}


@pytest.mark.parametrize("package", sorted(PATCHED))
def test_the_installed_asgi_stack_has_its_security_fixes(package):
    from importlib.metadata import version

    installed = tuple(int(part) for part in re.findall(r"\d+", version(package))[:3])
    assert installed >= PATCHED[package], f"{package} {version(package)} lacks the fix of {PATCHED[package]}"
