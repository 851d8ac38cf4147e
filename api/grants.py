"""Grants: `read` or `write` on one record for one user (`user:<id>`) or group (`group:<id>`).

Only a record's owner and admins list and change its grants; whoever else may read the record
gets 403, anyone who may not, 404. A grant never makes its grantee an owner: `owner_id` never
changes, and grantees never delete. Sharing and unsharing are security events of the owner.
"""

import re
import uuid

import sqlalchemy as sa
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from api import events, visibility
from api.errors import Conflict, Forbidden, NotFound
from api.extensions import db
from api.models import Group, Record, RecordGrant, User, utcnow
from api.pagination import list_binding, newest_first

GRANTEE = re.compile(
    r"(?P<kind>user|group):(?P<id>[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12})"
)


def _managed_record(caller, collection: str, record_id: uuid.UUID) -> uuid.UUID:
    """The owner of a record whose grants the caller may manage: 404 when it may not read it,
    403 when it may read it but is neither its owner nor an admin."""
    stmt = sa.select(Record.owner_id).where(
        Record.id == record_id, Record.collection == collection, visibility.readable(caller)
    )
    owner_id = db.session.scalar(stmt)
    if owner_id is None:
        raise NotFound("No such record.")
    if owner_id != caller.id and caller.role != "admin":
        raise Forbidden("Only the record's owner or an admin may manage its grants.")
    return owner_id


def page(caller, collection: str, record_id: uuid.UUID, *, limit: int, cursor: str | None):
    """A record's grants, newest first."""
    _managed_record(caller, collection, record_id)
    stmt = db.select(RecordGrant).where(RecordGrant.record_id == record_id)
    binding = list_binding("grants", record_id)
    return newest_first(stmt, RecordGrant.id, binding=binding, limit=limit, cursor=cursor)


def parse_grantee(grantee: str) -> tuple[str, uuid.UUID]:
    """("user" | "group", id) of `user:<id>` or `group:<id>`; 422 for anything else."""
    match = GRANTEE.fullmatch(grantee)
    try:
        if match:
            return match["kind"], uuid.UUID(match["id"])
    except ValueError:
        pass
    raise ValidationError({"grantee": ["A grantee is user:<id> or group:<id>."]})


def put(caller, collection: str, record_id: uuid.UUID, grantee: str, *, access: str):
    """Grant `access` to a user or group, or change the access it has."""
    kind, grantee_id = parse_grantee(grantee)
    owner_id = _managed_record(caller, collection, record_id)
    if db.session.get(User if kind == "user" else Group, grantee_id) is None:
        raise ValidationError({"grantee": [f"No such {kind}."]})
    if kind == "user" and grantee_id == owner_id:
        raise ValidationError({"grantee": ["The owner has every access already."]})
    grant = _find(record_id, kind, grantee_id)
    if grant is not None and grant.access == access:
        return grant
    if grant is None:
        grant = RecordGrant(record_id=record_id, access=access, created_at=utcnow())
        setattr(grant, f"{kind}_id", grantee_id)
        db.session.add(grant)
    grant.access = access
    try:
        db.session.commit()
    except IntegrityError:  # the same grantee was granted at the same moment
        db.session.rollback()
        raise Conflict(
            "The grant was changed by another request at the same time; retry."
        ) from None
    events.emit(
        "record_shared",
        user_id=owner_id,
        collection=collection,
        record_id=str(record_id),
        grantee=grant.grantee,
        access=access,
    )
    return grant


def delete(caller, collection: str, record_id: uuid.UUID, grantee: str) -> None:
    """Revoke a grant (none: nothing to do); the grantee's access ends with this commit."""
    kind, grantee_id = parse_grantee(grantee)
    owner_id = _managed_record(caller, collection, record_id)
    grant = _find(record_id, kind, grantee_id)
    if grant is None:
        return
    db.session.delete(grant)
    db.session.commit()
    events.emit(
        "record_unshared",
        user_id=owner_id,
        collection=collection,
        record_id=str(record_id),
        grantee=f"{kind}:{grantee_id}",
    )


def _find(record_id: uuid.UUID, kind: str, grantee_id: uuid.UUID) -> RecordGrant | None:
    column = RecordGrant.user_id if kind == "user" else RecordGrant.group_id
    stmt = db.select(RecordGrant).where(RecordGrant.record_id == record_id, column == grantee_id)
    return db.session.scalar(stmt)
