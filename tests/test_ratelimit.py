"""Rate limits (docs/security.md): atomic counters that hold under concurrency — in the local cache
and in a real Redis shared by several cache clients, as pods share it — 429 with Retry-After on the
API per user, per key and per address, and a client address that only trusted proxies can name."""

import json
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_network

import pytest
from django.db import connections
from django.http import HttpResponse
from django.test import Client, RequestFactory

from threats import apikeys, ratelimit

pytestmark = pytest.mark.django_db

REDIS_LOCATION = "redis://127.0.0.1:6379/0"


def _race(count, call):
    """Run `call` from `count` threads released at the same moment; returns their results."""
    barrier = threading.Barrier(count)

    def run(_):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_concurrent_hits_on_one_local_counter_let_exactly_the_limit_through(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "user": (20, 60)}
    verdicts = _race(50, lambda: ratelimit.hit("user", "racer", now=1_000_000.0))
    assert sum(v.allowed for v in verdicts) == 20
    assert sorted(v.count for v in verdicts) == list(range(1, 51))  # every hit counted once


def test_concurrent_hits_from_separate_redis_clients_share_one_counter(settings):
    """Every thread has its own django-redis client and connection pool, as every pod has: 60
    hits at once on one key of a real Redis, limit 25."""
    from django_redis.cache import RedisCache

    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "key": (25, 60)}
    prefix, ident = f"test-ratelimit-{secrets.token_hex(4)}", secrets.token_hex(4)  # private keys in a shared Redis

    def pod_hit():
        return ratelimit.hit("key", ident, now=2_000_000.0, store=RedisCache(REDIS_LOCATION, {"KEY_PREFIX": prefix}))

    verdicts = _race(60, pod_hit)
    assert sum(v.allowed for v in verdicts) == 25
    assert sorted(v.count for v in verdicts) == list(range(1, 61))  # INCR is atomic: no lost update
    assert {v.retry_after for v in verdicts} == {40}  # 2,000,000 is 20 s into its 60 s window


def test_a_new_window_starts_a_new_count(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "user": (2, 60)}
    assert [ratelimit.hit("user", "w", now=120.0).allowed for _ in range(3)] == [True, True, False]
    assert ratelimit.hit("user", "w", now=180.0).allowed


def test_an_api_user_over_the_limit_gets_429_with_retry_after(settings, alice_client, caplog):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "user": (3, 60)}
    codes = [alice_client.get("/api/threats").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = alice_client.get("/api/threats")
    assert response.json() == {"detail": "Too many requests: slow down.", "field": None}
    assert 1 <= int(response["Retry-After"]) <= 60
    assert any(getattr(r, "audit", {}).get("action") == "ratelimit.refused" for r in caplog.records)


def test_api_users_are_limited_concurrently_too(settings, alice, transactional_db):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "user": (10, 60)}

    def call():
        client = Client()
        client.force_login(alice)
        try:
            return client.get("/api/events").status_code
        finally:
            connections.close_all()  # this thread's connection

    codes = _race(30, call)
    assert codes.count(200) == 10 and codes.count(429) == 20


def test_an_api_key_over_its_limit_gets_429(settings, db):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "key": (2, 60)}
    _key, raw = apikeys.issue("shipper", ["read"])
    codes = [Client().get("/api/threats", HTTP_X_API_KEY=raw).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_wrong_keys_spend_the_senders_address_budget_not_the_keys(settings, db):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "anonymous": (3, 60), "key": (5, 60)}
    _key, raw = apikeys.issue("shipper", ["read"])
    wrong = raw[:-3] + "AAA"
    codes = [Client().get("/api/threats", HTTP_X_API_KEY=wrong).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    assert Client().get("/api/threats", HTTP_X_API_KEY=raw).status_code == 200


WRITES = [("patch", "/api/threats/00000000-0000-0000-0000-000000000001"),
          ("delete", "/api/threats/00000000-0000-0000-0000-000000000001"),
          ("post", "/api/threats/00000000-0000-0000-0000-000000000001/notes"),
          ("post", "/api/threats/bulk"), ("post", "/api/ingest/generic"), ("get", "/api/threats")]


def _send(client, method, path, **headers):
    body = {} if method == "get" else {"data": "{}", "content_type": "application/json"}
    return getattr(client, method)(path, **body, **headers).status_code


@pytest.mark.parametrize("method, path", WRITES)
def test_a_wrong_key_on_any_endpoint_and_method_is_limited_as_anonymous(settings, db, method, path):
    """Issue 18: any X-API-Key header used to skip the address limit, and endpoints that take no
    key (triage, notes, bulk) then counted nothing at all."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "anonymous": (3, 60)}
    codes = [_send(Client(), method, path, HTTP_X_API_KEY=f"soc_wrong{i}") for i in range(5)]
    assert codes[:3] != [429] * 3 and codes[3:] == [429, 429]
    assert Client().get("/api/threats").status_code == 429  # the same address, now without a key


@pytest.mark.parametrize("method, path", WRITES[:4])
def test_a_valid_key_is_counted_on_endpoints_that_do_not_take_keys(settings, db, method, path):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "key": (2, 60), "anonymous": (100, 60)}
    _key, raw = apikeys.issue("shipper", ["read", "trigger", "ingest"])
    codes = [_send(Client(), method, path, HTTP_X_API_KEY=raw) for _ in range(3)]
    assert codes[2] == 429 and 429 not in codes[:2]
    assert Client().get("/api/threats", HTTP_X_API_KEY=raw).status_code == 429  # one budget per key


@pytest.mark.parametrize("method", ["patch", "delete", "post", "put"])
def test_every_method_counts_against_a_session_users_limit(settings, alice_client, method):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "user": (2, 60)}
    codes = [_send(alice_client, method, "/api/threats/bulk") for _ in range(3)]
    assert codes[2] == 429


def test_anonymous_callers_are_limited_per_address_and_a_spoofed_forwarded_for_does_not_reset_it(settings, db):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "anonymous": (3, 60)}
    settings.TRUSTED_PROXY_COUNT = 0
    codes = [Client().get("/api/threats", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code for i in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    response = Client(REMOTE_ADDR="192.0.2.99").get("/api/threats")
    assert response.status_code == 401  # another real address has its own budget


PROXY_NETWORKS = (ip_network("127.0.0.0/8"), ip_network("10.0.0.0/8"))


def test_behind_trusted_proxies_the_client_is_the_address_they_vouch_for(settings, db):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "anonymous": (2, 60)}
    settings.TRUSTED_PROXY_COUNT, settings.TRUSTED_PROXIES = 2, PROXY_NETWORKS
    # client-written junk, the real client (written by proxy 1), proxy 1 (written by proxy 2)
    chain = lambda junk: f"{junk}, 203.0.113.5, 10.0.0.2"
    codes = [Client().get("/api/threats", HTTP_X_FORWARDED_FOR=chain(f"1.1.1.{i}")).status_code for i in range(3)]
    assert codes == [401, 401, 429]
    other_client = "9.9.9.9, 203.0.113.6, 10.0.0.2"
    assert Client().get("/api/threats", HTTP_X_FORWARDED_FOR=other_client).status_code == 401


@pytest.mark.parametrize("proxies,peer,forwarded,expected", [
    (0, "192.0.2.1", "203.0.113.9", "192.0.2.1"),
    (1, "10.0.0.1", "203.0.113.9", "203.0.113.9"),
    (1, "10.0.0.1", "6.6.6.6, 203.0.113.9", "203.0.113.9"),
    (2, "10.0.0.1", "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
    (2, "10.0.0.1", "203.0.113.9", "203.0.113.9"),  # fewer hops than proxies: the leftmost
    (1, "10.0.0.1", "", "10.0.0.1"),
    (1, "10.0.0.1", "not-an-address", "10.0.0.1"),
    (1, "10.0.0.1", "2001:db8::1", "2001:db8::1"),
    (1, "::ffff:10.0.0.1", "203.0.113.9", "203.0.113.9"),  # a dual-stack socket's IPv4 peer
    # Issue 18: only a trusted proxy vouches. A client reaching a pod directly is the client...
    (1, "198.51.100.7", "6.6.6.6", "198.51.100.7"),
    (2, "198.51.100.7", "6.6.6.6, 7.7.7.7", "198.51.100.7"),
    # ...and a client reaching the inner proxy directly is the address that proxy wrote.
    (2, "10.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"),
])
def test_client_ip(settings, proxies, peer, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT, settings.TRUSTED_PROXIES = proxies, PROXY_NETWORKS
    assert ratelimit.client_ip(peer, forwarded) == expected


def test_a_client_reaching_a_pod_directly_cannot_pick_its_rate_limit_identity(settings, db):
    """The chart trusts two proxies; a client that bypasses them (any address outside
    TRUSTED_PROXIES) used to name itself with X-Forwarded-For and got a fresh budget each time."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "anonymous": (3, 60)}
    settings.TRUSTED_PROXY_COUNT = 2  # TRUSTED_PROXIES: the loopback default
    direct = Client(REMOTE_ADDR="198.51.100.7")
    codes = [direct.get("/api/threats", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}, 10.0.0.{i}").status_code
             for i in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    via_proxy = Client().get("/api/threats", HTTP_X_FORWARDED_FOR="203.0.113.50, 127.0.0.2")  # from 127.0.0.1
    assert via_proxy.status_code == 401  # behind the proxies, the address they vouch for has its own budget


def test_a_forwarded_scheme_from_an_untrusted_peer_is_dropped(settings, db):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    seen = {}

    def record(request):
        seen[request.META["REMOTE_ADDR"]] = (request.is_secure(), ratelimit.request_ip(request))
        return HttpResponse()

    from threats.middleware import TrustedProxyMiddleware

    for peer in ("198.51.100.7", "127.0.0.1"):
        request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_PROTO="https",
                                       HTTP_X_FORWARDED_FOR="203.0.113.9")
        TrustedProxyMiddleware(record)(request)
    assert seen == {"198.51.100.7": (False, "198.51.100.7"), "127.0.0.1": (True, "203.0.113.9")}


def test_a_cache_outage_does_not_lock_everyone_out(settings):
    from django_redis.cache import RedisCache

    unreachable = RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5}})
    verdict = ratelimit.hit("user", "x", store=unreachable)
    assert verdict.allowed and verdict.count == 0


def test_a_429_body_is_json_on_the_api(settings, db):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "anonymous": (0, 60)}
    response = Client().get("/api/threats")
    assert response.status_code == 429 and json.loads(response.content)["detail"]
