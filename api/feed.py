"""The change feed: streams of the change log (api/changes.py) to clients, and the wake-ups that
carry a commit to every process of every instance.

Each process that serves streams runs one Hub: a thread that learns of new changes and wakes
the process's streams, which then read what they may see from the log. A commit wakes the hub
of its own process at once and the hubs of the others through the fan-out, which that hub
publishes after the commit (one wake-up for a burst of commits): Redis pub/sub when REDIS_URL
is set, else PostgreSQL LISTEN/NOTIFY, else, on SQLite, whose instances are one host's
processes, a poll of the log every half second. A wake-up carries nothing: a hub that missed
one (Redis down, a dropped connection) catches up from the log at its next poll
(POLL_SECONDS), so nothing is ever lost, only late. On PostgreSQL a hub with streams runs the
change log's sequencer before it reads (api/changes.py: changes get their positions once
committed).

The hub also checks, every LIVENESS_SECONDS, that the session of every open stream is still
live (one query for all of them): a stream ends within a few seconds of its session being
revoked or its user deactivated or deleted. `shutdown()` ends every stream of the process
(gunicorn.conf.py calls it on SIGTERM), so that clients reconnect to another instance.
"""

import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.engine import Connection, Engine, make_url

from api import changes, database, query, tokens, visibility
from api.counters import counters_path
from api.database import database_url
from api.errors import Unavailable
from api.extensions import db
from api.stream_slots import Slots
from api.tokens import Caller

CHANNEL = "coffer_changes"  # the Redis and PostgreSQL NOTIFY channels start with this
RETRY_MS = 2000  # what `retry:` advises clients to wait before reconnecting
HEARTBEAT_SECONDS = 15.0  # a comment line this often keeps proxies from closing the stream
TICK_SECONDS = 0.5  # how often a hub looks at its clock (liveness, polls)
POLL_SECONDS = 5.0  # a hub reads the log this often even without wake-ups (missed ones)
LOCAL_POLL_SECONDS = 0.5  # on SQLite, the wake-up between the processes of the host
LIVENESS_SECONDS = 2.0  # streams end this soon after their session does (plus one tick)
PRUNE_SECONDS = 300.0  # a hub with streams prunes the log this often
PAGE = 500  # changes read per query
RECENT = 20000  # (id, collection) pairs a hub remembers, so that streams skip others' changes
MAX_BACKOFF = 8.0  # seconds between reconnections of a failed listener
STREAMS_RETRY_AFTER = 5  # seconds, on 503 when every stream slot is taken

_log = logging.getLogger(__name__)


class TooManyStreams(Unavailable):
    """Every stream slot of the instance is taken (503 with Retry-After)."""

    def __init__(self) -> None:
        super().__init__(
            "This instance serves as many streams as it may (COFFER_MAX_STREAMS); retry later.",
            retry_after=STREAMS_RETRY_AFTER,
        )


@dataclass(frozen=True, slots=True)
class Event:
    """One block of a stream: an event (`event` and `data`), or only a field (`id`, `retry`)
    or a comment."""

    id: str | None = None
    event: str | None = None
    data: dict | None = None
    retry: int | None = None
    comment: str | None = None


@dataclass(eq=False)
class Stream:
    """One open stream: what its caller watches, and how far it has read."""

    caller: Caller | None  # None: anonymous, on a public collection
    scope: str
    collections: tuple[str, ...]
    listing: query.Listing
    position: int
    ended: threading.Event = field(default_factory=threading.Event)


def channel_of(url: str) -> str:
    """The wake-up channel of a database: deployments that share a Redis (or a PostgreSQL
    server) never wake each other. By the database's name and options (a schema), not its
    host, which instances may spell differently."""
    parsed = make_url(url)
    key = f"{parsed.get_backend_name()}/{parsed.database}?{sorted(parsed.query.items())}"
    return f"{CHANNEL}_{hashlib.sha256(key.encode()).hexdigest()[:16]}"


class Feed:
    """The change feed of one app: its fan-out, its stream slots and this process's hub."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.retention = app.config["COFFER_CHANGES_RETENTION"]
        url = database_url(app)
        self.channel = channel_of(url)
        self.redis = app.extensions.get("coffer_redis")
        if self.redis is not None:
            self.fanout = "redis"
        elif url.startswith("postgresql"):
            self.fanout = "postgres"
        else:
            self.fanout = "local"
        self.slots = Slots(
            lambda: counters_path(app.instance_path, url) + ".streams",
            app.config["COFFER_MAX_STREAMS"],
        )
        self._hub: Hub | None = None
        self._lock = threading.Lock()

    def hub(self) -> "Hub":
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

    def announce(self) -> None:
        """After a commit that logged changes: wake this process's streams, and, through
        Redis or PostgreSQL's NOTIFY, every other process's (by this process's hub, so a
        request never waits on them, and a burst of commits costs one wake-up)."""
        hub = self._hub
        if hub is not None and hub.pid == os.getpid():
            hub.wake(publish=True)
        elif self.fanout in ("redis", "postgres"):
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
            with hub.engine.connect() as conn:
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
        return Opened(hub.serve(stream, first), lambda: self.slots.release(slot))


class Hub:
    """This process's view of the change log, and the streams it serves."""

    def __init__(self, feed: Feed, engine: Engine) -> None:
        self.feed = feed
        self.engine = engine
        self.pid = os.getpid()
        self.head = 0
        self.recent: deque[tuple[int, str]] = deque(maxlen=RECENT)
        self.changed = threading.Condition()
        self.streams: set[Stream] = set()
        self.stopping = threading.Event()
        self._woken = threading.Event()
        self._publish = False
        self._publish_failures = 0
        self._publish_retry_at = 0.0
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        with self.engine.connect() as conn:
            self.head = changes.head(conn)
        targets = [self._run]
        if self.feed.fanout == "redis":
            targets.append(self._listen_redis)
        elif self.feed.fanout == "postgres":
            targets.append(self._listen_postgres)
        for target in targets:
            thread = threading.Thread(target=target, name="coffer-feed", daemon=True)
            thread.start()
            self._threads.append(thread)
        _hubs.add(self)

    def wake(self, *, publish: bool = False) -> None:
        if publish:
            self._publish = True
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
        poll = LOCAL_POLL_SECONDS if self.feed.fanout == "local" else POLL_SECONDS
        due = {"poll": 0.0, "liveness": 0.0, "prune": time.monotonic() + PRUNE_SECONDS}
        while not self.stopping.is_set():
            woken = self._woken.wait(TICK_SECONDS)
            self._woken.clear()
            try:
                if self._publish:
                    self._publish = False
                    self._announce_to_others()
                now = time.monotonic()
                if self.streams and (woken or now >= due["poll"]):
                    due["poll"] = now + poll
                    self._catch_up()
                if self.streams and now >= due["liveness"]:
                    due["liveness"] = now + LIVENESS_SECONDS
                    self._end_dead_sessions()
                if self.streams and now >= due["prune"]:
                    due["prune"] = now + PRUNE_SECONDS
                    with self.engine.connect() as conn:
                        changes.number(conn)
                        changes.prune(conn, self.feed.retention)
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

    def _announce_to_others(self) -> None:
        """Publish a wake-up; while Redis or PostgreSQL fails, only now and then (1 s,
        doubling up to MAX_BACKOFF), so that this hub's own streams are not held up by its
        timeouts: the other processes poll the log meanwhile."""
        if self.feed.fanout == "local" or time.monotonic() < self._publish_retry_at:
            return
        try:
            if self.feed.fanout == "redis":
                self.feed.redis.publish(self.feed.channel, str(self.pid))
            else:
                self._notify_postgres()
            self._publish_failures = 0
        except Exception as exc:  # the log has it: the others poll it
            self._publish_failures += 1
            backoff = min(2.0 ** (self._publish_failures - 1), MAX_BACKOFF)
            self._publish_retry_at = time.monotonic() + backoff
            _log.warning("change feed: publishing failed: %s", type(exc).__name__)

    def _notify_postgres(self) -> None:
        """NOTIFY in a transaction of its own, after the commits it announces, and not made
        durable: a NOTIFY serialises the commits that send one until they are flushed (its
        queue lock), and a lost wake-up is caught up by the next poll anyway."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SET LOCAL synchronous_commit TO off"))
            conn.execute(sa.select(sa.func.pg_notify(self.feed.channel, "")))
            conn.commit()

    def _listen_redis(self) -> None:
        self._listen(self._redis_wakeups)

    def _listen_postgres(self) -> None:
        self._listen(self._postgres_wakeups)

    def _listen(self, wakeups) -> None:
        """Wake the hub on every notification; reconnect after a failure, and catch up."""
        failures = 0
        while not self.stopping.is_set():
            try:
                for _ in wakeups():
                    failures = 0
                    self.wake()
            except Exception as exc:
                failures += 1
                if failures == 1:
                    _log.warning("change feed: listener failed (%s); retrying", type(exc).__name__)
                self.stopping.wait(min(0.25 * 2**failures, MAX_BACKOFF))
            self.wake()  # whatever was missed while not listening

    def _redis_wakeups(self) -> Iterator[None]:
        pubsub = self.feed.redis.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.feed.channel)
            yield  # subscribed: catch up on what came before
            while not self.stopping.is_set():
                if pubsub.get_message(timeout=1.0) is not None:
                    yield
        finally:
            pubsub.close()

    def _postgres_wakeups(self) -> Iterator[None]:
        url = self.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"LISTEN {self.feed.channel}")
            yield
            while not self.stopping.is_set():
                for _ in conn.notifies(timeout=1.0, stop_after=1):
                    yield
                conn.execute("SELECT 1")  # notices a dead server

    # --- serving a stream (in the thread of its request) ----------------------------------

    def serve(self, stream: Stream, first: list[Event]) -> Iterator[Event]:
        self.streams.add(stream)
        try:
            yield from first
            yield from self._follow(stream)
        finally:
            self.streams.discard(stream)

    def _follow(self, stream: Stream) -> Iterator[Event]:
        statement = _statement(stream, self.engine.dialect.name)
        heartbeat = time.monotonic() + HEARTBEAT_SECONDS
        while not (stream.ended.is_set() or self.stopping.is_set()):
            through = self.head
            if through > stream.position:
                if self._touched(stream):
                    try:
                        yield from self._read(stream, statement, through)
                    except sa.exc.SQLAlchemyError as exc:  # the database is down or busy:
                        _log.warning("change feed: a stream's read failed: %s", type(exc).__name__)
                        stream.ended.wait(1.0)  # retry from the position, nothing lost
                        continue
                stream.position = through
                continue
            with self.changed:
                # Until a change, an end (both notify) or the heartbeat: a waiting stream
                # wakes no more than that, so hundreds of them leave the GIL to requests.
                if self.head <= stream.position and not stream.ended.is_set():
                    self.changed.wait(max(heartbeat - time.monotonic(), 0.0))
            if time.monotonic() >= heartbeat:
                heartbeat = time.monotonic() + HEARTBEAT_SECONDS
                yield Event(comment="keep-alive")

    def _touched(self, stream: Stream) -> bool:
        """Whether a change after the stream's position may be in its collections: the
        newest changes the hub remembers, read back to the position."""
        recent = self.recent
        try:
            if not recent or recent[0][0] > stream.position + 1:
                return True  # older than what the hub remembers: ask the log
            for change_id, collection in reversed(recent):
                if change_id <= stream.position:
                    return False
                if collection in stream.collections:
                    return True
        except (RuntimeError, IndexError):  # the hub was adding to it meanwhile
            return True
        return False  # it remembers every change since the position: none was the stream's

    def _read(self, stream: Stream, statement: sa.Select, through: int) -> Iterator[Event]:
        while True:
            params = {"after": stream.position, "through": through, "limit": PAGE}
            with self.engine.connect() as conn:
                rows = conn.execute(statement, params).mappings().all()
            for row in rows:
                if stream.ended.is_set():
                    return
                stream.position = row["change_id"]
                if row["visible"] or _was_a_reader(stream, row):
                    yield _event(row)
            if len(rows) < PAGE:
                return


class Opened:
    """A stream's events, as a response body: closing it (the server does, when the client
    goes or the stream ends) frees its slot, even if it was never iterated."""

    def __init__(self, events: Iterator[Event], release) -> None:
        self.events = events
        self._release = release

    def __iter__(self) -> Iterator[Event]:
        return self.events

    def close(self) -> None:
        try:
            self.events.close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


def _statement(stream: Stream, dialect: str) -> sa.Select:
    compiler = query.Compiler(dialect)
    return changes.view(
        visible=visibility.readable(stream.caller, stream.scope),
        access=visibility.access_column(stream.caller),
        conditions=[compiler.condition(f) for f in stream.listing.filters],
        collections=stream.collections,
    )


def _was_a_reader(stream: Stream, row) -> bool:
    """A deletion reaches its grantees of just before (in the scopes that show shared records)."""
    if stream.caller is None or stream.scope == "own" or not row["readers"]:
        return False
    return str(stream.caller.id) in row["readers"]


def _event(row) -> Event:
    record: dict
    if row["kind"] == "deleted":
        record = {"id": row["id"]}
    else:
        record = {name: row[name] for name in RECORD_FIELDS}
    data = {"collection": row["collection"], "record": record, "matches": row["matches"]}
    return Event(id=str(row["change_id"]), event=row["kind"], data=data)


RECORD_FIELDS = (
    "id",
    "collection",
    "owner_id",
    "data",
    "version",
    "created_at",
    "updated_at",
    "access",
)

_hubs: set[Hub] = set()


def shutdown() -> None:
    """End every stream of this process (SIGTERM): each response ends, and its client
    reconnects, to another instance."""
    for hub in list(_hubs):
        if hub.pid == os.getpid():
            hub.stop(timeout=0)  # in a signal handler: never wait there


def current() -> Feed:
    return current_app.extensions["coffer_feed"]


def log(conn: Connection, entries: list[dict]) -> None:
    """Log record changes in `conn`'s transaction, right before its commit."""
    current().log(conn, entries)


def announce() -> None:
    """After the commit of logged changes."""
    current().announce()


def init_app(app: Flask) -> None:
    app.extensions["coffer_feed"] = Feed(app)
