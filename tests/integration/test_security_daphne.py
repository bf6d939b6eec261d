"""Security with real processes (docs/security.md): two Daphne pods on a private Redis. A logout on
pod A, or a deactivation by a management command in a third process, closes the user's socket on
pod B within seconds; Daphne itself refuses a smuggled second Origin; oversized bodies and messages
are refused over real sockets (chunked bodies without a Content-Length included)."""

import asyncio
import json
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import websockets

from tests.integration.cluster import Cluster
from tests.integration.server import login

pytestmark = pytest.mark.integration
CLOSE_WITHIN_SECONDS = 5


@pytest.fixture(scope="module")
def cluster():
    with Cluster(pods=2, worker=False, beat=False, nginx=False) as running:
        yield running


async def _open(cluster, pod, session):
    socket_ = await websockets.connect(cluster.pod_ws(pod), additional_headers={
        "Cookie": session.cookie_header, "Origin": cluster.pod_url(pod)}, max_size=None)
    assert json.loads(await asyncio.wait_for(socket_.recv(), 5))["type"] == "hello"
    return socket_


async def _closed_within(socket_, seconds):
    """(close code, seconds it took) once the server closes the socket."""
    started = time.monotonic()
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(socket_.recv(), seconds)
    return socket_.close_code, time.monotonic() - started


def _post_form(session, path):
    request = urllib.request.Request(session.base_url + path, data=b"", method="POST", headers={
        "X-CSRFToken": session.cookie("csrftoken") or "", "Origin": session.base_url})
    with session.opener.open(request, timeout=10) as response:
        return response.status


def test_a_logout_on_one_pod_closes_the_socket_on_another(cluster):
    session = login(cluster.pod_url(0))

    async def scenario():
        on_b = await _open(cluster, 1, session)
        await asyncio.to_thread(_post_form, session, "/accounts/logout/")
        return await _closed_within(on_b, CLOSE_WITHIN_SECONDS)

    code, took = asyncio.run(scenario())
    print(f"\nlogout on pod A -> socket on pod B closed with {code} after {took * 1000:.0f} ms")
    assert code == 4001 and took < CLOSE_WITHIN_SECONDS


def _get_status(url, cookie):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Cookie": cookie}), timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


def test_a_logout_on_one_pod_ends_the_session_on_every_pod_at_once(cluster):
    """Pod B reads the session pod A wrote, and pod A's logout ends it on both at once (a guard for
    any session cache: it must be shared by the pods and invalidated by the logout)."""
    session = login(cluster.pod_url(0))
    cookie = session.cookie_header
    assert _get_status(cluster.pod_url(1) + "/api/threats?limit=1", cookie) == 200
    _post_form(session, "/accounts/logout/")
    assert _get_status(cluster.pod_url(1) + "/api/threats?limit=1", cookie) == 401
    assert _get_status(cluster.pod_url(0) + "/api/threats?limit=1", cookie) == 401


def test_a_deactivation_by_another_process_closes_the_users_sockets_on_every_pod(cluster):
    cluster.manage("shell", "-c", "from django.contrib.auth import get_user_model; "
                   "u = get_user_model().objects.create_user('dora', password='pw-dora-12345'); "
                   "from django.contrib.auth.models import Group; u.groups.add(Group.objects.get(name='analyst'))")
    session = login(cluster.pod_url(0), "dora", "pw-dora-12345")

    async def scenario():
        sockets = [await _open(cluster, pod, session) for pod in (0, 1)]
        await asyncio.to_thread(cluster.manage, "shell", "-c",
                                "from django.contrib.auth import get_user_model; "
                                "u = get_user_model().objects.get(username='dora'); u.is_active = False; u.save()")
        return [await _closed_within(s, CLOSE_WITHIN_SECONDS) for s in sockets]

    for code, took in asyncio.run(scenario()):
        assert code == 4001 and took < CLOSE_WITHIN_SECONDS
    with pytest.raises(websockets.InvalidStatus):  # and the session cannot open a new one
        asyncio.run(_open(cluster, 1, session))


def test_a_role_or_scope_change_by_another_process_counts_at_once_on_every_pod(cluster):
    """The access cache (threats/grants.py) lives in the pods' shared Redis: both pods serve the
    user's grants from it, and a change made by a third process retires them on both at once."""
    cluster.manage("shell", "-c", "from django.contrib.auth import get_user_model; "
                   "u = get_user_model().objects.create_user('erin', password='pw-erin-12345'); "
                   "from django.contrib.auth.models import Group; u.groups.add(Group.objects.get(name='analyst'))")
    cookie = login(cluster.pod_url(0), "erin", "pw-erin-12345").cookie_header

    def statuses(path="/api/threats?limit=1"):
        return [_get_status(cluster.pod_url(pod) + path, cookie) for pod in (0, 1)]

    def listed():
        answers = [urllib.request.urlopen(urllib.request.Request(
            cluster.pod_url(pod) + "/api/threats?limit=5", headers={"Cookie": cookie}), timeout=10) for pod in (0, 1)]
        return [len(json.load(answer)["items"]) for answer in answers]

    cluster.manage("shell", "-c", "from tests import factories; factories.make_threat(analyse=False)")
    assert statuses() == [200, 200] and min(listed()) > 0  # both pods have cached erin's grants
    cluster.manage("shell", "-c", "from threats.models import UserAccess; from django.contrib.auth import "
                   "get_user_model; UserAccess.objects.create(user=get_user_model().objects.get(username='erin'))")
    assert listed() == [0, 0]  # scoped to no customer: fails closed at once
    cluster.manage("shell", "-c", "from django.contrib.auth import get_user_model; "
                   "get_user_model().objects.get(username='erin').groups.clear()")
    assert statuses() == [403, 403]


def _raw_handshake(cluster, pod, headers):
    """Send a WebSocket upgrade by hand (so headers can repeat); returns the status line."""
    port = cluster.pod_ports[pod]
    lines = ["GET /ws HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", *headers, "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall("\r\n".join(lines).encode())
        return conn.recv(4096).decode("latin-1").split("\r\n", 1)[0]


def test_daphne_refuses_a_smuggled_second_origin(cluster):
    session = login(cluster.pod_url(1))
    cookie = f"Cookie: {session.cookie_header}"
    own = f"Origin: {cluster.pod_url(1)}"
    assert " 101 " in _raw_handshake(cluster, 1, [cookie, own])
    assert " 101 " not in _raw_handshake(cluster, 1, [cookie, own, "Origin: https://evil.example.net"])
    assert " 101 " not in _raw_handshake(cluster, 1, [cookie, "Origin: https://evil.example.net"])
    assert " 101 " not in _raw_handshake(cluster, 1, [cookie])
    assert " 101 " not in _raw_handshake(cluster, 1, [cookie, "Origin: null"])


def _chunked_post(cluster, path, session, size):
    """POST `size` bytes with Transfer-Encoding: chunked (no Content-Length at all)."""
    port = cluster.pod_ports[0]
    body = b'{"customer": "' + b"x" * size + b'"}'
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Cookie: {session.cookie_header}\r\nX-CSRFToken: {session.cookie('csrftoken')}\r\n"
            f"Origin: {cluster.pod_url(0)}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(head.encode())
        for start in range(0, len(body), 65536):
            chunk = body[start:start + 65536]
            conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        conn.sendall(b"0\r\n\r\n")
        answer = b""
        while data := conn.recv(65536):
            answer += data
    return answer.decode("latin-1").split("\r\n", 1)[0]


def _status_of_raw(cluster, head):
    with socket.create_connection(("127.0.0.1", cluster.pod_ports[0]), timeout=10) as conn:
        conn.sendall(head.encode())
        answer = b""
        while data := conn.recv(65536):
            answer += data
    return answer.decode("latin-1").split("\r\n", 1)[0]


@pytest.mark.parametrize("size", [12 * 1024, 20 * 1024, 200 * 1024])
def test_an_oversized_query_string_is_414_whatever_its_size(cluster, size):
    """Up to Twisted's 16 KB line limit Django answers (UriTooLongMiddleware); past it, Daphne's own
    channel (socproject.http_limits): never a connection closed without an answer."""
    port = cluster.pod_ports[0]
    head = f"GET /api/threats?q={'a' * size} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    assert " 414 " in _status_of_raw(cluster, head)


def test_an_oversized_header_line_is_431(cluster):
    port = cluster.pod_ports[0]
    head = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Padding: {'a' * 20_000}\r\nConnection: close\r\n\r\n"
    assert " 431 " in _status_of_raw(cluster, head)


def test_oversized_bodies_are_refused_with_or_without_a_content_length(cluster):
    session = login(cluster.pod_url(0))
    big = json.dumps({"customer": "x" * (3 * 1024 * 1024)}).encode()
    request = urllib.request.Request(cluster.pod_url(0) + "/api/threats/trigger", data=big, method="POST", headers={
        "Content-Type": "application/json", "X-CSRFToken": session.cookie("csrftoken"),
        "Origin": cluster.pod_url(0)})
    with pytest.raises(urllib.error.HTTPError) as refused:
        session.opener.open(request, timeout=30)
    assert refused.value.code == 413
    assert " 413 " in _chunked_post(cluster, "/api/threats/trigger", session, 3 * 1024 * 1024)


def test_oversized_websocket_messages_close_the_socket(cluster):
    session = login(cluster.pod_url(0))

    async def scenario(size):
        socket_ = await _open(cluster, 0, session)
        try:
            await socket_.send(json.dumps({"type": "ping", "pad": "x" * size}))
        except websockets.ConnectionClosed:
            # The server may fail the connection while a large frame is still being written.
            return socket_.close_code
        code, _took = await _closed_within(socket_, 5)
        return code

    assert asyncio.run(scenario(70_000)) == 4009  # over WS_MAX_MESSAGE_BYTES: the consumer closes
    # Over Daphne's own 1 MiB limit the protocol layer fails the connection (no close frame: 1006).
    assert asyncio.run(scenario(2 * 1024 * 1024)) in (1006, 1009)


# --- Limits that hold across pods (S8, S9): two Daphne pods counting in one Redis ---------------------


@pytest.fixture(scope="module")
def limited():
    with Cluster(pods=2, worker=False, beat=False, nginx=False,
                 env={"DJANGO_SETTINGS_MODULE": "tests.integration.security_settings"}) as running:
        yield running


def _status(url, headers=None, opener=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with (opener.open if opener else urllib.request.urlopen)(request, timeout=10) as response:
            return response.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Retry-After")


def test_a_users_api_limit_is_shared_by_every_pod_even_under_concurrency(limited):
    sessions = [login(limited.pod_url(pod)) for pod in (0, 1)]

    async def burst():
        calls = [asyncio.to_thread(_status, limited.pod_url(i % 2) + "/api/events", None, sessions[i % 2].opener)
                 for i in range(30)]
        return await asyncio.gather(*calls)

    answers = asyncio.run(burst())
    codes = [code for code, _retry in answers]
    assert codes.count(200) == 10 and codes.count(429) == 20  # limit 10/min for the user, whichever pod
    assert all(1 <= int(retry) <= 60 for code, retry in answers if code == 429)


def test_a_spoofed_forwarded_for_does_not_reset_the_address_budget(limited):
    codes = [_status(limited.pod_url(i % 2) + "/api/threats", {"X-Forwarded-For": f"198.51.100.{i}"})[0]
             for i in range(8)]
    assert codes == [401] * 6 + [429] * 2  # 6/min per address; TRUSTED_PROXY_COUNT=0 ignores the header


def test_failed_logins_count_across_pods(limited):
    def attempt(pod, password):
        with urllib.request.urlopen(limited.pod_url(pod) + "/accounts/login/", timeout=10) as page:
            cookies, html = page.headers.get_all("Set-Cookie"), page.read().decode()
        cookie = next(c.split(";")[0] for c in cookies if c.startswith("csrftoken="))
        field = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
        form = urllib.parse.urlencode({"csrfmiddlewaretoken": field, "username": "analyst", "password": password})
        request = urllib.request.Request(limited.pod_url(pod) + "/accounts/login/", data=form.encode(), headers={
            "Cookie": cookie, "Referer": limited.pod_url(pod) + "/accounts/login/"})
        return _status_of(request)

    codes = [attempt(i % 2, f"wrong-{i}") for i in range(5)]
    assert codes == [200] * 5
    assert attempt(1, "analyst") == 429 and attempt(0, "analyst") == 429  # right password, both pods


def _status_of(request):
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
