"""Database URL and engine settings: SQLite by default, PostgreSQL (psycopg 3) in production."""

import os
import sqlite3

import orjson
from flask import Flask, current_app, g
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

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
        "pool_pre_ping": True,  # a restarted database costs one failed request, not a restart
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


@event.listens_for(Engine, "handle_error")
def _failed_ping_means_reconnect(context) -> None:
    """Whatever a pool pre-ping raises, the pooled connection is unusable: reconnect.

    When PostgreSQL dies during the ping, psycopg can raise ProgrammingError ("can't change
    'autocommit' now") instead of a disconnect error; without this the request got a 500.
    Marked as a disconnect, the pool drops the connection and opens a new one (503 while the
    database is down, a working connection once it is back).
    """
    if context.is_pre_ping:
        context.is_disconnect = True


def init_app(app: Flask) -> None:
    url = database_url(app)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(url))


def connection() -> Connection:
    """This request's Core connection, checked out on first use and closed at teardown.

    The hot paths (the auth check on every request, reading and creating records) run Core
    statements on it: the ORM's unit of work and identity map cost several times the query.
    Whatever such a path writes, it commits at once, so that an ORM write later in the same
    request (on the session's own connection) never waits on it.
    """
    if "db_connection" not in g:
        g.db_connection = db.engine.connect()
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
