"""A user's permissions and customer scope, kept in the shared cache (Redis) across requests until
something that decides them changes (docs/security.md "Access cache").

An entry is stored with the version tokens of its user and of the whole installation as they were
read *before* the database; a change writes new tokens once its transaction commits, so an entry
computed from the old state is never read again, on any pod. Without Redis the cache is off: a
process-local cache could not hear of a change made by another process.
"""

import logging
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)
EVERYONE = "grants-version:all"


def _entry_key(user_id):
    return f"grants:{user_id}"


def _version_key(user_id):
    return f"grants-version:{user_id}"


def load(user, compute):
    """compute(user), read from the cache while neither the user's nor everyone's version changed.
    A cache outage costs the database read, never the answer."""
    seconds = settings.ACCESS_CACHE_SECONDS
    if not seconds:
        return compute(user)
    entry_key, user_key = _entry_key(user.pk), _version_key(user.pk)
    try:
        found = cache.get_many([entry_key, user_key, EVERYONE])
    except Exception:  # noqa: BLE001 - the database still answers
        logger.warning("access cache unreachable; reading grants from the database", exc_info=True)
        return compute(user)
    versions = (found.get(user_key), found.get(EVERYONE))
    entry = found.get(entry_key)
    if entry is not None and tuple(entry[0]) == versions:
        return entry[1]
    value = compute(user)
    try:
        cache.set(entry_key, (versions, value), seconds)
    except Exception:  # noqa: BLE001
        logger.warning("access cache unreachable; grants not stored", exc_info=True)
    return value


def forget(user_id=None):
    """Once the current transaction commits, retire the cached grants of one user (None: everyone)."""
    key = EVERYONE if user_id is None else _version_key(user_id)
    transaction.on_commit(lambda: _new_version(key), robust=True)


def _new_version(key):
    if not settings.ACCESS_CACHE_SECONDS:
        return
    try:
        cache.set(key, uuid.uuid4().hex, None)  # a token, not a counter: an evicted key never comes back equal
    except Exception:  # noqa: BLE001 - entries still end with ACCESS_CACHE_SECONDS
        logger.error("access cache unreachable: a change of role or scope is cached for up to %s s more",
                     settings.ACCESS_CACHE_SECONDS, exc_info=True)
