"""Rate limits that hold across pods, and the client address they are keyed on (docs/security.md).

Counters live in the Django cache — django-redis in cluster mode, so every pod counts in the same
Redis key — and are fixed windows: `add` creates the window's key with its expiry, `incr` is one
atomic INCRBY (a Lua script in django-redis; a lock in the local-memory cache). Concurrent requests
therefore each get a distinct count and exactly `limit` of them pass in a window, however many
arrive at once. If the cache is down the limit is not applied (logged): a Redis outage must not
lock every analyst out of the console.

The client address comes from X-Forwarded-For only as far as trusted proxies vouch for it: each
proxy appends the address it received the request from, so, starting from the TCP peer, an address
in TRUSTED_PROXIES vouches for the entry to its left, for at most TRUSTED_PROXY_COUNT entries. The
first address that is not a trusted proxy is the client; anything further left was written by the
client and is ignored. A peer outside TRUSTED_PROXIES (a client reaching a pod directly) is the
client itself, whatever it writes.
"""

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from ipaddress import ip_address

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int
    limit: int
    retry_after: int  # seconds until the window ends (the value of a 429's Retry-After)


class RateLimited(Exception):
    """Over a limit: answer 429 with Retry-After."""

    def __init__(self, retry_after, detail="Too many requests: slow down."):
        super().__init__(detail)
        self.retry_after, self.detail = retry_after, detail


def hit(name, ident, now=None, store=None):
    """Count one event for `ident` against the limit `name` of settings.RATE_LIMITS (in `store`,
    by default the Django cache)."""
    store = cache if store is None else store
    limit, window = settings.RATE_LIMITS[name]
    now = time.time() if now is None else now
    start = math.floor(now / window) * window
    key = _key(name, ident, start)
    retry_after = max(1, math.ceil(start + window - now))
    try:
        store.add(key, 0, timeout=window + 1)
        count = store.incr(key)
    except ValueError:  # the key expired between add and incr (a clock at the window's edge)
        store.add(key, 0, timeout=window + 1)
        count = store.incr(key)
    except Exception as exc:  # noqa: BLE001 - fail open on a cache outage, loudly
        log.warning("rate limit %s not applied: cache error %s", name, exc)
        return Verdict(True, 0, limit, retry_after)
    return Verdict(count <= limit, count, limit, retry_after)


def peek(name, ident, now=None):
    """The current window's count for `ident` without counting (0 when unknown or on a cache error)."""
    limit, window = settings.RATE_LIMITS[name]
    now = time.time() if now is None else now
    start = math.floor(now / window) * window
    try:
        count = cache.get(_key(name, ident, start)) or 0
    except Exception:  # noqa: BLE001
        return Verdict(True, 0, limit, 1)
    return Verdict(count < limit, count, limit, max(1, math.ceil(start + window - now)))


def forgive(name, ident, count, now=None):
    """Take back `count` events of `ident` from the current window — the failures seen before a
    login that then succeeded. Events counted meanwhile (parallel guesses) stay counted, so a
    success in the middle of a burst does not reopen the window for the rest of the burst."""
    if count <= 0:
        return
    _limit, window = settings.RATE_LIMITS[name]
    now = time.time() if now is None else now
    start = math.floor(now / window) * window
    try:
        cache.decr(_key(name, ident, start), count)
    except ValueError:  # the window ended meanwhile: nothing left to take back
        pass
    except Exception as exc:  # noqa: BLE001
        log.warning("rate limit %s not reset: cache error %s", name, exc)


def _key(name, ident, start):
    """The window's cache key; the identity is hashed, since a username may hold any character."""
    digest = hashlib.sha256(str(ident).encode()).hexdigest()[:32]
    return f"rl:{name}:{digest}:{int(start)}"


def check(name, ident, detail="Too many requests: slow down."):
    """`hit`, raising RateLimited when over the limit."""
    verdict = hit(name, ident)
    if not verdict.allowed:
        raise RateLimited(verdict.retry_after, detail)
    return verdict


def client_ip(peer, forwarded_for):
    """The client's address: `peer` (the TCP peer), or the X-Forwarded-For entry that the trusted
    proxies in front of it vouch for (module docstring)."""
    chain = [part.strip() for part in (forwarded_for or "").split(",") if part.strip()]
    candidate = peer
    for hop in reversed(chain[-settings.TRUSTED_PROXY_COUNT:] if settings.TRUSTED_PROXY_COUNT else []):
        if not trusted_proxy(candidate):
            break
        candidate = hop
    try:
        return str(ip_address(candidate))
    except ValueError:
        return peer or "unknown"


def trusted_proxy(address):
    """True when `address` (text) is in TRUSTED_PROXIES; an IPv4-mapped IPv6 peer counts as IPv4."""
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    parsed = getattr(parsed, "ipv4_mapped", None) or parsed
    return any(parsed in network for network in settings.TRUSTED_PROXIES)


def request_ip(request):
    return client_ip(request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR", ""))


def scope_ip(scope):
    """`request_ip` for an ASGI scope (WebSocket handshakes)."""
    peer = (scope.get("client") or ("", 0))[0] or ""
    forwarded = ",".join(value.decode("latin-1") for name, value in scope.get("headers", [])
                         if name.lower() == b"x-forwarded-for")
    return client_ip(peer, forwarded)
