"""Analytics computed at most once per ANALYTICS_SHARE_SECONDS per customer scope, and shared.

threats/analytics.py computes them (analytics_snapshot) and hands its computation to `shared`.
Every dashboard that opens, and every client that polls, asks for the same aggregates; under load
they were computed once per request. A snapshot stays exact at its own `latest_seq` however old it
is (the dashboard applies every event after that seq), so handing a snapshot up to a second old to
the next request of the same scope changes nothing but the SLA clocks, which move by that second.

The cache lives in the process: each Daphne pod computes at most once per second per scope, with no
shared store to fail. Scopes are keyed by the exact set of customers, so a tenant is only ever
handed a snapshot computed for exactly its own customers.
"""

import threading
import time

from django.conf import settings

_snapshots = {}  # scope key -> (computed at, monotonic seconds; snapshot)
_locks = {}
_guard = threading.Lock()


def scope_key(scope):
    """None (every customer) or the frozen set of customer ids."""
    return None if scope is None else frozenset(scope)


def shared(scope, compute, clock=time.monotonic):
    """The snapshot for `scope` computed within the last ANALYTICS_SHARE_SECONDS, else `compute()`'s.
    Concurrent requests of one scope wait for the one computing it instead of computing it too."""
    window = settings.ANALYTICS_SHARE_SECONDS
    if window <= 0:
        return compute()
    key = scope_key(scope)
    with _guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        held = _snapshots.get(key)
        if held is not None and clock() - held[0] < window:
            return held[1]
        snapshot = compute()
        _snapshots[key] = (clock(), snapshot)
        return snapshot


def forget():
    """Drop every shared snapshot (tests; a settings change)."""
    with _guard:
        _snapshots.clear()
