"""story.flagged on the WebSocket (docs/stories.md): delivered like every stored event, only to the
sockets that may see the story's customer, and replayed on resume."""

import pytest
from channels.db import database_sync_to_async

from tests import factories
from tests.test_queue_warnings import TIMEOUT, _session, _streaming
from tests.test_stories import EXECUTION, INITIAL, analysed


def _progression(customer):
    analysed(customer, 0, [INITIAL])
    return analysed(customer, 10, [EXECUTION])


async def _types(socket, count):
    return [await socket.receive_json_from(TIMEOUT) for _ in range(count)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_flag_reaches_only_the_sockets_that_may_see_its_customer():
    acme, globex = await database_sync_to_async(
        lambda: (factories.make_customer(name="Acme"), factories.make_customer(name="Globex")))()
    cookies = await database_sync_to_async(lambda: {"acme": _session("acme", [acme]),
                                                    "globex": _session("globex", [globex])})()
    sockets = {name: await _streaming(cookie) for name, cookie in cookies.items()}
    flagging = await database_sync_to_async(_progression)(acme)
    # Acme's analyst: created, analyzed (twice each), then the flag on the second alert.
    got = await _types(sockets["acme"], 5)
    flags = [m for m in got if m["type"] == "story.flagged"]
    assert len(flags) == 1 and flags[0]["threat"]["id"] == str(flagging.pk)
    assert flags[0]["story"]["entity"] == "db-7" and [t["id"] for t in flags[0]["story"]["tactics"]] == [INITIAL, EXECUTION]
    assert await sockets["globex"].receive_nothing(0.2)
    for socket in sockets.values():
        await socket.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_flag_is_replayed_on_resume():
    acme = await database_sync_to_async(lambda: factories.make_customer(name="Acme"))()
    cookie = await database_sync_to_async(lambda: _session("acme", [acme]))()
    await database_sync_to_async(_progression)(acme)
    socket = await _streaming(cookie)
    await socket.send_json_to({"type": "resume", "after": 0})
    replayed = []
    while not replayed or replayed[-1]["type"] != "resumed":
        replayed.append(await socket.receive_json_from(TIMEOUT))
    assert [m["type"] for m in replayed].count("story.flagged") == 1
    await socket.disconnect()
