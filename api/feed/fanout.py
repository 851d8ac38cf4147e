"""The wake-ups that carry a commit to the hubs of the other processes and instances: Redis
pub/sub when REDIS_URL is set, else PostgreSQL LISTEN/NOTIFY, else, on SQLite, whose
instances are one host's processes, nothing (each hub with streams polls the log every half
second). A wake-up carries nothing: the log is the source of truth, and a hub that missed one
(Redis down, a dropped connection) catches up from it at its next poll, so a lost wake-up costs
latency, never an event.
"""

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

CHANNEL = "coffer_changes"  # the Redis and PostgreSQL NOTIFY channels start with this
MAX_BACKOFF = 8.0  # seconds between reconnections of a failed listener or publisher
REDIS, POSTGRES, LOCAL = "redis", "postgres", "local"

_log = logging.getLogger("api.feed")
_NOTIFY = sa.select(
    sa.func.set_config("synchronous_commit", "off", True),  # this transaction only
    sa.func.pg_notify(sa.bindparam("channel"), ""),
)


def channel_of(url: str) -> str:
    """The wake-up channel of a database: deployments that share a Redis (or a PostgreSQL
    server) never wake each other. By the database's name and options (a schema), not its
    host, which instances may spell differently."""
    parsed = make_url(url)
    key = f"{parsed.get_backend_name()}/{parsed.database}?{sorted(parsed.query.items())}"
    return f"{CHANNEL}_{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def kind_of(url: str, redis) -> str:
    if redis is not None:
        return REDIS
    return POSTGRES if url.startswith("postgresql") else LOCAL


class Fanout:
    """One process's end of the wake-ups: it publishes them and listens for the others'."""

    def __init__(self, kind: str, channel: str, redis, engine: Engine) -> None:
        self.kind = kind
        self.channel = channel
        self.redis = redis
        self.engine = engine
        self._failures = 0
        self._retry_at = 0.0

    def announce(self, pid: int) -> None:
        """Publish a wake-up; while Redis or PostgreSQL fails, only now and then (1 s,
        doubling up to MAX_BACKOFF), so that the hub's own streams are not held up by its
        timeouts: the other processes poll the log meanwhile."""
        if self.kind == LOCAL or time.monotonic() < self._retry_at:
            return
        try:
            if self.kind == REDIS:
                self.redis.publish(self.channel, str(pid))
            else:
                self._notify_postgres()
            self._failures = 0
        except Exception as exc:  # the log has it: the others poll it
            self._failures += 1
            self._retry_at = time.monotonic() + min(2.0 ** (self._failures - 1), MAX_BACKOFF)
            _log.warning("change feed: publishing failed: %s", type(exc).__name__)

    def _notify_postgres(self) -> None:
        """NOTIFY in a transaction of its own, after the commits it announces, and not made
        durable: a NOTIFY serialises the commits that send one until they are flushed (its
        queue lock), and a lost wake-up is caught up by the next poll anyway. One statement in
        AUTOCOMMIT, one round trip: set_config(…, true) holds for its own transaction."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(_NOTIFY, {"channel": self.channel})

    def listener(self) -> Callable[[Callable[[], None], threading.Event], None] | None:
        """What a hub runs in a thread of its own to be woken by the others; None on SQLite."""
        if self.kind == REDIS:
            return lambda wake, stopping: _listen(self._redis_wakeups, wake, stopping)
        if self.kind == POSTGRES:
            return lambda wake, stopping: _listen(self._postgres_wakeups, wake, stopping)
        return None

    def _redis_wakeups(self, stopping: threading.Event) -> Iterator[None]:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.channel)
            yield  # subscribed: catch up on what came before
            while not stopping.is_set():
                if pubsub.get_message(timeout=1.0) is not None:
                    yield
        finally:
            pubsub.close()

    def _postgres_wakeups(self, stopping: threading.Event) -> Iterator[None]:
        import psycopg  # loaded already on PostgreSQL (the engine's driver); never on SQLite

        url = self.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"LISTEN {self.channel}")
            yield
            while not stopping.is_set():
                for _ in conn.notifies(timeout=1.0, stop_after=1):
                    yield
                conn.execute("SELECT 1")  # notices a dead server


def _listen(wakeups, wake: Callable[[], None], stopping: threading.Event) -> None:
    """Wake the hub on every notification; reconnect after a failure, and catch up."""
    failures = 0
    while not stopping.is_set():
        try:
            for _ in wakeups(stopping):
                failures = 0
                wake()
        except Exception as exc:
            failures += 1
            if failures == 1:
                _log.warning("change feed: listener failed (%s); retrying", type(exc).__name__)
            stopping.wait(min(0.25 * 2**failures, MAX_BACKOFF))
        wake()  # whatever was missed while not listening
