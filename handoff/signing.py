"""The webhook signature: HMAC-SHA256 over "<timestamp>.<body>" with the endpoint's secret.

Headers: `X-SOC-Timestamp: <unix seconds>`, `X-SOC-Signature: sha256=<hex>`. A receiver recomputes
the HMAC over the exact bytes it received and rejects a timestamp older than a few minutes, so a
captured request cannot be replayed later (docs/handoff.md has the receiver's code).
"""

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-SOC-Timestamp"
SIGNATURE_HEADER = "X-SOC-Signature"
TOLERANCE_SECONDS = 300


def signature(secret, timestamp, body):
    message = str(int(timestamp)).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def headers(secret, body, now=None):
    timestamp = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(secret, body, timestamp, signed, tolerance=TOLERANCE_SECONDS, now=None):
    """True when `signed` is the signature of `body` at `timestamp` and the timestamp is recent."""
    try:
        moment = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - moment) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, moment, body), str(signed or ""))
