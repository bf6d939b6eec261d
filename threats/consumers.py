"""The /ws consumer. Protocol: README "WebSocket protocol".

Delivery: the consumer tracks the last seq it sent. A live event that skips ahead (another pod's
event arrived first, or a push was lost) makes it read the missing events from the database and
send them in order; an event it already sent is dropped. So a connected client sees every event
once, in order, whatever the channel layer does.
"""

import asyncio
import json
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import events, metrics, services
from .serializers import event_message

# A new connection waits this long before streaming, so that a reconnecting client's `resume`
# (sent as soon as the socket opens) is applied before any live event: exactly once and in order.
RESUME_GRACE_SECONDS = 0.5
MAX_CLIENT_MESSAGE_BYTES = 4096


class ThreatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not await _can_view(user):
            metrics.WS_CONNECTS.labels("refused").inc()
            await self.close()  # before accept: the handshake is refused with 403
            return
        events.bind_loop(asyncio.get_running_loop())
        await self.channel_layer.group_add(events.GROUP, self.channel_name)
        await self.accept()
        metrics.socket_opened(self)
        self.hello_seq = self.last_seq = await database_sync_to_async(services.latest_seq)()
        self.streaming = self.closed = False
        await self._send({"type": "hello", "seq": self.last_seq})
        after = _query_after(self.scope)
        if after is not None:
            await self._resume(after)
        else:
            asyncio.get_running_loop().call_later(RESUME_GRACE_SECONDS, self._request_stream_start)

    async def disconnect(self, code):
        self.closed = True
        metrics.socket_closed(self)
        await self.channel_layer.group_discard(events.GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        message = _parse_client_message(text_data)
        kind = message.get("type")
        if kind == "ping":
            await self._heartbeat()
        elif kind == "resume":
            await self._resume(message.get("after"))
        # Anything else is ignored: client messages are never forwarded to the channel layer.
        if not self.streaming:
            await self._start_streaming()

    # --- channel-layer handlers: one per event type (dotted type -> snake-case method) ---------

    async def threat_created(self, message):
        await self._on_event(message)

    async def threat_analyzed(self, message):
        await self._on_event(message)

    async def threat_updated(self, message):
        await self._on_event(message)

    async def threat_note_added(self, message):
        await self._on_event(message)

    async def threat_analysis_failed(self, message):
        await self._on_event(message)

    async def stream_start(self, message):
        if not self.streaming:
            await self._start_streaming()

    # --- delivery ----------------------------------------------------------------------------

    async def _on_event(self, message):
        seq = message["seq"]
        if not self.streaming or seq <= self.last_seq:
            return  # streaming starts with a catch-up from the database; older ones were sent
        if seq > self.last_seq + 1:
            metrics.WS_GAPS.inc()
            await self._catch_up()
        if seq > self.last_seq:
            await self.send(text_data=message["text"])  # serialised once per event, in events.py
            self.last_seq = seq

    async def _heartbeat(self):
        """A ping re-joins the group (cheap, idempotent: a socket never stays open but deaf after a
        layer reconnect or a group expiry) and sends whatever the log has that the push missed."""
        await self.channel_layer.group_add(events.GROUP, self.channel_name)
        if self.streaming:
            await self._catch_up()
        await self._send({"type": "pong", "seq": self.last_seq})

    async def _start_streaming(self):
        self.streaming = True
        await self._catch_up()

    async def _catch_up(self):
        """Send, in order, every stored event after last_seq; False (and `resync`) when too far behind."""
        limit = settings.EVENT_REPLAY_LIMIT
        rows = await database_sync_to_async(_messages_after)(self.last_seq, limit + 1)
        if len(rows) > limit:
            self.last_seq = await database_sync_to_async(services.latest_seq)()
            await self._send({"type": "resync", "seq": self.last_seq})
            return False
        metrics.WS_REPLAYED.inc(len(rows))
        for message in rows:
            await self._send(message)
            self.last_seq = message["seq"]
        return True

    async def _resume(self, after):
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            metrics.WS_RESUMES.labels("invalid").inc()
            await self._send({"type": "error", "detail": "resume needs a non-negative integer 'after'."})
            return
        if not self.streaming:
            # Nothing live has been sent yet: replay exactly from the client's position.
            self.last_seq = min(after, self.last_seq)
            self.streaming = True
            if not await self._catch_up():
                metrics.WS_RESUMES.labels("resync").inc()
                return
        elif after < self.last_seq:
            await self._replay_unsent(after)
        metrics.WS_RESUMES.labels("resumed").inc()
        await self._send({"type": "resumed", "seq": self.last_seq})

    async def _replay_unsent(self, after):
        # Events after the client's position that this connection never sent (it only streamed
        # from `hello`): sent once each, but necessarily after the newer ones already delivered.
        limit = settings.EVENT_REPLAY_LIMIT
        rows = await database_sync_to_async(_messages_after)(after, limit + 1, self.hello_seq)
        if len(rows) > limit:
            await self._send({"type": "resync", "seq": self.last_seq})
            return
        metrics.WS_REPLAYED.inc(len(rows))
        for message in rows:
            await self._send(message)

    def _request_stream_start(self):
        if not self.closed:
            asyncio.ensure_future(self.channel_layer.send(self.channel_name, {"type": "stream.start"}))

    async def _send(self, message):
        await self.send(text_data=json.dumps(message))


@database_sync_to_async
def _can_view(user):
    return user.is_active and user.has_perm(services.VIEW_PERMISSION)


def _messages_after(after, limit, upto=None):
    return [event_message(e) for e in services.events_after(after, limit, upto)]


def _query_after(scope):
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("after")
    if values and values[0].isdigit():
        return int(values[0])
    return None


def _parse_client_message(text):
    if not text or len(text) > MAX_CLIENT_MESSAGE_BYTES:
        return {}
    try:
        message = json.loads(text)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}
