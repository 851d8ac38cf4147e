"""A count takes the hit and reads the window in one step: the same answers, remaining hits and
reset times as limits' own sliding-window strategy (`hit`, then `get_window_stats`)."""

import os
import random
import time
import uuid

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from api.counters import SQLiteStorage
from api.ratelimit import Tier, _SweptMemoryStorage

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")


@pytest.mark.parametrize("storage", ["file", "memory"])
def test_a_count_answers_as_limits_hit_and_window_stats(tmp_path, monkeypatch, storage):
    clock = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    limit = parse("10/minute")
    reference = SlidingWindowCounterRateLimiter(_SweptMemoryStorage())
    if storage == "file":
        tier = Tier("file", SQLiteStorage(str(tmp_path / "counters.sqlite3")))
    else:
        tier = Tier("memory", _SweptMemoryStorage())
    steps = random.Random(11)
    refused = 0
    for _ in range(400):  # minutes of hits on two keys: bursts that are refused, and pauses
        clock[0] += steps.choice([0.05, 0.05, 0.05, 0.5, 2.0, 7.0, 31.0])
        key = steps.choice(["a", "b"])
        window = tier.count(limit, ("coffer", "api", key))
        allowed = reference.hit(limit, "coffer", "api", key)
        stats = reference.get_window_stats(limit, "coffer", "api", key)
        assert (window.allowed, window.remaining, window.reset) == (allowed, *stats[::-1])
        refused += not allowed
    assert 20 < refused < 300  # both answers were compared many times


def test_a_count_bigger_than_the_limit_is_refused_without_counting(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "counters.sqlite3"))
    assert storage.count("k", 3, 60, amount=4)[0] is False
    assert storage.count("k", 3, 60, amount=3)[0] is True


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs Redis (TEST_REDIS_URL)")
def test_a_count_in_redis_shows_the_window_limits_reads_there():
    storage = storage_from_string(TEST_REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    tier, limit = Tier("Redis", storage), parse("5/minute")
    identifiers = ("coffer-test", "api", uuid.uuid4().hex)
    reference = SlidingWindowCounterRateLimiter(storage)
    try:
        for hit in range(7):
            window = tier.count(limit, identifiers)
            reset, remaining = reference.get_window_stats(limit, *identifiers)
            assert window.allowed == (hit < 5)
            assert window.remaining == remaining == max(0, 4 - hit)
            # limits' reset is the window key's TTL modulo the window: read in the millisecond
            # that sets the key (TTL exactly 120 s) it is "now", a millisecond later 59.999 s
            # ahead. Both sides do that arithmetic, a moment apart: equal modulo the window.
            apart = (window.reset - reset) % 60
            assert min(apart, 60 - apart) < 0.5, (window.reset, reset)
    finally:
        reference.clear(limit, *identifiers)
