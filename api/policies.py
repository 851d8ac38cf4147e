"""Collection policies: who reads a collection's records (`owner`, `users`, `public`) and who
creates them (`users`, `admins`). A collection without a stored policy has the default one;
admins set and drop policies, and the next request follows them (api/visibility.py reads the
table in every statement, nothing caches it)."""

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from api import database
from api.errors import Conflict, InvalidRequest, Unauthenticated
from api.models import CollectionPolicy, Record, utcnow
from api.pagination import decode_cursor, encode_cursor, list_binding

DEFAULT_READ, DEFAULT_CREATE = "owner", "users"
_policies = CollectionPolicy.__table__
_records = Record.__table__


def default(name: str) -> dict:
    return {"name": name, "read": DEFAULT_READ, "create": DEFAULT_CREATE, "updated_at": None}


def get(name: str) -> dict:
    """The collection's policy, or the default one."""
    stmt = sa.select(_policies).where(_policies.c.name == name)
    row = database.connection().execute(stmt).mappings().first()
    return dict(row) if row else default(name)


def require_reader(caller, name: str) -> None:
    """Unauthenticated (401) for an anonymous caller of a collection that is not public."""
    if caller is None and get(name)["read"] != "public":
        raise Unauthenticated("Authentication is required.", reason=None)


def open_to_users(collection: sa.ColumnElement) -> sa.ColumnElement:
    """SQL, true where users may create records in `collection` (the stored policy's `create`,
    or the default): the condition of a user's INSERT, so that the statement that writes the
    record is the one that reads the policy."""
    stored = sa.select(_policies.c.create).where(_policies.c.name == collection)
    return sa.func.coalesce(stored.scalar_subquery(), DEFAULT_CREATE) == "users"


def put(name: str, *, read: str, create: str) -> dict:
    """Set the collection's policy (insert or update); `updated_at` moves only on a change."""
    current = get(name)
    if current["updated_at"] is not None and (current["read"], current["create"]) == (
        read,
        create,
    ):
        return current
    policy = {"name": name, "read": read, "create": create, "updated_at": utcnow()}
    conn = database.connection()
    try:
        if current["updated_at"] is None:
            conn.execute(sa.insert(_policies), policy)
        else:
            conn.execute(sa.update(_policies).where(_policies.c.name == name).values(policy))
        conn.commit()
    except IntegrityError:  # another admin set it at the same moment
        conn.rollback()
        raise Conflict("The policy was set by another request at the same time; retry.") from None
    return policy


def delete(name: str) -> None:
    """Back to the default policy (the records stay)."""
    conn = database.connection()
    conn.execute(sa.delete(_policies).where(_policies.c.name == name))
    conn.commit()


def page(*, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
    """Every collection that has a policy or records, by name, with its policy and record
    count: one query per page, a keyset on the name."""
    binding = list_binding("collections")
    after = _after(cursor, binding)
    names = sa.union(sa.select(_records.c.collection.label("name")), sa.select(_policies.c.name))
    names = names.subquery("names")
    count = (
        sa.select(sa.func.count())
        .where(_records.c.collection == names.c.name)
        .correlate(names)
        .scalar_subquery()
    )
    stmt = (
        sa.select(
            names.c.name,
            sa.func.coalesce(_policies.c.read, DEFAULT_READ).label("read"),
            sa.func.coalesce(_policies.c.create, DEFAULT_CREATE).label("create"),
            _policies.c.updated_at,
            count.label("count"),
        )
        .select_from(names.outerjoin(_policies, _policies.c.name == names.c.name))
        .order_by(names.c.name)
        .limit(limit + 1)
    )
    if after is not None:
        stmt = stmt.where(names.c.name > after)
    rows = [dict(row) for row in database.connection().execute(stmt).mappings()]
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor({"k": binding, "after": rows[-1]["name"]})


def _after(cursor: str | None, binding: str) -> str | None:
    if not cursor:
        return None
    payload = decode_cursor(cursor)
    if not isinstance(payload, dict) or payload.get("k") != binding:
        raise InvalidRequest("The cursor belongs to another list, reader or filter.")
    if not isinstance(payload.get("after"), str):
        raise InvalidRequest("The cursor is malformed.")
    return payload["after"]
