"""Sending webhook deliveries: one attempt per task run, retried with exponential back-off and
jitter, at most WEBHOOK_MAX_ATTEMPTS, then a dead letter (admin: "retry now").

With a broker the attempts are Celery tasks (`handoff.deliver_webhook`, retries by countdown) and
beat runs `handoff.sweep_webhooks`. Without one they run in this process the way analyses do
(agents/tasks.py): on a small thread pool, a retry waiting on a timer; the embedded background
loop sweeps. A task claims its row by moving `next_attempt_at` to the end of a lease, so two runs
never send one delivery at once, and a sender that died leaves a row the sweeper sends again.
"""

import json
import logging
import random
import threading
import urllib.error
import urllib.request
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import close_old_connections, transaction
from django.utils import timezone
from kombu.exceptions import KombuError

from socproject import telemetry

from . import signing
from .addresses import check_url
from .models import DeliveryStatus, WebhookDelivery

log = logging.getLogger(__name__)
SWEEP_BATCH = 200
LEASE_MARGIN = timedelta(seconds=30)
_embedded_pool = None


@shared_task(name="handoff.deliver_webhook", soft_time_limit=60, time_limit=90)
def deliver_webhook(delivery_id):
    """One attempt at one delivery; schedules the next attempt if it failed."""
    attempt(delivery_id)


@shared_task(name="handoff.sweep_webhooks", soft_time_limit=30, time_limit=60)
def sweep_webhooks():
    return sweep()


def attempt(delivery_id):
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    error, code = _post(delivery)
    delivery.attempts += 1
    delivery.last_status_code, delivery.last_error = code, error or ""
    if error is None:
        delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, timezone.now()
    elif delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        delivery.status = DeliveryStatus.DEAD
        log.warning("webhook delivery %s is a dead letter after %d attempts: %s", delivery.pk, delivery.attempts, error)
    else:
        delay = backoff(delivery.attempts)
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    delivery.save(update_fields=["attempts", "status", "delivered_at", "next_attempt_at", "last_status_code", "last_error"])
    if delivery.status == DeliveryStatus.PENDING:
        schedule(delivery.pk, delay)
    return delivery


def backoff(attempts):
    """Seconds before attempt `attempts + 1`: base × 2^(attempts − 1), capped, times a random 0.5–1
    (jitter, so receivers coming back are not hit by every sender at once)."""
    ceiling = min(settings.WEBHOOK_BACKOFF_MAX_SECONDS, settings.WEBHOOK_BACKOFF_SECONDS * 2 ** (attempts - 1))
    return ceiling * random.uniform(0.5, 1.0)


def _claim(delivery_id):
    """The delivery if it is pending and due, leased to this run (else None: done, or not due)."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS) + LEASE_MARGIN
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now + timedelta(seconds=1),
    ).update(next_attempt_at=lease)
    return WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id) if claimed else None


def _post(delivery):
    """(None, status) on a 2xx answer, else (error text, status or None)."""
    endpoint = delivery.endpoint
    try:
        check_url(endpoint.url)
    except ValidationError as exc:
        return f"refused: {' '.join(exc.messages)}", None
    body = json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()
    request = urllib.request.Request(endpoint.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "soc-agent-webhook/1",
        "X-SOC-Event": delivery.event, "X-SOC-Delivery": str(delivery.pk), **signing.headers(endpoint.secret, body)})
    try:
        with _opener().open(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as answer:
            return None, answer.status
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}", exc.code
    except (OSError, ValueError) as exc:  # refused, reset, timed out, bad TLS
        return f"{type(exc).__name__}: {exc}"[:2000], None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a hop: following it could lead past the address check."""

    def redirect_request(self, *args, **kwargs):
        return None


def _opener():
    return urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))


# --- Queueing ----------------------------------------------------------------------------------------


def send_after_commit(delivery_ids):
    ids = [str(delivery_id) for delivery_id in delivery_ids]
    transaction.on_commit(lambda: [schedule(delivery_id, 0) for delivery_id in ids], robust=True)


def schedule(delivery_id, delay):
    """Attempt the delivery in `delay` seconds: a Celery countdown with a broker; without one a
    timer and the in-process pool (synchronously when analyses run inline too, as in tests)."""
    delivery_id = str(delivery_id)
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        try:
            deliver_webhook.apply_async((delivery_id,), countdown=delay)
        except (OSError, KombuError) as exc:  # the broker is down: the row waits for the sweeper
            log.warning("could not queue webhook delivery %s (%s); the sweeper will retry", delivery_id, exc)
    elif delay <= 0 and not settings.AGENTS_IN_THREAD:
        attempt(delivery_id)
    else:
        timer = threading.Timer(max(0.0, delay), lambda: _pool().submit(_run_in_thread, delivery_id))
        timer.daemon = True
        timer.start()


def _pool():
    global _embedded_pool
    if _embedded_pool is None:
        _embedded_pool = telemetry.ContextExecutor(max_workers=2, thread_name_prefix="webhook")
    return _embedded_pool


def _run_in_thread(delivery_id):
    close_old_connections()
    try:
        attempt(delivery_id)
    except Exception:
        log.exception("webhook delivery %s failed", delivery_id)
    finally:
        close_old_connections()


def sweep():
    """Queue every pending delivery that is due (its task was lost, or its sender died)."""
    due = [str(pk) for pk in WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now())
           .order_by("next_attempt_at").values_list("pk", flat=True)[:SWEEP_BATCH]]
    for delivery_id in due:
        schedule(delivery_id, 0)
    return len(due)


def retry_now(deliveries):
    """The admin's "retry now": dead letters get a fresh round of attempts, starting at once."""
    ids = [str(pk) for pk in deliveries.values_list("pk", flat=True)]
    WebhookDelivery.objects.filter(pk__in=ids).exclude(status=DeliveryStatus.DELIVERED).update(
        status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=timezone.now())
    send_after_commit(ids)
    return len(ids)
