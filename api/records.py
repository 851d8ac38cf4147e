"""Records in the database: reading, listing, creating and conditional writes.

Every statement is Core, on the request's connection (api/database.py): a record is a row,
read back as a mapping, never an ORM object. Every write logs its change in the same
transaction (api/changes.py). A DELETE is one conditional statement that returns the record
it deleted, so `If-Match` holds atomically in the database; PUT and PATCH read the record and
compare-and-swap on the version they read (retrying when another write came first), so that
the log has the record before and after.
"""

import functools
import uuid
from typing import NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import Row, RowMapping
from uuid6 import uuid7

from api import changes, database, feed, query
from api.errors import Conflict, NotFound, PreconditionFailed
from api.models import Record, utcnow
from api.record_rules import check_record_size

PATCH_ATTEMPTS = 8  # compare-and-swap rounds before a PATCH without If-Match gives up (409)
_records = Record.__table__
_c = _records.c
_FIND = sa.select(_records).where(
    _c.id == sa.bindparam("id"),
    _c.owner_id == sa.bindparam("owner_id"),
    _c.collection == sa.bindparam("collection"),
)
_INSERT = sa.insert(_records)


def _identifies(owner_id, collection, record_id) -> tuple:
    return (_c.id == record_id, _c.owner_id == owner_id, _c.collection == collection)


def _stale() -> NoReturn:
    raise PreconditionFailed("The record has changed: If-Match does not match its current ETag.")


# --- reading ---------------------------------------------------------------------------------


def find(owner_id: uuid.UUID, collection: str, record_id: uuid.UUID) -> RowMapping:
    """One record; 404 when it does not exist in this owner's collection."""
    params = {"id": record_id, "owner_id": owner_id, "collection": collection}
    record = database.connection().execute(_FIND, params).mappings().first()
    if record is None:
        raise NotFound("No such record.")
    return record


def page_of(
    owner_id: uuid.UUID, collection: str, listing: query.Listing, *, limit: int, cursor: str | None
) -> tuple[list[RowMapping], str | None]:
    """One page of a listing and the cursor of the next; limit + 1 rows tell if there is one."""
    scope = (str(owner_id), collection)
    conn = database.connection()
    dialect = conn.dialect.name
    if cursor:
        position = query.decode_cursor(cursor, listing, scope)
        stmt = query.Compiler(dialect).apply(_LISTED, listing, position).limit(_LIMIT)
    else:
        stmt = _first_page(dialect, _typed(listing), listing)
    params = {"owner_id": owner_id, "collection": collection, "limit": limit + 1}
    rows: list[Row] = conn.execute(stmt, params).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = query.encode_cursor(listing, scope, rows[-1])
    return [row._mapping for row in rows], next_cursor


_LISTED = sa.select(_records).where(
    _c.owner_id == sa.bindparam("owner_id"), _c.collection == sa.bindparam("collection")
)
_LIMIT = sa.bindparam("limit")


@functools.lru_cache(maxsize=256)
def _first_page(dialect: str, _typed_listing: tuple, listing: query.Listing) -> sa.Select:
    """The statement of a listing's first page, built once: building the expressions of a
    sort on a data key costs more than running the query."""
    return query.Compiler(dialect).apply(_LISTED, listing).limit(_LIMIT)


def _typed(listing: query.Listing) -> tuple:
    """The listing with the type of every filter value: 1, 1.0 and True are equal in Python
    (and hash alike) but select different records, so they must not share a statement."""
    return tuple((f.field, f.op, tuple((type(v), v) for v in f.values)) for f in listing.filters)


def collections(owner_id: uuid.UUID) -> list[RowMapping]:
    """The owner's collections by name, with their record counts and latest change."""
    stmt = (
        sa.select(
            _c.collection.label("name"),
            sa.func.count().label("count"),
            sa.func.max(_c.updated_at).label("updated_at"),
        )
        .where(_c.owner_id == owner_id)
        .group_by(_c.collection)
        .order_by(_c.collection)
    )
    return database.connection().execute(stmt).mappings().all()


# --- writing ---------------------------------------------------------------------------------


def create(owner_id: uuid.UUID, collection: str, data: dict) -> dict:
    """Insert a record and return it as stored (no read back: every value is made here)."""
    now = utcnow()
    record = {
        "id": uuid7(),
        "collection": collection,
        "owner_id": owner_id,
        "data": data,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    conn = database.connection()
    conn.execute(_INSERT, record)
    _commit(conn, [changes.created(record)])
    return record


def _commit(conn, logged: list[dict]) -> None:
    """Commit a write with its entries in the change log, then wake the change feed."""
    feed.log(conn, logged)
    conn.commit()
    feed.announce()


def delete_collection(owner_id: uuid.UUID, collection: str) -> None:
    conn = database.connection()
    stmt = sa.delete(_records).where(_c.owner_id == owner_id, _c.collection == collection)
    gone = conn.execute(stmt.returning(*_records.c)).mappings().all()
    _commit(conn, [changes.deleted(record) for record in gone])


def delete_all_of(conn, owner_id: uuid.UUID) -> list[RowMapping]:
    """Delete every record of an owner on `conn` (an account's deletion); the caller logs and
    commits."""
    stmt = sa.delete(_records).where(_c.owner_id == owner_id).returning(*_records.c)
    return conn.execute(stmt).mappings().all()


def replace(owner_id, collection, record_id, data: dict, versions) -> RowMapping:
    """Set `data` (PUT), only from one of `versions` when given: 404 or 412 otherwise."""
    return _update((owner_id, collection, record_id), versions, lambda _current: data)


def patch(owner_id, collection, record_id, changes: dict, versions) -> RowMapping:
    """Merge-patch the version read, compare-and-swap; retry when another write came first."""

    def patched(current: dict) -> dict:
        data = merge_patch(current, changes)
        check_record_size(data)
        return data

    return _update((owner_id, collection, record_id), versions, patched)


def _update(scope: tuple, versions, new_data) -> RowMapping:
    """Write `new_data(current data)` over the version read, compare-and-swap, so that the
    change log has the record before and after; retry when another write came first. 404
    when the record is missing, 412 when `versions` (If-Match) does not hold its version."""
    conn = database.connection()
    for _ in range(PATCH_ATTEMPTS):
        current = conn.execute(sa.select(_records).where(*_identifies(*scope))).mappings().first()
        if current is None:
            raise NotFound("No such record.")
        if versions is not None and current["version"] not in versions:
            _stale()
        record = _write(*scope, new_data(current["data"]), {current["version"]})
        if record is not None:
            _commit(conn, [changes.updated(current, record)])
            return record
        conn.rollback()
    raise Conflict("The record is being changed by others; retry the request.")


def delete(owner_id, collection, record_id, versions) -> None:
    """Delete in one statement, only at one of `versions` when given: 404 or 412 otherwise."""
    stmt = sa.delete(_records).where(*_identifies(owner_id, collection, record_id))
    if versions is not None:
        stmt = stmt.where(_c.version.in_(sorted(versions)))
    conn = database.connection()
    gone = conn.execute(stmt.returning(*_records.c)).mappings().first()
    if gone is None:
        _missing_or_stale(owner_id, collection, record_id)
    _commit(conn, [changes.deleted(gone)])


def _write(owner_id, collection, record_id, data, versions) -> RowMapping | None:
    """Set `data` and bump the version in one UPDATE, only from one of `versions` when given;
    None when no row matched (missing, or changed since)."""
    stmt = (
        sa.update(_records)
        .where(*_identifies(owner_id, collection, record_id))
        .values(data=data, version=_c.version + 1, updated_at=utcnow())
        .returning(*_records.c)
    )
    if versions is not None:
        stmt = stmt.where(_c.version.in_(sorted(versions)))
    return database.connection().execute(stmt).mappings().one_or_none()


def _missing_or_stale(owner_id, collection, record_id) -> NoReturn:
    """After a conditional write matched no row: 404 if the record is gone, else 412."""
    exists = database.connection().scalar(
        sa.select(_c.id).where(*_identifies(owner_id, collection, record_id))
    )
    if exists is None:
        raise NotFound("No such record.")
    _stale()


def merge_patch(target: object, patch: object) -> object:
    """RFC 7396: null removes a key, objects merge recursively, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged
