"""The connections that requests keep from request to request, and a request's connection:
a kept one, taken in turn."""

import contextlib
import sqlite3
import threading

from flask import current_app, g
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from api.database.engine import POOL_TIMEOUT
from api.database.request_connection import RequestConnection
from api.extensions import db


class KeptConnections:
    """The connections that a worker's requests keep from request to request: at most `limit`
    (COFFER_THREADS, as the pool is sized), each serving one request at a time.

    A request takes a turn at its first statement and gives it back, with its connection,
    when it ends: at most `limit` requests of a process use the database at once, and each
    finds a kept connection free, however many threads the server runs (gthread starts one
    for every request that finds none idle). Others wait for a turn, which costs less than
    what they did before: check a connection out of the pool for the request, and contend
    with the others for the GIL (four turns a worker served 5-37% more requests on the same
    CPUs, bench/README.md). A request that is about to hold on for long (a change
    stream) gives its turn back at once (`let_go`). `Engine.dispose` closes them all.
    """

    def __init__(self, limit: int, wait: float = POOL_TIMEOUT) -> None:
        self.limit = max(limit, 1)
        self.turns = threading.BoundedSemaphore(self.limit)
        self.wait = wait  # for a turn, as long as for a pool connection: then 503
        self.kept: set[RequestConnection] = set()
        self.free: list[RequestConnection] = []
        self.lock = threading.Lock()
        self.engine: Engine | None = None

    def take(self, engine: Engine) -> RequestConnection:
        """A kept connection for this request, once it is this request's turn (see the class):
        a free one, or a new one while fewer than `limit` are kept. No turn within `wait`
        seconds raises the pool's own TimeoutError (503, as when the pool has no connection)."""
        if not self.turns.acquire(timeout=self.wait):
            raise PoolTimeoutError(f"no kept database connection was free within {self.wait} s")
        try:
            with self.lock:
                if self.engine is not engine:
                    self._watch(engine)
                while self.free:
                    conn = self.free.pop()
                    if not conn.closed:
                        return conn.start_request()
                    self.kept.discard(conn)
            conn = RequestConnection(engine).autocommit()  # a turn is free, so is a place
            with self.lock:
                self.kept.add(conn)
            return conn
        except BaseException:
            self.turns.release()
            raise

    def end_request(self, conn: RequestConnection) -> None:
        """End a request on a kept connection: roll back what it left open (nothing, unless
        it failed), or give the connection up if the database dropped it; then the turn."""
        try:
            if conn.invalidated or conn.closed or not self.holds(conn):  # dropped, disposed of
                self._drop(conn)
                return
            try:
                if conn.in_transaction():
                    conn.rollback()
                elif _sqlite_in_transaction(conn):
                    conn.connection.dbapi_connection.rollback()
            except (DBAPIError, sqlite3.Error):
                self._drop(conn)
                return
            with self.lock:
                self.free.append(conn)
        finally:
            self.turns.release()

    def holds(self, conn: Connection) -> bool:
        return conn in self.kept

    def _drop(self, conn: RequestConnection) -> None:
        with self.lock:
            self.kept.discard(conn)
        try:
            conn.close()
        except DBAPIError:  # the failed rollback has invalidated it: this one hands it back
            conn.close()

    def _watch(self, engine: Engine) -> None:
        self.engine = engine
        event.listen(engine, "engine_disposed", self._close_all)

    def _close_all(self, _engine: Engine) -> None:
        """The engine's pool has been disposed of: close the kept connections rather than
        return them to it (invalidating closes the DB-API connection); one in a request
        is given up as that request ends."""
        with self.lock:
            kept, self.kept, self.free = self.kept, set(), []
        for conn in kept:
            with contextlib.suppress(Exception):
                conn.invalidate()
                conn.close()


def _sqlite_in_transaction(conn: RequestConnection) -> bool:
    """A transaction that sqlite3 began under SQLAlchemy's bookkeeping: a `Write` run outside
    `dbapi_transaction` (which commits or rolls back its own) would leave one, holding the
    database's write lock for as long as the connection is kept."""
    return conn.dialect.name == "sqlite" and conn.connection.dbapi_connection.in_transaction


def _kept() -> KeptConnections:
    return current_app.extensions["coffer_kept_connections"]


def connection() -> RequestConnection:
    """This request's Core connection: a kept one (KeptConnections), taken at first use and
    given back at teardown.

    The hot paths (the auth check on every request, reading and creating records) run Core
    statements on it: the ORM's unit of work and identity map cost several times the query.
    Whatever such a path writes, it commits at once, so that an ORM write later in the same
    request (on the session's own connection) never waits on it.
    """
    conn = g.get("db_connection")
    if conn is None:
        engine = db.engine
        conn = _kept().take(engine)
        g.db_connection = conn
    return conn


def let_go() -> None:
    """This request will hold on for long (a change stream): it gives its connection, and its
    turn, back now, for other requests."""
    conn = g.pop("db_connection", None)
    if conn is not None:
        _kept().end_request(conn)


def release_session(_exc: BaseException | None) -> None:
    """End the request's session even when the database died before its closing ROLLBACK.

    Flask-SQLAlchemy's own teardown would let that error escape after the response was built
    (gunicorn then sends a 500), so this one replaces it (coffer.create_app): the failed
    rollback has invalidated the dead connection, and a second remove hands it back to the pool.
    """
    conn = g.pop("db_connection", None)
    if conn is not None:
        _kept().end_request(conn)
    try:
        db.session.remove()
    except DBAPIError:
        db.session.remove()
