"""Log formatting: one JSON object per line when LOG_FORMAT=json, text otherwise; no secrets in either.

Every line written inside a span carries `trace_id` and `span_id` (fields of the line, never labels:
a log store indexes them per line). Secrets are removed from the finished line, so they are
caught wherever they hide (message, extra fields, exception text): the password of any URL, the
secret part of an API key, and the configured secret values (docs/observability.md).
"""

import json
import logging
import re
from datetime import UTC, datetime

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
MASK = "***"
URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*:)[^@/\s]+(?=@)")
API_KEY = re.compile(r"(?P<head>\bsoc_[0-9a-f]{12}_)[A-Za-z0-9_-]+")
# Settings whose values are secrets, and URL settings whose password is.
SECRET_SETTINGS = ("SECRET_KEY", "LLM_API_KEY")
URL_SETTINGS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words


class TraceContextFilter(logging.Filter):
    """Adds the current span's ids to the record (empty outside a span)."""

    def filter(self, record):
        record.trace_id = record.span_id = ""
        try:
            from opentelemetry import trace
        except ImportError:  # pragma: no cover - the packages are in requirements.txt
            return True
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


class Redactor:
    """Masks secrets in a finished log line."""

    def __init__(self):
        self._values = None

    def __call__(self, text):
        text = URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
        text = API_KEY.sub(lambda m: m["head"] + MASK, text)
        for value in self.values():
            text = text.replace(value, MASK)
        return text

    def values(self):
        if self._values is None:
            self._values = _configured_secrets()
        return self._values


def _configured_secrets():
    try:
        from django.conf import settings

        found = [getattr(settings, name) for name in SECRET_SETTINGS]
        found += [_password(getattr(settings, name)) for name in URL_SETTINGS]
    except Exception:  # noqa: BLE001 - settings not configured (a plain script): only the patterns apply
        return []
    found = [value for value in found if value and len(value) >= MIN_SECRET_LENGTH]
    # As written, and as json.dumps writes it inside a JSON line.
    return sorted({*found, *(json.dumps(value)[1:-1] for value in found)}, key=len, reverse=True)


def _password(url):
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password if url else None
    except ValueError:
        return ""
    return unquote(password) if password else ""


class TextFormatter(logging.Formatter):
    """The standard text line, with secrets masked and the trace id appended inside a span."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.redact = Redactor()

    def format(self, record):
        line = super().format(record)
        if getattr(record, "trace_id", ""):
            line += f" trace_id={record.trace_id}"
        return self.redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON line per record; json.dumps escapes newlines, so lines cannot be forged."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.redact = Redactor()

    def format(self, record):
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and v != ""})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(entry, default=str))
