"""Database URL and engine settings: SQLite by default, PostgreSQL (psycopg 3) in production.

On PostgreSQL a request's statements cost one round trip each: no ping when a pooled connection
is checked out (a local look at its socket instead), no BEGIN and ROLLBACK around the request's
Core statements (they run in AUTOCOMMIT, each its own transaction), and no parsing anew (psycopg
prepares a statement on its fifth use on a connection, and keeps it until a ROLLBACK).
"""

import contextlib
import os
import select
import sqlite3
from collections.abc import Iterator

import orjson
import psycopg
from flask import Flask, current_app, g
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.pool import Pool

from api.extensions import db


def database_url(app: Flask) -> str:
    url = app.config.get("DATABASE_URL")
    if not url:
        return "sqlite:///" + os.path.join(app.instance_path, "coffer.db")
    # Hosted PostgreSQL often hands out postgres:// URLs; Coffer talks to it through psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _json_text(value: object) -> str:
    return orjson.dumps(value).decode()


# JSON columns (records' data) are written and read with orjson rather than the json module.
_JSON_CODEC = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        # `timeout` is SQLite's busy timeout: writers queue instead of failing at once.
        return {"connect_args": {"timeout": 10}, **_JSON_CODEC}
    return {
        **_JSON_CODEC,
        # No pool_pre_ping: its `;` cost a round trip per request. A connection the server closed
        # is seen at checkout (_closed_by_the_server), and a request's first read retried once.
        "pool_size": 5,
        "max_overflow": 5,
        "pool_timeout": 5,
        "pool_recycle": 1800,
        "connect_args": {"connect_timeout": 3},
    }


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


@event.listens_for(Pool, "checkout")
def _closed_by_the_server(dbapi_connection, _record, _proxy) -> None:
    """Refuse a pooled PostgreSQL connection that the server has closed, without a round trip.

    An idle connection has nothing to read: when its socket is readable, the server has sent
    its last words (a restart, an administrator's pg_terminate_backend, an idle timeout) and
    closed it. DisconnectionError makes the pool open a new connection instead.
    """
    if not isinstance(dbapi_connection, psycopg.Connection):
        return
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("the connection is closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection")


def init_app(app: Flask) -> None:
    url = database_url(app)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(url))


class RequestConnection(Connection):
    """A request's Core connection: on PostgreSQL in AUTOCOMMIT, and a first read that finds
    the connection dropped by the server is run again, once, on a new connection.

    A write of one statement commits at once (api/tokens.py), so AUTOCOMMIT changes no
    outcome, and saves the BEGIN and the ROLLBACK that also made psycopg forget its prepared
    statements; writes of several statements run in `transaction` (a record and its change).
    The retry is safe because nothing was written yet: the statement that failed is the
    connection's first in this request, and a SELECT.
    """

    _used = False

    def autocommit(self) -> "RequestConnection":
        if self.dialect.name == "postgresql":
            self.execution_options(isolation_level="AUTOCOMMIT")
        return self

    def _execute_context(self, *args, **kw):
        first, self._used = not self._used, True
        try:
            return super()._execute_context(*args, **kw)
        except DBAPIError as exc:
            if not (first and exc.connection_invalidated and _reads_only(exc.statement)):
                raise
        self.rollback()  # ends the failed connection's transaction; the next use reconnects
        return self.autocommit()._execute_context(*args, **kw)


@contextlib.contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """Statements that commit together, or not at all (a record write and its entry in the
    change log, under the log's lock): on PostgreSQL the request's AUTOCOMMIT connection
    leaves AUTOCOMMIT until the block ends. The block commits; one that raises rolls back."""
    if conn.dialect.name != "postgresql":
        yield conn
        return
    conn.commit()  # ends the connection's bookkeeping of AUTOCOMMIT statements
    conn.execution_options(isolation_level="READ COMMITTED")
    try:
        yield conn
    finally:
        if conn.in_transaction():
            conn.rollback()
        conn.execution_options(isolation_level="AUTOCOMMIT")


def _reads_only(statement: str | None) -> bool:
    return bool(statement) and statement.lstrip()[:6].upper() == "SELECT"


def connection() -> Connection:
    """This request's Core connection, checked out on first use and closed at teardown.

    The hot paths (the auth check on every request, reading and creating records) run Core
    statements on it: the ORM's unit of work and identity map cost several times the query.
    Whatever such a path writes, it commits at once, so that an ORM write later in the same
    request (on the session's own connection) never waits on it.
    """
    if "db_connection" not in g:
        g.db_connection = RequestConnection(db.engine).autocommit()
    return g.db_connection


def release_session(_exc: BaseException | None) -> None:
    """End the request's session even when the database died before its closing ROLLBACK.

    Flask-SQLAlchemy's own teardown would let that error escape after the response was built
    (gunicorn then sends a 500). Registered after `db.init_app`, this runs first: the failed
    rollback has invalidated the dead connection, and a second remove hands it back to the pool.
    """
    conn = g.pop("db_connection", None)
    if conn is not None:
        try:
            conn.close()
        except DBAPIError:
            conn.close()
    try:
        db.session.remove()
    except DBAPIError:
        db.session.remove()


def dependencies_answer() -> dict[str, bool | None]:
    """Whether the database and Redis answer now (None: Redis is not configured)."""
    return {"database": _database_answers(), "redis": _redis_answers()}


def _database_answers() -> bool:
    try:
        db.session.execute(db.select(1)).scalar_one()
        return True
    except Exception as exc:
        current_app.logger.warning("readiness: database check failed: %s", type(exc).__name__)
        db.session.rollback()
        return False


def _redis_answers() -> bool | None:
    client = current_app.extensions.get("coffer_redis")
    if client is None:
        return None
    try:
        return bool(client.ping())
    except Exception as exc:
        current_app.logger.warning("readiness: redis check failed: %s", type(exc).__name__)
        return False
