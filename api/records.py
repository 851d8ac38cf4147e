"""Records in the database: reading, listing and conditional writes, each limited to what the
caller may read or write (api/visibility.py) by the statement itself (creating a record is
api/record_creation.py's).

Every statement is Core, on the request's connection (api/database/): a record is a row,
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
from sqlalchemy.engine import RowMapping

from api import changes, database, feed, policies, query, visibility
from api.errors import Conflict, Forbidden, NotFound, PreconditionFailed
from api.models import Record, utcnow
from api.record_rules import check_record_size

PATCH_ATTEMPTS = 8  # compare-and-swap rounds before a PATCH without If-Match gives up (409)
_records = Record.__table__
_c = _records.c
_OWNER = sa.bindparam("owner_id", type_=sa.Uuid())  # an admin's ?owner_id=
_COLLECTION = sa.bindparam("collection")
_LIMIT = sa.bindparam("limit")


def _params(caller, collection: str, owner_id: uuid.UUID | None) -> dict:
    return {
        visibility.CALLER: None if caller is None else caller.id,
        "collection": collection,
        "owner_id": owner_id,
    }


def _stale() -> NoReturn:
    raise PreconditionFailed("The record has changed: If-Match does not match its current ETag.")


# --- reading ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _readable_records(kind: str, scope: str, of_owner: bool) -> sa.Select:
    """The records a kind of caller reads in a scope, with `access`, in one collection (and of
    one owner: an admin's ?owner_id=); the caller's id is a parameter."""
    readable, access = visibility.cached_rules(kind, scope)
    stmt = sa.select(_records, access.label("access")).where(_c.collection == _COLLECTION, readable)
    return stmt.where(_c.owner_id == _OWNER) if of_owner else stmt


def find(caller, collection: str, record_id: str, owner_id=None) -> RowMapping:
    """One record the caller may read, with its `access`; 404 for any other, or an id that is
    no UUID (401 for an anonymous caller outside a public collection)."""
    policies.require_reader(caller, collection)
    try:
        record_id = uuid.UUID(record_id)
    except ValueError:
        raise NotFound("No such record.") from None
    stmt = _by_id(visibility.kind_of(caller), owner_id is not None)
    record = stmt.first({**_params(caller, collection, owner_id), "id": record_id})
    if record is None:
        raise NotFound("No such record.")
    return record


@functools.lru_cache(maxsize=8)
def _by_id(kind: str, of_owner: bool) -> database.Statement:
    stmt = _readable_records(kind, "all", of_owner)
    return database.Statement(stmt.where(_c.id == sa.bindparam("id")))


def page_of(
    caller,
    collection: str,
    listing: query.Listing,
    *,
    scope: str,
    owner_id: uuid.UUID | None = None,
    limit: int,
    cursor: str | None,
) -> tuple[list[RowMapping], str | None]:
    """One page of what the caller may read in `scope`, in one query; limit + 1 rows tell if
    there is a next page. A cursor holds only for the caller, collection, scope and owner.
    An admin's ?owner_id= reads that user's records (whatever the scope); an anonymous caller
    reads a public collection in `all`, and gets 401 from any other."""
    policies.require_reader(caller, collection)
    kind = visibility.kind_of(caller)
    if owner_id is not None or caller is None:
        scope = "all"
    binding = _binding(caller, collection, scope, owner_id)
    conn = database.connection()
    dialect = conn.dialect.name
    base = _readable_records(kind, scope, owner_id is not None)
    params = {**_params(caller, collection, owner_id), "limit": limit + 1}
    if cursor:
        # A page after the first binds the cursor's position: SQLAlchemy's statement cache
        # serves those, as their values change.
        position = query.decode_cursor(cursor, listing, binding)
        stmt = query.Compiler(dialect).apply(base, listing, position).limit(_LIMIT)
        rows = [row._mapping for row in conn.execute(stmt, params)]
    else:
        rows = _first_page(dialect, base, _typed(listing), listing).all(params)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = query.encode_cursor(listing, binding, rows[-1])
    return rows, next_cursor


def _binding(caller, collection: str, scope: str, owner_id) -> tuple[str, ...]:
    """What a cursor is bound to: whose records in which collection, and the scope. An
    admin's ?owner_id= lists what the owner lists in `own`, and takes the owner's cursors."""
    if owner_id is not None:
        return (str(owner_id), collection)
    if caller is None:
        return ("", collection, "anonymous")
    return (str(caller.id), collection) if scope == "own" else (str(caller.id), collection, scope)


@functools.lru_cache(maxsize=256)
def _first_page(
    dialect: str, base: sa.Select, _typed_listing: tuple, listing: query.Listing
) -> database.Statement:
    """The statement of a listing's first page, built and compiled once: building the
    expressions of a sort on a data key costs more than running the query."""
    return database.Statement(query.Compiler(dialect).apply(base, listing).limit(_LIMIT))


def _typed(listing: query.Listing) -> tuple:
    """The listing with the type of every filter value: 1, 1.0 and True are equal in Python
    (and hash alike) but select different records, so they must not share a statement."""
    return tuple((f.field, f.op, tuple((type(v), v) for v in f.values)) for f in listing.filters)


def collections(caller, *, scope: str, owner_id: uuid.UUID | None = None) -> list[RowMapping]:
    """The collections with records the caller may read in `scope` (of one owner: an admin's
    ?owner_id=), by name, with the count of those records and their latest change."""
    readable = visibility.readable(caller, scope)
    stmt = (
        sa.select(
            _c.collection.label("name"),
            sa.func.count().label("count"),
            sa.func.max(_c.updated_at).label("updated_at"),
        )
        .where(_c.owner_id == owner_id if owner_id is not None else readable)
        .group_by(_c.collection)
        .order_by(_c.collection)
    )
    return database.connection().execute(stmt).mappings().all()


# --- writing ---------------------------------------------------------------------------------


def _commit(conn, logged: list[dict]) -> None:
    """Commit a write with its entries in the change log, then wake the change feed."""
    feed.log(conn, logged)
    conn.commit()
    feed.announce()


def delete_collection(owner_id: uuid.UUID, collection: str) -> None:
    where = (_c.owner_id == owner_id, _c.collection == collection)
    with database.transaction(database.connection()) as conn:
        readers = _readers(conn, *where)
        gone = conn.execute(sa.delete(_records).where(*where).returning(*_records.c))
        logged = [
            changes.deleted(record, readers.get(record["id"], ())) for record in gone.mappings()
        ]
        _commit(conn, logged)


def _readers(conn, *where) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Who the grants of the records matching `where` let read them, before they go with them."""
    found: dict[uuid.UUID, list[uuid.UUID]] = {}
    for record_id, user_id in conn.execute(visibility.grantees(*where)):
        found.setdefault(record_id, []).append(user_id)
    return found


def delete_all_of(conn, owner_id: uuid.UUID) -> list[dict]:
    """Delete every record of an owner on `conn` (an account's deletion); their entries for the
    change log, which the caller logs and commits."""
    readers = _readers(conn, _c.owner_id == owner_id)
    stmt = sa.delete(_records).where(_c.owner_id == owner_id).returning(*_records.c)
    return [
        changes.deleted(record, readers.get(record["id"], ()))
        for record in conn.execute(stmt).mappings()
    ]


def replace(caller, collection, record_id, data: dict, versions) -> dict:
    """Set `data` (PUT), only from one of `versions` when given: 404, 403 or 412 otherwise."""
    return _update(caller, (collection, record_id), versions, lambda _current: data)


def patch(caller, collection, record_id, edits: dict, versions) -> dict:
    """Merge-patch the version read, compare-and-swap; retry when another write came first."""

    def patched(current: dict) -> dict:
        data = merge_patch(current, edits)
        check_record_size(data)
        return data

    return _update(caller, (collection, record_id), versions, patched)


def _update(caller, where: tuple, versions, new_data) -> dict:
    """Write `new_data(current data)` over the version read, compare-and-swap, so that the
    change log has the record before and after; retry when another write came first. 404
    when the caller may not read the record, 403 when it may not write it, 412 when
    `versions` (If-Match) does not hold its version."""
    conn = database.connection()
    writable = visibility.writable(caller).label("writable")
    for _ in range(PATCH_ATTEMPTS):
        current = (
            conn.execute(sa.select(_records, writable).where(*_identifies(caller, *where)))
            .mappings()
            .first()
        )
        if current is None:
            raise NotFound("No such record.")
        if not current["writable"]:
            raise Forbidden("You may read this record but not change it.")
        if versions is not None and current["version"] not in versions:
            _stale()
        data = new_data(current["data"])
        with database.transaction(conn):
            record = _write(caller, *where, data, {current["version"]})
            if record is not None:
                _commit(conn, [changes.updated(current, record)])
                return record
        conn.rollback()
    raise Conflict("The record is being changed by others; retry the request.")


def delete(caller, collection, record_id, versions) -> None:
    """Delete in one statement, only at one of `versions` when given: 404, 403 or 412
    otherwise. Only the owner and admins delete."""
    deletable = visibility.deletable(caller)
    stmt = sa.delete(_records).where(_c.id == record_id, _c.collection == collection, deletable)
    if versions is not None:
        stmt = stmt.where(_c.version.in_(sorted(versions)))
    with database.transaction(database.connection()) as conn:
        readers = _readers(conn, _c.id == record_id, _c.collection == collection)
        gone = conn.execute(stmt.returning(*_records.c)).mappings().first()
        if gone is not None:
            _commit(conn, [changes.deleted(gone, readers.get(gone["id"], ()))])
            return
    _refused(caller, collection, record_id, deletable)


def _identifies(caller, collection, record_id) -> tuple:
    """The record, if the caller may read it."""
    return (_c.id == record_id, _c.collection == collection, visibility.readable(caller))


def _write(caller, collection, record_id, data, versions) -> dict | None:
    """Set `data` and bump the version in one UPDATE, if the caller may write the record and
    only from one of `versions` when given; None when no row matched."""
    stmt = (
        sa.update(_records)
        .where(_c.id == record_id, _c.collection == collection, visibility.writable(caller))
        .values(data=data, version=_c.version + 1, updated_at=utcnow())
        .returning(*_records.c)
    )
    if versions is not None:
        stmt = stmt.where(_c.version.in_(sorted(versions)))
    record = database.connection().execute(stmt).mappings().one_or_none()
    if record is None:
        return None
    # Whoever may write is the owner, or a writer (a grantee or an admin).
    return {**record, "access": "owner" if record["owner_id"] == caller.id else "write"}


def _refused(caller, collection, record_id, allowed: sa.ColumnElement[bool]) -> NoReturn:
    """After a conditional write matched no row: 404 if the caller cannot read the record,
    403 if it may read but not do this, else 412 (the version changed)."""
    found = (
        database.connection()
        .execute(
            sa.select(allowed.label("allowed")).where(*_identifies(caller, collection, record_id))
        )
        .one_or_none()
    )
    if found is None:
        raise NotFound("No such record.")
    if not found.allowed:
        raise Forbidden("You may read this record but not change it.")
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
