"""Fast settings, personas and factories shared by every test.

Personas (as in healthchecks): alice is an analyst, bob a teammate analyst, charlie an outsider
who can log in but has no analyst role. Every endpoint test includes charlie.

The suite runs with production-like settings (DEBUG off) and the embedded defaults, unless the
caller sets DATABASE_URL (CI runs it on Postgres too) or REDIS_URL. These variables are set here,
before Django reads its settings (pytest_configure below).
"""

import os

import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "socproject.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-only-for-the-test-suite")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("ENABLE_AUTO_THREAT_GENERATION", "false")


def pytest_configure(config):
    from django.conf import settings

    from threats import autogen

    autogen._started.set()  # importing socproject.asgi must not start the embedded background jobs here
    settings.STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every request otherwise
    database = settings.DATABASES["default"]  # loads the settings now; pytest-django then sets Django up
    if database["ENGINE"].endswith("sqlite3"):
        # A file (threads and the consumer's database_sync_to_async must see committed rows), one
        # per test process so that parallel runs never share it.
        database["TEST"]["NAME"] = settings.DATA_DIR / f"test-db-{os.getpid()}.sqlite3"

ANALYST_PERMISSIONS = ["view_threat", "add_threat", "change_threat"]


@pytest.fixture(autouse=True)
def fast_settings(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    from django.core.cache import cache

    cache.clear()  # rate-limit counters (threats/ratelimit.py) must not carry over from other tests
    from threats import consumers

    consumers.open_sockets.clear()  # a socket a test never disconnected must not count against the next test's cap
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.AGENTS_IN_THREAD = False  # analysis runs synchronously at commit, so tests can assert it
    # Analytics read fresh within a test (tests/test_shared_analytics.py turns sharing on for itself);
    # server processes the integration and browser suites start keep the production default.
    settings.ANALYTICS_SHARE_SECONDS = 0
    from threats import shared_analytics

    shared_analytics.forget()
    settings.REDIS_URL = ""
    settings.ACCESS_CACHE_SECONDS = 0  # tests/test_grants.py turns it on for itself
    settings.STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    from socproject.celery import app

    app.conf.task_always_eager = True
    yield


@pytest.fixture
def analyst_group(db):
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name="analyst")
    group.permissions.set(Permission.objects.filter(content_type__app_label="threats", codename__in=ANALYST_PERMISSIONS))
    return group


def _user(username, group=None):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username=username, password="pw-" + username)
    if group:
        user.groups.add(group)
    return get_user_model().objects.get(pk=user.pk)  # fresh instance: no stale permission cache


@pytest.fixture
def alice(analyst_group):
    return _user("alice", analyst_group)


@pytest.fixture
def bob(analyst_group):
    return _user("bob", analyst_group)


@pytest.fixture
def charlie(db):
    return _user("charlie")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def charlie_client(client, charlie):
    client.force_login(charlie)
    return client


@pytest.fixture
def customer(db):
    from tests import factories

    return factories.make_customer()


@pytest.fixture
def acme():
    """Two named tenants, for the tests that set one customer against another."""
    from tests import factories

    return factories.make_customer(name="Acme")


@pytest.fixture
def globex():
    from tests import factories

    return factories.make_customer(name="Globex")


@pytest.fixture
def threat(customer):
    from tests import factories

    return factories.make_threat(customer=customer)


# Spans of the code under test, in memory (an SDK provider with an in-memory exporter), for the
# observability and tracing tests. Module scope: each test module gets its own exporter.
@pytest.fixture(scope="module")
def span_exporter():
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from socproject import telemetry

    exporter = InMemorySpanExporter()
    telemetry.instrument_web()
    telemetry.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # later tests' spans are dropped, not kept in memory


@pytest.fixture
def spans(span_exporter):
    span_exporter.clear()
    return span_exporter
