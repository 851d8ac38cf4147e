"""A process's hub: one thread that learns of new changes and wakes the process's streams,
which then read what they may see from the log (streams.py).

Every process that writes changes or serves streams runs one. A commit wakes the hub of its
own process at once and the hubs of the others through the fan-out (fanout.py), which the hub
publishes after the commit (one wake-up for a burst of commits). A hub with streams also reads
the log every POLL_SECONDS (LOCAL_POLL_SECONDS on SQLite), so that a missed wake-up is only
late; on PostgreSQL it runs the change log's sequencer before it reads (api/changes.py:
changes get their positions once committed).

The hub also checks, every LIVENESS_SECONDS, that the session of every open stream is still
live (one query for all of them): a stream ends within a few seconds of its session being
revoked or expiring, or its user deactivated or deleted. And it prunes the log of what is
older than COFFER_CHANGES_RETENTION (`changes.expire`): first FIRST_PRUNE_SECONDS after it
starts, not at once (workers that live a few requests never all prune together), then every
PRUNE_SECONDS, by Coffer's clock (api/clock.py). `flask purge` prunes it too.
"""

import contextlib
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Iterator

from sqlalchemy.engine import Connection, Engine

from api import changes, clock, tokens
from api.feed.fanout import LOCAL, Fanout
from api.feed.streams import PAGE, Stream

TICK_SECONDS = 0.5  # how often a hub looks at its clock (liveness, polls, pruning)
POLL_SECONDS = 5.0  # a hub with streams reads the log this often even without wake-ups
LOCAL_POLL_SECONDS = 0.5  # on SQLite, the wake-up between the processes of the host
LIVENESS_SECONDS = 2.0  # streams end this soon after their session does (plus one tick)
FIRST_PRUNE_SECONDS = 30.0  # after the hub starts (plus up to PRUNE_JITTER)
PRUNE_SECONDS = 300.0  # then this often (plus up to PRUNE_JITTER)
PRUNE_JITTER = 10.0  # so that the workers of an instance do not prune in step
RECENT = 20000  # (id, collection) pairs a hub remembers, so that streams skip others' changes
# Streams of a process that read the log at once, each on a connection of the app's pool: a
# change that wakes hundreds of streams must leave the pool to requests (log-ins, account
# routes) and keep an instance's connections to the database at what the pool holds.
LOG_READERS = 2

_log = logging.getLogger("api.feed")


class Hub:
    """This process's view of the change log, and the streams it serves."""

    def __init__(self, feed, engine: Engine) -> None:
        self.feed = feed
        self.engine = engine
        self.pid = os.getpid()
        self.fanout = Fanout(feed.fanout, feed.channel, feed.redis, engine)
        self.head = 0
        self.recent: deque[tuple[int, str]] = deque(maxlen=RECENT)
        self.changed = threading.Condition()
        self.readers = threading.BoundedSemaphore(LOG_READERS)  # see LOG_READERS
        self.streams: set[Stream] = set()
        self.stopping = threading.Event()
        self.prune_at = 0.0
        self._woken = threading.Event()
        self._publish = False
        self._threads: list[threading.Thread] = []

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection of the app's pool for a stream to read the log on, once fewer than
        LOG_READERS streams of this process are reading."""
        with self.readers, self.engine.connect() as conn:
            yield conn

    def start(self) -> None:
        with self.engine.connect() as conn:
            self.head = changes.head(conn)
        self.prune_at = clock.timestamp() + FIRST_PRUNE_SECONDS + _jitter()
        runs = [self._run]
        listener = self.fanout.listener()
        if listener is not None:
            runs.append(lambda: listener(self.wake, self.stopping))
        for run in runs:
            thread = threading.Thread(target=run, name="coffer-feed", daemon=True)
            thread.start()
            self._threads.append(thread)
        _hubs.add(self)

    def wake(self, *, publish: bool = False) -> None:
        """Wake the hub's thread: to publish a wake-up to the other processes (`publish`,
        through Redis or PostgreSQL), or to catch this process's streams up. With neither to
        do (SQLite without Redis, whose other processes poll the log, and no stream here) a
        commit wakes nobody: waking a thread only to find nothing to do cost a write 10% of
        its CPU under load."""
        if publish and self.fanout.kind != LOCAL:
            self._publish = True
        elif not self.streams:
            return
        if not self._woken.is_set():
            self._woken.set()

    def stop(self, timeout: float = 3.0) -> None:
        """End every stream of this hub, and the hub; wait up to `timeout` seconds for its
        threads to let go of their connections."""
        self.stopping.set()
        for stream in list(self.streams):
            stream.ended.set()
        self._notify()
        self._woken.set()
        _hubs.discard(self)
        # The hub's own thread holds database connections of the app's pool: wait for it. A
        # listener closes its own connection within a second, on its way out.
        runner = self._threads[0] if self._threads else None
        if runner is not None and runner is not threading.current_thread():
            runner.join(timeout)

    # --- the hub's thread -----------------------------------------------------------------

    def _run(self) -> None:
        poll = LOCAL_POLL_SECONDS if self.fanout.kind == LOCAL else POLL_SECONDS
        due = {"poll": 0.0, "liveness": 0.0}
        while not self.stopping.is_set():
            woken = self._woken.wait(TICK_SECONDS)
            self._woken.clear()
            try:
                if self._publish:
                    self._publish = False
                    self.fanout.announce(self.pid)
                now = time.monotonic()
                if self.streams and (woken or now >= due["poll"]):
                    due["poll"] = now + poll
                    self._catch_up()
                if self.streams and now >= due["liveness"]:
                    due["liveness"] = now + LIVENESS_SECONDS
                    self._end_dead_sessions()
                if clock.timestamp() >= self.prune_at:
                    self.prune_at = clock.timestamp() + PRUNE_SECONDS + _jitter()
                    changes.expire(self.engine, self.feed.retention)
            except Exception:
                _log.exception("change feed: the hub failed; it retries")
                self.stopping.wait(1.0)

    def _catch_up(self) -> None:
        with self.engine.connect() as conn:
            changes.number(conn)
            newest = changes.head(conn)
            if newest - self.head > RECENT:  # nobody needs the ones between: skip them
                self.recent.clear()
                self.head = newest
                self._notify()
                return
            while True:
                found = changes.newer(conn, self.head, PAGE)
                if not found:
                    return
                self.recent.extend(found)
                self.head = found[-1][0]
                self._notify()
                if len(found) < PAGE:
                    return

    def _notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def _end_dead_sessions(self) -> None:
        # An anonymous stream (a public collection's) has no session to end with.
        streams = [stream for stream in self.streams if stream.caller is not None]
        if not streams:
            return
        sessions = sorted({stream.caller.session_id for stream in streams})
        with self.engine.connect() as conn:
            live = tokens.live_sessions(conn, sessions)
        ended = [stream for stream in streams if stream.caller.session_id not in live]
        for stream in ended:
            stream.ended.set()
        if ended:
            self._notify()


def _jitter() -> float:
    return random.uniform(0.0, PRUNE_JITTER)


_hubs: set[Hub] = set()


def shutdown() -> None:
    """End every stream of this process (SIGTERM): each response ends, and its client
    reconnects, to another instance."""
    for hub in list(_hubs):
        if hub.pid == os.getpid():
            hub.stop(timeout=0)  # in a signal handler: never wait there
