"""Periodic synthetic threats. In a cluster Celery beat runs `threats.generate_threat`; on one machine
(no broker) a daemon thread in the Daphne process does the same, so `make run` shows live traffic."""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)
_started = threading.Event()


def generate_one():
    from . import services

    threat = services.trigger_threat(services.SYSTEM)
    log.info("generated threat %s (%s for %s)", threat.pk, threat.threat_type, threat.customer.name)
    return threat


def start_if_enabled():
    """Start the in-process generator once, only in embedded mode and when enabled."""
    if not (settings.ENABLE_AUTO_THREAT_GENERATION and settings.CELERY_TASK_ALWAYS_EAGER):
        return None
    if _started.is_set():
        return None
    _started.set()
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(stop,), name="threat-generator", daemon=True)
    thread.start()
    return stop


def _loop(stop):
    while not stop.wait(settings.THREAT_GENERATION_INTERVAL):
        close_old_connections()
        try:
            generate_one()
        except Exception:  # keep generating: one bad round must not stop the demo feed
            log.exception("periodic threat generation failed")
