"""API keys for machine clients (docs/ingestion.md, API keys).

A key reads `soc_<prefix>_<secret>`: the prefix (12 hex characters) is stored in clear to find the
row; only a SHA-256 of the whole key is stored, compared in constant time. The key is shown once,
when it is issued (Django admin). Revoked keys stop working at once.

`APIKeyAuth` is the django-ninja auth class: it reads only the `X-API-Key` header (never a cookie),
so requests authenticated by it need no CSRF token and cannot be forged by a browser. Each use is
an audit line and counts against the key's rate limit; a key that does not verify counts against the
client address (middleware.RateLimitMiddleware; docs/security.md).
"""

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from django.utils import timezone
from ninja.errors import HttpError
from ninja.security import APIKeyHeader

from . import audit
from .models import APIKey

HEADER = "X-API-Key"
KEY_PATTERN = re.compile(r"^soc_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
# last_used_at is written at most this often per key: a busy shipper must not turn every
# request into a row update.
TOUCH_EVERY = timedelta(minutes=1)


def digest(raw_key):
    return hashlib.sha256(raw_key.encode()).hexdigest()


def new_key():
    """(prefix, raw key) with 256 bits of secret."""
    prefix = secrets.token_hex(6)
    return prefix, f"soc_{prefix}_{secrets.token_urlsafe(32)}"


def assign_secret(key):
    """Give an unsaved (or re-keyed) APIKey a new secret; returns the raw key to show once."""
    prefix, raw = new_key()
    while APIKey.objects.filter(prefix=prefix).exists():  # 48 random bits: practically never loops
        prefix, raw = new_key()
    key.prefix, key.key_hash = prefix, digest(raw)
    return raw


def issue(name, scopes, source="", customer=None, created_by=None):
    """Create a key; returns (APIKey, raw key). The raw key is not stored anywhere."""
    key = APIKey(name=name, scopes=list(scopes), source=source, customer=customer, created_by=created_by)
    raw = assign_secret(key)
    key.save()
    return key, raw


def verify(raw_key):
    """The active APIKey for `raw_key`, or None (malformed, unknown, wrong secret or revoked)."""
    match = KEY_PATTERN.match(raw_key or "")
    if not match:
        return None
    key = APIKey.objects.select_related("customer").filter(prefix=match.group(1)).first()
    if key is None or not hmac.compare_digest(key.key_hash, digest(raw_key)) or key.revoked_at is not None:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_EVERY:
        APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def request_key(request):
    """The active APIKey named by the request's X-API-Key header, or None (no header, or a key
    that does not verify). Verified once per request: the rate-limit middleware asks first, to
    count the request against the key or, for a wrong key, against the client address."""
    if not hasattr(request, "_soc_api_key"):
        raw = request.headers.get(HEADER) or ""
        request._soc_api_key = verify(raw) if raw else None
    return request._soc_api_key
def sent_fingerprint(raw_key):
    """What the audit log says about a refused key: 8 hex characters of its SHA-256 and its length,
    enough to tell repeated attempts apart. Never any character of what was sent: a mistyped key or
    a password pasted into the wrong field is still a secret."""
    return f"sha256:{digest(raw_key)[:8]} ({len(raw_key)} chars)"


def revoke(keys):
    """Revoke the given keys (a queryset); returns how many were still active."""
    return keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


class APIKeyAuth(APIKeyHeader):
    """`X-API-Key` authentication needing `scope`. With `required=False` a request without the
    header falls through to the next auth method (the session); a wrong key is always refused."""

    param_name = HEADER

    def __init__(self, scope, required=True):
        self.scope, self.required = scope, required
        super().__init__()

    def authenticate(self, request, key):
        if not key:
            if self.required:
                raise HttpError(401, f"Send a valid API key in the {HEADER} header.")
            return None
        found = request_key(request)  # counted by middleware.RateLimitMiddleware already
        if found is None:
            audit.record("key.refused", None, outcome="refused", sent=sent_fingerprint(key), path=request.path)
            raise HttpError(401, f"Invalid or revoked API key in the {HEADER} header.")
        if self.scope not in (found.scopes or []):
            audit.record("key.refused", found, outcome="refused", scope=self.scope, path=request.path)
            raise HttpError(403, f"This API key lacks the '{self.scope}' scope.")
        audit.record("key.used", found, scope=self.scope, method=request.method, path=request.path)
        return found
