"""The instance's counters file (api/counters.py): a table of slots found by open addressing,
shared by the threads of every process that maps it."""

import hashlib
import time

import pytest
from helpers import count_in_processes
from limits import parse

from api import counters
from api.counters import PROBES, FileStorage
from api.ratelimit import Tier

THREADS_PER_PROCESS = 6
HITS_PER_THREAD = 6


def _same_home(key: str, salt: bytes) -> bytes:
    """Digests that all start at one slot, so that every key probes past the others."""
    return bytes(8) + hashlib.blake2b(key.encode(), digest_size=8, key=salt).digest()


def test_keys_that_share_a_slot_keep_their_own_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(counters, "_digest", _same_home)
    clock = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    storage = FileStorage(str(tmp_path / "counters"))
    for n in range(10):
        assert storage.incr(f"k{n}", 60, amount=n + 1) == n + 1
    assert [storage.get(f"k{n}") for n in range(10)] == list(range(1, 11))
    storage.clear("k3")  # its slot is free, but the keys past it are still found
    assert [storage.get(f"k{n}") for n in range(10)] == [1, 2, 3, 0, 5, 6, 7, 8, 9, 10]
    clock[0] += 30
    assert storage.incr("new", 60) == 1  # takes k3's slot
    assert storage.incr("k9", 60) == 11
    assert storage.get_expiry("k9") == 1_800_000_060.0
    clock[0] += 31  # every counter but "new" has expired: their slots are taken again
    assert storage.live() == 1
    assert [storage.incr(f"other{n}", 60) for n in range(5)] == [1] * 5
    assert storage.get("new") == 1 and storage.get("k9") == 0
    assert storage.live() == 6


def test_a_full_reach_of_slots_gives_up_the_counter_that_expires_first(tmp_path, monkeypatch):
    monkeypatch.setattr(counters, "_digest", _same_home)
    clock = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    storage = FileStorage(str(tmp_path / "counters"))
    for n in range(PROBES):
        clock[0] += 1
        storage.incr(f"k{n}", 60)
    assert storage.incr("one-too-many", 60) == 1
    assert storage.get("k0") == 0  # the first to expire
    assert all(storage.get(f"k{n}") == 1 for n in range(1, PROBES))
    assert storage.reset() == PROBES and storage.live() == 0


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_threads_of_processes_admit_the_limit_each_with_its_own_remaining(tmp_path):
    """12 threads in 2 processes, 36 hits for a limit of 20: exactly 20 admitted, each seeing
    the window as it left it (20 distinct Remaining values, falling in every thread)."""
    path = str(tmp_path / "counters")
    FileStorage(path).check()  # the parent maps the file before the fork
    threads = count_in_processes(
        lambda: Tier("file", FileStorage(path)),
        parse("20/day"),
        ("test", "api", "one-key"),
        2,
        THREADS_PER_PROCESS,
        HITS_PER_THREAD,
    )
    admitted = [remaining for hits in threads for allowed, remaining in hits if allowed]
    assert sorted(admitted) == list(range(20)), threads
    for hits in threads:
        seen = [remaining for _, remaining in hits]
        assert seen == sorted(seen, reverse=True), seen


def test_each_table_salts_its_digests_so_no_one_can_aim_keys_at_a_slot(tmp_path):
    """Keys whose slots an outsider could compute would let them crowd a victim's counter
    out of its reach (say, an account's log-in limit) with counters of their own: a table's
    digests are keyed with its own random salt, which every opener of the file shares."""
    one, again = FileStorage(str(tmp_path / "one")), FileStorage(str(tmp_path / "one"))
    other = FileStorage(str(tmp_path / "other"))
    one.incr("login/ada@example.com", 60)
    assert again.get("login/ada@example.com") == 1  # one salt for all who map the file
    salted = one.table().digest("login/ada@example.com")
    assert salted == again.table().digest("login/ada@example.com")
    assert salted != other.table().digest("login/ada@example.com")
    assert salted != hashlib.blake2b(b"login/ada@example.com", digest_size=16).digest()
    one.reset()
    assert again.table().digest("login/ada@example.com") == salted  # a reset keeps the salt
