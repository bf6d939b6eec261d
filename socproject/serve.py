"""Daphne with a graceful stop: what the web pods run (Helm chart), same arguments as `daphne`.

On SIGTERM Daphne cancels every request and WebSocket at once. Here SIGTERM (and SIGINT) instead
stops accepting connections, closes each WebSocket with 1001 "going away" (the dashboard then
reconnects, through the Service, to a pod that is staying), and lets the HTTP requests in flight
finish for up to DRAIN_SECONDS before stopping as Daphne does.

    python -m socproject.serve -b 0.0.0.0 -p 8000 socproject.asgi:application
"""

import logging
import signal
import time

from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import reactor

logger = logging.getLogger("daphne.server")
# The pod's 30 s grace period, less the 5 s preStop sleep and a margin for the close frames.
DRAIN_SECONDS = 20.0
GOING_AWAY = 1001


class DrainingServer(Server):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.signal_handlers = False  # Twisted's would stop at once; drain() is installed instead
        self.ports = []

    def listen_success(self, port):
        self.ports.append(port)
        super().listen_success(port)

    def run(self):
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: reactor.callFromThread(self.drain))
        super().run()

    def drain(self):
        logger.info("Stopping: no new connections, WebSockets closed with %d, %d request(s) finishing",
                    GOING_AWAY, len(self._requests_in_flight()))
        for port in self.ports:
            port.stopListening()
        for protocol in list(self.connections):
            if isinstance(protocol, WebSocketProtocol):
                # autobahn's sendClose() refuses 1001 (it allows 1000 and 3000-4999) though RFC 6455
                # gives it to a server going down; the frame-level call sends it.
                protocol.sendCloseFrame(code=GOING_AWAY, isReply=False)
        self._stop_when_idle(time.monotonic() + DRAIN_SECONDS)

    def _requests_in_flight(self):
        return [p for p, details in self.connections.items()
                if not isinstance(p, WebSocketProtocol) and details.get("application_instance")
                and not details["application_instance"].done()]

    def _stop_when_idle(self, deadline):
        if self._requests_in_flight() and time.monotonic() < deadline:
            reactor.callLater(0.1, self._stop_when_idle, deadline)
        else:
            reactor.callLater(0.2, self.stop)  # lets the last responses and close frames go out


class DrainingCommandLine(CommandLineInterface):
    server_class = DrainingServer


if __name__ == "__main__":
    DrainingCommandLine.entrypoint()
