"""Writes of several statements that commit together (`transaction` through SQLAlchemy,
`dbapi_transaction` for statements run on the DB-API cursor), and SQLite's writers queued one
at a time across the host's processes."""

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator

from sqlalchemy.engine import Connection


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


@contextlib.contextmanager
def dbapi_transaction(conn) -> Iterator[None]:
    """`transaction` for statements run on the DB-API connection under `conn` (the request's
    RequestConnection), such as api/database/statements.py's `Write`, whose transaction
    SQLAlchemy does not see: it begins, commits, or rolls back on that connection itself. On
    SQLite the block waits for its turn among the database's writers, as in `transaction`."""
    dbapi = conn.dbapi()
    if conn.dialect.name != "sqlite":
        with dbapi.transaction():  # psycopg: BEGIN … COMMIT on the AUTOCOMMIT connection
            yield
        return
    with _writers(conn.engine.url.database):
        if not dbapi.in_transaction:  # sqlite3 would begin at the first write; say it
            dbapi.execute("BEGIN")
        try:
            yield
        except BaseException:
            dbapi.rollback()
            raise
        try:
            dbapi.commit()
        except Exception as exc:
            dbapi.rollback()
            raise conn.translated(exc, "COMMIT", None) from exc


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
