"""Who may read which records: one WHERE clause over the records table per caller and scope,
and the access a caller has to a record. Every reader of records that is not its owner's own
listing (the change feed) asks only these two functions.

Today's rule: a user reads its own records; an admin, in scope `all`, everyone's, with write
access to them. Scopes (as the record list has them): `own` (the default), `shared` (records
shared with the caller: none, for now), `all` (everything the caller may read).
"""

import sqlalchemy as sa

from api.models import Record
from api.tokens import Caller

SCOPES = ("own", "shared", "all")
_c = Record.__table__.c


def readable(caller: Caller, scope: str = "own") -> sa.ColumnElement[bool]:
    """The records `caller` may read in `scope`, as a condition on the records table."""
    if scope == "shared":
        return sa.false()
    if scope == "all" and caller.role == "admin":
        return sa.true()
    return _c.owner_id == caller.id


def access_column(caller: Caller) -> sa.ColumnElement[str]:
    """The caller's access to a record it may read: `owner`, or `write` (an admin's)."""
    if caller.role == "admin":
        return sa.case((_c.owner_id == caller.id, "owner"), else_="write").label("access")
    return sa.literal("owner", sa.String).label("access")
