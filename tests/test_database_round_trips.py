"""What a request costs PostgreSQL in round trips, seen on the wire; and the connections the
server closed, which the pool replaces without a ping.

The app talks to PostgreSQL through a TCP relay that reads the frontend protocol: a round trip
is a burst of messages from the app that waits for the server's answer. A warm request runs
each of its statements in one round trip: no ping (`;`), no BEGIN, no ROLLBACK, and no Parse
(psycopg has prepared the statements on their fifth use and still holds them).
"""

import contextlib
import os
import select
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC

import pytest
import sqlalchemy as sa
from helpers import API

from api import records, tokens
from api.database import request_connection
from api.extensions import db

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"),
    reason="round trips to PostgreSQL (TEST_DATABASE_URL)",
)
WARM_UP = 12  # requests before the one counted: psycopg prepares a statement on its 5th use


@dataclass
class Wire:
    """What went through the relay: the app's messages and round trips, by the app's end of
    each connection (its local port)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    connections: int = 0
    round_trips: Counter = field(default_factory=Counter)
    messages: list[tuple[int, str, str]] = field(default_factory=list)  # (port, type, text)

    def reset(self) -> None:
        with self.lock:
            self.connections, self.round_trips, self.messages = 0, Counter(), []


class Relay:
    """A TCP relay to PostgreSQL that parses what the app sends (plain text: sslmode=disable)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.wire = Wire()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                app_side, (_, port) = self.listener.accept()
            except OSError:
                return
            server_side = socket.create_connection(self.upstream)
            self.sockets += [app_side, server_side]
            with self.wire.lock:
                self.wire.connections += 1
            turn = {"app": False}  # whether the app is mid-burst (no answer since it sent)
            threading.Thread(
                target=self._pump, args=(app_side, server_side, turn, port), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server_side, app_side, turn, None), daemon=True
            ).start()

    def _pump(self, source, sink, turn, from_app: int | None) -> None:
        """Pass bytes on; `from_app`: the app's port when the bytes come from the app."""
        parser = _FrontendParser() if from_app is not None else None
        while True:
            try:
                chunk = source.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                for end in (source, sink):  # shutdown wakes the other pump and tells the peer
                    with contextlib.suppress(OSError):
                        end.shutdown(socket.SHUT_RDWR)
                    end.close()
                return
            with self.wire.lock:  # counted before it is passed on: the answer comes after
                if from_app is not None:
                    if not turn["app"]:
                        self.wire.round_trips[from_app] += 1
                        turn["app"] = True
                    self.wire.messages += [(from_app, *m) for m in parser.feed(chunk)]
                else:
                    turn["app"] = False
            try:
                sink.sendall(chunk)
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class _FrontendParser:
    """Splits the app's bytes into protocol messages (after the startup message)."""

    def __init__(self) -> None:
        self.buffer, self.started = b"", False

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        self.buffer += chunk
        messages = []
        while True:
            if not self.started:
                if len(self.buffer) < 4:
                    return messages
                (length,) = struct.unpack("!i", self.buffer[:4])
                if len(self.buffer) < length:
                    return messages
                self.buffer, self.started = self.buffer[length:], True
                continue
            if len(self.buffer) < 5:
                return messages
            kind = chr(self.buffer[0])
            (length,) = struct.unpack("!i", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return messages
            body, self.buffer = self.buffer[5 : 1 + length], self.buffer[1 + length :]
            strings = body.split(b"\0")
            if kind == "Q":  # a simple query: its text
                messages.append((kind, strings[0].decode()))
            elif kind == "P":  # Parse: the statement's name ("" unnamed) and text
                messages.append((kind, strings[1].decode()))
            elif kind == "B":  # Bind: the (prepared) statement it runs
                messages.append((kind, strings[1].decode()))
            else:
                messages.append((kind, ""))


@pytest.fixture
def relay(database_url):
    url = sa.make_url(database_url)
    relay = Relay(url.host or "127.0.0.1", url.port or 5432)
    yield relay
    relay.close()


def relayed_app(make_app, database_url, relay, **config):
    """An app connected to PostgreSQL through the relay."""
    url = sa.make_url(database_url).set(host="127.0.0.1", port=relay.port)
    url = url.update_query_dict({"sslmode": "disable", "gssencmode": "disable"})
    return make_app(DATABASE_URL=url.render_as_string(hide_password=False), **config)


@pytest.fixture
def app(make_app, database_url, relay):
    return relayed_app(make_app, database_url, relay)


@dataclass
class Seen:
    """What one connection of the app sent while a call ran."""

    connections: int  # connections opened meanwhile, by anyone
    round_trips: int
    messages: list[tuple[str, str]]  # (type, statement or name)


def counted(relay: Relay, call, app=None) -> Seen:
    """What the connection this thread keeps sent during `call` (the first request keeps it:
    `app` to find it), or, without `app`, every connection."""
    relay.wire.reset()
    call()
    time.sleep(0.05)  # the relay's threads have seen the last bytes
    port = app_port(kept_connection(app)) if app is not None else None
    with relay.wire.lock:
        wire = relay.wire
        return Seen(
            connections=wire.connections,
            round_trips=sum(n for p, n in wire.round_trips.items() if port in (None, p)),
            messages=[(kind, text) for p, kind, text in wire.messages if port in (None, p)],
        )


def app_port(dbapi_connection) -> int:
    """The app's end of a connection to the relay: its local port."""
    with socket.socket(fileno=os.dup(dbapi_connection.pgconn.socket)) as sock:
        return sock.getsockname()[1]


def simple_queries(wire: Seen) -> list[str]:
    """The simple-protocol queries (a ping, BEGIN, COMMIT, ROLLBACK, DEALLOCATE …)."""
    return [text for kind, text in wire.messages if kind == "Q"]


def parses(wire: Seen) -> list[str]:
    return [text for kind, text in wire.messages if kind == "P"]


def test_a_warm_record_get_is_one_round_trip_per_statement(app, client, user, relay):
    created = client.post(f"{API}/data/notes", json={"data": {"n": 1}}, headers=user.headers)
    record = f"{API}/data/notes/{created.get_json()['id']}"

    def get():
        response = client.get(record, headers=user.headers)
        assert response.status_code == 200
        assert response.get_json()["data"] == {"n": 1}

    for _ in range(WARM_UP):
        get()
    wire = counted(relay, get, app)
    assert wire.connections == 0, "a pooled connection is reused"
    # The session+user lookup, then the record: nothing else, each prepared already.
    assert simple_queries(wire) == [], wire.messages
    assert parses(wire) == [], wire.messages
    binds = [name for kind, name in wire.messages if kind == "B"]
    assert len(binds) == 2 and all(binds), wire.messages
    assert wire.round_trips == 2, wire.messages


def test_a_warm_record_post_is_one_round_trip_per_statement(app, client, user, relay):
    def post():
        response = client.post(f"{API}/data/notes", json={"data": {"n": 2}}, headers=user.headers)
        assert response.status_code == 201

    for _ in range(WARM_UP):
        post()
    wire = counted(relay, post, app)
    # The record, guarded by the collection's policy, and its entry in the change log are one
    # statement, its own transaction (AUTOCOMMIT): no BEGIN, no COMMIT. The sequencer numbers
    # the entry afterwards, and the streams' wake-up (NOTIFY) goes out from the hub's thread.
    assert simple_queries(wire) == [], wire.messages
    assert parses(wire) == [], wire.messages
    # the session lookup, then the record with its change
    assert wire.round_trips == 2, wire.messages
    with app.app_context():
        count = db.session.scalar(sa.text("SELECT count(*) FROM records"))
    assert count == WARM_UP + 1  # committed, each


def test_a_warm_list_page_is_one_round_trip_per_statement(app, client, user, relay):
    for n in range(3):
        client.post(f"{API}/data/notes", json={"data": {"n": n}}, headers=user.headers)

    def page():
        response = client.get(f"{API}/data/notes?data.n=gte.1&limit=2", headers=user.headers)
        assert [r["data"]["n"] for r in response.get_json()["items"]] == [2, 1]

    for _ in range(WARM_UP):
        page()
    wire = counted(relay, page, app)
    assert simple_queries(wire) == [] and parses(wire) == [], wire.messages
    assert wire.round_trips == 2, wire.messages


# --- connections the server closed -----------------------------------------------------------


def backend_of(dbapi_connection) -> int:
    return dbapi_connection.info.backend_pid


@pytest.fixture
def terminate(database_url):
    """Ends a server process the way a restart or an administrator does (on a connection of
    its own, straight to PostgreSQL)."""
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)

    def end(pid: int) -> None:
        with engine.connect() as conn:
            ended = conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            assert ended.scalar_one()

    yield end
    engine.dispose()


def wait_closed(dbapi_connection) -> None:
    """Until the server's closing reaches the app's socket."""
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    assert poller.poll(5000), "the server did not close the connection"


def kept_connection(app):
    """The DB-API connection that this thread keeps from request to request."""
    (conn,) = app.extensions["coffer_kept_connections"].kept
    return conn.connection.driver_connection


def test_a_kept_connection_the_server_closed_is_replaced_at_the_next_request(
    app, client, user, relay, terminate
):
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    dbapi_connection = kept_connection(app)
    terminate(backend_of(dbapi_connection))
    wait_closed(dbapi_connection)
    wire = counted(relay, lambda: client.get(f"{API}/users/me", headers=user.headers))
    assert wire.connections == 1  # a new one, opened by the request
    assert kept_connection(app) is not dbapi_connection
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    with app.app_context():
        assert db.engine.pool.checkedout() == 1  # the kept one: the dead one went back


def test_a_pooled_connection_the_server_closed_is_replaced_at_checkout(
    make_app, database_url, relay, accounts_for, terminate
):
    """A thread that keeps no connection (COFFER_THREADS of them keep one already) checks one
    out for its request: one that the server closed is replaced there, without a ping."""
    app = relayed_app(make_app, database_url, relay, COFFER_THREADS=0)
    client, user = app.test_client(), accounts_for(app).create()
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    with app.app_context():
        pool = db.engine.pool
        with db.engine.connect() as conn:  # the connection the next request gets
            dbapi_connection = conn.connection.driver_connection
            pid = backend_of(dbapi_connection)
    terminate(pid)
    wait_closed(dbapi_connection)
    wire = counted(relay, lambda: client.get(f"{API}/users/me", headers=user.headers))
    assert wire.connections >= 1  # a new one, opened at checkout
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    assert pool.checkedout() == 0


def test_a_read_that_finds_its_kept_connection_closed_is_run_again_on_a_new_one(
    app, client, user, terminate, monkeypatch
):
    """The server closes the kept connection just after the request looked at its socket,
    before the request's first statement: the request still succeeds, on a new connection."""
    created = client.post(f"{API}/data/notes", json={"data": {"n": 1}}, headers=user.headers)
    record = f"{API}/data/notes/{created.get_json()['id']}"
    dbapi_connection = kept_connection(app)
    looked = []

    def closed_right_after_the_look(connection) -> bool:
        if not looked:  # the look at the request's start: the server closes it just after
            looked.append(connection)
            terminate(backend_of(dbapi_connection))
            wait_closed(dbapi_connection)
            return False
        return real_closed(connection)

    real_closed = request_connection.is_closed
    monkeypatch.setattr(request_connection, "is_closed", closed_right_after_the_look)
    response = client.get(record, headers=user.headers)
    assert looked == [dbapi_connection]
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"] == {"n": 1}
    assert kept_connection(app) is not dbapi_connection


def test_a_read_after_the_first_that_loses_its_connection_answers_503(app, client, user, terminate):
    """The server goes away between a request's first read (the session check) and its
    second (the record): that read is not run again, the request answers 503 problem+json,
    never a 500, and the dead connection is let go; the next request is served."""
    created = client.post(f"{API}/data/notes", json={"data": {"n": 1}}, headers=user.headers)
    record = f"{API}/data/notes/{created.get_json()['id']}"
    dbapi_connection = kept_connection(app)
    factory = dbapi_connection.cursor_factory
    reads = []

    class DiesBeforeTheSecondRead(factory):
        def execute(self, query, params=None, **kwargs):
            reads.append(query)
            if len(reads) == 2:
                terminate(backend_of(dbapi_connection))
                wait_closed(dbapi_connection)
            return super().execute(query, params, **kwargs)

    dbapi_connection.cursor_factory = DiesBeforeTheSecondRead
    response = client.get(record, headers=user.headers)
    assert len(reads) == 2
    assert response.status_code == 503, response.get_json()
    assert response.headers["Content-Type"] == "application/problem+json"
    assert app.extensions["coffer_kept_connections"].kept == set()  # the dead one was let go
    assert client.get(record, headers=user.headers).status_code == 200


def test_a_read_that_finds_its_connection_closed_is_run_again_on_a_new_one(
    make_app, database_url, relay, accounts_for, terminate
):
    """The server closes a checked-out connection after checkout, before the request's first
    statement: the request still succeeds, once, on a new connection."""
    app = relayed_app(make_app, database_url, relay, COFFER_THREADS=0)
    client, user = app.test_client(), accounts_for(app).create()
    created = client.post(f"{API}/data/notes", json={"data": {"n": 1}}, headers=user.headers)
    record = f"{API}/data/notes/{created.get_json()['id']}"
    with app.app_context():
        engine = db.engine
    closed = []

    def close_after_checkout(dbapi_connection, _record, _proxy):
        if not closed:
            closed.append(backend_of(dbapi_connection))
            terminate(closed[0])
            wait_closed(dbapi_connection)

    sa.event.listen(engine.pool, "checkout", close_after_checkout)
    try:
        response = client.get(record, headers=user.headers)
    finally:
        sa.event.remove(engine.pool, "checkout", close_after_checkout)
    assert closed, "the request checked out no connection"
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"] == {"n": 1}


def test_a_write_that_finds_its_connection_closed_is_not_run_again(app, client, user, terminate):
    """A statement that may have written is never repeated: the request fails with 503. The
    create runs on the DB-API cursor, so the connection is closed from a cursor of its own."""
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    dbapi_connection = kept_connection(app)
    closed = []

    class ClosingBeforeTheInsert(dbapi_connection.cursor_factory):
        def execute(self, query, params=None, **kwargs):
            if "INSERT INTO records" in query and not closed:
                closed.append(backend_of(dbapi_connection))
                terminate(closed[0])
                wait_closed(dbapi_connection)
            return super().execute(query, params, **kwargs)

    factory, dbapi_connection.cursor_factory = (
        dbapi_connection.cursor_factory,
        ClosingBeforeTheInsert,
    )
    try:
        response = client.post(f"{API}/data/notes", json={"data": {"n": 1}}, headers=user.headers)
    finally:
        dbapi_connection.cursor_factory = factory
    assert closed
    assert response.status_code == 503, response.get_json()
    assert response.headers["Content-Type"] == "application/problem+json"
    listed = client.get(f"{API}/data/notes", headers=user.headers)
    assert listed.status_code == 200 and listed.get_json()["items"] == []


def test_a_wake_up_of_the_other_processes_is_one_round_trip(app, relay, database_url):
    """The hub's NOTIFY after a commit: one statement, its own transaction, and it arrives."""
    import psycopg

    from api.feed.fanout import POSTGRES, Fanout

    with app.app_context():
        feed = app.extensions["coffer_feed"]
        fanout = Fanout(POSTGRES, feed.channel, None, db.engine)  # NOTIFY, with Redis set or not
        conninfo = sa.make_url(database_url).set(drivername="postgresql")
        with psycopg.connect(conninfo.render_as_string(hide_password=False)) as listening:
            listening.autocommit = True
            listening.execute(f'LISTEN "{feed.channel}"')
            fanout.announce(os.getpid())  # the first: a connection opens
            wire = counted(relay, lambda: fanout.announce(os.getpid()))
            heard = list(listening.notifies(timeout=2.0, stop_after=2))
    assert wire.round_trips == 1 and simple_queries(wire) == [], wire.messages
    assert [n.channel for n in heard] == [feed.channel] * 2


def test_timestamps_come_back_in_utc_itself(app, client, user, relay):
    """The session's TimeZone is UTC, set once per connection: psycopg's timestamps carry
    datetime.UTC, which format_timestamp takes as it is (no conversion per value)."""
    created = client.post(f"{API}/data/notes", json={"data": {"n": 1}}, headers=user.headers)
    with app.test_request_context():
        caller = tokens.session_caller(uuid.UUID(user.session_id))
        assert caller.created_at.tzinfo is UTC
        record = records.find(caller, "notes", created.get_json()["id"])
        assert record["created_at"].tzinfo is UTC and record["updated_at"].tzinfo is UTC
        with db.engine.connect() as conn:
            assert conn.scalar(sa.text("SHOW TimeZone")) == "UTC"
            assert conn.scalar(sa.select(sa.func.now())).tzinfo is UTC
