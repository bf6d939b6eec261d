"""Celery tasks of the agents app. Thin: the coordinator does the work and keeps its result on
AgentRun rows and the Threat, never in a result backend."""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections, transaction

from . import coordinator

log = logging.getLogger(__name__)
_embedded_pool = None
_inline = threading.local()


@shared_task(name="agents.analyze_threat", soft_time_limit=60, time_limit=90)
def analyze_threat(threat_id):
    """Analyse one threat with all agents. Idempotent: an analysed threat is left alone."""
    coordinator.analyze(threat_id)


def enqueue_analysis(threat_id):
    """Queue the analysis once the caller's transaction commits (never before: the worker would
    not find the row, or analyse one that is rolled back)."""
    transaction.on_commit(partial(_submit, str(threat_id)))


@contextmanager
def analysis_inline():
    """Within this block, embedded-mode analysis runs synchronously (management commands, which
    may exit before a background thread finishes). With a broker, tasks still go to the workers."""
    _inline.active = True
    try:
        yield
    finally:
        _inline.active = False


def _submit(threat_id):
    if settings.AGENTS_IN_THREAD and not getattr(_inline, "active", False):
        # One machine, no broker: run the (eager) task on a background thread of this process, so
        # the request that created the threat answers at once.
        _pool().submit(_run_in_thread, threat_id)
    else:
        analyze_threat.delay(threat_id)


def _pool():
    global _embedded_pool
    if _embedded_pool is None:
        _embedded_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="analysis")
    return _embedded_pool


def _run_in_thread(threat_id):
    close_old_connections()
    try:
        analyze_threat.delay(threat_id)
    except Exception:
        log.exception("analysis of threat %s failed", threat_id)
    finally:
        close_old_connections()
