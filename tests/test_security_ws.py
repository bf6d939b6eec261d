"""WebSocket security through the real ASGI stack (docs/security.md): the Origin table, sessions
that must not open a socket, sessions that end while a socket is open, customer scoping of live and
replayed events, and hostile client messages."""

import asyncio
import importlib
import json
import logging
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError

from socproject.asgi import application
from tests import factories
from threats.models import UserAccess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

TIMEOUT = 3
HOST = "soc.example.com"


@pytest.fixture(autouse=True)
def roles(transactional_db):
    """Transactional tests start from a flushed database: put the migration's roles back."""
    from django.apps import apps

    importlib.import_module("threats.migrations.0005_user_access_and_roles").create_roles(apps, None)


@pytest.fixture(autouse=True)
def site(settings):
    settings.ALLOWED_HOSTS = [HOST, ".example.com", "testserver"]
    settings.WS_ALLOWED_ORIGINS = ["https://console.example.com"]
    settings.TRUSTED_PROXY_COUNT = 0
    settings.SECURE_PROXY_SSL_HEADER = None


def _login(user):
    client = Client()
    client.force_login(user)
    return client, client.cookies["sessionid"].value


def _make_user(name, role="analyst", customers=None):
    user = get_user_model().objects.create_user(username=name, password="old-password-" + name)
    if role:
        user.groups.add(Group.objects.get(name=role))
    if customers is not None:
        UserAccess.objects.create(user=user).customers.set(customers)
    return user


@pytest.fixture
def alice_session(db):
    return _login(_make_user("alice"))


async def _connect(cookie=None, origins=(f"http://{HOST}",), host=HOST, path="/ws", scheme=None, extra=(), peer=None):
    headers = [(b"origin", o.encode()) for o in origins]
    if host:
        headers.append((b"host", host.encode()))
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    headers.extend(extra)
    communicator = WebsocketCommunicator(application, path, headers=headers)
    if scheme:
        communicator.scope["scheme"] = scheme
    if peer:
        communicator.scope["client"] = [peer, 40000]
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    return communicator, connected


async def _streaming(cookie):
    communicator, connected = await _connect(cookie)
    assert connected
    await communicator.receive_json_from(TIMEOUT)  # hello
    await communicator.send_json_to({"type": "ping"})
    assert (await communicator.receive_json_from(TIMEOUT))["type"] == "pong"
    return communicator


async def _closed_with(communicator):
    output = await communicator.receive_output(TIMEOUT)
    assert output["type"] == "websocket.close", output
    await communicator.disconnect()  # what the server would do next: end the consumer and its threads
    return output.get("code")


def _members(group):
    return get_channel_layer().groups.get(group, {})


# --- S3: the Origin table ----------------------------------------------------------------------------

ORIGIN_TABLE = [
    ("same origin", [f"http://{HOST}"], HOST, None, True),
    ("same origin, explicit default port", [f"http://{HOST}:80"], HOST, None, True),
    ("listed in WS_ALLOWED_ORIGINS", ["https://console.example.com"], HOST, None, True),
    ("foreign", ["https://evil.example.net"], HOST, None, False),
    ("sibling subdomain (an allowed host too)", ["http://evil.example.com"], HOST, None, False),
    ("https page to a plain ws socket", [f"https://{HOST}"], HOST, None, False),
    ("http page to a wss socket", [f"http://{HOST}"], HOST, "wss", False),
    ("other port", [f"http://{HOST}:8443"], HOST, None, False),
    ("null", ["null"], HOST, None, False),
    ("missing", [], HOST, None, False),
    ("malformed: a path", [f"http://{HOST}/page"], HOST, None, False),
    ("malformed: no host", ["http://"], HOST, None, False),
    ("malformed: a script URL", ["javascript:alert(1)"], HOST, None, False),
    ("malformed: user info", [f"http://x@{HOST}"], HOST, None, False),
    ("duplicated header, both allowed", [f"http://{HOST}", f"http://{HOST}"], HOST, None, False),
    ("duplicated header, foreign second", [f"http://{HOST}", "https://evil.example.net"], HOST, None, False),
    ("Host not served (DNS rebinding)", ["http://rebind.attacker.test"], "rebind.attacker.test", None, False),
    ("listed origin with a port it does not list", ["https://console.example.com:444"], HOST, None, False),
]


@pytest.mark.parametrize("label,origins,host,scheme,allowed", ORIGIN_TABLE, ids=[row[0] for row in ORIGIN_TABLE])
async def test_the_origin_table(alice_session, label, origins, host, scheme, allowed, caplog):
    caplog.set_level(logging.INFO, logger="soc.audit")
    communicator, connected = await _connect(alice_session[1], origins=origins, host=host, scheme=scheme)
    assert connected is allowed
    if allowed:
        assert (await communicator.receive_json_from(TIMEOUT))["type"] == "hello"
        await communicator.disconnect()
    else:
        assert _members("threats") == {}  # refused before accept and before any group_add
        assert any(r.audit["action"] == "ws.refused" for r in caplog.records if hasattr(r, "audit"))


async def test_a_forwarded_https_scheme_counts_only_behind_trusted_proxies(alice_session, settings):
    forwarded = [(b"x-forwarded-proto", b"https")]
    _, connected = await _connect(alice_session[1], origins=[f"https://{HOST}"], extra=forwarded)
    assert not connected  # nobody vouches for the header: the socket is plain ws
    settings.TRUSTED_PROXY_COUNT = 1
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    _, connected = await _connect(alice_session[1], origins=[f"https://{HOST}"], extra=forwarded, peer="198.51.100.7")
    assert not connected  # issue 18: a peer outside TRUSTED_PROXIES vouches for nothing
    communicator, connected = await _connect(alice_session[1], origins=[f"https://{HOST}"], extra=forwarded,
                                             peer="127.0.0.1")
    assert connected
    await communicator.disconnect()


# --- S4: sockets that must never open ------------------------------------------------------------------


async def test_no_cookie_is_refused():
    _, connected = await _connect(None)
    assert not connected


async def test_a_tampered_cookie_is_refused(alice_session):
    _, connected = await _connect(alice_session[1][:-4] + "abcd")
    assert not connected


async def test_an_expired_session_is_refused(alice_session):
    await database_sync_to_async(Session.objects.update)(expire_date=timezone.now() - timedelta(seconds=1))
    _, connected = await _connect(alice_session[1])
    assert not connected


async def test_a_deactivated_users_session_is_refused(alice_session):
    await database_sync_to_async(get_user_model().objects.filter(username="alice").update)(is_active=False)
    _, connected = await _connect(alice_session[1])
    assert not connected


async def test_a_session_from_before_a_password_change_is_refused(alice_session):
    def change():
        user = get_user_model().objects.get(username="alice")
        user.set_password("a-new-password-123")
        user.save()

    await database_sync_to_async(change)()
    _, connected = await _connect(alice_session[1])
    assert not connected


async def test_a_session_key_in_the_query_string_is_not_a_login(alice_session):
    _, connected = await _connect(None, path=f"/ws?sessionid={alice_session[1]}")
    assert not connected


async def test_a_user_without_a_role_is_refused(db):
    _, cookie = await database_sync_to_async(lambda: _login(_make_user("charlie", role=None)))()
    _, connected = await _connect(cookie)
    assert not connected


# --- S5: a session that ends closes its sockets ----------------------------------------------------------


def _logout(client):
    client.post("/accounts/logout/")


def _new_password(client):
    user = get_user_model().objects.get(username="alice")
    user.set_password("another-password-456")
    user.save()


def _deactivate(client):
    user = get_user_model().objects.get(username="alice")
    user.is_active = False
    user.save()


def _lose_role(client):
    get_user_model().objects.get(username="alice").groups.clear()


def _scope_changed(client):
    UserAccess.objects.create(user=get_user_model().objects.get(username="alice"))


@pytest.mark.parametrize("end", [_logout, _new_password, _deactivate, _lose_role, _scope_changed],
                         ids=["logout", "password change", "deactivation", "role change", "scope change"])
async def test_ending_the_session_closes_that_users_sockets_only(alice_session, end):
    bob_cookie = (await database_sync_to_async(lambda: _login(_make_user("bob")))())[1]
    alice_sockets = [await _streaming(alice_session[1]) for _ in range(2)]
    bob_socket = await _streaming(bob_cookie)
    await database_sync_to_async(end)(alice_session[0])
    for socket in alice_sockets:
        assert await _closed_with(socket) == 4001
    await bob_socket.send_json_to({"type": "ping"})
    assert (await bob_socket.receive_json_from(TIMEOUT))["type"] == "pong"
    await bob_socket.disconnect()


async def test_a_heartbeat_rechecks_the_session_when_a_close_push_was_lost(alice_session, settings):
    settings.WS_SESSION_RECHECK_SECONDS = 0
    socket = await _streaming(alice_session[1])
    await database_sync_to_async(Session.objects.all().delete)()  # gone without any signal
    await socket.send_json_to({"type": "ping"})
    assert await _closed_with(socket) == 4001


# --- S6: scoping of live and replayed events ------------------------------------------------------------


async def test_scoped_sockets_receive_only_their_customers_events_live_and_replayed(db):
    acme, globex = await database_sync_to_async(
        lambda: (factories.make_customer(name="Acme"), factories.make_customer(name="Globex")))()
    cookies = {}
    for name, customers in (("all", None), ("acme-only", [acme]), ("globex-only", [globex]), ("none", [])):
        cookies[name] = (await database_sync_to_async(lambda n=name, c=customers: _login(_make_user(n, customers=c)))())[1]
    sockets = {name: await _streaming(cookie) for name, cookie in cookies.items()}
    made = []
    for index in range(12):
        customer = (acme, globex)[index % 3 == 0]
        made.append(await database_sync_to_async(factories.make_threat)(customer=customer, analyse=False))
    expected = {
        "all": [str(t.pk) for t in made],
        "acme-only": [str(t.pk) for t in made if t.customer_id == acme.pk],
        "globex-only": [str(t.pk) for t in made if t.customer_id == globex.pk],
        "none": [],
    }
    for name, socket in sockets.items():
        got = [(await socket.receive_json_from(TIMEOUT))["threat"]["id"] for _ in expected[name]]
        assert got == expected[name]
        assert await socket.receive_nothing(0.2)
        # Replayed from the log: the same events, filtered the same way.
        replay, connected = await _connect(cookies[name], path="/ws?after=0")
        assert connected
        await replay.receive_json_from(TIMEOUT)  # hello
        messages = []
        while (message := await replay.receive_json_from(TIMEOUT))["type"] != "resumed":
            messages.append(message["threat"]["id"])
        assert messages == expected[name]
        await replay.disconnect()
        await socket.disconnect()


# --- S12 / S13: hostile client messages --------------------------------------------------------------------

HOSTILE = [
    "not json at all",
    "[" * 2000 + "]" * 2000,
    '{"type": "resume", "after": ' + "9" * 4000 + "}",
    '{"type": "resume", "after": 1e999}',
    '{"type": "resume", "after": true}',
    '{"type": "resume", "after": -1}',
    '{"type": "websocket.disconnect"}',
    '{"type": "force.close", "reason": "forged"}',
    '{"type": "threat.created", "seq": 99999, "text": "{}"}',
    '{"type": "stream.start"}',
    '{"type": ["ping"]}',
    '"ping"',
    "null",
    "\x00\x1b[31m",
]


async def test_hostile_messages_neither_crash_nor_reach_other_sockets(alice_session, settings):
    settings.WS_MESSAGES_PER_10_SECONDS = 1000
    attacker = await _streaming(alice_session[1])
    bystander = await _streaming(alice_session[1])
    for text in HOSTILE:
        await attacker.send_to(text_data=text)
    await attacker.send_json_to({"type": "ping"})
    replies = []
    while (message := await attacker.receive_json_from(TIMEOUT))["type"] != "pong":
        replies.append(message["type"])
    assert set(replies) <= {"error", "resumed"}  # only resumes are answered (an error when invalid)
    assert await bystander.receive_nothing(0.3)  # nothing a client sent was forwarded
    for socket in (attacker, bystander):
        await socket.disconnect()


async def test_an_oversized_message_closes_the_socket(alice_session):
    socket = await _streaming(alice_session[1])
    await socket.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * 70_000}))
    assert await _closed_with(socket) == 4009


async def test_a_binary_message_closes_the_socket(alice_session):
    socket = await _streaming(alice_session[1])
    await socket.send_to(bytes_data=b"\x00\x01")
    assert await _closed_with(socket) == 4003


async def test_a_flooding_client_is_closed(alice_session, settings):
    settings.WS_MESSAGES_PER_10_SECONDS = 20
    socket = await _streaming(alice_session[1])  # its ping was message 1
    for _ in range(20):
        await socket.send_json_to({"type": "unknown"})
    assert await _closed_with(socket) == 4008


async def test_re_adding_a_role_the_user_has_keeps_its_sockets_open(alice_session):
    socket = await _streaming(alice_session[1])
    await database_sync_to_async(
        lambda: get_user_model().objects.get(username="alice").groups.add(Group.objects.get(name="analyst")))()
    await socket.send_json_to({"type": "ping"})
    assert (await socket.receive_json_from(TIMEOUT))["type"] == "pong"
    assert await socket.receive_nothing(0.3)  # no close follows
    await socket.disconnect()


# --- Issue 18 item 4: the server re-checks sessions on its own schedule ---------------------------------


async def _silent(cookie):
    """Connected and streaming without the client ever sending anything (no ping, no resume)."""
    communicator, connected = await _connect(cookie)
    assert connected
    assert (await communicator.receive_json_from(TIMEOUT))["type"] == "hello"
    return communicator


async def _an_event_arrives(communicator, customer):
    threat = await database_sync_to_async(factories.make_threat)(customer=customer, analyse=False)
    message = await communicator.receive_json_from(TIMEOUT)
    return message["type"] == "threat.created" and message["threat"]["id"] == str(threat.pk)


def _delete_sessions():
    Session.objects.all().delete()  # clearsessions, a logout elsewhere: no signal reaches the socket


def _expire_sessions():
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))


def _rotate_secret_key(settings):
    settings.SECRET_KEY = "a-rotated-secret-key-nobody-signed-these-sessions-with"


def _deactivate_quietly():
    get_user_model().objects.filter(username="alice").update(is_active=False)  # no save(): no signal


def _drop_role_quietly():
    user = get_user_model().objects.get(username="alice")
    user.groups.through.objects.filter(user=user).delete()  # no m2m_changed signal


def _scope_quietly():
    user = get_user_model().objects.get(username="alice")
    UserAccess.objects.bulk_create([UserAccess(user=user)])  # bulk_create: no post_save signal


QUIET_ENDINGS = {"session row deleted": _delete_sessions, "session expired": _expire_sessions,
                 "secret key rotated": _rotate_secret_key, "user deactivated": _deactivate_quietly,
                 "role removed": _drop_role_quietly, "scope changed": _scope_quietly}


@pytest.mark.parametrize("ending", list(QUIET_ENDINGS))
async def test_a_silent_socket_is_closed_on_the_servers_schedule_when_its_session_ends(alice_session, settings,
                                                                                        ending):
    settings.WS_SESSION_RECHECK_SECONDS = 0.2
    customer = await database_sync_to_async(factories.make_customer)()
    socket = await _silent(alice_session[1])
    assert await _an_event_arrives(socket, customer)  # alive and streaming before
    end = QUIET_ENDINGS[ending]
    if ending == "secret key rotated":
        end(settings)
    else:
        await database_sync_to_async(end)()

    output = await socket.receive_output(TIMEOUT)
    assert output == {"type": "websocket.close", "code": 4001}
    await database_sync_to_async(factories.make_threat)(customer=customer, analyse=False)
    assert await socket.receive_nothing(0.5)  # no event after the close
    await socket.disconnect()


async def test_a_socket_with_a_valid_session_stays_open_across_rechecks(alice_session, settings):
    settings.WS_SESSION_RECHECK_SECONDS = 0.05
    customer = await database_sync_to_async(factories.make_customer)()
    socket = await _silent(alice_session[1])
    await asyncio.sleep(0.3)  # six re-checks pass
    assert await _an_event_arrives(socket, customer)
    await socket.disconnect()


async def test_any_client_message_rechecks_the_session_at_once(alice_session, settings):
    settings.WS_SESSION_RECHECK_SECONDS = 3600
    socket = await _silent(alice_session[1])
    await database_sync_to_async(_delete_sessions)()
    await socket.send_json_to({"type": "resume", "after": 0})
    assert await socket.receive_output(TIMEOUT) == {"type": "websocket.close", "code": 4001}
    await socket.disconnect()


# --- Item 6: at most WS_MAX_SOCKETS_PER_USER sockets per user and process ----------------------------------


async def test_sockets_over_the_per_user_cap_are_closed_with_4029(alice_session, settings, caplog):
    settings.WS_MAX_SOCKETS_PER_USER = 2
    caplog.set_level(logging.INFO, logger="soc.audit")
    bob_cookie = (await database_sync_to_async(lambda: _login(_make_user("bob")))())[1]
    first, second = await _silent(alice_session[1]), await _silent(alice_session[1])
    third, connected = await _connect(alice_session[1])
    assert connected  # accepted only to carry the close code
    assert await third.receive_output(TIMEOUT) == {"type": "websocket.close", "code": 4029}
    assert any(r.audit.get("reason") == "too many sockets" for r in caplog.records if hasattr(r, "audit"))
    assert len(_members("threats")) == 2  # the refused one never joined the broadcast group
    bobs = await _silent(bob_cookie)  # another user's budget is their own
    await second.disconnect()
    again = await _silent(alice_session[1])  # a closed tab frees its place
    for socket in (first, third, bobs, again):
        await socket.disconnect()


# --- Item 7: a channel layer that fails during the handshake: never a 500 -----------------------------------------


class FlakyLayer(InMemoryChannelLayer):
    """The in-memory layer, whose SUBSCRIBEs fail like a dead Redis connection: the first
    `channel_failures` new channels (Channels makes one before `connect`) and the first
    `group_failures` group joins."""

    channel_failures = group_failures = 0

    async def new_channel(self, prefix="specific."):
        if FlakyLayer.channel_failures:
            FlakyLayer.channel_failures -= 1
            raise RedisConnectionError("Error UNKNOWN while writing to socket. Connection lost.")
        return await super().new_channel(prefix)

    async def group_add(self, group, channel):
        if FlakyLayer.group_failures:
            FlakyLayer.group_failures -= 1
            raise RedisConnectionError("Error UNKNOWN while writing to socket. Connection lost.")
        return await super().group_add(group, channel)


@pytest.fixture
def flaky_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "tests.test_security_ws.FlakyLayer"}}
    channel_layers.backends.clear()
    yield FlakyLayer
    FlakyLayer.channel_failures = FlakyLayer.group_failures = 0
    channel_layers.backends.clear()


@pytest.mark.parametrize("where", ["group_failures", "channel_failures"])
async def test_a_subscribe_on_a_dead_connection_is_retried_before_accepting(alice_session, flaky_layer, where):
    setattr(flaky_layer, where, 1)  # the first SUBSCRIBE after a Redis restart
    socket, connected = await _connect(alice_session[1])
    assert connected
    assert (await socket.receive_json_from(TIMEOUT))["type"] == "hello"
    await socket.send_json_to({"type": "ping"})
    assert (await socket.receive_json_from(TIMEOUT))["type"] == "pong"
    await socket.disconnect()


@pytest.mark.parametrize("where", ["group_failures", "channel_failures"])
async def test_a_layer_that_stays_down_closes_the_handshake_with_4013(alice_session, flaky_layer, where):
    setattr(flaky_layer, where, 10)
    socket, connected = await _connect(alice_session[1])
    assert connected
    assert await socket.receive_output(TIMEOUT) == {"type": "websocket.close", "code": 4013}
    await socket.disconnect()
