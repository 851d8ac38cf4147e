"""Rate-limit counters shared by every worker process of one instance: a small SQLite file.

A `limits` storage for the sliding-window-counter strategy, used when there is no Redis (or
Redis is down). It keeps the arithmetic of limits' MemoryStorage: one counter per key and
window (`key/<window number>`), kept for two windows from its first hit, and a hit is allowed
while floor(previous × its remaining share of the window + current) + amount <= limit. What
MemoryStorage does in one process's dictionary, one SQL statement does here, in a file that
every worker opens: each hit is one atomic read-modify-write across processes.

Why SQLite: it is in the standard library, correct across processes and, unlike memory mapped
by the gunicorn master, it needs no master (tests, `flask run`). `count` takes the hit and reads
the window in one statement: about 30 µs of CPU on a busy development machine (47 with a
statement each), against 10 in memory and 300 or more with a local Redis. Counters need no
durability, so the file runs in WAL mode with synchronous=OFF. The only damage that setting
risks is a corrupt file after the host itself crashes: the file lives in a folder named after
the boot of the host, so a rebooted host starts afresh (`counters_path`).

Connections are opened lazily, one per process and thread: one opened before a fork must
never be used, nor closed, in the child (SQLite's locks belong to the process that took them).
"""

import fcntl
import hashlib
import os
import shutil
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable

from limits.storage import Storage
from limits.storage.base import SlidingWindowCounterSupport, TimestampedSlidingWindow

BUSY_TIMEOUT = 5.0  # seconds a hit waits for another process's statement (each takes µs)
SWEEP_INTERVAL = 5.0  # seconds between deletions of expired counters, per process
BOOT_ID = "/proc/sys/kernel/random/boot_id"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS counters (
        key TEXT PRIMARY KEY,
        hits INTEGER NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS counters_expires_at ON counters (expires_at)",
)
# A counter that has expired counts as absent, as in MemoryStorage: a hit starts it anew.
UPSERT = """
ON CONFLICT (key) DO UPDATE SET
    hits = CASE WHEN expires_at > :now THEN hits + excluded.hits ELSE excluded.hits END,
    expires_at = CASE WHEN expires_at > :now THEN expires_at ELSE excluded.expires_at END"""
INCR = "INSERT INTO counters VALUES (:key, :amount, :expires_at)" + UPSERT + " RETURNING hits"
HITS = "coalesce((SELECT hits FROM counters WHERE key = {} AND expires_at > :now), 0)"
# Inserts (or adds to) the current window's counter only when the weighted count leaves room;
# else there is no row to insert, nothing is written and nothing returned.
ACQUIRE = f"""
INSERT INTO counters
SELECT :current, :amount, :expires_at
WHERE CAST({HITS.format(":previous")} * :previous_ttl / :expiry + {HITS.format(":current")}
           AS INTEGER) + :amount <= :limit
{UPSERT}
"""
# ACQUIRE that also returns where the window stands once counted: the hit and the window
# stats in one statement (a refused hit, which returns nothing, reads WINDOW after).
COUNT = f"{ACQUIRE} RETURNING {HITS.format(':previous')}, hits"
ACQUIRE += " RETURNING hits"
WINDOW = f"SELECT {HITS.format(':previous')}, {HITS.format(':current')}"
GET = f"SELECT {HITS.format(':key')}"

# What processes forked from this one inherited: kept referenced, so never closed in a child.
_inherited: list["_Handle"] = []
# This process's id, kept by a fork hook: os.getpid() is a system call on every hit otherwise.
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
    return os.path.join(root, boot, f"{name}.sqlite3")


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


class _Handle:
    """One process's (and thread's) connection to the file, and the writers' lock file."""

    def __init__(self, path: str) -> None:
        # isolation_level=None: every statement is its own transaction, held while it runs.
        # Only its own thread uses a handle, but the finalizer closing it runs on whichever
        # thread drops it last; check_same_thread would make that close raise.
        self.connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        self.lock = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        weakref.finalize(self, _close, self.connection, self.lock, _pid)
        self.write("PRAGMA journal_mode = WAL")  # readers never wait for writers
        self.write("PRAGMA synchronous = OFF")
        for statement in SCHEMA:
            self.write(statement)

    def read(self, sql: str, parameters: dict | None = None) -> list[tuple]:
        # fetchall() steps the statement to its end, which ends its transaction.
        return self.connection.execute(sql, parameters or {}).fetchall()

    def write(self, sql: str, parameters: dict | None = None) -> list[tuple]:
        """Run a statement that writes, one writer at a time across processes. Writers queue
        on flock(2), and the kernel wakes the next one as soon as the lock is free; SQLite's
        own busy handler would poll, sleeping 1 ms, then 2, 5, 10… up to 100 ms at a time."""
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            return self.read(sql, parameters)
        finally:
            fcntl.flock(self.lock, fcntl.LOCK_UN)


def _close(connection: sqlite3.Connection, lock: int, owner: int) -> None:
    """Close a handle that is no longer used, unless it was inherited through fork()."""
    if _pid == owner:
        connection.close()
        os.close(lock)


def _window_ttls(now: float, expiry: int) -> tuple[float, float]:
    """Seconds left to the previous and current windows' counters (MemoryStorage's formula)."""
    previous = (1 - (((now - expiry) / expiry) % 1)) * expiry
    current = (1 - ((now / expiry) % 1)) * expiry + expiry
    return previous, current


class SQLiteStorage(Storage, SlidingWindowCounterSupport, TimestampedSlidingWindow):
    """Counters in one SQLite file shared by the processes that open it.

    `path`, or a function returning it, is resolved at the first count, so that an app may
    still move its instance folder after create_app().
    """

    STORAGE_SCHEME = None  # built by Coffer, never from a storage URI

    def __init__(self, path: str | Callable[[], str], **options) -> None:
        super().__init__(None, **options)
        self._locate = path if callable(path) else lambda: path
        self._path: str | None = None
        self._local = threading.local()
        self._next_sweep = 0.0

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    @property
    def path(self) -> str:
        if self._path is None:
            self._path = self._locate()
        return self._path

    def _handle(self) -> _Handle:
        local = self._local
        if getattr(local, "pid", None) != _pid:
            if getattr(local, "handle", None) is not None:
                _inherited.append(local.handle)
            local.handle = _Handle(self.path)
            local.pid = _pid
        return local.handle

    def _sweep(self, now: float) -> None:
        """Delete expired counters, every SWEEP_INTERVAL, inline: no thread to start."""
        ticks = time.monotonic()
        if ticks >= self._next_sweep:
            self._next_sweep = ticks + SWEEP_INTERVAL
            self._handle().write("DELETE FROM counters WHERE expires_at <= :now", {"now": now})

    def _acquiring(self, key: str, limit: int, expiry: int, amount: int, now: float) -> dict:
        """The parameters of ACQUIRE and COUNT."""
        self._sweep(now)
        previous, current = self.sliding_window_keys(key, expiry, now)
        return {
            "previous": previous,
            "current": current,
            "amount": amount,
            "limit": limit,
            "expiry": expiry,
            "previous_ttl": _window_ttls(now, expiry)[0],
            "expires_at": now + 2 * expiry,  # MemoryStorage's: twice the window, from now
            "now": now,
        }

    def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        if amount > limit:
            return False
        parameters = self._acquiring(key, limit, expiry, amount, time.time())
        return bool(self._handle().write(ACQUIRE, parameters))

    def count(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> tuple[bool, tuple[int, float, int, float]]:
        """acquire_sliding_window_entry, then get_sliding_window at the same instant: in one
        statement when the hit is allowed, in two when it is refused."""
        now = time.time()
        parameters = self._acquiring(key, limit, expiry, amount, now)
        rows = self._handle().write(COUNT, parameters) if amount <= limit else []
        allowed = bool(rows)
        if not allowed:
            rows = self._handle().read(WINDOW, parameters)
        (previous_hits, current_hits), *_ = rows
        previous_ttl, current_ttl = _window_ttls(now, expiry)
        window = (previous_hits, previous_ttl if previous_hits else 0.0, current_hits, current_ttl)
        return allowed, window

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        now = time.time()
        previous, current = self.sliding_window_keys(key, expiry, now)
        parameters = {"previous": previous, "current": current, "now": now}
        (previous_hits, current_hits), *_ = self._handle().read(WINDOW, parameters)
        previous_ttl, current_ttl = _window_ttls(now, expiry)
        return previous_hits, previous_ttl if previous_hits else 0.0, current_hits, current_ttl

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        for window_key in self.sliding_window_keys(key, expiry, time.time()):
            self.clear(window_key)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        self._sweep(now)
        parameters = {"key": key, "amount": amount, "expires_at": now + expiry, "now": now}
        return self._handle().write(INCR, parameters)[0][0]

    def get(self, key: str) -> int:
        return self._handle().read(GET, {"key": key, "now": time.time()})[0][0]

    def get_expiry(self, key: str) -> float:
        now = time.time()
        sql = "SELECT expires_at FROM counters WHERE key = :key AND expires_at > :now"
        rows = self._handle().read(sql, {"key": key, "now": now})
        return rows[0][0] if rows else now

    def clear(self, key: str) -> None:
        self._handle().write("DELETE FROM counters WHERE key = :key", {"key": key})

    def reset(self) -> int | None:
        return len(self._handle().write("DELETE FROM counters RETURNING 1"))

    def check(self) -> bool:
        try:
            self._handle().read("SELECT 1")
        except (sqlite3.Error, OSError):
            return False
        return True
