"""Sockets never stay open but deaf. With channels-redis' core layer, group membership expires
`group_expiry` seconds after the join; the consumer re-joins on every heartbeat, so a long-lived
socket keeps receiving. Real Redis (a private server), real layer, shortened expiry."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from socproject.asgi import application
from tests import factories

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

GROUP_EXPIRY = 2


@pytest.fixture
def core_layer(settings, redis_url):
    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": redis_url, "socket_timeout": None}], "group_expiry": GROUP_EXPIRY},
    }}


@pytest.fixture
def alice_cookie(client, alice):
    client.force_login(alice)
    return client.cookies["sessionid"].value


async def _streaming_socket(cookie):
    communicator = WebsocketCommunicator(application, "/ws", headers=[
        (b"origin", b"http://testserver"), (b"cookie", f"sessionid={cookie}".encode())])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await communicator.receive_json_from(5)  # hello
    await communicator.send_json_to({"type": "ping"})
    assert (await communicator.receive_json_from(5))["type"] == "pong"
    return communicator


async def _hold(communicator, seconds, heartbeat):
    for _ in range(seconds):
        await asyncio.sleep(1)  # time passing is the point: the membership ages
        if heartbeat:
            await communicator.send_json_to({"type": "ping"})
            assert (await communicator.receive_json_from(5))["type"] == "pong"


async def test_a_socket_with_heartbeats_keeps_receiving_past_the_group_expiry(core_layer, alice_cookie, customer):
    communicator = await _streaming_socket(alice_cookie)
    await _hold(communicator, GROUP_EXPIRY + 2, heartbeat=True)
    threat = await database_sync_to_async(factories.make_threat)(customer=customer)
    frames = [await communicator.receive_json_from(5) for _ in range(2)]
    assert [(f["type"], f["threat"]["id"]) for f in frames] == [
        ("threat.created", str(threat.pk)), ("threat.analyzed", str(threat.pk))]
    await communicator.disconnect()


async def test_without_heartbeats_the_expired_socket_misses_pushes_until_its_next_ping(core_layer, alice_cookie,
                                                                                        customer):
    # The control: the expiry really applies, and the heartbeat is what brings the socket back.
    communicator = await _streaming_socket(alice_cookie)
    await _hold(communicator, GROUP_EXPIRY + 2, heartbeat=False)
    threat = await database_sync_to_async(factories.make_threat)(customer=customer)
    assert await communicator.receive_nothing(1.0)
    await communicator.send_json_to({"type": "ping"})
    frames = [json.loads(await communicator.receive_from(5)) for _ in range(3)]
    assert [f["type"] for f in frames] == ["threat.created", "threat.analyzed", "pong"]
    assert frames[0]["threat"]["id"] == str(threat.pk)
    await communicator.disconnect()
