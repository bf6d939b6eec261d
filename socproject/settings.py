"""
Settings for the SOC Agent System: one module, driven by environment variables.

Three blocks: strict helpers, values read from the environment (with one-machine defaults),
and derived values. Every variable is listed in docs/configuration.md's table. Nothing outside this
module reads the environment.

One machine (nothing set): SQLite in WAL mode, in-memory channel layer, agents run
in-process (Celery eager), local-memory cache.
Cluster (REDIS_URL and usually DATABASE_URL set): Postgres, channels-redis, Celery workers
on the Redis broker, django-redis cache.
"""

import ipaddress
import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


# --- 1. Strict helpers --------------------------------------------------------------------


def env_str(name, default=""):
    return os.environ.get(name, default).strip()


def env_bool(name, default):
    """Only "true" or "false" (any case) are accepted: "False" must never read as true."""
    value = env_str(name, default).lower()
    if value not in ("true", "false"):
        raise ImproperlyConfigured(f"{name}={value!r}: use 'true' or 'false'")
    return value == "true"


def env_int(name, default, minimum=0, maximum=None):
    value = env_str(name, str(default))
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected an integer") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}={number}: must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number}: must be at most {maximum}")
    return number


def env_float(name, default, minimum=0.0):
    value = env_str(name, str(default))
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a number") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}={number}: must be at least {minimum}")
    return number


def env_list(name, default=""):
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_pairs(name, default="", separator="="):
    """Comma-separated KEY<separator>VALUE items, e.g. "web-*=acme,db01=globex"; a malformed item
    fails at start-up."""
    pairs = [item.partition(separator) for item in env_list(name, default)]
    for key, found, value in pairs:
        if not (found and key.strip() and value.strip()):
            raise ImproperlyConfigured(f"{name}: {key + found + value!r} is not KEY{separator}VALUE")
    return [(key.strip(), value.strip()) for key, _, value in pairs]


def env_networks(name, default=""):
    """Comma-separated IP networks (CIDR) or addresses; host bits set (10.0.0.1/8) is a typo and
    fails at start-up like any malformed item."""
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP network (CIDR) or address") from None
    return tuple(networks)


def env_secret(name, default=""):
    """Read NAME, or the file named by NAME_FILE (Kubernetes/Docker secrets)."""
    path = env_str(f"{name}_FILE")
    if not path:
        return env_str(name, default)
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from None


# --- 2. Values from the environment -------------------------------------------------------

DEBUG = env_bool("DJANGO_DEBUG", "false")
SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# WebSocket Origin allow-list beyond the page's own origin (default: CSRF_TRUSTED_ORIGINS), the
# number of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are trusted, and the addresses
# those proxies connect from: a peer outside them is the client, whatever headers it sends
# (docs/security.md).
WS_ALLOWED_ORIGINS = env_list("WS_ALLOWED_ORIGINS")
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES", "127.0.0.0/8,::1/128")
# How often an open socket re-reads its session, user, role and scope on its own (it also does on
# every client message): a session deleted without any push (expiry, clearsessions, a rotated
# secret key) ends its sockets within this time, with close code 4001. And the open sockets one
# user may hold in one web process; one more is closed with 4029 (docs/security.md).
WS_SESSION_RECHECK_SECONDS = env_float("WS_SESSION_RECHECK_SECONDS", 30, minimum=1)
WS_MAX_SOCKETS_PER_USER = env_int("WS_MAX_SOCKETS_PER_USER", 20, minimum=1)

DATABASE_URL = env_str("DATABASE_URL")
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 8)  # per process, PostgreSQL only; 0 = no pool
DATABASE_POOL_TIMEOUT = env_float("DATABASE_POOL_TIMEOUT", 10, minimum=1)  # seconds to wait for a free connection
# Analytics are computed at most once per this many seconds per customer scope and pod, and shared
# (threats/shared_analytics.py); 0 computes them on every request.
ANALYTICS_SHARE_SECONDS = env_float("ANALYTICS_SHARE_SECONDS", 1, minimum=0)
REDIS_URL = env_str("REDIS_URL")
# How long a user's permissions and customer scope may be served from Redis instead of three
# queries a request; any change to them retires the entry at once on every pod (threats/grants.py).
# Off without Redis: a process-local cache could not hear of another process's change.
ACCESS_CACHE_SECONDS = env_float("ACCESS_CACHE_SECONDS", 60, minimum=0) if REDIS_URL else 0
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOG_FORMAT = env_str("LOG_FORMAT", "text").lower()

OTEL_EXPORTER_OTLP_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_ENDPOINT")
OTEL_EXPORTER_OTLP_PROTOCOL = env_str("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
OTEL_SERVICE_NAME = env_str("OTEL_SERVICE_NAME", "soc-agent-system")

THREAT_GENERATION_INTERVAL = env_float("THREAT_GENERATION_INTERVAL", 30, minimum=0.1)
ENABLE_AUTO_THREAT_GENERATION = env_bool("ENABLE_AUTO_THREAT_GENERATION", "false")
MAX_STORED_THREATS = env_int("MAX_STORED_THREATS", 0)
# My queue (docs/queue.md): an open, unacknowledged threat is pushed as `threat.sla_warning` once
# its remaining SLA time is at most this share of the SLA; the check runs every interval.
SOC_SLA_WARN_FRACTION = env_float("SOC_SLA_WARN_FRACTION", 0.2, minimum=0.01)
if SOC_SLA_WARN_FRACTION >= 1:
    raise ImproperlyConfigured(f"SOC_SLA_WARN_FRACTION={SOC_SLA_WARN_FRACTION}: must be below 1 (a share of the SLA)")
SOC_SLA_WARN_INTERVAL_SECONDS = env_float("SOC_SLA_WARN_INTERVAL_SECONDS", 30, minimum=0.5)

LLM_BASE_URL = env_str("LLM_BASE_URL")
LLM_API_KEY = env_secret("LLM_API_KEY")
LLM_MODEL = env_str("LLM_MODEL")
LLM_TIMEOUT = env_float("LLM_TIMEOUT", 20, minimum=0.1)
# Threats queued together (an ingest batch, the stale-analysis sweeper) go to the workers in tasks
# of up to this many (one claim statement and one task's overhead for all of them); 1 = a task per
# threat. With an LLM configured every threat gets its own task (each may wait for the model). At
# most 100, so a batch stays far inside the task's 60 s soft time limit even on a slow database.
AGENTS_BATCH_SIZE = env_int("AGENTS_BATCH_SIZE", 20, minimum=1, maximum=100)
# Opt-in cross-customer knowledge (docs/agents.md, historical): how many OTHER customers' analysts
# confirmed one of a threat's indicators as malicious — a count, never ids or names, and only ever
# adding risk. Off: a customer's analysis reads nothing of another customer's threats.
AGENTS_SHARED_REPUTATION = env_bool("AGENTS_SHARED_REPUTATION", "false")
# The historical agent's look-back (docs/agents.md): past threats older than this many days are not read.
AGENTS_HISTORY_DAYS = env_int("AGENTS_HISTORY_DAYS", 30, minimum=1)

# Alert ingestion (docs/ingestion.md): Wazuh rule level -> severity hint (level >= N),
# agent/host/sensor name pattern -> customer slug or name, grouping window (0 = no grouping),
# campaign window: a user's alerts within it of a campaign's first are one campaign (0 = no campaigns).
INGEST_WAZUH_LEVELS = env_pairs("INGEST_WAZUH_LEVELS", "0:LOW,7:MEDIUM,12:HIGH,15:CRITICAL", separator=":")
INGEST_HOST_CUSTOMERS = env_pairs("INGEST_HOST_CUSTOMERS")
# Five hours, Microsoft Sentinel's default alert-grouping period: an hourly beacon or job stays one group.
INGEST_GROUP_WINDOW_SECONDS = env_int("INGEST_GROUP_WINDOW_SECONDS", 18000)
INGEST_CAMPAIGN_WINDOW_SECONDS = env_int("INGEST_CAMPAIGN_WINDOW_SECONDS", 3600)
# Largest ingest request body (413 above); the Helm chart sizes its proxies' body limits from it.
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 10 * 1024 * 1024, minimum=1)
# Bounds on one ingest request that are not configurable from the environment (docs/ingestion.md).
INGEST_MAX_BATCH = 1_000  # more alerts in one request: 413
INGEST_MAX_ITEM_CHARS = 1024 * 1024  # one alert, counted in characters of keys and strings
INGEST_MAX_STRING_CHARS = 65_536  # longer strings inside an alert are cut (Wazuh's own cap is 64 KiB)
INGEST_MAX_DEPTH = 32  # deeper nesting: the alert is refused


# --- 3. Derived values ---------------------------------------------------------------------

if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set when DJANGO_DEBUG is false"
        )
    SECRET_KEY = "insecure-debug-only-key"  # noqa: S105 - only reachable with DJANGO_DEBUG=true
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must be set when DJANGO_DEBUG is false")
if "*" in ALLOWED_HOSTS:
    # AllowedHostsOriginValidator reuses ALLOWED_HOSTS: "*" would switch off the WebSocket
    # origin check, so it is refused rather than silently accepted.
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must list host names; '*' is not allowed")
if any("*" in origin for origin in WS_ALLOWED_ORIGINS):
    # A wildcard origin is what makes cross-site WebSocket hijacking possible: list exact origins.
    raise ImproperlyConfigured("WS_ALLOWED_ORIGINS must list exact origins (https://host[:port]); '*' is not allowed")
WS_ALLOWED_ORIGINS = WS_ALLOWED_ORIGINS or [origin for origin in CSRF_TRUSTED_ORIGINS if "*" not in origin]
for _origin in WS_ALLOWED_ORIGINS:
    if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?", _origin):
        raise ImproperlyConfigured(f"WS_ALLOWED_ORIGINS: {_origin!r} is not an origin like https://soc.example.com")
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
_levels = [(int(level) if level.isdigit() else -1, severity.upper()) for level, severity in INGEST_WAZUH_LEVELS]
if not any(level == 0 for level, _ in _levels) or not all(
    0 <= level <= 15 and severity in ("LOW", "MEDIUM", "HIGH", "CRITICAL") for level, severity in _levels
):
    raise ImproperlyConfigured("INGEST_WAZUH_LEVELS: LEVEL:SEVERITY items with levels 0-15, one of them 0, and "
                               "severities LOW, MEDIUM, HIGH or CRITICAL")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use 'json' or 'text'")
if OTEL_EXPORTER_OTLP_PROTOCOL not in ("grpc", "http/protobuf"):
    raise ImproperlyConfigured(
        f"OTEL_EXPORTER_OTLP_PROTOCOL={OTEL_EXPORTER_OTLP_PROTOCOL!r}: use 'grpc' or 'http/protobuf'"
    )

DATA_DIR = BASE_DIR / "var"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "ninja",
    "threats",
    "agents",
    "handoff",
    "suppressions",
    "stories",
]

MIDDLEWARE = [
    "threats.metrics.HttpMetricsMiddleware",  # first: times everything below it (docs/observability.md)
    "threats.middleware.TrustedProxyMiddleware",  # X-Forwarded-* only from TRUSTED_PROXIES
    "threats.middleware.UriTooLongMiddleware",  # 414 for an oversized query string (no session, no DB)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "threats.middleware.RateLimitMiddleware",  # per user / per address limits, throttled logins -> 429
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "threats.middleware.ContentSecurityPolicyMiddleware",
    "threats.middleware.StrictTransportSecurityMiddleware",
    "threats.middleware.JsonApiErrorsMiddleware",
]

ROOT_URLCONF = "socproject.urls"
ASGI_APPLICATION = "socproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# WAL lets the dashboard read while an analysis writes; IMMEDIATE transactions plus a busy timeout
# turn "database is locked" into a short wait. Reads through a memory map of up to 256 MiB (shared
# page cache, no read() per page) took the historical agent's look-up from 0.47 to 0.30 ms at 3,000
# threats. Applied to every SQLite database, default or URL.
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA mmap_size=268435456;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}
if DATABASE_URL:
    # CONN_MAX_AGE=0: under Daphne persistent connections are never recycled (daphne#332).
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
else:
    DATA_DIR.mkdir(exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            "TEST": {"NAME": DATA_DIR / "test-db.sqlite3"},
        }
    }
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["OPTIONS"] = {**SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
elif DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # psycopg prepares a statement after 5 runs on one connection — only on the server-binding
    # cursors of the analysis path (threats/sql.py); the ORM's cursors bind client-side and never
    # prepare. Django turns this off by default for PgBouncer: 1.21+ handles it (docs/agents.md).
    DATABASES["default"]["OPTIONS"] = {"prepare_threshold": 5, **DATABASES["default"].get("OPTIONS", {})}
    # A pool per process (psycopg_pool through Django): a request borrows a connection instead of
    # opening one (a new PostgreSQL connection per request was most of a list request's time,
    # docs/benchmarks.md). It grows only as far as the threads that use it at once: a Daphne pod's
    # request threads, a Celery process's analysis threads. Sizing against max_connections: helm/README.md.
    if DATABASE_POOL_MAX_SIZE:
        DATABASES["default"]["OPTIONS"].setdefault("pool", {
            "min_size": 1, "max_size": DATABASE_POOL_MAX_SIZE, "timeout": DATABASE_POOL_TIMEOUT})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # redis-py 8 defaults (socket_timeout=5, max_connections=100) kill idle sockets and
            # refuse bursts of joins; see docs/cluster.md "Channel layer".
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": None, "max_connections": 10000}]
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "soc",
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: with no broker the agents run in-process (eager); AGENTS_IN_THREAD moves that eager
# run off the request thread so POST /api/threats/trigger answers 202 at once.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if CELERY_TASK_ALWAYS_EAGER:
    CELERY_BROKER_URL = "memory://localhost/"  # never used for eager tasks; keeps kombu from guessing localhost
CELERY_TASK_EAGER_PROPAGATES = True
# At-least-once analysis (tasks are idempotent): acknowledge after the run, give the task back if
# the worker process dies, take one task at a time, and stop work whose broker connection is gone.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_IGNORE_RESULT = True
# Workers keep their database connection between tasks (Celery would close it after each one):
# reconnecting to PostgreSQL cost about 17 ms a task (one pool process: 22 -> 36 analyses/s,
# bench/bench_worker.py). agents/tasks.py drops a broken connection before the next task.
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
# Visibility timeout above every task's hard time limit, or a running task is delivered twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 300}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# A web request that queues an analysis while Redis is down gives up quickly (the threat is stored
# and the sweeper queues it later) instead of hanging.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-analyses": {"task": "agents.requeue_stale_analyses", "schedule": 60.0},
}
if ENABLE_AUTO_THREAT_GENERATION:
    CELERY_BEAT_SCHEDULE["generate-threat"] = {
        "task": "threats.generate_threat",
        "schedule": THREAT_GENERATION_INTERVAL,
    }
AGENTS_IN_THREAD = CELERY_TASK_ALWAYS_EAGER
CELERY_BEAT_SCHEDULE["sweep-webhooks"] = {"task": "handoff.sweep_webhooks", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["warn-sla"] = {"task": "threats.warn_sla", "schedule": SOC_SLA_WARN_INTERVAL_SECONDS}
CELERY_BEAT_SCHEDULE["expire-suppressions"] = {"task": "suppressions.expire", "schedule": 60.0}
# Suppressions (docs/suppressions.md): saving one that would have hidden more stored threats than
# this (over its preview window) needs the admin role.
SUPPRESSION_ADMIN_THRESHOLD = env_int("SUPPRESSION_ADMIN_THRESHOLD", 500, minimum=0)

# Webhooks (handoff/, docs/handoff.md): attempts, back-off base and cap, per-attempt timeout, and
# whether endpoints may be private addresses (link-local/metadata ones never are).
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
WEBHOOK_BACKOFF_SECONDS = env_float("WEBHOOK_BACKOFF_SECONDS", 10, minimum=0)
WEBHOOK_BACKOFF_MAX_SECONDS = env_float("WEBHOOK_BACKOFF_MAX_SECONDS", 3600, minimum=0)
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=0.1)
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "false")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "threats:dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Security (docs/security.md) ---
# HTTPS indicator: the site is served over HTTPS when its trusted origins are https (the chart
# derives them from the TLS ingress hosts). Then cookies are Secure, the session cookie takes the
# __Host- prefix and every response carries HSTS for a year including subdomains.
SERVED_OVER_HTTPS = any(origin.startswith("https://") for origin in CSRF_TRUSTED_ORIGINS)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SERVED_OVER_HTTPS
SESSION_COOKIE_NAME = "__Host-sessionid" if SERVED_OVER_HTTPS else "sessionid"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 12 * 3600  # absolute session lifetime: one shift (ASVS 7.3.2)
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = 31_536_000 if SERVED_OVER_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SERVED_OVER_HTTPS
# X-Forwarded-Proto is believed only when proxies are configured to stand in front (they set it).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXY_COUNT else None
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SILENCED_SYSTEM_CHECKS = [
    # W008 (SECURE_SSL_REDIRECT off): TLS ends at the ingress, which redirects http to https
    # (ingress-nginx's ssl-redirect, on by default with a TLS host). Behind it the pods only ever
    # see plain HTTP from nginx, so a redirect here would loop; /health and /ready must answer
    # the kubelet over plain HTTP as well.
    "security.W008",
    # W021 (SECURE_HSTS_PRELOAD off): preloading is a one-way commitment for the whole registered
    # domain, made by its owner at hstspreload.org, not something this application may assert.
    "security.W021",
]
AUTHENTICATION_BACKENDS = ["threats.access.ThrottledModelBackend"]
# Limits as (count, window in seconds), counted in the shared cache (docs/security.md): API calls
# per session user, per API key and per address without either; failed logins per username and
# per address (Zulip's 5 per 30 min per username); WebSocket client messages per socket.
RATE_LIMITS = {
    "user": (600, 60),
    "key": (1200, 60),
    "anonymous": (120, 60),
    "login_user": (5, 1800),
    "login_ip": (50, 1800),
    "login_user_from_ip": (1_000_000, 1800),  # never limits: what a success from that address forgives
}
WS_MAX_MESSAGE_BYTES = 65_536  # larger client messages close the socket (1009); over 4 KiB are ignored
WS_MESSAGES_PER_10_SECONDS = 30

# Bounds on untrusted input (alerts may carry 50 MB strings).
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# How far back a WebSocket resume may reach before the client is told to reload.
EVENT_REPLAY_LIMIT = 1000

# --- Observability (docs/observability.md) ---

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"trace": {"()": "socproject.logformat.TraceContextFilter"}},
    "formatters": {
        "text": {"()": "socproject.logformat.TextFormatter",
                 "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "socproject.logformat.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["trace"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per successful task is noise at this volume; failures are still logged.
        "celery.app.trace": {"level": "WARNING"},
        # The exporter logs each retry; the final failure of a batch (ERROR) is enough.
        "opentelemetry": {"level": "ERROR"},
    },
}
