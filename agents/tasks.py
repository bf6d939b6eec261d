"""Celery tasks of the agents app. Thin: the coordinator does the work and keeps its result on
AgentRun rows and the Threat, never in a result backend."""

import logging
import threading
from contextlib import contextmanager
from datetime import timedelta

from celery import shared_task, signals
from django.conf import settings
from django.core.cache import cache
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connections,
    transaction,
)
from django.utils import timezone
from kombu.exceptions import KombuError

from socproject import telemetry
from threats import metrics
from threats.choices import AnalysisStatus
from threats.models import Threat

from . import coordinator, llm

log = logging.getLogger(__name__)
_embedded_pool = None
_inline = threading.local()


# An analysis older than this that is still queued or running lost its task (broker restarted
# without persistence, worker killed without redelivery): the sweeper queues it again.
STALE_AFTER = timedelta(minutes=2)
SWEEP_BATCH = 500
# How long the threats a task took beside its own are noted for its re-delivered or retried run:
# above the broker's visibility timeout (settings: 300 s).
TAKEN_TTL = 600


@shared_task(
    bind=True,
    name="agents.analyze_threat",
    soft_time_limit=60,
    time_limit=90,  # below the broker's visibility timeout (settings), so no duplicate delivery
    autoretry_for=(OperationalError, InterfaceError),  # the database went away for a moment
    max_retries=3,
    retry_backoff=2,
    retry_backoff_max=30,
)
def analyze_threat(self, threat_id):
    """Analyse one threat with all agents. Idempotent: an analysed threat is left alone, and a
    re-delivered run updates the same AgentRun rows. After the last retry the threat stays
    `failed`, with a threat.analysis_failed event.

    On a worker, the same claim also takes up to AGENTS_BATCH_SIZE - 1 other threats still
    queued (oldest first; none with an LLM, as `batches`) and analyses them with this one as a
    batch: single triggers arriving in a burst are analysed at the batched rate, and their own
    tasks then find them running or analysed and do nothing. With no burst there is nothing else
    queued, and the task analyses its own threat alone."""
    request = self.request
    if request.is_eager:
        coordinator.analyze(threat_id)
        return
    again, noted = ([] if _first_run(request) else _taken(request.id)), []
    coordinator.analyze_many([threat_id, *again], extras=_extras(1 + len(again)), running_before=_running_before(request),
                             on_claim=lambda extras: noted.append(_remember(request.id, [*again, *extras])))
    if again or any(noted):
        _forget(request.id)


@shared_task(
    bind=True,
    name="agents.analyze_threats",
    soft_time_limit=60,
    time_limit=90,
    autoretry_for=(OperationalError, InterfaceError),
    max_retries=3,
    retry_backoff=2,
    retry_backoff_max=30,
)
def analyze_threats(self, threat_ids):
    """`analyze_threat` for threats queued together (at most AGENTS_BATCH_SIZE): one claim and one
    read per agent for all, each decided on its own, the verdicts stored together
    (`coordinator.analyze_many`). A retry skips the threats already recorded."""
    coordinator.analyze_many(threat_ids, running_before=_running_before(self.request))


def _extras(taken):
    """How many other queued threats a worker's task takes with its `taken` own: none with an LLM
    (one threat a task, as `batches`). Eager tasks (embedded mode: no broker queue behind them)
    take none either: `analyze_threat`."""
    return 0 if llm.enabled() else max(settings.AGENTS_BATCH_SIZE - taken, 0)


def _first_run(request):
    """Not a retry, nor a task given back because its worker process died (Redis restores it
    flagged `redelivered`, at once with CELERY_TASK_REJECT_ON_WORKER_LOST)."""
    return not (request.retries or (request.delivery_info or {}).get("redelivered"))


def _running_before(request):
    """On a worker's first run of a task, a threat marked running since this time is held by a live
    worker (another task took it with its own; no task runs longer than its time limit, below
    STALE_AFTER) and is left to it. A retry, a re-delivered task or an eager run takes its threats
    whatever their state: the run that held them is over."""
    if request.is_eager or not _first_run(request):
        return None
    return timezone.now() - STALE_AFTER


def _taken_key(task_id):
    return f"analysis:taken:{task_id}"


def _remember(task_id, extras):
    """Keep the other threats a task took (Redis, the cache of a broker deployment) until it ends:
    if its worker process dies, or the database fails, its re-delivered or retried run takes them
    again at once, instead of leaving them to the sweeper. A cache that fails costs only that."""
    if not (extras and task_id):
        return False
    try:
        cache.set(_taken_key(task_id), [str(threat_id) for threat_id in extras], TAKEN_TTL)
    except Exception as exc:
        log.warning("could not note the threats task %s took (%s); the sweeper covers them", task_id, exc)
        return False
    return True


def _taken(task_id):
    try:
        return (cache.get(_taken_key(task_id)) or []) if task_id else []
    except Exception as exc:
        log.warning("could not read the threats task %s took (%s); the sweeper covers them", task_id, exc)
        return []


def _forget(task_id):
    """The task ended: what it took is analysed (or recorded failed)."""
    try:
        cache.delete(_taken_key(task_id))
    except Exception as exc:
        log.warning("could not drop the note of task %s (%s); it expires", task_id, exc)


@signals.task_prerun.connect
def _drop_broken_connections(**_kwargs):
    """Workers reuse their database connection (CELERY_DB_REUSE_MAX); one that failed (the database
    restarted) is closed here, so the next query reconnects instead of failing every retry."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and conn.errors_occurred:
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()


@shared_task(name="agents.requeue_stale_analyses", soft_time_limit=30, time_limit=60)
def requeue_stale_analyses_task():
    return requeue_stale_analyses()


def requeue_stale_analyses(older_than=STALE_AFTER):
    """Queue again every analysis stuck in queued/running for longer than `older_than` (since it
    was queued or claimed). It is marked queued again: a worker's first run of a task leaves a
    running threat to the worker holding it (`_running_before`), and this one's worker is gone."""
    cutoff = timezone.now() - older_than
    with transaction.atomic():  # the rows stay locked until marked, so no claim slips in between
        stale = [str(threat_id) for threat_id in
                 Threat.objects.select_for_update(skip_locked=True)
                 .filter(analysis_status__in=[AnalysisStatus.QUEUED, AnalysisStatus.RUNNING], updated_at__lt=cutoff)
                 .order_by("updated_at").values_list("pk", flat=True)[:SWEEP_BATCH]]
        if stale:  # not again next sweep
            Threat.objects.filter(pk__in=stale).update(analysis_status=AnalysisStatus.QUEUED, updated_at=timezone.now())
    if stale:
        _submit_all(stale)
        log.warning("re-queued %d stale analyses", len(stale))
        metrics.ANALYSES_REQUEUED.inc(len(stale))
    return len(stale)


def enqueue_analyses(threat_ids):
    """Queue the analyses once the caller's transaction commits (never before: the worker would not
    find the rows, or analyse ones that are rolled back). They go out in tasks of
    up to AGENTS_BATCH_SIZE threats (`agents.analyze_threats`; a lone threat: `agents.analyze_threat`),
    all through one broker connection."""
    threat_ids = [str(threat_id) for threat_id in threat_ids]
    if threat_ids:
        # robust: the rows are committed whatever happens here; a failure is logged and swept up later.
        transaction.on_commit(lambda: _submit_all(threat_ids), robust=True)


def batches(threat_ids):
    """The tasks `threat_ids` go out in: lists of up to AGENTS_BATCH_SIZE ids (one each with an LLM)."""
    size = 1 if llm.enabled() else settings.AGENTS_BATCH_SIZE
    return [threat_ids[start:start + size] for start in range(0, len(threat_ids), size)]


def _submit_all(threat_ids):
    tasks = batches(threat_ids)
    if len(tasks) == 1 or settings.CELERY_TASK_ALWAYS_EAGER:
        for batch in tasks:
            _submit(batch)
        return
    try:
        with analyze_threat.app.producer_or_acquire() as producer:
            for batch in tasks:
                _task(batch).apply_async(_arguments(batch), producer=producer)
    except (OSError, KombuError) as exc:  # the broker is down: the threats stay queued; the sweeper re-queues them
        log.warning("could not queue %d analyses (%s); the sweeper will retry", len(threat_ids), exc)


def _task(batch):
    return analyze_threat if len(batch) == 1 else analyze_threats


def _arguments(batch):
    return (batch[0],) if len(batch) == 1 else (batch,)


@contextmanager
def analysis_inline():
    """Within this block, embedded-mode analysis runs synchronously (management commands, which
    may exit before a background thread finishes). With a broker, tasks still go to the workers."""
    _inline.active = True
    try:
        yield
    finally:
        _inline.active = False


def _submit(batch):
    if settings.AGENTS_IN_THREAD and not getattr(_inline, "active", False):
        # One machine, no broker: run the (eager) task on a background thread of this process, so
        # the request that created the threat answers at once.
        _pool().submit(_run_in_thread, batch)
        return
    try:
        _task(batch).delay(*_arguments(batch))
    except Exception as exc:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            raise
        # The broker is down: the threats are stored and stay queued; the sweeper queues them again.
        log.warning("could not queue analysis of %s (%s); the sweeper will retry", ", ".join(batch), exc)


def _pool():
    global _embedded_pool
    if _embedded_pool is None:
        _embedded_pool = telemetry.ContextExecutor(max_workers=2, thread_name_prefix="analysis")  # keeps the trace
    return _embedded_pool


def _run_in_thread(batch):
    close_old_connections()
    try:
        _task(batch).delay(*_arguments(batch))
    except Exception:
        log.exception("analysis of %s failed", ", ".join(batch))
    finally:
        close_old_connections()
