"""Request threads keep a database connection from request to request, within the pool; the hot
statements run on its DB-API cursor and read what SQLAlchemy would read (api/database/)."""

import concurrent.futures
import gc
import itertools
import sqlite3
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import request
from helpers import API, create
from sqlalchemy.dialects import postgresql, sqlite
from sse import Stream
from werkzeug.serving import make_server

from api import database, query, records, tokens, visibility
from api.database.statements import _result_processor
from api.extensions import db
from api.models import Record, UTCDateTime, utcnow
from api.tokens import LAST_USED_RESOLUTION


def kept(app) -> set:
    return app.extensions["coffer_kept_connections"].kept


def checkouts(app) -> list:
    """Every checkout from the app's pool from now on."""
    seen: list = []
    with app.app_context():
        sa.event.listen(db.engine.pool, "checkout", lambda *args: seen.append(args[0]))
    return seen


def test_a_thread_keeps_one_connection_across_its_requests(app, client, user):
    record = create(client, user, {"n": 1})
    assert len(kept(app)) == 1
    (conn,) = kept(app)
    seen = checkouts(app)
    for _ in range(5):
        assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
        url = f"{API}/data/tasks/{record['id']}"
        assert client.get(url, headers=user.headers).status_code == 200
        assert client.get(f"{API}/data/tasks", headers=user.headers).status_code == 200
    assert kept(app) == {conn}
    assert seen == [], "a request checked a connection out of the pool"


def test_a_failed_write_leaves_the_kept_connection_with_nothing_open(app, client, user):
    """A DELETE whose If-Match no longer holds has begun its transaction when it learns so:
    the request ends it, and other connections write at once (SQLite: no lock left)."""
    record = create(client, user, {"n": 1})
    url = f"{API}/data/tasks/{record['id']}"
    stale = client.delete(url, headers={**user.headers, "If-Match": f'"{record["id"]}.9"'})
    assert stale.status_code == 412
    (conn,) = kept(app)
    assert not conn.in_transaction()
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            other = sqlite3.connect(db.engine.url.database, timeout=0)
            other.execute("UPDATE records SET version = version WHERE id IS NOT NULL")
            other.commit()
            other.close()
    assert client.delete(url, headers=user.headers).status_code == 204


def test_a_write_left_open_on_the_cursor_is_rolled_back_when_its_request_ends(app, client, user):
    """A `Write` run on SQLite outside `dbapi_transaction` begins a transaction that only
    sqlite3 knows of: the request's end rolls it back, so that the kept connection holds no
    write lock, and no later commit on it writes what that request left."""
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("on PostgreSQL the request's connection commits each statement")
    record = create(client, user, {"n": 1})
    renaming = database.Write(
        sa.update(Record.__table__)
        .where(Record.__table__.c.id == sa.bindparam("record_id"))
        .values(collection="renamed")
    )
    with app.test_request_context():
        assert renaming.run({"record_id": uuid.UUID(record["id"])}) == 1
        dbapi = database.connection().connection.dbapi_connection
        assert dbapi.in_transaction
    assert not dbapi.in_transaction
    with app.app_context():
        other = sqlite3.connect(db.engine.url.database, timeout=0)  # fails if a lock is held
        other.execute("UPDATE records SET version = version WHERE id IS NOT NULL")
        other.commit()
        other.close()
    create(client, user, {"n": 2})  # a commit on the same kept connection
    url = f"{API}/data/tasks/{record['id']}"
    assert client.get(url, headers=user.headers).status_code == 200
    assert client.get(f"{API}/data/renamed", headers=user.headers).get_json()["items"] == []


def test_a_stream_gives_its_threads_kept_connection_back(app, client, user):
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    assert len(kept(app)) == 1
    response = client.get(f"{API}/data/tasks/changes", headers=user.headers, buffered=False)
    stream = Stream(response)
    try:
        assert kept(app) == set()  # the stream's thread holds no connection while it waits
        assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
        assert len(kept(app)) == 1
    finally:
        stream.close()


def test_no_more_threads_keep_a_connection_than_COFFER_THREADS(make_app, accounts_for):
    """A threaded server of many more threads than the pool: every request answers, no more
    than COFFER_THREADS connections are kept, and each thread's goes back when it ends."""
    app = make_app(COFFER_THREADS=2)
    account = accounts_for(app).create()
    client = app.test_client()
    record = create(client, account, {"n": 0})
    main = kept(app)  # this thread's, from the request above
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.port}{API}"
    most_kept = []

    def requests(_n: int) -> list[int]:
        statuses = []
        for _ in range(12):
            for url in (
                f"{base}/users/me",
                f"{base}/data/tasks/{record['id']}",
                f"{base}/data/tasks",
            ):  # noqa: E501
                call = urllib.request.Request(url, headers=account.headers)
                with urllib.request.urlopen(call, timeout=30) as answer:
                    statuses.append(answer.status)
            most_kept.append(len(kept(app)))
        return statuses

    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            statuses = [s for batch in pool.map(requests, range(16)) for s in batch]
    finally:
        server.shutdown()
        server.server_close()
    assert statuses == [200] * (16 * 12 * 3)
    assert max(most_kept) <= 2
    for _ in range(50):  # the server's request threads have ended
        gc.collect()
        if kept(app) == main:
            break
        time.sleep(0.1)
    assert kept(app) == main
    with app.app_context():
        assert db.engine.pool.checkedout() == 1


def test_a_pool_that_the_engine_disposes_of_takes_the_kept_connections_with_it(app, client, user):
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    (conn,) = kept(app)
    with app.app_context():
        db.engine.dispose()
    assert kept(app) == set() and conn.closed
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200


# --- the same rows as SQLAlchemy reads --------------------------------------------------------


def through_sqlalchemy(statement: database.Statement, params: dict) -> list[dict]:
    conn = database.connection()
    return [dict(row) for row in conn.execute(statement.stmt, params).mappings()]


@pytest.fixture
def world(app, client, accounts):
    """Records of every JSON type under one key, all shared with a reader (one to write)."""
    owner, reader = accounts.create(), accounts.create()
    values = [1.5, True, "s", None, {"k": 1}, 10**15, "é"]
    made = [create(client, owner, {"n": i, "x": x, "status": "open"}) for i, x in enumerate(values)]
    for i, record in enumerate(made):
        url = f"{API}/data/tasks/{record['id']}/grants/user:{reader.id}"
        access = "write" if i == 0 else "read"
        assert client.put(url, json={"access": access}, headers=owner.headers).status_code == 200
    return owner, reader, made[0]


def test_the_session_lookup_reads_what_sqlalchemy_reads(app, user):
    now = utcnow()
    params = {"sid": uuid.UUID(user.session_id), "now": now, "stale": now - LAST_USED_RESOLUTION}
    with app.test_request_context():
        raw = tokens._LIVE_SESSION.all(params)
        assert raw == through_sqlalchemy(tokens._LIVE_SESSION, params)
        assert raw[0]["live"] is True and raw[0]["created_at"].utcoffset() == timedelta(0)
        ended = {**params, "now": now + timedelta(days=400)}
        assert tokens._LIVE_SESSION.all(ended)[0]["live"] is False


@pytest.mark.parametrize("kind", [visibility.USER, visibility.ADMIN, visibility.ANONYMOUS])
def test_a_record_by_id_reads_what_sqlalchemy_reads(app, world, kind):
    owner, reader, shared = world
    caller = {visibility.USER: reader.id, visibility.ADMIN: owner.id}.get(kind)
    with app.test_request_context():
        for of_owner in (False, True):
            statement = records._by_id(kind, of_owner)
            params = {
                visibility.CALLER: caller and uuid.UUID(caller),
                "collection": "tasks",
                "owner_id": uuid.UUID(owner.id),
                "id": uuid.UUID(shared["id"]),
            }
            assert statement.all(params) == through_sqlalchemy(statement, params)


@pytest.mark.parametrize(
    "listing",
    ["", "data.n=gte.2", "data.x=eq.1.5", "data.x=eq.true", "data.x=in.(s,é)", "data.n=lt.5"],
)
@pytest.mark.parametrize("scope", visibility.SCOPES)
def test_a_first_page_reads_what_sqlalchemy_reads(app, world, listing, scope):
    read = 0
    for sort, account in itertools.product([None, "-data.n", "data.x", "updated_at"], world[:2]):
        with app.test_request_context(f"/?{listing}"):
            parsed = query.parse(request.args, sort=sort)
            base = records._readable_records(visibility.USER, scope, False)
            dialect = database.connection().dialect.name
            statement = records._first_page(dialect, base, records._typed(parsed), parsed)
            params = {
                visibility.CALLER: uuid.UUID(account.id),
                "collection": "tasks",
                "owner_id": None,
                "limit": 21,
            }
            rows, expected = statement.all(params), through_sqlalchemy(statement, params)
            assert rows == expected and [list(r) for r in rows] == [list(r) for r in expected]
            read += len(rows)
    assert read, "the listing reads something"


def test_sqlite_uuids_and_datetimes_read_as_the_types_read_them():
    """The readers of SQLite's stored UUIDs and datetimes (api/database/statements.py) give
    what the column types' own result processors give, for their usual and other forms."""
    dialect = sqlite.dialect()
    found = uuid.uuid4()
    for type_, values in [
        (sa.Uuid(), [found.hex, str(found), None]),
        (UTCDateTime(), ["2026-01-02 03:04:05.000006", "2026-01-02 03:04:05", "2026-01-02", None]),
        (sa.DateTime(), ["2026-12-31 23:59:59.999999", "2026-01-02 03:04:05", None]),
    ]:
        own = type_.dialect_impl(dialect).result_processor(dialect, None)
        fast = _result_processor(type_, dialect)
        for value in values:
            # The same value; of a subclass that formats itself faster (tests/test_stored_values.py)
            assert fast(value) == own(value) and isinstance(fast(value), type(own(value))), value
            if isinstance(own(value), uuid.UUID):
                assert (str(fast(value)), hash(fast(value))) == (str(found), hash(found))
            if hasattr(own(value), "tzinfo"):
                assert fast(value).tzinfo == own(value).tzinfo


class _Shifted(sa.TypeDecorator):
    """A type whose reading changes aware datetimes too."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value, dialect):
        return None if value is None else value + timedelta(hours=1)


def test_postgresql_reads_timestamptz_without_a_processor_only_where_it_would_change_nothing():
    """psycopg reads a `timestamptz` aware: UTCDateTime's reading, which only makes naive
    values aware, is skipped there; a type whose reading changes aware values keeps it."""
    dialect = postgresql.psycopg.dialect()
    assert _result_processor(UTCDateTime(), dialect) is None
    shifted = _result_processor(_Shifted(), dialect)
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert shifted is not None and shifted(moment) == moment + timedelta(hours=1)
    assert _result_processor(UTCDateTime(), sqlite.dialect()) is not None  # stored naive there
