"""Rate-limit counters shared by every worker process of one instance: a memory-mapped file.

A `limits` storage for the sliding-window-counter strategy, used when there is no Redis (or
Redis is down). It keeps the arithmetic of limits' MemoryStorage: one counter per key and
window (`key/<window number>`), kept for two windows from its first hit, and a hit is allowed
while floor(previous × its remaining share of the window + current) + amount <= limit.

The counters are a fixed table of SLOTS slots in a file that every worker maps into its memory
(MAP_SHARED, so all see one table). A slot holds the key's 16-byte BLAKE2b digest, keyed with a
random salt that the file's first opener writes into its header (so that nobody can compute
which keys share a slot, and crowd a victim's counter out of it), the hits and the Unix time at
which the counter expires. A key's slot is found by open
addressing from its digest, at most PROBES slots on: an expired counter's slot is reused by the
next key that needs one (its digest stays, so the keys stored past it are still found), and a
never-used slot ends a search. Should every slot within reach hold a live counter (more than a
table's worth of keys within two windows), the one that expires first gives its slot up and its
count starts anew. Each count is one read-modify-write under an exclusive flock(2) on the file,
taken by one thread of a process at a time: a few µs of CPU, against 30-50 for the SQLite file
this replaced (an `INSERT … RETURNING`, bench/README.md) and 300 or more for a local Redis.

Counters need no durability: a worker that dies mid-count leaves at worst one slot half
written. The file lives in a folder named after the boot of the host (`counters_path`), so a
rebooted host starts afresh.

The file is opened and mapped lazily, once per process: a descriptor opened before a fork
shares its open file description, and with it its flock, with the parent, so a forked child
opens its own.
"""

import fcntl
import hashlib
import mmap
import os
import shutil
import struct
import threading
import time
from collections.abc import Callable

from limits.storage import Storage
from limits.storage.base import SlidingWindowCounterSupport, TimestampedSlidingWindow

SLOTS = 1 << 16  # counters of one instance: a 2 MiB file, of which the used pages take memory
PROBES = 32  # slots searched from a key's home slot
BOOT_ID = "/proc/sys/kernel/random/boot_id"
_DIGEST = 16
_VALUE = struct.Struct("<qd")  # hits, expires_at: after the digest
_SLOT = _DIGEST + _VALUE.size
_MASK = SLOTS - 1
_NEVER_USED = bytes(_DIGEST)
_HEADER = 32  # the salt, then padding: the slots follow
_SIZE = _HEADER + SLOTS * _SLOT

# What processes forked from this one inherited: kept referenced, so never closed in a child.
_inherited: list["_Table"] = []
# This process's id, kept by a fork hook: os.getpid() is a system call on every count otherwise.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def counters_path(instance_path: str, database: str) -> str:
    """The counters file of the instances that serve `database` from `instance_path`.

    In the instance folder, where the instances of a host keep their state, but apart: a 0700
    directory, since the keys name accounts and addresses. One file per database, so that two
    deployments run from one folder never share counters; one directory per boot of the host,
    and the directories of earlier boots are deleted.
    """
    root = os.path.join(instance_path, "rate-limits")
    os.makedirs(root, mode=0o700, exist_ok=True)
    boot = _boot_id()
    _forget_other_boots(root, boot)
    os.makedirs(os.path.join(root, boot), mode=0o700, exist_ok=True)
    name = hashlib.sha256(database.encode()).hexdigest()[:16]
    return os.path.join(root, boot, f"{name}.counters")


def _boot_id() -> str:
    try:
        with open(BOOT_ID) as handle:
            return handle.read().strip()
    except OSError:  # not Linux: the same folder for every boot
        return "any-boot"


def _forget_other_boots(root: str, boot: str) -> None:
    for entry in os.listdir(root):
        if entry != boot:
            shutil.rmtree(os.path.join(root, entry), ignore_errors=True)


def _digest(key: str, salt: bytes) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=_DIGEST, key=salt).digest()


class _Table:
    """One process's mapping of the file, and the lock its threads take before the flock."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(self.fd).st_size < _SIZE:
                os.ftruncate(self.fd, _SIZE)  # zeros: every slot never used
            self.map = mmap.mmap(self.fd, _SIZE, mmap.MAP_SHARED)
        except BaseException:
            os.close(self.fd)
            raise
        self.lock = threading.Lock()
        self.acquire()
        try:
            if self.map[:_DIGEST] == _NEVER_USED:  # a new file: its opener draws the salt
                self.map[:_DIGEST] = os.urandom(_DIGEST)
            self.salt = bytes(self.map[:_DIGEST])
        finally:
            self.release()

    def digest(self, key: str) -> bytes:
        return _digest(key, self.salt)

    def acquire(self) -> None:
        self.lock.acquire()
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            self.lock.release()
            raise

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.lock.release()

    def find(self, digest: bytes, now: float) -> tuple[int, int, float]:
        """The offset of the key's slot (or of the slot it would take), its live hits (0 when
        absent or expired) and its expiry (0.0 likewise). Called with the lock held."""
        table = self.map
        home = int.from_bytes(digest[:8], "little")
        reusable = -1
        soonest, soonest_expiry = -1, float("inf")
        for step in range(PROBES):
            offset = _HEADER + ((home + step) & _MASK) * _SLOT
            stored = table[offset : offset + _DIGEST]
            if stored == digest:
                hits, expires_at = _VALUE.unpack_from(table, offset + _DIGEST)
                if expires_at > now:
                    return offset, hits, expires_at
                return offset, 0, 0.0
            if stored == _NEVER_USED:
                return (offset if reusable < 0 else reusable), 0, 0.0
            if reusable < 0:
                expires_at = _VALUE.unpack_from(table, offset + _DIGEST)[1]
                if expires_at <= now:
                    reusable = offset
                elif expires_at < soonest_expiry:
                    soonest, soonest_expiry = offset, expires_at
        return (reusable if reusable >= 0 else soonest), 0, 0.0

    def store(self, offset: int, digest: bytes, hits: int, expires_at: float) -> None:
        self.map[offset : offset + _DIGEST] = digest
        _VALUE.pack_into(self.map, offset + _DIGEST, hits, expires_at)

    def slots(self):
        """(digest, hits, expires_at) of every slot ever used. Called with the lock held."""
        table = self.map
        for offset in range(_HEADER, _SIZE, _SLOT):
            digest = table[offset : offset + _DIGEST]
            if digest != _NEVER_USED:
                yield digest, *_VALUE.unpack_from(table, offset + _DIGEST)


def _window_ttls(now: float, expiry: int) -> tuple[float, float]:
    """Seconds left to the previous and current windows' counters (MemoryStorage's formula)."""
    previous = (1 - (((now - expiry) / expiry) % 1)) * expiry
    current = (1 - ((now / expiry) % 1)) * expiry + expiry
    return previous, current


class FileStorage(Storage, SlidingWindowCounterSupport, TimestampedSlidingWindow):
    """Counters in one memory-mapped file shared by the processes that open it.

    `path`, or a function returning it, is resolved at the first count, so that an app may
    still move its instance folder after create_app().
    """

    STORAGE_SCHEME = None  # built by Coffer, never from a storage URI

    def __init__(self, path: str | Callable[[], str], **options) -> None:
        super().__init__(None, **options)
        self._locate = path if callable(path) else lambda: path
        self._path: str | None = None
        self._table: _Table | None = None
        self._table_pid = 0
        self._opening = threading.Lock()

    @property
    def base_exceptions(self) -> tuple[type[Exception], ...]:
        return (OSError, ValueError)

    @property
    def path(self) -> str:
        if self._path is None:
            self._path = self._locate()
        return self._path

    def table(self) -> _Table:
        if self._table_pid != _pid:
            with self._opening:
                if self._table_pid != _pid:
                    if self._table is not None:
                        _inherited.append(self._table)
                    self._table = _Table(self.path)
                    self._table_pid = _pid
        return self._table

    def count(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> tuple[bool, tuple[int, float, int, float]]:
        """acquire_sliding_window_entry, then get_sliding_window at the same instant, in one
        step under the lock."""
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous_ttl, current_ttl = _window_ttls(now, expiry)
        table = self.table()
        previous_digest, current_digest = table.digest(previous_key), table.digest(current_key)
        table.acquire()
        try:
            previous = table.find(previous_digest, now)[1]
            offset, current, expires_at = table.find(current_digest, now)
            allowed = (
                amount <= limit
                and int(previous * previous_ttl / expiry + current) + amount <= limit
            )
            if allowed:
                current += amount
                # MemoryStorage's: a new counter lives twice the window, from its first hit.
                table.store(offset, current_digest, current, expires_at or now + 2 * expiry)
        finally:
            table.release()
        window = (previous, previous_ttl if previous else 0.0, current, current_ttl)
        return allowed, window

    def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        return self.count(key, limit, expiry, amount)[0]

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous_ttl, current_ttl = _window_ttls(now, expiry)
        table = self.table()
        previous, current = (
            self._hits(table.digest(previous_key), now),
            self._hits(table.digest(current_key), now),
        )
        return previous, previous_ttl if previous else 0.0, current, current_ttl

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        for window_key in self.sliding_window_keys(key, expiry, time.time()):
            self.clear(window_key)

    def _hits(self, digest: bytes, now: float) -> int:
        return self._read(digest, now)[1]

    def _read(self, digest: bytes, now: float) -> tuple[int, int, float]:
        table = self.table()
        table.acquire()
        try:
            return table.find(digest, now)
        finally:
            table.release()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now, table = time.time(), self.table()
        digest = table.digest(key)
        table.acquire()
        try:
            offset, hits, expires_at = table.find(digest, now)
            table.store(offset, digest, hits + amount, expires_at or now + expiry)
        finally:
            table.release()
        return hits + amount

    def get(self, key: str) -> int:
        return self._hits(self.table().digest(key), time.time())

    def get_expiry(self, key: str) -> float:
        now = time.time()
        _, hits, expires_at = self._read(self.table().digest(key), now)
        return expires_at if expires_at else now

    def clear(self, key: str) -> None:
        table = self.table()
        digest = table.digest(key)
        table.acquire()
        try:
            offset, hits, _ = table.find(digest, time.time())
            if hits:
                table.store(offset, digest, 0, 0.0)  # expired; its digest stays (see above)
        finally:
            table.release()

    def live(self) -> int:
        """How many counters have not expired."""
        now = time.time()
        table = self.table()
        table.acquire()
        try:
            return sum(expires_at > now for _, _, expires_at in table.slots())
        finally:
            table.release()

    def reset(self) -> int | None:
        now = time.time()
        table = self.table()
        table.acquire()
        try:
            live = sum(expires_at > now for _, _, expires_at in table.slots())
            table.map[_HEADER:] = bytes(_SIZE - _HEADER)  # the salt stays
        finally:
            table.release()
        return live

    def check(self) -> bool:
        try:
            self.table()
        except (OSError, ValueError):
            return False
        return True
