"""The /ws consumer. Protocol: docs/websocket.md.

Delivery: the consumer tracks the last seq it sent. A live event that skips ahead (another pod's
event arrived first, or a push was lost) makes it read the missing events from the database and
send them in order; an event it already sent is dropped. So a connected client sees every event
once, in order, whatever the channel layer does.

Security (docs/security.md): the Origin was checked before this consumer runs (middleware.py
`WebSocketOriginValidator`); a socket without a valid session of an active user with the view
permission is refused before accept, and so is one over WS_MAX_SOCKETS_PER_USER of that user in
this process (closed with 4029). Each socket joins `user.<id>` so that logout, a password change,
deactivation or a change of role or scope closes it (`force.close`); on its own schedule (every
WS_SESSION_RECHECK_SECONDS) and on every client message it re-reads its session, user, role and
scope, so a session deleted without any push (expiry, `clearsessions`, a rotated secret key) still
ends it. A socket scoped to customers is sent only their events, live and replayed. Client messages
are allow-listed (`ping`, `resume`, `watch`), bounded in size and rate, and never forwarded. `watch`
joins the socket to one threat's `progress.<id>` group (agent progress) after the same access
check as the threat's page.

Reliability: joining the groups is a SUBSCRIBE on the channel layer's Redis connection; right after
a Redis restart the first one can meet the dead connection (redis-py then reconnects). The consumer
tries once more and, if the layer still fails, closes with 4013 ("try again"), which the dashboard
retries: never an HTTP 500.
"""

import asyncio
import json
import logging
import time
from collections import Counter
from functools import lru_cache
from importlib import import_module
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.utils.crypto import constant_time_compare
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import access, audit, events, metrics, ratelimit, services
from .models import Customer
from .serializers import event_message

# A new connection waits this long before streaming, so that a reconnecting client's `resume`
# (sent as soon as the socket opens) is applied before any live event: exactly once and in order.
RESUME_GRACE_SECONDS = 0.5
# Close codes (an application may only send 1000 or 3000-4999; Daphne turns others into 1011):
# 4001 the session ended (logout, expiry, password, deactivation, role or scope change: log in
# again); 4003 binary message; 4008 too many messages; 4009 message too big; 4013 the channel layer
# is unavailable, try again; 4029 too many sockets of this user (the 1003/1008/1009/1013 meanings +
# 3000, and HTTP's 429 + 4000).
CLOSE_SESSION_ENDED = 4001
CLOSE_UNSUPPORTED = 4003
CLOSE_POLICY = 4008
CLOSE_TOO_BIG = 4009
CLOSE_TRY_AGAIN = 4013
CLOSE_TOO_MANY_SOCKETS = 4029
RATE_WINDOW_SECONDS = 10
MAX_PARSED_MESSAGE_CHARS = 4096
# What a channel layer raises when its Redis connection is dead or refused (OSError: the socket).
LAYER_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
log = logging.getLogger(__name__)
# Accepted sockets per user id in this process (WS_MAX_SOCKETS_PER_USER).
open_sockets = Counter()


class ThreatConsumer(AsyncWebsocketConsumer):
    async def __call__(self, scope, receive, send):
        # Channels subscribes the socket's own channel before `connect` runs; a dead layer there
        # would end the handshake with an HTTP 500. Once more (redis-py has reconnected by then),
        # unless `connect` already took the handshake message; else 4013.
        self.accepted = self.connect_started = False
        for attempt in (1, 2):
            try:
                return await super().__call__(scope, receive, send)
            except LAYER_ERRORS as exc:
                if self.accepted:
                    raise
                log.warning("channel layer unavailable for a new socket (attempt %d): %s", attempt, exc)
                if self.connect_started:
                    break
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN})

    async def connect(self):
        self.connect_started = True
        user = self.scope.get("user")
        self.closed, self.user_id, self.watching, self.rechecker = True, None, None, None
        reason = await _refusal(user)
        if reason:
            await self._refuse(reason)
            return
        if open_sockets[user.pk] >= settings.WS_MAX_SOCKETS_PER_USER:
            await self._refuse("too many sockets", CLOSE_TOO_MANY_SOCKETS)
            return
        self.user_id = user.pk
        open_sockets[user.pk] += 1  # counted before the first await below, so parallel handshakes see it
        self.customer_slugs = await _customer_slugs(user)
        self.window_start, self.window_count = time.monotonic(), 0
        events.bind_loop(asyncio.get_running_loop())
        if not await self._join_groups():
            await self._refuse("channel layer unavailable", CLOSE_TRY_AGAIN)
            return
        await self.accept()
        metrics.socket_opened(self)
        self.hello_seq = self.last_seq = await database_sync_to_async(services.latest_seq)()
        self.streaming = self.closed = False
        self.rechecker = asyncio.ensure_future(self._recheck_session_periodically())
        await self._send({"type": "hello", "seq": self.last_seq})
        after = _query_after(self.scope)
        if after is not None:
            await self._resume(after)
        else:
            asyncio.get_running_loop().call_later(RESUME_GRACE_SECONDS, self._request_stream_start)

    async def accept(self, subprotocol=None, headers=None):
        self.accepted = True
        await super().accept(subprotocol, headers)

    async def disconnect(self, code):
        self.closed = True
        metrics.socket_closed(self)
        if self.rechecker is not None:
            self.rechecker.cancel()
        if self.user_id is None:  # refused before accept: never joined anything
            return
        open_sockets[self.user_id] -= 1
        if open_sockets[self.user_id] <= 0:
            del open_sockets[self.user_id]
        try:
            await self._leave_groups()
        except LAYER_ERRORS as exc:  # the layer forgets a gone channel's subscriptions on its own
            log.warning("leaving the socket groups failed: %s", exc)

    async def _refuse(self, reason, code=None):
        """Refused before it streams: a plain refusal answers the handshake with 403; a `code` (too
        many sockets, layer unavailable) needs an accepted socket to reach the client."""
        metrics.WS_CONNECTS.labels("refused").inc()
        audit.record("ws.refused", self.scope.get("user"), outcome="refused", ip=ratelimit.scope_ip(self.scope),
                     reason=reason)
        if code is not None:
            await self.accept()
        await self.close(code=code)

    async def _join_groups(self):
        """Join the broadcast and user groups; once more after a layer error (redis-py reconnects a
        dead connection when a command fails on it). False when the layer still fails."""
        for attempt in (1, 2):
            try:
                await self.channel_layer.group_add(events.GROUP, self.channel_name)
                await self.channel_layer.group_add(access.user_group(self.user_id), self.channel_name)
                return True
            except LAYER_ERRORS as exc:
                log.warning("joining the socket groups failed (attempt %d): %s", attempt, exc)
        return False

    async def _leave_groups(self):
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
        if not await self._session_valid():
            await self._end_session("session no longer valid")
            return
        message = _parse_client_message(text_data)
        kind = message.get("type")
        handler = CLIENT_MESSAGES.get(kind) if isinstance(kind, str) else None
        if handler is not None:
            await handler(self, message)
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

    async def threat_sla_warning(self, message):
        await self._on_event(message)

    async def story_flagged(self, message):  # an entity's story reached a later kill-chain stage (docs/stories.md)
        await self._on_event(message)

    async def suppression_created(self, message):
        await self._on_suppression(message)

    async def suppression_revoked(self, message):
        await self._on_suppression(message)

    async def suppression_expired(self, message):
        await self._on_suppression(message)

    async def _on_suppression(self, message):
        """A suppression change (ephemeral, no seq; suppressions/notify.py): only to sockets that see its customer."""
        if not self.closed and self.streaming and (
                self.customer_slugs is None or message.get("customer_slug") in self.customer_slugs):
            await self.send(text_data=message["text"])

    async def threat_progress(self, message):
        """Agent progress of the watched threat (ephemeral, no seq; events.push_progress): one frame per update."""
        for text in message["texts"]:
            if not self.closed:
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
        if self.closed:
            return
        self.closed = True  # from now on nothing is sent: no event may follow the end of a session
        audit.record("ws.closed", self.scope.get("user"), outcome="closed", ip=ratelimit.scope_ip(self.scope),
                     reason=reason)
        await self.close(code=CLOSE_SESSION_ENDED)

    async def _recheck_session_periodically(self):
        """The server's own schedule: a socket that never sends anything still ends with its session."""
        while not self.closed:
            await asyncio.sleep(settings.WS_SESSION_RECHECK_SECONDS)
            try:
                valid = self.closed or await self._session_valid()
            except Exception:  # the database is away: ask again next time (a message re-checks too)
                log.warning("re-reading a socket's session failed", exc_info=True)
                continue
            if not valid:
                await self._end_session("session no longer valid")

    async def _session_valid(self):
        """Re-read the session and its user: expired or deleted, logged out, password changed,
        secret key rotated, user deactivated, role lost or scope changed -> False."""
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        if not key:
            return False
        state = await database_sync_to_async(_session_state)(key)
        return state == (self.user_id, self.customer_slugs)

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
        if self.closed or not self.streaming or seq <= self.last_seq:
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
        if not self.closed:
            await self.send(text_data=json.dumps(message))


# The client messages a socket acts on (docs/websocket.md); the tenant matrix
# (tests/test_tenant_matrix.py) has a row for each.
CLIENT_MESSAGES = {
    "ping": lambda consumer, message: consumer._heartbeat(),
    "resume": lambda consumer, message: consumer._resume(message.get("after")),
    "watch": lambda consumer, message: consumer._watch(message.get("threat")),
}


@database_sync_to_async
def _refusal(user):
    """Why a handshake is refused (None: accept). AuthMiddlewareStack already turned a missing,
    expired or tampered session, a changed password or an inactive user into AnonymousUser."""
    if user is None or not user.is_authenticated:
        return "not logged in"
    if not access.has_permission(user, access.VIEW_PERMISSION):
        return "no view permission"
    return None


def _customer_slugs_of(user):
    scope = access.customer_scope(user)
    if scope is access.ALL_CUSTOMERS:
        return None
    return frozenset(Customer.objects.filter(pk__in=scope).values_list("slug", flat=True))


_customer_slugs = database_sync_to_async(_customer_slugs_of)


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


def _session_state(session_key):
    """(user id, customer slugs or None) of the active user with the view permission whose valid
    session this is, else None: what a socket was opened with, read again."""
    data = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    user = get_user_model()._default_manager.filter(pk=data.get(SESSION_KEY), is_active=True).first()
    if user is None or not constant_time_compare(data.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()):
        return None
    if not access.has_permission(user, access.VIEW_PERMISSION):
        return None
    return user.pk, _customer_slugs_of(user)


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
