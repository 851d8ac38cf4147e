"""Groups: users that records are shared with together (a grant to `group:<id>`).

Its creator owns a group and is one of its members, listed and reached by its grants like any
other, and cannot leave it. Members read the group; its owner (or an admin) renames it,
deletes it (which ends its grants) and adds or removes members; a member may remove itself.
A group the caller does not belong to is 404 to it, as if it did not exist (admins see all).
"""

import uuid

import sqlalchemy as sa
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError
from uuid6 import uuid7

from api.errors import Conflict, Forbidden, InvalidRequest, NotFound
from api.extensions import db
from api.models import Group, GroupMember, User, utcnow
from api.pagination import decode_cursor, encode_cursor, list_binding, newest_first


def create(caller, *, name: str) -> Group:
    group = Group(id=uuid7(), name=name, owner_id=caller.id, created_at=utcnow())
    db.session.add(group)
    db.session.add(GroupMember(group_id=group.id, user_id=caller.id, added_at=group.created_at))
    db.session.commit()
    return group


def page_of_mine(caller, *, limit: int, cursor: str | None) -> tuple[list[Group], str | None]:
    """The groups the caller owns or belongs to (an owner is a member), newest first."""
    stmt = (
        db.select(Group)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.user_id == caller.id)
    )
    binding = list_binding("groups", caller.id)
    return newest_first(stmt, Group.id, binding=binding, limit=limit, cursor=cursor)


def get(caller, group_id: uuid.UUID) -> Group:
    """A group the caller belongs to (any group for an admin); 404 for any other."""
    group = db.session.get(Group, group_id)
    if group is None or not (caller.role == "admin" or _is_member(group_id, caller.id)):
        raise NotFound("No such group.")
    return group


def managed(caller, group_id: uuid.UUID) -> Group:
    """A group the caller may change: its owner's, or any for an admin; 403 for a member."""
    group = get(caller, group_id)
    if caller.role != "admin" and group.owner_id != caller.id:
        raise Forbidden("Only the group's owner or an admin may change it.")
    return group


def rename(caller, group_id: uuid.UUID, *, name: str) -> Group:
    group = managed(caller, group_id)
    group.name = name
    db.session.commit()
    return group


def delete(caller, group_id: uuid.UUID) -> None:
    """Delete the group; its memberships and grants go with it (ON DELETE CASCADE)."""
    group = managed(caller, group_id)
    db.session.execute(sa.delete(Group).where(Group.id == group.id))
    db.session.commit()


def members_page(caller, group_id: uuid.UUID, *, limit: int, cursor: str | None):
    """The group's members with their addresses, by user id: a keyset page."""
    get(caller, group_id)
    binding = list_binding("group-members", group_id)
    stmt = (
        sa.select(GroupMember.user_id, User.email, GroupMember.added_at)
        .join(User, User.id == GroupMember.user_id)
        .where(GroupMember.group_id == group_id)
        .order_by(GroupMember.user_id)
        .limit(limit + 1)
    )
    after = _after(cursor, binding)
    if after is not None:
        stmt = stmt.where(GroupMember.user_id > after)
    rows = [row._asdict() for row in db.session.execute(stmt)]
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor({"k": binding, "after": str(rows[-1]["user_id"])})


def _after(cursor: str | None, binding: str) -> uuid.UUID | None:
    if not cursor:
        return None
    payload = decode_cursor(cursor)
    if not isinstance(payload, dict) or payload.get("k") != binding:
        raise InvalidRequest("The cursor belongs to another list, reader or filter.")
    try:
        return uuid.UUID(str(payload.get("after")))
    except ValueError:
        raise InvalidRequest("The cursor is malformed.") from None


def add_member(caller, group_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Add a user (the owner or an admin does); a member already is one. 422: no such user."""
    managed(caller, group_id)
    if db.session.get(User, user_id) is None:
        raise ValidationError({"user_id": ["No such user."]})
    if not _is_member(group_id, user_id):
        db.session.add(GroupMember(group_id=group_id, user_id=user_id, added_at=utcnow()))
        try:
            db.session.commit()
        except IntegrityError:  # added by another request at the same moment: a member
            db.session.rollback()


def remove_member(caller, group_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Remove a member: the owner or an admin removes anyone, a member itself; the owner
    cannot leave (409). Its access through the group's grants ends with this commit.
    A user who is not a member is removed already (idempotent); 422: no such user."""
    group = get(caller, group_id)
    if user_id != caller.id and caller.role != "admin" and group.owner_id != caller.id:
        raise Forbidden("Only the group's owner or an admin may remove other members.")
    if user_id != caller.id and db.session.get(User, user_id) is None:
        raise ValidationError({"user_id": ["No such user."]})
    if user_id == group.owner_id:
        raise Conflict("The owner of a group cannot leave it; delete the group instead.")
    db.session.execute(
        sa.delete(GroupMember).where(
            GroupMember.group_id == group_id, GroupMember.user_id == user_id
        )
    )
    db.session.commit()


def _is_member(group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    return db.session.get(GroupMember, (group_id, user_id)) is not None
