"""The /ws consumer. Protocol: README "WebSocket protocol".

Delivery: the consumer tracks the last seq it sent. A live event that skips ahead (another pod's
event arrived first, or a push was lost) makes it read the missing events from the database and
send them in order; an event it already sent is dropped. So a connected client sees every event
once, in order, whatever the channel layer does.

Security (README "Security"): the Origin was checked before this consumer runs (middleware.py
`WebSocketOriginValidator`); a socket without a valid session of an active user with the view
permission is refused before accept. Each socket joins `user.<id>` so that logout, a password
change, deactivation or a change of role or scope closes it (`force.close`), and re-reads its
session at most every WS_SESSION_RECHECK_SECONDS on a heartbeat, so a lost push still ends it. A
socket scoped to customers is sent only their events, live and replayed. Client messages are
allow-listed (`ping`, `resume`, `watch`), bounded in size and rate, and never forwarded. `watch`
joins the socket to one threat's `progress.<id>` group (agent progress) after the same access
check as the threat's page.
"""

import asyncio
import json
import time
from functools import lru_cache
from importlib import import_module
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.utils.crypto import constant_time_compare

from . import access, audit, events, metrics, ratelimit, services
from .models import Customer
from .serializers import event_message

# A new connection waits this long before streaming, so that a reconnecting client's `resume`
# (sent as soon as the socket opens) is applied before any live event: exactly once and in order.
RESUME_GRACE_SECONDS = 0.5
# Close codes (an application may only send 1000 or 3000-4999; Daphne turns others into 1011):
# 4001 the session ended (logout, password, deactivation, role or scope change); 4003 binary
# message; 4008 too many messages; 4009 message too big (the 1003/1008/1009 meanings + 3000).
CLOSE_SESSION_ENDED = 4001
CLOSE_UNSUPPORTED = 4003
CLOSE_POLICY = 4008
CLOSE_TOO_BIG = 4009
RATE_WINDOW_SECONDS = 10
MAX_PARSED_MESSAGE_CHARS = 4096


class ThreatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        self.closed, self.user_id, self.watching = True, None, None
        reason = await _refusal(user)
        if reason:
            metrics.WS_CONNECTS.labels("refused").inc()
            audit.record("ws.refused", user, outcome="refused", ip=ratelimit.scope_ip(self.scope), reason=reason)
            await self.close()  # before accept: the handshake is refused with 403
            return
        self.user_id = user.pk
        self.customer_slugs = await _customer_slugs(user)
        self.session_checked = time.monotonic()
        self.window_start, self.window_count = time.monotonic(), 0
        events.bind_loop(asyncio.get_running_loop())
        await self.channel_layer.group_add(events.GROUP, self.channel_name)
        await self.channel_layer.group_add(access.user_group(user.pk), self.channel_name)
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
        if self.user_id is None:  # refused before accept: never joined anything
            return
        await self.channel_layer.group_discard(events.GROUP, self.channel_name)
        await self.channel_layer.group_discard(access.user_group(self.user_id), self.channel_name)
        if self.watching:
            await self.channel_layer.group_discard(events.progress_group(self.watching), self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        refusal = self._client_refusal(text_data, bytes_data)
        if refusal:
            audit.record("ws.closed", self.scope.get("user"), outcome="refused", ip=ratelimit.scope_ip(self.scope),
                         reason=refusal[1])
            await self.close(code=refusal[0])
            return
        message = _parse_client_message(text_data)
        kind = message.get("type")
        if kind == "ping":
            await self._heartbeat()
        elif kind == "resume":
            await self._resume(message.get("after"))
        elif kind == "watch":
            await self._watch(message.get("threat"))
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

    async def threat_progress(self, message):
        """Agent progress of the watched threat (ephemeral, no seq; events.push_progress): one frame per update."""
        for text in message["texts"]:
            await self.send(text_data=text)

    async def stream_start(self, message):
        if not self.streaming:
            await self._start_streaming()

    async def force_close(self, message):
        """The user's session ended somewhere (access.close_user_sockets): close at once."""
        await self._end_session(str(message.get("reason", "session ended")))

    # --- security --------------------------------------------------------------------------------

    def _client_refusal(self, text_data, bytes_data):
        """(close code, reason) for a client message this socket will not take, else None."""
        if bytes_data is not None:
            return CLOSE_UNSUPPORTED, "binary message"
        if len((text_data or "").encode()) > settings.WS_MAX_MESSAGE_BYTES:
            return CLOSE_TOO_BIG, "message too big"
        now = time.monotonic()
        if now - self.window_start >= RATE_WINDOW_SECONDS:
            self.window_start, self.window_count = now, 0
        self.window_count += 1
        if self.window_count > settings.WS_MESSAGES_PER_10_SECONDS:
            return CLOSE_POLICY, "too many messages"
        return None

    async def _end_session(self, reason):
        audit.record("ws.closed", self.scope.get("user"), outcome="closed", ip=ratelimit.scope_ip(self.scope),
                     reason=reason)
        await self.close(code=CLOSE_SESSION_ENDED)

    async def _session_valid(self):
        """Re-read the session (at most every WS_SESSION_RECHECK_SECONDS): expired, logged out,
        password changed or user deactivated -> False."""
        now = time.monotonic()
        if now - self.session_checked < settings.WS_SESSION_RECHECK_SECONDS:
            return True
        self.session_checked = now
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        return bool(key) and await database_sync_to_async(_session_user_id)(key) == self.user_id

    def _visible(self, message):
        """Whether this socket may be sent an event (a dict, or a live push with its text)."""
        if self.customer_slugs is None:
            return True
        if "text" in message:
            return _customer_of_push(message["seq"], message["text"]) in self.customer_slugs
        return (message.get("threat") or {}).get("customer_slug") in self.customer_slugs

    # --- delivery ----------------------------------------------------------------------------

    async def _on_event(self, message):
        seq = message["seq"]
        if not self.streaming or seq <= self.last_seq:
            return  # streaming starts with a catch-up from the database; older ones were sent
        if seq > self.last_seq + 1:
            metrics.WS_GAPS.inc()
            await self._catch_up()
        if seq > self.last_seq:
            if self._visible(message):
                await self.send(text_data=message["text"])  # serialised once per event, in events.py
            self.last_seq = seq

    async def _heartbeat(self):
        """A ping re-joins the group (cheap, idempotent: a socket never stays open but deaf after a
        layer reconnect or a group expiry) and sends whatever the log has that the push missed."""
        if not await self._session_valid():
            await self._end_session("session no longer valid")
            return
        await self.channel_layer.group_add(events.GROUP, self.channel_name)
        await self.channel_layer.group_add(access.user_group(self.user_id), self.channel_name)
        if self.watching:
            await self.channel_layer.group_add(events.progress_group(self.watching), self.channel_name)
        if self.streaming:
            await self._catch_up()
        await self._send({"type": "pong", "seq": self.last_seq})

    async def _watch(self, threat_id):
        """Follow one threat's agent progress (one at a time; `"threat": null` stops). A threat the
        user may not see is answered like a missing one."""
        watched = None
        if threat_id is not None:
            watched = await database_sync_to_async(_watchable_id)(self.user_id, threat_id)
            if watched is None:
                await self._send({"type": "error", "detail": "watch needs the id of a threat you can see."})
                return
        if self.watching:
            await self.channel_layer.group_discard(events.progress_group(self.watching), self.channel_name)
        self.watching = watched
        if self.watching:
            await self.channel_layer.group_add(events.progress_group(self.watching), self.channel_name)
        await self._send({"type": "watching", "threat": self.watching})

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
            if self._visible(message):
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
            if self._visible(message):
                await self._send(message)

    def _request_stream_start(self):
        if not self.closed:
            asyncio.ensure_future(self.channel_layer.send(self.channel_name, {"type": "stream.start"}))

    async def _send(self, message):
        await self.send(text_data=json.dumps(message))


@database_sync_to_async
def _refusal(user):
    """Why a handshake is refused (None: accept). AuthMiddlewareStack already turned a missing,
    expired or tampered session, a changed password or an inactive user into AnonymousUser."""
    if user is None or not user.is_authenticated:
        return "not logged in"
    if not access.has_permission(user, access.VIEW_PERMISSION):
        return "no view permission"
    return None


@database_sync_to_async
def _customer_slugs(user):
    scope = access.customer_scope(user)
    if scope is access.ALL_CUSTOMERS:
        return None
    return frozenset(Customer.objects.filter(pk__in=scope).values_list("slug", flat=True))


def _watchable_id(user_id, threat_id):
    """The threat's id as the progress group names it, if this user may see it; else None."""
    if not isinstance(threat_id, str) or len(threat_id) > 64:
        return None
    user = get_user_model()._default_manager.filter(pk=user_id, is_active=True).first()
    if user is None:
        return None
    try:
        return str(access.get_threat_for_user(user, threat_id).pk)
    except (access.NotFound, access.AccessDenied):
        return None


def _session_user_id(session_key):
    """The id of the active user whose valid session this is, else None."""
    data = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    user = get_user_model()._default_manager.filter(pk=data.get(SESSION_KEY), is_active=True).first()
    if user is None or not constant_time_compare(data.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()):
        return None
    return user.pk


@lru_cache(maxsize=512)
def _customer_of_push(seq, text):
    """The customer slug of a live push; parsed once per event per process, not once per socket."""
    try:
        return (json.loads(text).get("threat") or {}).get("customer_slug")
    except (ValueError, AttributeError):
        return None


def _messages_after(after, limit, upto=None):
    return [event_message(e) for e in services.events_after(after, limit, upto)]


def _query_after(scope):
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("after")
    if values and values[0].isdigit():
        return int(values[0])
    return None


def _parse_client_message(text):
    if not text or len(text) > MAX_PARSED_MESSAGE_CHARS:  # a ping or resume is tiny: never parse more
        return {}
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: "[[[[...", nested past the parser's depth
        return {}
    return message if isinstance(message, dict) else {}
