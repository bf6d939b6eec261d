"""The security audit log (docs/security.md): one structured line per security-relevant action on
the dedicated logger `soc.audit` — logins, failed logins, throttled logins, logouts, permission
denials, refused sockets, API key use and refusals, triage actions, admin changes.

Each line says who, what, when (UTC) and from where: `audit action=login.failed who="mallory"
ip="203.0.113.7" at="2026-11-26T10:00:00.000000Z" outcome="refused" ...`. Every value is written as
a JSON string (bounded in length), so a CR, LF, ANSI escape or quote that an attacker puts in a
username cannot start a forged line; with LOG_FORMAT=json the same fields travel as `audit`.
"""

import contextvars
import json
import logging
from datetime import UTC, datetime

log = logging.getLogger("soc.audit")
VALUE_LIMIT = 200
# The client address of the request or socket being served (set by the middleware / consumer),
# so that services deep below a view can say "from where" without being handed the request.
client_ip = contextvars.ContextVar("soc_audit_client_ip", default="")


def record(action, who=None, outcome="ok", ip=None, **details):
    """Write one audit line; returns the fields (tests read them back from the captured record)."""
    fields = {
        "action": action,
        "who": describe(who),
        "ip": ip if ip is not None else client_ip.get(),
        "at": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "outcome": outcome,
        **details,
    }
    line = " ".join(f"{name}={safe(value)}" for name, value in fields.items())
    log.info("audit %s", line, extra={"audit": {name: _bounded(value) for name, value in fields.items()}})
    return fields


def describe(who):
    """A user's username, an API key's prefix and name, or "anonymous"."""
    if who is None or (hasattr(who, "is_authenticated") and not who.is_authenticated):
        return "anonymous"
    if hasattr(who, "get_username"):
        return who.get_username()
    if hasattr(who, "prefix"):
        return f"key:{who.prefix} ({who.name})"
    return str(who)


def safe(value):
    """A value as a bounded JSON string: quotes, backslashes and every control character escaped."""
    return json.dumps(_bounded(value), ensure_ascii=True)


def _bounded(value):
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=True)
    return text if len(text) <= VALUE_LIMIT else text[:VALUE_LIMIT] + f"…[{len(text) - VALUE_LIMIT} more]"
