"""A real local HTTP receiver for webhook tests: a server thread on a free port."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Answers each POST with the next behaviour of its script (a status, or "hang" past the
    sender's timeout), then with `then`; records when and what it received."""

    def __init__(self, script, then=200):
        self.script, self.then, self.seen, self.release = list(script), then, [], threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.seen.append((time.monotonic(), self.headers, body))  # case-insensitive
                step = receiver.script.pop(0) if receiver.script else receiver.then
                if step == "hang":
                    receiver.release.wait(10)  # the sender gives up first (its timeout)
                    return
                self.send_response(step)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
