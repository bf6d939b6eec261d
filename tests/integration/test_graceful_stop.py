"""The web pods' server (socproject/serve.py, the chart's backend command) stops gracefully: on
SIGTERM it refuses new connections, closes WebSockets with 1001 "going away" (the dashboard
reconnects on anything but 4001) and lets a request in flight finish. A real process, a real socket."""

import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import websockets

from tests.integration.server import REPO_ROOT, free_port
from tests.integration.slow_asgi import SLOW_SECONDS

pytestmark = pytest.mark.integration


@pytest.fixture
def server():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "socproject.serve", "-b", "127.0.0.1", "-p", str(port),
         "tests.integration.slow_asgi:application"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_until_listening(port)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _wait_until_listening(port):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)  # waiting for a real process to bind its port
    raise AssertionError("the server did not start listening")


def test_sigterm_closes_websockets_with_going_away_and_finishes_requests_in_flight(server):
    process, port = server
    slow = {}

    def slow_request():
        started = time.monotonic()
        slow["body"] = urllib.request.urlopen(f"http://127.0.0.1:{port}/slow", timeout=10).read()
        slow["seconds"] = time.monotonic() - started

    async def scenario():
        websocket = await websockets.connect(f"ws://127.0.0.1:{port}/ws")
        request = threading.Thread(target=slow_request)
        request.start()
        await asyncio.sleep(0.5)  # the request is in flight
        process.send_signal(signal.SIGTERM)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(websocket.recv(), 5)
        await asyncio.sleep(0.3)
        with pytest.raises(urllib.error.URLError, match="refused"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
        await asyncio.to_thread(request.join, 10)
        return closed.value.rcvd.code

    assert asyncio.run(scenario()) == 1001
    assert slow["body"] == b"finished" and slow["seconds"] >= SLOW_SECONDS
    assert process.wait(timeout=10) == 0
