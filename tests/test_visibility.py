"""api/visibility.py on its own: the WHERE clause and the access CASE work in any statement over
`records`, joined with other tables too (the change feed filters its events with them)."""

import uuid
from types import SimpleNamespace

import sqlalchemy as sa
from helpers import API

from api import visibility
from api.extensions import db
from api.models import Record, RecordGrant, User

_records = Record.__table__


def caller_of(account, role="user"):
    """What the rules read of a caller: its id and role (an api.tokens.Caller has both)."""
    return SimpleNamespace(id=uuid.UUID(account.id), role=role)


def make(client, account, collection="lists"):
    response = client.post(f"{API}/data/{collection}", json={"data": {}}, headers=account.headers)
    return uuid.UUID(response.get_json()["id"])


def test_the_rules_work_joined_with_other_tables_and_in_updates(app, client, accounts):
    owner, reader, stranger = accounts.create(), accounts.create(), accounts.create()
    shared, private = make(client, owner), make(client, owner)
    path = f"{API}/data/lists/{shared}/grants/user:{reader.id}"
    client.put(path, json={"access": "read"}, headers=owner.headers)
    with app.app_context():
        users = User.__table__
        joined = (
            sa.select(_records.c.id, users.c.email, visibility.access_column(caller_of(reader)))
            .select_from(_records.join(users, users.c.id == _records.c.owner_id))
            .where(visibility.readable(caller_of(reader)))
        )
        assert db.session.execute(joined).all() == [(shared, owner.email, "read")]
        grants = RecordGrant.__table__
        with_grants = (
            sa.select(_records.c.id)
            .select_from(_records.join(grants, grants.c.record_id == _records.c.id))
            .where(visibility.readable(caller_of(reader), "shared"))
        )
        assert db.session.scalars(with_grants).all() == [shared]
        for account, scope, expected in (
            (owner, "own", {shared, private}),
            (owner, "shared", set()),
            (stranger, "all", set()),
            (None, "all", set()),
        ):
            caller = caller_of(account) if account else None
            stmt = sa.select(_records.c.id).where(visibility.readable(caller, scope))
            assert set(db.session.scalars(stmt)) == expected
        both = sa.select(_records.c.id).where(
            visibility.readable(caller_of(reader)), visibility.readable(caller_of(owner), "own")
        )
        assert db.session.scalars(both).all() == [shared]
        admin = caller_of(stranger, role="admin")
        everything = sa.select(_records.c.id, visibility.access_column(admin))
        assert set(db.session.execute(everything)) == {(shared, "write"), (private, "write")}
        update = (
            sa.update(_records)
            .where(visibility.writable(caller_of(reader)))
            .values(version=_records.c.version + 1)
        )
        assert db.session.execute(update).rowcount == 0  # read-only
        db.session.rollback()
    client.put(path, json={"access": "write"}, headers=owner.headers)
    with app.app_context():
        assert db.session.execute(update).rowcount == 1
        db.session.rollback()
