"""A tiny ASGI app for test_graceful_stop.py: an HTTP request that takes SLOW_SECONDS, and a
WebSocket that stays open until the server or the client closes it."""

import asyncio

SLOW_SECONDS = 2


async def application(scope, receive, send):
    if scope["type"] == "http":
        await receive()
        await asyncio.sleep(SLOW_SECONDS)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"finished"})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
