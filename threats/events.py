"""Broadcasting of ThreatEvents, always after commit. Documented in README "WebSocket protocol".

Each event goes to the channel-layer group `threats` (every /ws consumer on every pod) and, when
Redis is configured, is PUBLISHed as JSON on the Redis channel `threats:events`. Both are pushes
only: the database event log is the truth, and clients fill any gap with `resume`.
"""

import asyncio
import json
import logging
import threading

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from .serializers import event_message

log = logging.getLogger(__name__)

GROUP = "threats"
REDIS_CHANNEL = "threats:events"

_server_loop = None
_redis = None
_redis_lock = threading.Lock()


def bind_loop(loop):
    """Remember the event loop that serves WebSockets in this process.

    Code on other threads (request threads, the embedded analysis thread) hands its sends to that
    loop: the in-memory layer is not thread-safe and would deliver late from a foreign loop.
    """
    global _server_loop
    _server_loop = loop


def broadcast_on_commit(event):
    message = event_message(event)
    transaction.on_commit(lambda: publish(message), robust=True)


def publish(message):
    _group_send(message)
    if settings.REDIS_URL:
        _redis_publish(message)


def _group_send(message):
    layer = get_channel_layer()
    loop = _server_loop
    if loop is None or not loop.is_running():
        async_to_sync(layer.group_send)(GROUP, message)
        return
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    if current is loop:
        loop.create_task(layer.group_send(GROUP, message))
    else:
        future = asyncio.run_coroutine_threadsafe(layer.group_send(GROUP, message), loop)
        future.add_done_callback(_log_failure)


def _log_failure(future):
    if future.exception() is not None:
        log.warning("channel-layer send failed: %s", future.exception())


def _redis_publish(message):
    global _redis
    try:
        with _redis_lock:
            if _redis is None:
                import redis

                _redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        _redis.publish(REDIS_CHANNEL, json.dumps(message))
    except Exception as exc:  # a push is best effort: the event is already in the database
        log.warning("redis publish on %s failed: %s", REDIS_CHANNEL, exc)
