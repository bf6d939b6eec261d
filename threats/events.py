"""Broadcasting of ThreatEvents, always after commit. Documented in docs/websocket.md.

Each event goes to the channel-layer group `threats` (every /ws consumer on every pod) and, when
Redis is configured, is PUBLISHed as JSON on the Redis channel `threats:events`. Both are pushes
only: the database event log is the truth, and clients fill any gap with `resume`.

The event is serialised to JSON once, here; consumers send that text as it is, so a pod with a
thousand sockets does not encode the same event a thousand times.
"""

import asyncio
import atexit
import json
import logging
import os
import threading

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import transaction

from . import metrics
from .serializers import event_message

log = logging.getLogger(__name__)

GROUP = "threats"
REDIS_CHANNEL = "threats:events"
FLUSH_AT_EXIT_SECONDS = 2

_server_loop = None
_publisher = None  # (pid, loop) of this process's background publishing loop
_outboxes = {}  # loop -> [(group, message)] queued from other threads, not yet started
_in_flight = set()  # sends started and not finished (asyncio tasks)
_lock = threading.Lock()
_idle = threading.Condition(_lock)  # notified when nothing is queued or in flight any more
_redis = None  # (pid, url, client)


def bind_loop(loop):
    """Remember the event loop that serves WebSockets in this process.

    Code on other threads (request threads, the embedded analysis thread) hands its sends to that
    loop: the in-memory layer is not thread-safe and would deliver late from a foreign loop.
    """
    global _server_loop
    _server_loop = loop


def broadcast_on_commit(*events):
    """Push `events`, stored in the caller's transaction, once it commits."""
    messages = [event_message(event) for event in events]
    pushes = [(message["type"], message["seq"], json.dumps(message)) for message in messages]
    transaction.on_commit(lambda: publish(*pushes), robust=True)


def publish(*pushes):
    """Push stored events ((type, seq, JSON text) each, in seq order) to every consumer and to
    `threats:events`, whose PUBLISHes go to Redis in one round trip. Best effort by design."""
    for event_type, seq, text in pushes:
        _group_send({"type": event_type, "seq": seq, "text": text})
        metrics.EVENTS_BROADCAST.labels(event_type).inc()
    if settings.REDIS_URL:
        _redis_publish([text for _type, _seq, text in pushes])


def send_to_group(group, message):
    """Push a control message (e.g. `force.close` to `user.<id>`) to one group; best effort."""
    _group_send(message, group)


def progress_group(threat_id):
    return f"progress.{threat_id}"


def push_progress(threat_id, *updates):
    """Tell the sockets watching one threat (`watch` message) how its agents are doing. Each update
    ({"agent": ..., "state": ..., more details}) is one `threat.progress` frame on the socket; all
    of them go as one channel-layer message (docs/websocket.md). Ephemeral: not an
    event, no seq, not stored — the stored verdict and `threat.analyzed` are the truth."""
    group = progress_group(threat_id)
    if _may_have_listeners(group):
        texts = [json.dumps({"type": "threat.progress", "threat": str(threat_id), **update}) for update in updates]
        _group_send({"type": "threat.progress", "texts": texts}, group)


def _may_have_listeners(group):
    """False only for the in-memory layer (one process: `make run`) when no socket of this process
    joined `group`: a send would reach nobody, so it skips the hop to the loop (an analysis makes
    three). Another layer (or an in-memory one without the `groups` dict it has had since
    Channels 2) cannot tell from here: send."""
    layer = get_channel_layer()
    groups = getattr(layer, "groups", None) if isinstance(layer, InMemoryChannelLayer) else None
    return not isinstance(groups, dict) or bool(groups.get(group))


def _group_send(message, group=GROUP):
    if not _may_have_listeners(group):
        return
    loop = _server_loop if _server_loop is not None and _server_loop.is_running() else _publisher_loop()
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    if current is loop:
        with _lock:
            _start_send(group, message)
        return
    # From another thread: queue the send and wake the loop only when its queue was empty, so a
    # burst (an analysis's ten progress pushes, a batch's events) costs one cross-thread wake-up
    # (a self-pipe write, ~45 us of CPU each measured) instead of one per message. Order is kept.
    with _lock:
        outbox = _outboxes.setdefault(loop, [])
        outbox.append((group, message))
        wake = len(outbox) == 1
    if wake:
        try:
            loop.call_soon_threadsafe(_drain, loop)
        except RuntimeError as exc:  # the loop closed under us (process shutting down): drop, loudly
            with _lock:
                dropped = _outboxes.pop(loop, [])
                if not _busy():
                    _idle.notify_all()
            log.warning("channel-layer send of %d message(s) dropped: %s", len(dropped), exc)
            metrics.LAYER_SEND_FAILURES.inc(len(dropped))


def _drain(loop):
    """On the loop: start every queued send, in the order they were queued. Under the lock, so a
    send is always either queued or in flight (the exit flush never sees it in neither)."""
    with _lock:
        queued, _outboxes[loop] = _outboxes.get(loop, []), []
        for group, message in _merged(queued):
            _start_send(group, message)


def _merged(queued):
    """Progress pushes queued back to back for the same threat travel as one layer message (one
    Redis round trip instead of one per agent); everything else is sent as it was queued."""
    merged = []
    for group, message in queued:
        previous = merged[-1][1] if merged and merged[-1][0] == group else None
        if previous is not None and message["type"] == previous["type"] == "threat.progress":
            merged[-1] = (group, {**previous, "texts": previous["texts"] + message["texts"]})
        else:
            merged.append((group, message))
    return merged


def _start_send(group, message):
    """Start one send on the running loop (the caller holds _lock)."""
    task = asyncio.ensure_future(get_channel_layer().group_send(group, message))
    _in_flight.add(task)
    task.add_done_callback(_settled)


def _publisher_loop():
    """A long-lived loop on a daemon thread for processes without a server loop (Celery workers,
    commands): one layer connection reused, instead of a new loop and connection per event.
    Re-created after fork, since a forked child inherits the variable but not the thread."""
    global _publisher
    with _lock:
        if _publisher is None or _publisher[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="event-publisher", daemon=True).start()
            _publisher = (os.getpid(), loop)
        return _publisher[1]


def _settled(task):
    with _lock:
        _in_flight.discard(task)
        if not _busy():
            _idle.notify_all()
    if not task.cancelled() and task.exception() is not None:
        log.warning("channel-layer send failed: %s", task.exception())
        metrics.LAYER_SEND_FAILURES.inc()


@atexit.register
def _flush():
    """Give pushes still queued or in flight a moment before the process exits (e.g. a command)."""
    with _idle:
        _idle.wait_for(lambda: not _busy(), timeout=FLUSH_AT_EXIT_SECONDS)


def _busy():
    """Whether a send is queued or in flight (the caller holds _lock)."""
    return bool(_in_flight) or any(_outboxes.values())


def _redis_publish(texts):
    """PUBLISH each of `texts` on `threats:events`, in order: a batch's events in one pipeline (one
    round trip on the committing thread instead of one each: 4 % of a batched worker's time)."""
    global _redis
    try:
        with _lock:
            if _redis is None or _redis[:2] != (os.getpid(), settings.REDIS_URL):
                import redis

                _redis = (os.getpid(), settings.REDIS_URL, redis.Redis.from_url(
                    settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2))
        if len(texts) == 1:
            _redis[2].publish(REDIS_CHANNEL, texts[0])
        else:
            with _redis[2].pipeline(transaction=False) as pipe:
                for text in texts:
                    pipe.publish(REDIS_CHANNEL, text)
                pipe.execute()
    except Exception as exc:  # a push is best effort: the events are already in the database
        log.warning("redis publish of %d event(s) on %s failed: %s", len(texts), REDIS_CHANNEL, exc)
        metrics.REDIS_PUBLISH_FAILURES.inc(len(texts))
