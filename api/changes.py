"""The change log: every write to a record, appended in the write's own transaction, kept for
COFFER_CHANGES_RETENTION seconds. It is the change feed's source of truth (api/feed/): a
stream reads it after its position, so a notification that never arrives costs only latency.

A change's `position` orders the log: a reader that has read through position N never meets a
smaller position later. Positions follow commit order, which ids drawn from a sequence do not
(a transaction may draw its id, then commit after one that drew a later id). So on PostgreSQL
writers insert their changes without a position, in parallel, and the sequencer (`number`)
gives the committed ones theirs afterwards: under a transaction-level advisory lock, in id
order, each after every position given before, committing them all at once. Runs of the
sequencer follow each other (the lock), each sees what the runs before it committed, and a
reader sees a run's positions all together or not at all; a change enters a run only once it
has committed, so none can ever come in below what a reader has passed. Two changes of one
record keep their order: the second write waits for the first's row lock, so the first has
committed, and drawn the smaller id, before the second draws its own. The hubs of the change
feed run the sequencer when a commit wakes them, so positions come within milliseconds of
the commit; writers never wait for each other (before the sequencer, an advisory lock held
through every commit capped writes at 99-138 commits/s against 789-911 without it, 16
writers). SQLite has one writer at a time: a change gets the next position in the INSERT that
logs it, after the newest one or, in an emptied log, after what pruning removed.
"""

import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import visitors

from api import database
from api.extensions import db
from api.models import Change, ChangeLogState, Record, utcnow

ADVISORY_LOCK = 0x436F66666572  # "Coffer": the key of the sequencer's advisory lock
PRUNE_LOCK = ADVISORY_LOCK + 1  # held by the one process that prunes the log
BATCH = 5000  # changes numbered per run of the sequencer
_changes = Change.__table__
_state = ChangeLogState.__table__
_records = Record.__table__
_c = _changes.c
_INSERT = sa.insert(_changes)  # PostgreSQL: unnumbered, the sequencer numbers them
# SQLite, in the writer's transaction: each change follows every earlier one (the change log
# has one writer at a time), numbered as it is inserted, after what pruning left.
_NEXT_POSITION = (
    sa.func.coalesce(
        sa.select(sa.func.max(_c.position)).scalar_subquery(),
        sa.select(_state.c.pruned_through).where(_state.c.id == 1).scalar_subquery(),
        0,
    )
    + 1
)
_INSERT_NUMBERED = _INSERT.values(position=_NEXT_POSITION)
# One entry, on the DB-API cursor (`append_one`): every column but the id and the position.
_ENTRY = {
    c.name: sa.bindparam(c.name, type_=c.type) for c in _c if c.name not in ("id", "position")
}
_APPEND_ONE = {
    "postgresql": database.Write(_INSERT.values(_ENTRY)),
    "sqlite": database.Write(_INSERT_NUMBERED.values(_ENTRY)),
}
_SEQUENCER = sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK))
_UNNUMBERED = (
    sa.select(_c.id, sa.func.row_number().over(order_by=_c.id).label("n"))
    .where(_c.position.is_(None))
    .order_by(_c.id)
    .limit(BATCH)
    .subquery()
)
_NUMBER = (
    sa.update(_changes)
    .where(_c.id == _UNNUMBERED.c.id)
    .values(position=sa.bindparam("last", type_=sa.BigInteger()) + _UNNUMBERED.c.n)
)


# --- writing ---------------------------------------------------------------------------------


def created(record: Mapping) -> dict:
    return _entry("created", record, data=record["data"], previous=None, previous_updated_at=None)


def updated(before: Mapping, after: Mapping) -> dict:
    return _entry(
        "updated",
        after,
        data=after["data"],
        previous=before["data"],
        previous_updated_at=before["updated_at"],
    )


def deleted(before: Mapping, readers: Iterable[uuid.UUID] = ()) -> dict:
    """A deletion; `readers`: the users its grants let read it just before (they get it too)."""
    entry = _entry(
        "deleted",
        before,
        data=None,
        previous=before["data"],
        previous_updated_at=before["updated_at"],
        readers=sorted(str(reader) for reader in readers) or None,
    )
    entry["updated_at"] = entry["occurred_at"]
    return entry


def logging_creations(inserted: sa.CTE) -> sa.Insert:
    """PostgreSQL: the INSERT that logs the creation of each record that `inserted` (an INSERT
    … RETURNING, as a CTE) inserts, in the same statement: what `created` makes of a record,
    in SQL; `occurred_at` is a parameter."""
    new = inserted.c
    entry = {
        "kind": sa.literal("created", _c.kind.type),
        "collection": new.collection,
        "record_id": new.id,
        "owner_id": new.owner_id,
        "version": new.version,
        "data": new.data,
        "previous": sa.null(),
        "created_at": new.created_at,
        "updated_at": new.updated_at,
        "previous_updated_at": sa.null(),
        "occurred_at": sa.bindparam("occurred_at", type_=_c.occurred_at.type),
        "readers": sa.null(),
    }
    return sa.insert(_changes).from_select(list(entry), sa.select(*entry.values()))


def _entry(kind: str, record: Mapping, **values) -> dict:
    return {
        "kind": kind,
        "collection": record["collection"],
        "record_id": record["id"],
        "owner_id": record["owner_id"],
        "version": record["version"],
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
        "occurred_at": utcnow(),
        "readers": None,
        **values,
    }


def append(conn: Connection, entries: list[dict]) -> None:
    """Log `entries` in `conn`'s transaction: on PostgreSQL without a position, which the
    sequencer gives them once committed (`number`); on SQLite with it (see the module doc)."""
    if entries:
        conn.execute(_INSERT if conn.dialect.name == "postgresql" else _INSERT_NUMBERED, entries)


def append_one(entry: dict) -> None:
    """`append` of one entry, run on the DB-API cursor of the request's connection
    (`database.Write`), inside `database.dbapi_transaction`."""
    _APPEND_ONE[database.connection().dialect.name].run(entry)


def number(conn: Connection) -> int:
    """PostgreSQL's sequencer: give the committed changes that have no position yet theirs, in
    id order, after the last one given; commits each run. How many it numbered."""
    if conn.dialect.name != "postgresql":
        return 0
    numbered = 0
    while True:
        conn.execute(_SEQUENCER)  # waits for a run in progress, and sees what it committed
        last = conn.scalar(sa.select(sa.func.max(_c.position)))
        if last is None:
            last = pruned_through(conn)
        count = conn.execute(_NUMBER, {"last": last}).rowcount
        conn.commit()
        numbered += count
        if count < BATCH:
            return numbered


# --- reading ---------------------------------------------------------------------------------


def head(conn: Connection) -> int:
    """The position of the newest change: a stream that starts now starts after it."""
    newest = conn.scalar(sa.select(sa.func.max(_c.position)))
    return newest if newest is not None else pruned_through(conn)


def pruned_through(conn: Connection) -> int:
    return conn.scalar(sa.select(_state.c.pruned_through).where(_state.c.id == 1)) or 0


def resumable(conn: Connection, text: str | None, retention: int) -> int | None:
    """The position of a Last-Event-ID that resumes exactly, or None: malformed, never handed
    out (beyond the head), pruned, or older than the retention (pruned soon)."""
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    position = int(text)
    if position < pruned_through(conn) or position > head(conn):
        return None
    occurred = conn.scalar(sa.select(_c.occurred_at).where(_c.position == position))
    if occurred is not None and occurred < utcnow() - timedelta(seconds=retention):
        return None
    return position


def prune(conn: Connection, retention: int) -> int:
    """Delete the changes older than the retention, oldest first; returns how many. Commits."""
    cutoff = utcnow() - timedelta(seconds=retention)
    through = conn.scalar(sa.select(sa.func.max(_c.position)).where(_c.occurred_at < cutoff))
    if through is None:
        conn.commit()
        return 0
    deleted_rows = conn.execute(sa.delete(_changes).where(_c.position <= through)).rowcount
    marked = conn.execute(
        sa.update(_state)
        .where(_state.c.id == 1, _state.c.pruned_through < through)
        .values(pruned_through=through)
    ).rowcount
    if not marked and conn.scalar(sa.select(_state.c.id).where(_state.c.id == 1)) is None:
        conn.execute(sa.insert(_state).values(id=1, pruned_through=through))
    conn.commit()
    return deleted_rows


def expire(engine: Engine | None = None, retention: int | None = None) -> int:
    """Prune the log of the changes older than `retention` seconds (by default the app's
    engine and COFFER_CHANGES_RETENTION): what every process that writes changes does now and
    then (api/feed/hub.py), and `flask purge`. On PostgreSQL the committed changes get their
    positions first, and one process prunes at a time: the others skip, there is nothing left
    for them. How many changes it deleted."""
    engine = db.engine if engine is None else engine
    if retention is None:
        retention = current_app.config["COFFER_CHANGES_RETENTION"]
    with engine.connect() as conn:
        number(conn)
        if conn.dialect.name == "postgresql":
            if not conn.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(PRUNE_LOCK))):
                conn.rollback()
                return 0
        return prune(conn, retention)


def newer(conn: Connection, after: int, limit: int) -> list[tuple[int, str]]:
    """(position, collection) of the changes after `after`, oldest first: what a hub learns."""
    stmt = (
        sa.select(_c.position, _c.collection)
        .where(_c.position > after)
        .order_by(_c.position)
        .limit(limit)
    )
    return [tuple(row) for row in conn.execute(stmt)]


# --- a reader's view -------------------------------------------------------------------------

# What a record's columns are, in a change, after it and before it.
_AFTER = {
    "id": _c.record_id,
    "owner_id": _c.owner_id,
    "collection": _c.collection,
    "data": _c.data,
    "version": _c.version,
    "created_at": _c.created_at,
    "updated_at": _c.updated_at,
}
_BEFORE = {**_AFTER, "data": _c.previous, "updated_at": _c.previous_updated_at}


def as_of(expression: sa.ColumnElement, columns: Mapping[str, sa.ColumnElement]):
    """`expression` over the records table, read instead from a change's columns."""

    def replace(element):
        if isinstance(element, sa.Column) and element.table is _records:
            return columns[element.name]
        return None

    return visitors.replacement_traverse(expression, {}, replace)


def _flag(condition) -> sa.ColumnElement[bool]:
    """A condition as a column that is true or false, never NULL (a missing side is NULL)."""
    return sa.case((condition, sa.true()), else_=sa.false())


def view(
    *,
    visible: sa.ColumnElement[bool],
    access: sa.ColumnElement[str],
    conditions: Iterable[sa.ColumnElement[bool]],
    collections: Iterable[str],
) -> sa.Select:
    """The changes a reader receives, in order, between :after and :through (bound later):
    those of its collections and records it may read (`visible`, over the records table,
    judged on what the change logged), which match its filters (`conditions`) after the
    change or did before it. Each row says whether the record matches after it."""
    conditions = list(conditions)
    after = sa.and_(_c.kind != "deleted", *(as_of(c, _AFTER) for c in conditions))
    before = sa.and_(_c.kind != "created", *(as_of(c, _BEFORE) for c in conditions))
    stmt = sa.select(
        _c.position.label("change_id"),
        _c.kind,
        *(column.label(name) for name, column in _AFTER.items()),
        as_of(access, _AFTER).label("access"),
        _flag(after).label("matches"),
        _flag(as_of(visible, _AFTER)).label("visible"),
        _c.readers,
    ).where(
        _c.position > sa.bindparam("after"),
        _c.position <= sa.bindparam("through"),
        _c.collection.in_(sorted(set(collections))),
        # A deletion with readers may be a grantee's (api/feed/streams.py checks whose).
        sa.or_(as_of(visible, _AFTER), _c.readers.is_not(None)),
    )
    if conditions:
        stmt = stmt.where(sa.or_(_flag(after), _flag(before)))
    return stmt.order_by(_c.position).limit(sa.bindparam("limit"))
