"""COFFER_MAX_STREAMS open streams per instance, all its worker processes together.

Each open stream holds one byte of a slots file in the instance folder under a POSIX record
lock (fcntl F_SETLK). The kernel answers at once whether another process holds a byte, and it
frees every byte of a process that dies, so a crashed worker never leaks slots. Record locks
never conflict within one process, so the process keeps its own set of the bytes it holds.
One descriptor per process: closing any descriptor of the file would drop all of its locks.
"""

import errno
import fcntl
import os
import random
import threading
from collections.abc import Callable


class Slots:
    """`size` slots shared by the processes that open the file at `path` (resolved lazily)."""

    def __init__(self, path: str | Callable[[], str], size: int) -> None:
        self._locate = path if callable(path) else lambda: path
        self.size = size
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._fd: int | None = None
        self._held: set[int] = set()

    def _file(self) -> int:
        if self._pid != os.getpid():  # a fork inherits no locks: start afresh
            self._fd = os.open(self._locate(), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid, self._held = os.getpid(), set()
        return self._fd

    def acquire(self) -> int | None:
        """A free slot, now held by this process; None when every slot is taken."""
        with self._lock:
            fd = self._file()
            start = random.randrange(self.size) if self.size else 0
            for step in range(self.size):
                slot = (start + step) % self.size
                if slot in self._held:
                    continue
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
                except OSError as exc:
                    if exc.errno in (errno.EACCES, errno.EAGAIN):
                        continue
                    raise
                self._held.add(slot)
                return slot
            return None

    def release(self, slot: int) -> None:
        with self._lock:
            if self._pid == os.getpid() and slot in self._held:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, slot)
                self._held.discard(slot)

    def held(self) -> int:
        """How many slots this process holds."""
        return len(self._held) if self._pid == os.getpid() else 0
