"""Creating a record: one INSERT that carries the collection's policy as its condition, and the
record's entry in the change log (api/changes.py), committed together. On PostgreSQL both are
one statement, its own transaction in the request connection's AUTOCOMMIT: one round trip.
The statements are compiled once and run on the DB-API cursor (`database.Write`): SQLAlchemy's
execution of each cost more than SQLite's own work for it."""

import functools

import sqlalchemy as sa
from uuid6 import uuid7

from api import changes, database, feed, policies
from api.errors import Forbidden
from api.models import Record, utcnow

_records = Record.__table__
_c = _records.c


def create(caller, collection: str, data: dict) -> dict:
    """Insert a record and return it as stored (no read back: every value is made here);
    Forbidden when the collection's policy lets only admins and services create. A user's
    INSERT carries the policy as its condition, so no statement reads it before."""
    now = utcnow()
    record = {
        "id": uuid7(),
        "collection": collection,
        "owner_id": caller.id,
        "data": data,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    guarded = caller.role == "user"
    conn = database.connection()
    if conn.dialect.name == "postgresql":
        # The request's connection is in AUTOCOMMIT (RequestConnection): one statement is its
        # own transaction, the record and its change in one round trip where BEGIN, the
        # policy, two INSERTs and COMMIT took five.
        written = _writes(guarded, logged=True).run({**record, "occurred_at": now})
    else:
        with database.dbapi_transaction(conn):
            written = _writes(guarded, logged=False).run(record)
            if written:
                feed.log_one(changes.created(record))
    if not written:
        raise Forbidden("Only admins and services create records in this collection.")
    feed.announce()
    return {**record, "access": "owner"}


@functools.cache
def _writes(guarded: bool, *, logged: bool) -> database.Write:
    return database.Write(_inserting_logged(guarded) if logged else _inserting(guarded))


@functools.cache
def _inserting(guarded: bool) -> sa.Insert:
    """The INSERT of a new record from its parameters; `guarded`: only where the collection's
    policy lets users create (nothing is inserted elsewhere)."""
    binds = {column.name: sa.bindparam(column.name, type_=column.type) for column in _c}
    values = sa.select(*binds.values())
    if guarded:
        values = values.where(policies.open_to_users(binds["collection"]))
    return sa.insert(_records).from_select(list(binds), values)


@functools.cache
def _inserting_logged(guarded: bool) -> sa.Insert:
    """PostgreSQL: `_inserting`, and the change it makes, in one statement."""
    inserted = _inserting(guarded).returning(*_records.c).cte("inserted")
    return changes.logging_creations(inserted).add_cte(inserted)
