"""Settings for the multi-pod delivery tests (test_cluster.py): production settings with the
per-user and per-key API limits and the per-user socket cap out of the way. Those tests poll the API
while a worker recovers from a Redis or pod fault, and open up to 100 sockets, all with one user's
session; the limits themselves are tested in test_ratelimit.py and, across real pods, in
test_security_daphne.py, the socket cap in test_security_ws.py."""

from socproject.settings import *

RATE_LIMITS = {**RATE_LIMITS, "user": (100_000, 60), "key": (100_000, 60)}
WS_MAX_SOCKETS_PER_USER = 1000
