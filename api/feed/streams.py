"""Serving one stream, in the thread of its request: wait until the hub (hub.py) says the log
has grown, read from the log what the stream's caller may see after the stream's position,
and send it; a keep-alive comment when nothing came for a while.
"""

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa

from api import changes, query, visibility
from api.tokens import Caller

PAGE = 500  # changes read per query

_log = logging.getLogger("api.feed")


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


def serve(hub, stream: Stream, first: list[Event], heartbeat: float) -> Iterator[Event]:
    """The events of `stream`, after `first`, until it or the hub ends; a keep-alive comment
    after every `heartbeat` seconds without one."""
    hub.streams.add(stream)
    try:
        yield from first
        yield from _follow(hub, stream, heartbeat)
    finally:
        hub.streams.discard(stream)


def _follow(hub, stream: Stream, every: float) -> Iterator[Event]:
    statement = _statement(stream, hub.engine.dialect.name)
    heartbeat = time.monotonic() + every
    while not (stream.ended.is_set() or hub.stopping.is_set()):
        through = hub.head
        if through > stream.position:
            if _touched(hub, stream):
                try:
                    yield from _read(hub, stream, statement, through)
                except sa.exc.SQLAlchemyError as exc:  # the database is down or busy:
                    _log.warning("change feed: a stream's read failed: %s", type(exc).__name__)
                    stream.ended.wait(1.0)  # retry from the position, nothing lost
                    continue
            stream.position = through
            continue
        with hub.changed:
            # Until a change, an end (both notify) or the heartbeat: a waiting stream wakes no
            # more than that, so hundreds of them leave the GIL to requests.
            if hub.head <= stream.position and not stream.ended.is_set():
                hub.changed.wait(max(heartbeat - time.monotonic(), 0.0))
        if time.monotonic() >= heartbeat:
            heartbeat = time.monotonic() + every
            yield Event(comment="keep-alive")


def _touched(hub, stream: Stream) -> bool:
    """Whether a change after the stream's position may be in its collections: the newest
    changes the hub remembers, read back to the position."""
    recent = hub.recent
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


def _read(hub, stream: Stream, statement: sa.Select, through: int) -> Iterator[Event]:
    while True:
        params = {"after": stream.position, "through": through, "limit": PAGE}
        with hub.reading() as conn:
            rows = conn.execute(statement, params).mappings().all()
        for row in rows:
            if stream.ended.is_set():
                return
            stream.position = row["change_id"]
            if row["visible"] or _was_a_reader(stream, row):
                yield _event(row)
        if len(rows) < PAGE:
            return


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


def _event(row) -> Event:
    record: dict
    if row["kind"] == "deleted":
        record = {"id": row["id"]}
    else:
        record = {name: row[name] for name in RECORD_FIELDS}
    data = {"collection": row["collection"], "record": record, "matches": row["matches"]}
    return Event(id=str(row["change_id"]), event=row["kind"], data=data)
