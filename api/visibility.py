"""Who may read and write a record, as SQL: WHERE clauses and a CASE over the `records` table.

A record is readable by its owner; by a user or a group member it is granted to (read or
write); by every signed-in user when its collection's policy reads `users`, and by anyone,
with no token, when it reads `public`; and by admins, who read every record. Scopes narrow
that: `own` is the caller's records, `shared` those granted to the caller (directly or through
a group) that it does not own, `all` everything it may read. An anonymous caller always reads
in `all`, which for it is the records of `public` collections.

Every rule is decided by the statement that lists or fetches: EXISTS subqueries over grants
(indexed by record) and group memberships (indexed by user), correlated with the enclosing
query's `records` row, so a page costs one query and a revoked grant or membership counts from
the next statement on. The expressions work in any SELECT, UPDATE or DELETE over `records`,
also joined with other tables (the subqueries correlate with `records` itself, not an alias).

`readable` and `access_column` take a caller and bind its id; the statement caches of
api/records.py use the same rules with the id left as the `visibility_caller` parameter.
"""

import functools

import sqlalchemy as sa

from api.constants import SCOPES
from api.models import CollectionPolicy, GroupMember, Record, RecordGrant

ANONYMOUS, USER, ADMIN = "anonymous", "user", "admin"
CALLER = "visibility_caller"  # the bound parameter that holds the caller's id

_records = Record.__table__
_grants = RecordGrant.__table__
_members = GroupMember.__table__
_policies = CollectionPolicy.__table__


def kind_of(caller) -> str:
    """How the rules see a caller: an api.tokens.Caller (or anything with `id` and `role`),
    or None for no token."""
    if caller is None:
        return ANONYMOUS
    return ADMIN if caller.role == "admin" else USER


def readable(caller, scope: str = "all") -> sa.ColumnElement[bool]:
    """True for the `records` rows that `caller` (None: anonymous) may read in `scope`."""
    return readable_rule(kind_of(caller), scope, _caller_id(caller))


def access_column(caller) -> sa.ColumnElement[str]:
    """What `caller` may do with a `records` row it reads: "owner", "write" or "read"."""
    return access_rule(kind_of(caller), _caller_id(caller))


def writable(caller) -> sa.ColumnElement[bool]:
    """True for the rows whose data `caller` may change (PUT, PATCH)."""
    return writable_rule(kind_of(caller), _caller_id(caller))


def deletable(caller) -> sa.ColumnElement[bool]:
    """True for the rows `caller` may delete: its own, or any for an admin."""
    return deletable_rule(kind_of(caller), _caller_id(caller))


def _caller_id(caller) -> sa.BindParameter:
    """The caller's id, bound: unique, so that rules of several callers may share a statement."""
    value = None if caller is None else caller.id
    return sa.bindparam(CALLER, value, type_=sa.Uuid(), unique=True)


def unbound() -> sa.BindParameter:
    """The caller's id as a parameter to pass at execution ({CALLER: id}): cached statements."""
    return sa.bindparam(CALLER, type_=sa.Uuid())


# --- the rules, over a caller id parameter -----------------------------------------------------


def readable_rule(kind: str, scope: str, me: sa.BindParameter) -> sa.ColumnElement[bool]:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    if kind == ANONYMOUS:
        return _policy_reads(("public",))
    if scope == "own":
        return _records.c.owner_id == me
    if scope == "shared":
        return sa.and_(_records.c.owner_id != me, granted(me))
    if kind == ADMIN:
        return sa.true()
    return sa.or_(_records.c.owner_id == me, granted(me), _policy_reads(("users", "public")))


def access_rule(kind: str, me: sa.BindParameter) -> sa.ColumnElement[str]:
    if kind == ANONYMOUS:
        return sa.literal("read", sa.String())
    if kind == ADMIN:
        return sa.case((_records.c.owner_id == me, "owner"), else_="write")
    return sa.case(
        (_records.c.owner_id == me, "owner"), (granted(me, "write"), "write"), else_="read"
    )


def writable_rule(kind: str, me: sa.BindParameter) -> sa.ColumnElement[bool]:
    if kind == ANONYMOUS:
        return sa.false()
    if kind == ADMIN:
        return sa.true()
    return sa.or_(_records.c.owner_id == me, granted(me, "write"))


def deletable_rule(kind: str, me: sa.BindParameter) -> sa.ColumnElement[bool]:
    if kind == ANONYMOUS:
        return sa.false()
    if kind == ADMIN:
        return sa.true()
    return _records.c.owner_id == me


def granted(me: sa.BindParameter, access: str | None = None) -> sa.ColumnElement[bool]:
    """A grant of the row's record to `me`, or to a group `me` belongs to (of `access`, when
    given): two index lookups, by (record, user) and by (record, group) then (group, user)."""
    direct = sa.select(1).where(_grants.c.record_id == _records.c.id, _grants.c.user_id == me)
    through_group = (
        sa.select(1)
        .select_from(_grants.join(_members, _members.c.group_id == _grants.c.group_id))
        .where(_grants.c.record_id == _records.c.id, _members.c.user_id == me)
    )
    if access is not None:
        direct = direct.where(_grants.c.access == access)
        through_group = through_group.where(_grants.c.access == access)
    # correlate_except, not correlate(records): api/changes.py reads these rules over the
    # change log's columns instead of the records table, and the subqueries must follow.
    return sa.or_(
        direct.correlate_except(_grants).exists(),
        through_group.correlate_except(_grants, _members).exists(),
    )


def grantees(*where: sa.ColumnElement[bool]) -> sa.Select:
    """(record_id, user_id) of every user that a grant lets read the `records` rows matching
    `where`, directly or as a member of a granted group."""
    matching = sa.select(_records.c.id).where(*where)
    direct = sa.select(_grants.c.record_id, _grants.c.user_id).where(
        _grants.c.record_id.in_(matching), _grants.c.user_id.is_not(None)
    )
    through_group = (
        sa.select(_grants.c.record_id, _members.c.user_id)
        .select_from(_grants.join(_members, _members.c.group_id == _grants.c.group_id))
        .where(_grants.c.record_id.in_(matching))
    )
    return sa.union(direct, through_group)


def _policy_reads(reads: tuple[str, ...]) -> sa.ColumnElement[bool]:
    """The row's collection has a policy that lets these readers read."""
    # The readers as separate bound values, not one expanding parameter: the Statement of
    # api/database/statements.py binds a statement's values once, when it compiles it.
    readers = [sa.literal(read, sa.String()) for read in reads]
    policy = sa.select(1).where(
        _policies.c.name == _records.c.collection, _policies.c.read.in_(readers)
    )
    return policy.correlate_except(_policies).exists()


@functools.lru_cache(maxsize=64)
def cached_rules(kind: str, scope: str) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[str]]:
    """(readable, access) of a kind of caller in a scope, with the caller's id unbound."""
    me = unbound()
    if scope == "own" and kind != ANONYMOUS:  # the caller's own records, nothing to look up
        return readable_rule(kind, scope, me), sa.literal("owner", sa.String())
    return readable_rule(kind, scope, me), access_rule(kind, me)
