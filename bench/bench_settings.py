"""Settings for benchmark servers: the project's own, with the per-client rate limits lifted.

A benchmark drives one session (or one key) at hundreds of requests a second; the real limits
(600/min per user) would answer 429 after the first second. The limiter still counts every
request in the cache, so its cost stays in the measurement.
"""

from socproject.settings import *
from socproject.settings import RATE_LIMITS

UNLIMITED = (10**9, 60)
RATE_LIMITS = {**RATE_LIMITS, "user": UNLIMITED, "key": UNLIMITED, "anonymous": UNLIMITED}
