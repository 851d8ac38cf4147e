"""The engine: the database URL, the pool and connection settings, SQLite's pragmas, and the
check at checkout that a pooled PostgreSQL connection is still open."""

import os
import select
import sqlite3
import sys
import uuid
from datetime import datetime

import orjson
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import Pool


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
    return orjson.dumps(value, default=_json_default).decode()


def _json_default(value: object) -> str:
    """What orjson leaves to its caller that a JSON column may be given: subclasses of UUID
    and datetime, as SQLite's row readers make them (statements.py), as orjson writes the
    plain types."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# JSON columns (records' data) are written and read with orjson rather than the json module.
_JSON_CODEC = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def engine_options(url: str, threads: int = 2) -> dict:
    """The engine of a worker whose `threads` request threads each keep a connection.

    The pool holds those, a connection per request thread for its ORM session, and two for the
    worker's own threads (the change feed's hub, the mail sender); the overflow serves change
    streams' checks and bursts. A pool smaller than that would make requests wait for each
    other's kept connections, and fail with 503 after `pool_timeout`.
    """
    pool = {"pool_size": 2 * threads + 2, "max_overflow": 5, "pool_timeout": 5}
    if url.startswith("sqlite"):
        # `timeout` is SQLite's busy timeout: writers queue instead of failing at once.
        if url in ("sqlite://", "sqlite:///:memory:"):
            pool = {}  # one connection, shared: SQLAlchemy's own pool for it
        return {"connect_args": {"timeout": 10}, **_JSON_CODEC, **pool}
    return {
        **_JSON_CODEC,
        **pool,
        # No pool_pre_ping: its `;` cost a round trip per request. A connection the server closed
        # is seen at checkout (_closed_by_the_server), and a request's first read retried once.
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


@event.listens_for(Engine, "connect")
def _postgres_in_utc(dbapi_connection, _record) -> None:
    """A PostgreSQL session in UTC, whatever the server's TimeZone: psycopg then reads every
    timestamp with `datetime.UTC` as its tzinfo (ZoneInfo('Etc/UTC') on a server in Etc/UTC),
    which the responses format as it is, where any other zone is converted for each value."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(dbapi_connection, psycopg.Connection):
        return
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        dbapi_connection.execute("SET TIME ZONE 'UTC'")
    finally:
        dbapi_connection.autocommit = autocommit


@event.listens_for(Pool, "checkout")
def _closed_by_the_server(dbapi_connection, _record, _proxy) -> None:
    """Refuse a pooled PostgreSQL connection that the server has closed, without a round trip.

    An idle connection has nothing to read: when its socket is readable, the server has sent
    its last words (a restart, an administrator's pg_terminate_backend, an idle timeout) and
    closed it. DisconnectionError makes the pool open a new connection instead.
    """
    if is_closed(dbapi_connection):
        raise DisconnectionError("the server closed the connection")


def is_closed(dbapi_connection) -> bool:
    """Whether a PostgreSQL connection is closed, or its idle socket has something to read.

    psycopg is imported by SQLAlchemy's dialect when an engine on PostgreSQL is made, never
    here: a process that has not imported it (on SQLite, about 9 MB less) has no connection
    of it, and the lookup in sys.modules costs no more than a module's global."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(dbapi_connection, psycopg.Connection):
        return False
    if dbapi_connection.closed or dbapi_connection.broken:
        return True
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    return bool(poller.poll(0))
