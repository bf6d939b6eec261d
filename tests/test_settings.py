"""The settings module is driven by the environment and refuses unsafe or ambiguous values.

Each case executes settings.py afresh under a controlled environment and only inspects the resulting
values: nothing here connects to a database or to Redis. settings.py reads nothing but the
environment (and the files it names) and changes nothing when imported, so a new module object in
this process is as isolated as a new interpreter was, without an interpreter's start-up per case;
`test_importing_the_settings_changes_nothing_in_the_process` holds it to that in a real one.
"""

import json
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from django.conf import Settings

import socproject

REPO_ROOT = Path(__file__).resolve().parent.parent
MODULE = "socproject.settings"
# Every variable settings.py reads (plus the *_FILE forms of its secrets), so the caller's
# environment cannot leak into a case.
SETTINGS_VARIABLES = {
    "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CSRF_TRUSTED_ORIGINS", "LOG_LEVEL", "LOG_FORMAT",
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME",
    "THREAT_GENERATION_INTERVAL", "ENABLE_AUTO_THREAT_GENERATION", "MAX_STORED_THREATS",
    "LLM_BASE_URL", "LLM_API_KEY", "LLM_API_KEY_FILE", "LLM_MODEL", "LLM_TIMEOUT", "AGENTS_BATCH_SIZE",
    "AGENTS_SHARED_REPUTATION", "AGENTS_HISTORY_DAYS", "INGEST_MAX_BODY_BYTES",
    "WS_SESSION_RECHECK_SECONDS", "WS_MAX_SOCKETS_PER_USER", "DATABASE_POOL_MAX_SIZE", "DATABASE_POOL_TIMEOUT",
    "ANALYTICS_SHARE_SECONDS", "SUPPRESSION_ADMIN_THRESHOLD", "ACCESS_CACHE_SECONDS",
}
PRODUCTION = {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "a-real-secret", "DJANGO_ALLOWED_HOSTS": "soc.example"}


@dataclass
class Loaded:
    """What loading the settings gave: as a process would report it (exit status, output, error)."""

    returncode: int
    stdout: str = ""
    stderr: str = ""


def environment(**variables):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("DJANGO_") and key not in SETTINGS_VARIABLES}
    return {**env, **variables}


def fresh_settings(env):
    """django.conf's Settings built from a new execution of settings.py under exactly `env`; the
    test process's own settings module and environment are put back afterwards."""
    module, attribute = sys.modules.pop(MODULE, None), socproject.__dict__.get("settings")
    try:
        with mock.patch.dict(os.environ, env, clear=True):
            return Settings(MODULE)
    finally:
        sys.modules.pop(MODULE, None)
        if module is not None:
            sys.modules[MODULE] = module
        if attribute is not None:
            socproject.settings = attribute


def load_settings(expression="settings.DEBUG", **variables):
    """Evaluate `expression` against the settings loaded under `variables` (JSON, as text)."""
    return evaluate(expression, environment(**variables))


def evaluate(expression, env):
    """`expression` against the settings loaded under exactly the environment `env`."""
    try:
        value = eval(expression, {"settings": fresh_settings(env)})  # noqa: S307 - the tests' own expressions
        return Loaded(0, stdout=json.dumps(value, default=str))
    except Exception:  # noqa: BLE001 - reported as the failing process would report it
        return Loaded(1, stderr=traceback.format_exc())


def value_of(expression, **variables):
    result = load_settings(expression, **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refusal(**variables):
    """The settings fail to load with ImproperlyConfigured; returns its message line."""
    result = load_settings(**variables)
    assert result.returncode != 0, result.stdout
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("django.core.exceptions.ImproperlyConfigured")]
    return line


def test_importing_the_settings_changes_nothing_in_the_process(tmp_path):
    """In a fresh interpreter: no environment variable written, no directory made (the metric
    directory is made by threats/metrics.py), and the values match what a case here reads."""
    program = (
        "import json, os, tempfile; before = dict(os.environ); temp = set(os.listdir(tempfile.gettempdir())); "
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'socproject.settings'; from django.conf import settings; "
        "value = [settings.DEBUG, settings.ALLOWED_HOSTS, settings.AGENTS_HISTORY_DAYS]; "
        "del os.environ['DJANGO_SETTINGS_MODULE']; "
        "made = sorted(set(os.listdir(tempfile.gettempdir())) - temp); "
        "print(json.dumps({'value': value, 'environ': dict(os.environ) == before, 'made': made}))"
    )
    env = environment(**PRODUCTION, AGENTS_HISTORY_DAYS="7", TMPDIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    found = json.loads(done.stdout)
    assert found == {"value": [False, ["soc.example"], 7], "environ": True, "made": []}
    assert found["value"] == value_of("[settings.DEBUG, settings.ALLOWED_HOSTS, settings.AGENTS_HISTORY_DAYS]",
                                      **PRODUCTION, AGENTS_HISTORY_DAYS="7")


# --- DJANGO_DEBUG -----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw,expected", [("true", True), ("TRUE", True), ("True", True), ("false", False),
                                          ("False", False), ("FALSE", False)])
def test_it_accepts_only_true_or_false_in_any_case(raw, expected):
    assert value_of("settings.DEBUG", **{**PRODUCTION, "DJANGO_DEBUG": raw}) is expected


@pytest.mark.parametrize("raw", ["yes", "1", "0", "on", "no", ""])
def test_it_refuses_an_ambiguous_debug_value_naming_the_variable(raw):
    message = refusal(**{**PRODUCTION, "DJANGO_DEBUG": raw})
    assert "DJANGO_DEBUG" in message


def test_it_defaults_to_debug_off():
    assert value_of("settings.DEBUG", DJANGO_SECRET_KEY="s", DJANGO_ALLOWED_HOSTS="soc.example") is False


def test_it_runs_with_debug_on_and_nothing_else_set():
    values = value_of("[settings.DEBUG, settings.SECRET_KEY != '', settings.ALLOWED_HOSTS]", DJANGO_DEBUG="true")
    assert values == [True, True, ["localhost", "127.0.0.1", "[::1]"]]


# --- Secret key and allowed hosts ------------------------------------------------------------------


def test_it_refuses_debug_off_without_a_secret_key():
    message = refusal(DJANGO_DEBUG="false", DJANGO_ALLOWED_HOSTS="soc.example")
    assert "DJANGO_SECRET_KEY" in message


def test_it_refuses_debug_off_without_allowed_hosts():
    message = refusal(DJANGO_DEBUG="false", DJANGO_SECRET_KEY="a-real-secret")
    assert "DJANGO_ALLOWED_HOSTS" in message


@pytest.mark.parametrize("hosts", ["*", "soc.example,*"])
def test_it_refuses_a_wildcard_in_allowed_hosts(hosts):
    message = refusal(**{**PRODUCTION, "DJANGO_ALLOWED_HOSTS": hosts})
    assert "DJANGO_ALLOWED_HOSTS" in message and "*" in message


def test_it_reads_allowed_hosts_as_a_comma_separated_list():
    hosts = value_of("settings.ALLOWED_HOSTS", **{**PRODUCTION, "DJANGO_ALLOWED_HOSTS": " soc.example , api.example ,"})
    assert hosts == ["soc.example", "api.example"]


def test_it_reads_the_secret_key_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("secret-from-a-file\n")

    key = value_of("settings.SECRET_KEY", DJANGO_DEBUG="false", DJANGO_ALLOWED_HOSTS="soc.example",
                   DJANGO_SECRET_KEY_FILE=str(secret), DJANGO_SECRET_KEY="ignored-when-a-file-is-given")

    assert key == "secret-from-a-file"


def test_it_fails_loudly_when_the_secret_key_file_is_missing(tmp_path):
    missing = tmp_path / "does-not-exist"

    message = refusal(DJANGO_DEBUG="false", DJANGO_ALLOWED_HOSTS="soc.example", DJANGO_SECRET_KEY_FILE=str(missing))

    assert "DJANGO_SECRET_KEY_FILE" in message and str(missing) in message


# --- One machine versus cluster --------------------------------------------------------------------

EXPRESSION = (
    "{'layer': settings.CHANNEL_LAYERS['default']['BACKEND'], 'eager': settings.CELERY_TASK_ALWAYS_EAGER, "
    "'in_thread': settings.AGENTS_IN_THREAD, 'engine': settings.DATABASES['default']['ENGINE'], "
    "'options': settings.DATABASES['default'].get('OPTIONS', {}), 'cache': settings.CACHES['default']['BACKEND'], "
    "'broker': settings.CELERY_BROKER_URL}"
)


def test_it_runs_embedded_without_redis():
    values = value_of(EXPRESSION, **PRODUCTION)

    assert values["layer"] == "channels.layers.InMemoryChannelLayer"
    assert values["eager"] is True
    assert values["in_thread"] is True
    assert values["engine"] == "django.db.backends.sqlite3"
    assert "journal_mode=WAL" in values["options"]["init_command"]
    assert values["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert not values["broker"].startswith("redis")


@pytest.mark.parametrize("size, pool", [(None, {"min_size": 1, "max_size": 8, "timeout": 10.0}),
                                        ("3", {"min_size": 1, "max_size": 3, "timeout": 10.0}), ("0", None)])
def test_postgresql_connections_come_from_a_pool_per_process(size, pool):
    """Django's psycopg pool by default (a new connection per request was most of a request's time);
    `DATABASE_POOL_MAX_SIZE=0` turns it off."""
    variables = {**PRODUCTION, "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test"}
    if size is not None:
        variables["DATABASE_POOL_MAX_SIZE"] = size
    values = value_of("{'pool': settings.DATABASES['default']['OPTIONS'].get('pool'), "
                      "'age': settings.DATABASES['default']['CONN_MAX_AGE']}",
                      **variables)
    assert values == {"pool": pool, "age": 0}


def test_it_runs_clustered_with_redis_and_postgres():
    values = value_of(EXPRESSION, **PRODUCTION, REDIS_URL="redis://127.0.0.1:6379/0",
                      DATABASE_URL="postgres://postgres@127.0.0.1:5432/test")

    assert values["layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert values["eager"] is False
    assert values["in_thread"] is False
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["cache"] == "django_redis.cache.RedisCache"
    assert values["broker"] == "redis://127.0.0.1:6379/0"


def test_it_points_the_channel_layer_and_cache_at_redis_url():
    layer_host, cache_location = value_of(
        "[settings.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0]['address'], settings.CACHES['default']['LOCATION']]",
        **PRODUCTION, REDIS_URL="redis://cache.internal:6380/2",
    )
    assert layer_host == cache_location == "redis://cache.internal:6380/2"


# --- Other strict values -----------------------------------------------------------------------------


@pytest.mark.parametrize("variables,name", [
    ({"MAX_STORED_THREATS": "lots"}, "MAX_STORED_THREATS"),
    ({"MAX_STORED_THREATS": "-5"}, "MAX_STORED_THREATS"),
    ({"THREAT_GENERATION_INTERVAL": "0"}, "THREAT_GENERATION_INTERVAL"),
    ({"ENABLE_AUTO_THREAT_GENERATION": "yes"}, "ENABLE_AUTO_THREAT_GENERATION"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ({"AGENTS_BATCH_SIZE": "0"}, "AGENTS_BATCH_SIZE"),
    ({"AGENTS_BATCH_SIZE": "101"}, "AGENTS_BATCH_SIZE"),
    ({"AGENTS_SHARED_REPUTATION": "1"}, "AGENTS_SHARED_REPUTATION"),
    ({"WS_SESSION_RECHECK_SECONDS": "0"}, "WS_SESSION_RECHECK_SECONDS"),
    ({"WS_MAX_SOCKETS_PER_USER": "0"}, "WS_MAX_SOCKETS_PER_USER"),
    ({"INGEST_MAX_BODY_BYTES": "10M"}, "INGEST_MAX_BODY_BYTES"),
    ({"AGENTS_HISTORY_DAYS": "0"}, "AGENTS_HISTORY_DAYS"),
])
def test_it_refuses_other_invalid_values_naming_the_variable(variables, name):
    assert name in refusal(**PRODUCTION, **variables)


def test_shared_reputation_across_customers_is_off_unless_the_operator_turns_it_on():
    assert value_of("settings.AGENTS_SHARED_REPUTATION", **PRODUCTION) is False
    assert value_of("settings.AGENTS_SHARED_REPUTATION", **PRODUCTION, AGENTS_SHARED_REPUTATION="True") is True


def test_the_analysis_batch_size_defaults_to_20_and_reads_the_variable():
    assert value_of("settings.AGENTS_BATCH_SIZE", **PRODUCTION) == 20
    assert value_of("settings.AGENTS_BATCH_SIZE", **PRODUCTION, AGENTS_BATCH_SIZE="100") == 100


def test_the_socket_limits_default_to_30_seconds_and_20_sockets_and_read_their_variables():
    expression = "[settings.WS_SESSION_RECHECK_SECONDS, settings.WS_MAX_SOCKETS_PER_USER]"
    assert value_of(expression, **PRODUCTION) == [30.0, 20]
    assert value_of(expression, **PRODUCTION, WS_SESSION_RECHECK_SECONDS="5", WS_MAX_SOCKETS_PER_USER="50") == [5.0, 50]


def test_the_ingest_body_limit_defaults_to_10_mib_and_reads_the_variable():
    assert value_of("settings.INGEST_MAX_BODY_BYTES", **PRODUCTION) == 10 * 1024 * 1024
    assert value_of("settings.INGEST_MAX_BODY_BYTES", **PRODUCTION, INGEST_MAX_BODY_BYTES="20971520") == 20971520


def test_the_history_look_back_defaults_to_30_days_and_reads_the_variable():
    assert value_of("settings.AGENTS_HISTORY_DAYS", **PRODUCTION) == 30
    assert value_of("settings.AGENTS_HISTORY_DAYS", **PRODUCTION, AGENTS_HISTORY_DAYS="90") == 90
