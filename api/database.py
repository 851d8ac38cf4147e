"""Database URL and engine settings: SQLite by default, PostgreSQL (psycopg 3) in production.

On PostgreSQL a request's statements cost one round trip each: no ping when a connection is
taken up (a local look at its socket instead), no BEGIN and ROLLBACK around the request's Core
statements (they run in AUTOCOMMIT, each its own transaction), and no parsing anew (psycopg
prepares a statement on its fifth use on a connection, and keeps it until a ROLLBACK).

Each worker thread that serves ordinary requests keeps one connection from request to request
(COFFER_THREADS of them per worker, sized into the pool), so that a request neither checks a
connection out nor returns it; the statements of every request (the session check, reading a
record, a list's first page) are compiled once and run on the DB-API cursor (`Statement`).
"""

import contextlib
import fcntl
import os
import select
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator

import orjson
import psycopg
import sqlalchemy as sa
from flask import Flask, current_app, g
from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, Engine
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


@event.listens_for(Pool, "checkout")
def _closed_by_the_server(dbapi_connection, _record, _proxy) -> None:
    """Refuse a pooled PostgreSQL connection that the server has closed, without a round trip.

    An idle connection has nothing to read: when its socket is readable, the server has sent
    its last words (a restart, an administrator's pg_terminate_backend, an idle timeout) and
    closed it. DisconnectionError makes the pool open a new connection instead.
    """
    if _closed(dbapi_connection):
        raise DisconnectionError("the server closed the connection")


def _closed(dbapi_connection) -> bool:
    """Whether a PostgreSQL connection is closed, or its idle socket has something to read."""
    if not isinstance(dbapi_connection, psycopg.Connection):
        return False
    if dbapi_connection.closed or dbapi_connection.broken:
        return True
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def init_app(app: Flask) -> None:
    url = database_url(app)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.setdefault(
        "SQLALCHEMY_ENGINE_OPTIONS", engine_options(url, app.config["COFFER_THREADS"])
    )
    app.extensions["coffer_kept_connections"] = KeptConnections(app.config["COFFER_THREADS"])


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

    def start_request(self) -> "RequestConnection":
        """Ready a kept connection for a new request: its first read may be retried again,
        and one that the server closed since is replaced (the check at checkout, kept
        connections skip the checkout)."""
        self._used = False
        if _closed(self.connection.dbapi_connection):
            self.invalidate()
            self.rollback()
        return self

    def dbapi(self):
        """The DB-API connection under this one, for `Statement`: the read it runs counts as
        this connection's statement (its first may be retried)."""
        self._used = True
        return self.connection.dbapi_connection

    def retry_read(self, first: bool, exc: Exception) -> bool:
        """After a DB-API error of a read run on `dbapi()`: True when the read may run again on
        a new connection (the request's first statement, on a connection the server dropped),
        which this then is."""
        if not (first and self.dialect.name == "postgresql"):
            return False
        if not isinstance(exc, psycopg.OperationalError):
            return False
        if not _closed(self.connection.dbapi_connection):
            return False
        self.invalidate()
        self.rollback()
        self.autocommit()
        return True

    def translated(self, exc: Exception, statement: str, params) -> Exception:
        """A DB-API error of a statement run on `dbapi()`, as SQLAlchemy raises it from its
        own executions (OperationalError …: a database that is down answers 503), with the
        connection invalidated when the database dropped it."""
        dbapi = self.dialect.loaded_dbapi
        if not isinstance(exc, dbapi.Error):
            return exc
        dropped = self.invalidated or self.dialect.is_disconnect(
            exc, self.connection.dbapi_connection, None
        )
        if dropped and not self.invalidated:
            self.invalidate()
        return DBAPIError.instance(
            statement,
            params,
            exc,
            dbapi.Error,
            connection_invalidated=dropped,
            dialect=self.dialect,
        )

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
    change log): on PostgreSQL the request's AUTOCOMMIT connection leaves AUTOCOMMIT until
    the block ends; on SQLite the block waits for its turn among the database's writers
    (_WriterQueue). The block commits; one that raises rolls back."""
    if conn.dialect.name == "sqlite":
        with _writers(conn.engine.url.database):
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


class _WriterQueue:
    """SQLite's writers of one database file, one at a time across the host's processes: an
    flock on a file beside the database (threads of a process queue on a lock first, as an
    flock is the open file's, not the thread's). A writer that finds SQLite's lock taken
    sleeps in SQLite's busy handler, 1 to 100 ms a try, long after the lock is free: queued
    here, it starts as soon as the writer before it ends."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self.lock:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)


_writer_queues: dict[tuple[str, int], _WriterQueue] = {}
_writer_queues_lock = threading.Lock()


def _writers(database: str | None) -> contextlib.AbstractContextManager:
    if not database or database == ":memory:":
        return contextlib.nullcontext()
    key = (database, os.getpid())  # a forked worker opens its own
    queue = _writer_queues.get(key)
    if queue is None:
        with _writer_queues_lock:
            queue = _writer_queues.setdefault(key, _WriterQueue(database + "-writers.lock"))
    return queue.held()


def _reads_only(statement: str | None) -> bool:
    return bool(statement) and statement.lstrip()[:6].upper() == "SELECT"


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
        except DBAPIError:
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
    (gunicorn then sends a 500). Registered after `db.init_app`, this runs first: the failed
    rollback has invalidated the dead connection, and a second remove hands it back to the pool.
    """
    conn = g.pop("db_connection", None)
    if conn is not None:
        _end(_kept(), conn)
    try:
        db.session.remove()
    except DBAPIError:
        db.session.remove()


class Statement:
    """A Core SELECT compiled once per dialect and run on the DB-API cursor of the request's
    connection: what SQLAlchemy does on every execution (a cache key of the statement, a
    result object, row objects) costs more than the query itself on the hot paths.

    Parameters are bound and values read back with the types' own processors, as SQLAlchemy
    binds and reads them; values that the statement carries (a filter's) are bound once.
    Rows come back as dicts keyed like the statement's columns.
    """

    __slots__ = ("stmt", "_compiled")

    def __init__(self, stmt: sa.Select) -> None:
        self.stmt = stmt
        self._compiled: dict[str, _Compiled] = {}

    def all(self, params: dict) -> list[dict]:
        conn = connection()
        compiled = self._compiled.get(conn.dialect.name)
        if compiled is None:
            compiled = self._compiled[conn.dialect.name] = _compile(self.stmt, conn.dialect)
        if compiled is _EXPANDING:  # `in` of a list: its SQL follows the list, SQLAlchemy's job
            return [dict(row) for row in conn.execute(self.stmt, params).mappings()]
        first = not conn._used
        bound = compiled.bind(params)
        try:
            try:
                rows = _fetch(conn.dbapi(), compiled.sql, bound)
            except Exception as exc:
                if not conn.retry_read(first, exc):
                    raise
                rows = _fetch(conn.dbapi(), compiled.sql, bound)
        except Exception as exc:
            raise conn.translated(exc, compiled.sql, bound) from exc
        return compiled.read(rows)

    def first(self, params: dict) -> dict | None:
        rows = self.all(params)
        return rows[0] if rows else None


def _fetch(dbapi_connection, sql: str, params) -> list[tuple]:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchall()
    finally:
        cursor.close()


_EXPANDING = object()


def _compile(stmt: sa.Select, dialect: Dialect):
    compiled = stmt.compile(dialect=dialect)
    if any(bind.expanding for bind in compiled.binds.values()):
        return _EXPANDING
    return _Compiled(stmt, compiled, dialect)


class _Compiled:
    """A statement's SQL for one dialect, with how to bind its parameters and read its rows."""

    def __init__(self, stmt: sa.Select, compiled, dialect: Dialect) -> None:
        self.sql = compiled.string
        self.positional = compiled.positional
        names = compiled.positiontup if self.positional else list(compiled.binds)
        escaped = compiled.escaped_bind_names or {}
        # (name in the SQL, parameter, bind processor, value the statement carries, required)
        self.slots: list[tuple[str, str, Callable | None, object, bool]] = []
        for name in names:
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            fixed = None if bind.required else bind.effective_value
            if fixed is not None and process is not None:
                fixed = process(fixed)
            self.slots.append((escaped.get(name, name), name, process, fixed, bind.required))
        columns = stmt.selected_columns
        self.keys = tuple(columns.keys())
        self.processors = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )

    def bind(self, params: dict):
        values = []
        for _sql_name, name, process, fixed, required in self.slots:
            if required:
                value = params[name]
                values.append(process(value) if process is not None else value)
            else:
                values.append(fixed)
        if self.positional:
            return values
        return {slot[0]: value for slot, value in zip(self.slots, values, strict=True)}

    def read(self, rows: list[tuple]) -> list[dict]:
        keys, processors = self.keys, self.processors
        if not any(processors):
            return [dict(zip(keys, row, strict=True)) for row in rows]
        return [
            {
                key: value if process is None else process(value)
                for key, process, value in zip(keys, processors, row, strict=True)
            }
            for row in rows
        ]


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
