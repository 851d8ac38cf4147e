"""A count takes the hit and reads the window in one step: the same answers, remaining hits and
reset times as limits' own sliding-window strategy (`hit`, then `get_window_stats`)."""

import os
import random
import time
import uuid

import pytest
from helpers import count_in_processes
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from api.counters import FileStorage
from api.ratelimit import Tier, _SweptMemoryStorage

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")


@pytest.mark.parametrize("storage", ["file", "memory"])
def test_a_count_answers_as_limits_hit_and_window_stats(tmp_path, monkeypatch, storage):
    clock = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    limit = parse("10/minute")
    reference = SlidingWindowCounterRateLimiter(_SweptMemoryStorage())
    if storage == "file":
        tier = Tier("file", FileStorage(str(tmp_path / "counters")))
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
    storage = FileStorage(str(tmp_path / "counters"))
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


THREADS_PER_PROCESS = 6
HITS_PER_THREAD = 6


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs Redis (TEST_REDIS_URL)")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_concurrent_counts_in_redis_admit_the_limit_each_with_its_own_remaining():
    """12 threads in 2 processes hit one key, 36 hits for a limit of 20: exactly 20 are
    admitted, and each admitted hit sees the window as it left it (20 distinct Remaining
    values, falling in every thread), never another hit's."""
    limit_text, processes = "20/day", 2  # a day: no run crosses into the next window
    identifiers = ("coffer-test", "api", uuid.uuid4().hex)

    def redis_tier() -> Tier:
        storage = storage_from_string(TEST_REDIS_URL, socket_connect_timeout=5, socket_timeout=5)
        return Tier("Redis", storage)

    threads = count_in_processes(
        redis_tier, parse(limit_text), identifiers, processes, THREADS_PER_PROCESS, HITS_PER_THREAD
    )
    try:
        assert all(len(hits) == HITS_PER_THREAD for hits in threads)
        admitted = [remaining for hits in threads for allowed, remaining in hits if allowed]
        assert sorted(admitted) == list(range(20)), threads  # each Remaining once
        for hits in threads:
            seen = [remaining for _, remaining in hits]
            assert seen == sorted(seen, reverse=True), seen  # never rises within a thread
            refused = [remaining for allowed, remaining in hits if not allowed]
            assert refused == [0] * len(refused)
    finally:
        storage = storage_from_string(TEST_REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        SlidingWindowCounterRateLimiter(storage).clear(parse(limit_text), *identifiers)
