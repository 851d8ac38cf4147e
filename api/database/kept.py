"""The connections that request threads keep from request to request, and a request's
connection: the thread's kept one, or one checked out for the request."""

import contextlib
import sqlite3
import threading
import weakref

from flask import current_app, g
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from api.database.request_connection import RequestConnection
from api.extensions import db


class KeptConnections:
    """The connections that a worker's request threads keep from request to request: one per
    thread, for at most `limit` threads at a time (COFFER_THREADS, as the pool is sized).

    Any further thread (a burst beyond the request threads, a change stream's) checks a
    connection out for its request and returns it at the end, as without keeping. A thread
    that is about to hold on to its request for long (a change stream) lets its kept
    connection go (`let_go`), so that a request thread can keep it instead. `Engine.dispose`
    closes them all.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept: set[RequestConnection] = set()
        self.taking = 0  # threads checking out the connection they will keep
        self.lock = threading.Lock()
        self.local = threading.local()
        self.engine: Engine | None = None

    def take(self, engine: Engine) -> RequestConnection | None:
        """This thread's kept connection, ready for a request; None when the thread may not
        keep one (and so checks one out for the request)."""
        conn = getattr(self.local, "conn", None)
        if conn is not None and not conn.closed:
            return conn.start_request()
        with self.lock:
            if self.engine is not engine:
                self._watch(engine)
            if len(self.kept) + self.taking >= self.limit:
                return None
            self.taking += 1  # checked out outside the lock: it may wait for the pool
        try:
            conn = RequestConnection(engine).autocommit()
        finally:
            with self.lock:
                self.taking -= 1
        with self.lock:
            self.kept.add(conn)
        self.local.conn = conn
        # A thread that ends (a server that starts one per request) gives its connection back.
        self.local.end = _ThreadEnd()
        weakref.finalize(self.local.end, self._give_back, conn)
        return conn

    def _give_back(self, conn: RequestConnection) -> None:
        with self.lock:
            if conn not in self.kept:
                return  # let go already, or closed with the engine
            self.kept.discard(conn)
        with contextlib.suppress(DBAPIError):
            conn.close()

    def end_request(self, conn: RequestConnection) -> None:
        """End a request on a kept connection: roll back what it left open (nothing, unless
        it failed), and give it up if the database dropped it."""
        if conn.invalidated:
            self.let_go()
            return
        try:
            if conn.in_transaction():
                conn.rollback()
            elif _sqlite_in_transaction(conn):
                conn.connection.dbapi_connection.rollback()
        except (DBAPIError, sqlite3.Error):
            self.let_go()

    def holds(self, conn: Connection) -> bool:
        return getattr(self.local, "conn", None) is conn

    def let_go(self) -> None:
        """Return this thread's kept connection to the pool, if it keeps one."""
        conn = getattr(self.local, "conn", None)
        if conn is None:
            return
        self.local.conn = self.local.end = None
        self._give_back(conn)

    def _watch(self, engine: Engine) -> None:
        self.engine = engine
        event.listen(engine, "engine_disposed", self._close_all)

    def _close_all(self, _engine: Engine) -> None:
        """The engine's pool has been disposed of: close the kept connections rather than
        return them to it (invalidating closes the DB-API connection)."""
        with self.lock:
            kept, self.kept = self.kept, set()
        for conn in kept:
            with contextlib.suppress(Exception):
                conn.invalidate()
                conn.close()


def _sqlite_in_transaction(conn: RequestConnection) -> bool:
    """A transaction that sqlite3 began under SQLAlchemy's bookkeeping: a `Write` run outside
    `dbapi_transaction` (which commits or rolls back its own) would leave one, holding the
    database's write lock for as long as the thread keeps the connection."""
    return conn.dialect.name == "sqlite" and conn.connection.dbapi_connection.in_transaction


class _ThreadEnd:
    """Lives as long as its thread's locals: its finalizer runs when the thread ends."""


def _kept() -> KeptConnections:
    return current_app.extensions["coffer_kept_connections"]


def connection() -> RequestConnection:
    """This request's Core connection: the one its thread keeps, or one checked out on first
    use and returned at teardown.

    The hot paths (the auth check on every request, reading and creating records) run Core
    statements on it: the ORM's unit of work and identity map cost several times the query.
    Whatever such a path writes, it commits at once, so that an ORM write later in the same
    request (on the session's own connection) never waits on it.
    """
    conn = g.get("db_connection")
    if conn is None:
        engine = db.engine
        conn = _kept().take(engine) or RequestConnection(engine).autocommit()
        g.db_connection = conn
    return conn


def let_go() -> None:
    """This request will hold its thread for long (a change stream): the thread gives up the
    connection it keeps, for a request thread to keep."""
    kept = _kept()
    conn = g.pop("db_connection", None)
    if conn is not None:
        _end(kept, conn)
    kept.let_go()


def _end(kept: KeptConnections, conn: RequestConnection) -> None:
    if kept.holds(conn):
        kept.end_request(conn)
        return
    try:
        conn.close()
    except DBAPIError:
        conn.close()


def release_session(_exc: BaseException | None) -> None:
    """End the request's session even when the database died before its closing ROLLBACK.

    Flask-SQLAlchemy's own teardown would let that error escape after the response was built
    (gunicorn then sends a 500), so this one replaces it (coffer.create_app): the failed
    rollback has invalidated the dead connection, and a second remove hands it back to the pool.
    """
    conn = g.pop("db_connection", None)
    if conn is not None:
        _end(_kept(), conn)
    if not db.session.registry.has():  # the request used no ORM session: nothing to end
        return
    try:
        db.session.remove()
    except DBAPIError:
        db.session.remove()
