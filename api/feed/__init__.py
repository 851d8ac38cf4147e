"""The change feed: streams of the change log (api/changes.py) to clients, and the wake-ups
that carry a commit to every process of every instance.

- hub.py: each process that writes changes or serves streams runs one Hub, a thread that
  learns of new changes, wakes the process's streams, ends those whose session has ended and
  prunes the log past COFFER_CHANGES_RETENTION;
- fanout.py: the wake-ups between processes (Redis pub/sub, PostgreSQL LISTEN/NOTIFY, or
  none on SQLite, whose hubs poll the log); a missed one is caught up from the log;
- streams.py: one stream, served in the thread of its request.

`shutdown()` ends every stream of the process (gunicorn.conf.py calls it on SIGTERM), so that
clients reconnect to another instance.
"""

import os
import threading
from collections.abc import Iterator

from flask import Flask, current_app
from sqlalchemy.engine import Connection

from api import changes, database, query
from api.counters import counters_path
from api.database import database_url
from api.errors import Unavailable
from api.extensions import db
from api.feed.fanout import CHANNEL, channel_of, kind_of
from api.feed.hub import Hub, shutdown
from api.feed.streams import Event, Opened, Stream, serve
from api.stream_slots import Slots
from api.tokens import Caller

__all__ = [
    "CHANNEL",
    "Event",
    "Feed",
    "Hub",
    "Opened",
    "Stream",
    "TooManyStreams",
    "announce",
    "channel_of",
    "current",
    "init_app",
    "log",
    "shutdown",
]

RETRY_MS = 2000  # what `retry:` advises clients to wait before reconnecting
HEARTBEAT_SECONDS = 15.0  # a comment line this often keeps proxies from closing the stream
STREAMS_RETRY_AFTER = 5  # seconds, on 503 when every stream slot is taken


class TooManyStreams(Unavailable):
    """Every stream slot of the instance is taken (503 with Retry-After)."""

    def __init__(self) -> None:
        super().__init__(
            "This instance serves as many streams as it may (COFFER_MAX_STREAMS); retry later.",
            retry_after=STREAMS_RETRY_AFTER,
        )


class Feed:
    """The change feed of one app: its fan-out, its stream slots and this process's hub."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.retention = app.config["COFFER_CHANGES_RETENTION"]
        self.heartbeat = HEARTBEAT_SECONDS
        url = database_url(app)
        self.channel = channel_of(url)
        self.redis = app.extensions.get("coffer_redis")
        self.fanout = kind_of(url, self.redis)
        self.slots = Slots(
            lambda: counters_path(app.instance_path, url) + ".streams",
            app.config["COFFER_MAX_STREAMS"],
        )
        self._hub: Hub | None = None
        self._lock = threading.Lock()

    def hub(self) -> Hub:
        """This process's hub, started on first use (never in a process that forks later)."""
        hub = self._hub
        if hub is None or hub.pid != os.getpid():
            with self._lock:
                if self._hub is None or self._hub.pid != os.getpid():
                    self._hub = Hub(self, db.engine)
                    self._hub.start()
                hub = self._hub
        return hub

    def stop(self) -> None:
        """End this process's streams and stop its hub."""
        hub = self._hub
        if hub is not None and hub.pid == os.getpid():
            hub.stop()

    # --- writing: called by whoever writes records ----------------------------------------

    def log(self, conn: Connection, entries: list[dict]) -> None:
        changes.append(conn, entries)

    def log_one(self, entry: dict) -> None:
        changes.append_one(entry)

    def announce(self) -> None:
        """After a commit that logged changes: wake this process's streams, and, through
        Redis or PostgreSQL's NOTIFY, every other process's (by this process's hub, so a
        request never waits on them, and a burst of commits costs one wake-up). The first
        write starts the hub of a process that has none: it prunes the log (hub.py)."""
        self.hub().wake(publish=True)

    # --- streams --------------------------------------------------------------------------

    def open(
        self,
        caller: Caller | None,
        *,
        scope: str,
        collections: tuple[str, ...],
        listing: query.Listing,
        last_event_id: str | None,
    ) -> Iterator[Event]:
        """A stream's events; TooManyStreams when every slot of the instance is taken."""
        slot = self.slots.acquire()
        if slot is None:
            raise TooManyStreams()
        try:
            hub = self.hub()
            with hub.reading() as conn:  # as a stream reads: one of LOG_READERS
                changes.number(conn)  # what committed before the stream opened comes before it
                position = changes.head(conn)
                resumed = None
                if last_event_id is not None:
                    resumed = changes.resumable(conn, last_event_id, self.retention)
        except BaseException:
            self.slots.release(slot)
            raise
        start = position if resumed is None else resumed
        stream = Stream(caller, scope, collections, listing, start)
        database.let_go()  # the stream holds this thread: its kept connection serves others
        first = [Event(retry=RETRY_MS)]
        if last_event_id is not None and resumed is None:
            first.append(Event(id=str(position), event="reset", data={}))
        events = serve(hub, stream, first, self.heartbeat)
        return Opened(events, lambda: self.slots.release(slot))


def current() -> Feed:
    return current_app.extensions["coffer_feed"]


def log(conn: Connection, entries: list[dict]) -> None:
    """Log record changes in `conn`'s transaction, right before its commit."""
    current().log(conn, entries)


def log_one(entry: dict) -> None:
    """Log one record change on the DB-API cursor of the request's connection, inside
    `database.dbapi_transaction` (a write run on that cursor, record_creation.py)."""
    current().log_one(entry)


def announce() -> None:
    """After the commit of logged changes."""
    current().announce()


def init_app(app: Flask) -> None:
    app.extensions["coffer_feed"] = Feed(app)
