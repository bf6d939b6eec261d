"""Settings for the cross-pod rate-limit tests: production settings with small limits, so a test
can cross them in a few requests (tests/integration/test_security_daphne.py)."""

from socproject.settings import *

RATE_LIMITS = {**RATE_LIMITS, "user": (10, 60), "anonymous": (6, 60), "login_user": (5, 1800)}
