"""Periodic background jobs. In a cluster Celery beat runs them (`threats.generate_threat`,
`agents.requeue_stale_analyses`); on one machine (no broker) a daemon thread of the Daphne process
does the same, so `make run` shows live traffic, warns of SLA breaches and never leaves an analysis
stuck."""

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)
SWEEP_INTERVAL_SECONDS = 60
_started = threading.Event()


def generate_one():
    from . import services

    threat = services.trigger_threat(services.SYSTEM)
    log.info("generated threat %s (%s for %s)", threat.pk, threat.threat_type, threat.customer.name)
    return threat


def start_if_enabled():
    """Start the in-process jobs once, only in embedded mode (with a broker, beat runs them)."""
    if not settings.CELERY_TASK_ALWAYS_EAGER or _started.is_set():
        return None
    _started.set()
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(stop,), name="background-jobs", daemon=True)
    thread.start()
    return stop


def _jobs():
    from handoff.tasks import sweep as sweep_webhooks
    from suppressions.services import expire_due as expire_suppressions

    from .analysis import requeue_stale_analyses
    from .services import warn_near_breach

    jobs = [(SWEEP_INTERVAL_SECONDS, requeue_stale_analyses), (SWEEP_INTERVAL_SECONDS, sweep_webhooks),
            (settings.SOC_SLA_WARN_INTERVAL_SECONDS, warn_near_breach), (SWEEP_INTERVAL_SECONDS, expire_suppressions)]
    if settings.ENABLE_AUTO_THREAT_GENERATION:
        jobs.append((settings.THREAT_GENERATION_INTERVAL, generate_one))
    return jobs


def _loop(stop):
    jobs = _jobs()
    due = [time.monotonic() + interval for interval, _job in jobs]
    while not stop.wait(max(0.0, min(due) - time.monotonic())):
        for index, (interval, job) in enumerate(jobs):
            if time.monotonic() >= due[index]:
                due[index] = time.monotonic() + interval
                _run(job)


def _run(job):
    close_old_connections()
    try:
        job()
    except Exception:  # keep going: one bad round must not stop the demo feed or the sweeper
        log.exception("background job %s failed", job.__name__)
