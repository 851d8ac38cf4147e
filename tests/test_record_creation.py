"""Creating a record: the INSERT carries the collection's policy, and the change it logs is
what the change feed expects — on PostgreSQL both are one statement, on SQLite one
transaction on the DB-API cursor (api/record_creation.py)."""

import fcntl
import os
import sqlite3
import threading
import uuid
from datetime import datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa
from helpers import API, assert_problem

from api import changes, database, feed
from api.extensions import db
from api.models import Change, Record, utcnow

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


def positions(app) -> list[tuple[int, str, int]]:
    """(position, kind, data.n or previous.n) of every change, in position order; on
    PostgreSQL after the sequencer has numbered what committed."""
    with app.app_context():
        with db.engine.connect() as conn:
            changes.number(conn)
            rows = conn.execute(
                sa.select(Change.position, Change.kind, Change.data, Change.previous).order_by(
                    Change.position
                )
            ).all()
    return [(p, kind, (data or previous)["n"]) for p, kind, data, previous in rows]


def test_creates_and_the_other_writes_get_one_position_after_another(app, client, user):
    """A create logs its change on the DB-API cursor, an update or a deletion through
    SQLAlchemy: all of them take the next position, none is skipped or given twice."""
    first = client.post(f"{DATA}/notes", json={"data": {"n": 1}}, headers=user.headers)
    url = f"{DATA}/notes/{first.get_json()['id']}"
    assert client.put(url, json={"data": {"n": 2}}, headers=user.headers).status_code == 200
    for n in (3, 4):
        made = client.post(f"{DATA}/notes", json={"data": {"n": n}}, headers=user.headers)
        assert made.status_code == 201
    assert client.delete(f"{DATA}/notes", headers=user.headers).status_code == 204  # 3 records
    logged = positions(app)
    start = logged[0][0]
    assert [p for p, _, _ in logged] == list(range(start, start + 7))
    assert [(kind, n) for _, kind, n in logged][:4] == [
        ("created", 1),
        ("updated", 2),
        ("created", 3),
        ("created", 4),
    ]
    assert sorted(n for _, kind, n in logged[4:] if kind == "deleted") == [2, 3, 4]


def test_after_the_whole_log_is_pruned_a_create_goes_on_after_the_last_position(app, client, user):
    """On SQLite a create numbers its change as it inserts it: after everything was pruned,
    after the pruned positions, so a client resuming from one never meets it again."""
    for n in (1, 2):
        assert client.post(f"{DATA}/notes", json={"data": {"n": n}}, headers=user.headers)
    passed = positions(app)[-1][0]
    with app.app_context():
        with db.engine.connect() as conn:
            conn.execute(sa.update(Change).values(occurred_at=utcnow() - timedelta(days=2)))
            conn.commit()
            assert changes.prune(conn, 3600) == 2
            assert changes.pruned_through(conn) == passed
    made = client.post(f"{DATA}/notes", json={"data": {"n": 3}}, headers=user.headers)
    assert made.status_code == 201
    assert positions(app) == [(passed + 1, "created", 3)]


def new_note(owner) -> dict:
    """A record of `owner`'s in "notes", as record creation writes one."""
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "collection": "notes",
        "owner_id": uuid.UUID(owner.id),
        "data": {"n": 1},
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


def test_a_failure_between_a_record_and_its_change_on_the_cursor_leaves_neither(app, client, user):
    """Statements run on the DB-API cursor commit together in `dbapi_transaction`: one that
    fails before the end rolls back on that connection, and lets the next writer in."""
    record = new_note(user)
    with app.test_request_context():
        conn = database.connection()
        with pytest.raises(RuntimeError), database.dbapi_transaction(conn):
            assert database.Write(sa.insert(Record.__table__)).run(record) == 1
            feed.log_one(changes.created(record))
            raise RuntimeError("the request fails before its commit")
        dbapi = conn.connection.driver_connection
        if conn.dialect.name == "sqlite":
            assert not dbapi.in_transaction
        else:
            assert dbapi.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert rows(app, Record, collection="notes") == []
    assert rows(app, Change, collection="notes") == []
    made = client.post(f"{DATA}/notes", json={"data": {"n": 2}}, headers=user.headers)
    assert made.status_code == 201
    assert [c["data"] for c in rows(app, Change, collection="notes")] == [{"n": 2}]


def _post_from_another_thread(client, account, data: dict, within: float):
    """A POST from a thread of its own, the next writer of the database: its response, or
    None when it had not answered after `within` seconds."""
    answered = []
    thread = threading.Thread(
        target=lambda: answered.append(
            client.post(f"{DATA}/notes", json={"data": data}, headers=account.headers)
        ),
        daemon=True,
    )
    thread.start()
    thread.join(within)
    return answered[0] if answered else None


def test_a_commit_that_fails_on_sqlite_leaves_neither_row_and_lets_the_next_writer_in(
    app, client, user
):
    """SQLite checks a deferred foreign key only at COMMIT: a violation of one, made in the
    same transaction as a record and its change (Coffer's connections enforce foreign keys),
    makes `dbapi_transaction`'s own COMMIT fail. The error is raised as SQLAlchemy raises its
    own (IntegrityError, which the app answers as a problem), nothing of the transaction is
    left, the connection is out of its transaction, and the next writers, of this process or
    another, get in."""
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("on PostgreSQL the COMMIT is psycopg's own `transaction()`")
    record = new_note(user)
    with app.test_request_context():
        conn = database.connection()
        dbapi = conn.dbapi()
        try:
            with pytest.raises(sa.exc.DBAPIError) as failed, database.dbapi_transaction(conn):
                assert database.Write(sa.insert(Record.__table__)).run(record) == 1
                feed.log_one(changes.created(record))
                dbapi.execute("CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)")
                dbapi.execute(
                    "CREATE TEMP TABLE child (parent_id INTEGER REFERENCES parent (id)"
                    " DEFERRABLE INITIALLY DEFERRED)"
                )
                dbapi.execute("INSERT INTO child VALUES (1)")  # no parent 1: fails at COMMIT
            assert not dbapi.in_transaction
            temp_tables = dbapi.execute("SELECT name FROM temp.sqlite_master").fetchall()
        finally:
            dbapi.execute("DROP TABLE IF EXISTS temp.child")
            dbapi.execute("DROP TABLE IF EXISTS temp.parent")
    error = failed.value
    assert isinstance(error, sa.exc.IntegrityError) and error.statement == "COMMIT"
    assert isinstance(error.orig, sqlite3.IntegrityError)
    assert "FOREIGN KEY constraint failed" in str(error.orig)
    assert temp_tables == []  # rolled back with the rest
    assert rows(app, Record, collection="notes") == []
    assert rows(app, Change, collection="notes") == []
    lock = os.open(conn.engine.url.database + "-writers.lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another process's writer gets in
    finally:
        os.close(lock)
    made = _post_from_another_thread(client, user, {"n": 2}, within=20)
    assert made is not None, "the next writer still waits for the failed one's turn"
    assert made.status_code == 201
    again = client.post(f"{DATA}/notes", json={"data": {"n": 3}}, headers=user.headers)
    assert again.status_code == 201  # on the connection whose COMMIT failed
    assert [c["data"] for c in rows(app, Change, collection="notes")] == [{"n": 2}, {"n": 3}]


def test_a_write_with_an_expanding_in_is_refused_and_runs_nothing(app, client, user):
    """`Write` takes no `in` of a list (its SQL would follow the list): it raises TypeError
    before the statement reaches the database, every time it is run. The refusal is caught
    inside the transaction, which commits: a statement that had run would have deleted."""
    made = client.post(f"{DATA}/notes", json={"data": {"n": 1}}, headers=user.headers)
    assert made.status_code == 201
    record_id = uuid.UUID(made.get_json()["id"])
    table = Record.__table__
    deleting = database.Write(
        sa.delete(table).where(table.c.id.in_(sa.bindparam("ids", expanding=True)))
    )
    with app.test_request_context():
        conn = database.connection()
        with database.dbapi_transaction(conn):
            for _ in range(2):
                with pytest.raises(TypeError, match="expanding"):
                    deleting.run({"ids": [record_id]})
    assert [stored["id"] for stored in rows(app, Record, collection="notes")] == [record_id]
    read = client.get(f"{DATA}/notes/{record_id}", headers=user.headers)
    assert read.status_code == 200 and read.get_json()["data"] == {"n": 1}
