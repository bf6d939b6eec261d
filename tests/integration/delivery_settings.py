"""Settings for the multi-pod delivery tests (test_cluster.py): production settings with the
per-user and per-key API limits out of the way. Those tests poll the API while a worker recovers
from a Redis or pod fault, and every test of the module shares one user's budget; the limits
themselves are tested in test_ratelimit.py and, across real pods, in test_security_daphne.py."""

from socproject.settings import *

RATE_LIMITS = {**RATE_LIMITS, "user": (100_000, 60), "key": (100_000, 60)}
