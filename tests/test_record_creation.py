"""Creating a record: the INSERT carries the collection's policy, and the change it logs is
what the change feed expects — on PostgreSQL both are one statement (api/records.py)."""

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from helpers import API, assert_problem

from api.extensions import db
from api.models import Change, Record

DATA = f"{API}/data"


def rows(app, model, **where) -> list[dict]:
    table = model.__table__
    stmt = sa.select(table).where(*(table.c[name] == value for name, value in where.items()))
    with app.app_context():
        return [dict(row) for row in db.session.execute(stmt).mappings()]


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_created_record_logs_exactly_its_creation(app, client, user):
    body = {"data": {"title": "ünïcode", "n": 1.5, "tags": ["a", None], "deep": {"x": []}}}
    response = client.post(f"{DATA}/notes", json=body, headers=user.headers)
    assert response.status_code == 201
    record = response.get_json()
    [stored] = rows(app, Record, id=uuid.UUID(record["id"]))
    assert stored["data"] == body["data"] and stored["version"] == 1
    [change] = rows(app, Change, record_id=uuid.UUID(record["id"]))
    assert change["kind"] == "created"
    assert (change["collection"], str(change["owner_id"])) == ("notes", user.id)
    assert (change["version"], change["data"]) == (1, body["data"])
    assert change["created_at"] == change["updated_at"] == stamp(record["created_at"])
    assert (
        timedelta(0) <= change["occurred_at"] - stamp(record["created_at"]) < timedelta(seconds=5)
    )
    assert (change["previous"], change["previous_updated_at"], change["readers"]) == (
        None,
        None,
        None,
    )


def test_a_users_post_where_only_admins_create_writes_nothing(app, client, admin, user, accounts):
    policy = {"read": "users", "create": "admins"}
    put = client.put(f"{API}/collections/catalogue", json=policy, headers=admin.headers)
    assert put.status_code == 200
    refused = client.post(f"{DATA}/catalogue", json={"data": {"n": 1}}, headers=user.headers)
    assert assert_problem(refused, 403)["detail"] == (
        "Only admins and services create records in this collection."
    )
    assert rows(app, Record, collection="catalogue") == []
    assert rows(app, Change, collection="catalogue") == []
    for account in (admin, accounts.create(role="service")):
        made = client.post(f"{DATA}/catalogue", json={"data": {"n": 2}}, headers=account.headers)
        assert made.status_code == 201
    assert len(rows(app, Record, collection="catalogue")) == 2
    assert [c["kind"] for c in rows(app, Change, collection="catalogue")] == ["created"] * 2
    # Back to users: the next POST follows.
    put = client.put(
        f"{API}/collections/catalogue", json={**policy, "create": "users"}, headers=admin.headers
    )
    assert put.status_code == 200
    again = client.post(f"{DATA}/catalogue", json={"data": {"n": 3}}, headers=user.headers)
    assert again.status_code == 201
    assert len(rows(app, Change, collection="catalogue")) == 3
