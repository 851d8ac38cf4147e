"""The time, as Coffer reads it: the one place that asks the system clock, so that tests move
time forward (tests/conftest.py `frozen_clock`) instead of sleeping until it has passed.

Callers look these up on the module (`clock.now()`), never import them by name.
"""

import time
from datetime import UTC, datetime


def now() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


def timestamp() -> float:
    """Now, in seconds since the epoch."""
    return time.time()
