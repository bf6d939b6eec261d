"""The smaller leaks of issue 18 (item 6): who a scoped analyst sees named on the threat pages,
what the public readiness probe says, which Host `/metrics` answers, what the audit log keeps of a
refused key, and the demo login that `seed_demo` must not create on a real installation."""

import io
import json
import logging
import re
import shlex
from pathlib import Path
from unittest import mock

import pytest
from channels.testing import HttpCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db.utils import OperationalError
from django.test import Client

from socproject.asgi import application
from tests import factories
from threats.models import UserAccess

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[1]


def _user(name, customers=None):
    user = get_user_model().objects.create_user(username=name, password="pw-" + name)
    user.groups.add(Group.objects.get(name="analyst"))
    if customers is not None:
        UserAccess.objects.create(user=user).customers.set(customers)
    return user


def _session(user):
    client = Client()
    client.force_login(user)
    return client


# --- Usernames on the threat pages ----------------------------------------------------------------------


@pytest.fixture
def staff_of_two_tenants(db):
    acme, globex = factories.make_customer(name="Acme"), factories.make_customer(name="Globex")
    threat = factories.make_threat(customer=globex, analyse=False)
    _user("acme-ann", [acme])
    _user("globex-gil", [globex])
    _user("both-bo", [acme, globex])
    _user("provider-pat")  # unscoped: the provider's own analyst
    return {"acme": acme, "globex": globex, "threat": threat}


def _names_offered(html):
    return set(re.findall(r'<option value="([^"]*)"', html)) - {"", "me", "none"}


def test_the_threat_pages_name_only_the_analysts_who_share_a_customer(staff_of_two_tenants):
    client = _session(_user("globex-gus", [staff_of_two_tenants["globex"]]))
    for url in ("/threats/", f"/threats/{staff_of_two_tenants['threat'].pk}/"):
        html = client.get(url).content.decode()
        names = _names_offered(html) & {"acme-ann", "globex-gil", "both-bo", "provider-pat", "globex-gus"}
        assert names == {"globex-gil", "both-bo", "globex-gus"}, url
        assert "acme-ann" not in html and "provider-pat" not in html


def test_an_unscoped_analyst_still_sees_every_analyst(staff_of_two_tenants):
    html = _session(_user("lead")).get("/threats/").content.decode()
    assert {"acme-ann", "globex-gil", "both-bo", "provider-pat", "lead"} <= _names_offered(html)


# --- /ready: generic states in public, details in the log ----------------------------------------------------

DATABASE_ERROR = ('connection to server at "db.internal" (10.20.30.40), port 5432 failed: FATAL: password '
                  'authentication failed for user "soc_owner"')


def test_ready_names_failing_components_without_their_errors(client, settings, caplog):
    settings.REDIS_URL = "redis://:hunter2@127.0.0.1:1/0"  # nothing listens on port 1
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                           "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}}
    broken = mock.Mock(**{"cursor.side_effect": OperationalError(DATABASE_ERROR)})
    with caplog.at_level(logging.WARNING, logger="threats.views"), mock.patch("threats.views.connection", broken):
        response = client.get("/ready")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "problems": {
        "database": "unavailable", "redis": "unavailable", "channel_layer": "unavailable"}}
    body = response.content.decode()
    for detail in ("db.internal", "10.20.30.40", "5432", "soc_owner", "127.0.0.1", "hunter2", "Error"):
        assert detail not in body
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "soc_owner" in logged and "127.0.0.1:1" in logged  # the operator still reads the cause


# --- /metrics: an IP address (a scrape) or an allowed host name ---------------------------------------------------


async def _metrics(host):
    headers = [(b"host", host.encode())] if host is not None else []
    communicator = HttpCommunicator(application, "GET", "/metrics", headers=headers)
    response = await communicator.get_response(timeout=10)
    return response["status"], response["body"]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("host,allowed", [
    ("10.1.2.3:8000", True),                 # Prometheus scraping a pod by its IP
    ("[fd00:10:244::7]:8000", True),
    ("testserver", True),                    # one of ALLOWED_HOSTS
    ("evil.example.net", False),             # DNS rebinding: the browser names the attacker's host
    ("10.1.2.3.evil.example.net:8000", False),
    ("", False),
    (None, False),
])
async def test_metrics_answer_a_scrape_by_ip_or_an_allowed_host_only(host, allowed):
    status, body = await _metrics(host)
    assert status == (200 if allowed else 400)
    assert (b"soc_websocket_connections" in body) is allowed


# --- A refused API key in the audit log -------------------------------------------------------------------------------


def test_a_refused_key_is_audited_without_any_character_of_what_was_sent(db, caplog):
    caplog.set_level(logging.INFO, logger="soc.audit")
    sent = "soc_0123456789ab_" + "S3cretPart" * 4 + "xyz"
    response = Client().get("/api/threats", HTTP_X_API_KEY=sent)

    assert response.status_code == 401
    [line] = [r for r in caplog.records if getattr(r, "audit", {}).get("action") == "key.refused"]
    text = line.getMessage() + json.dumps(line.audit)
    for start in range(0, len(sent) - 4):
        assert sent[start:start + 5] not in text, sent[start:start + 5]
    assert re.search(r"sha256:[0-9a-f]{8} \(60 chars\)", text)


def test_two_attempts_with_the_same_key_read_the_same_in_the_log(db, caplog):
    caplog.set_level(logging.INFO, logger="soc.audit")
    for _ in range(2):
        Client().get("/api/threats", HTTP_X_API_KEY="a-password-pasted-by-mistake")
    lines = [r.audit["sent"] for r in caplog.records if getattr(r, "audit", {}).get("action") == "key.refused"]
    assert len(lines) == 2 and lines[0] == lines[1]


# --- seed_demo and its published login ---------------------------------------------------------------------------


def test_seed_demo_refuses_its_published_login_with_debug_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="--insecure-demo-login"):
        call_command("seed_demo", "--history", "0", stdout=io.StringIO())
    assert not get_user_model().objects.filter(username="analyst").exists()


def test_seed_demo_creates_the_login_in_debug_mode_without_the_flag(settings):
    settings.DEBUG = True
    call_command("seed_demo", "--history", "0", stdout=io.StringIO())
    assert get_user_model().objects.filter(username="analyst").exists()


def test_make_run_seeds_the_login_it_prints(settings):
    """`make run` runs with DJANGO_DEBUG=false: its seed_demo line opts in, and the login it
    prints is the one that works."""
    settings.DEBUG = False
    recipe = (REPO / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    [seed_line] = [line for line in recipe.splitlines() if "seed_demo" in line]
    arguments = shlex.split(seed_line.split("manage.py", 1)[1])
    out = io.StringIO()
    call_command(*arguments, "--history", "0", stdout=out)
    printed = re.search(r"log in as (\w+) / (\w+)", recipe).groups()
    assert f"Log in as {printed[0]} / {printed[1]}" in out.getvalue()
    client = Client()
    assert client.post("/accounts/login/", {"username": printed[0], "password": printed[1]}).status_code == 302
