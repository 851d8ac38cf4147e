"""What an app sends to its database, for tests that check the statements of a request.

Captured at the DB-API level, below SQLAlchemy: the hot paths run their statements on the
DB-API cursor (api/database/statements.py's Statement), which SQLAlchemy's events never see.
"""

import contextlib
import re
import sqlite3

import psycopg
import sqlalchemy as sa

from api.extensions import db


@contextlib.contextmanager
def captured_statements(app):
    """Collect the (statement, parameters) of every query the app runs inside the block.

    On PostgreSQL, as the cursor gets them (placeholders, parameters). On SQLite, as SQLite
    runs them (its trace callback): the values written into the SQL, and no parameters.
    """
    statements: list[tuple[str, object]] = []
    restore: dict[int, tuple] = {}

    def watch(dbapi_connection) -> None:
        if id(dbapi_connection) in restore:
            return
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(lambda sql: statements.append((sql, ())))
            restore[id(dbapi_connection)] = (dbapi_connection, None)
        elif isinstance(dbapi_connection, psycopg.Connection):
            factory = dbapi_connection.cursor_factory
            dbapi_connection.cursor_factory = _recording(factory, statements)
            restore[id(dbapi_connection)] = (dbapi_connection, factory)

    def on_checkout(dbapi_connection, _record, _proxy) -> None:
        watch(dbapi_connection)

    with app.app_context():
        engine = db.engine
    for conn in list(app.extensions["coffer_kept_connections"].kept):
        if not conn.closed and not conn.invalidated:
            watch(conn.connection.dbapi_connection)
    sa.event.listen(engine.pool, "checkout", on_checkout)
    try:
        yield statements
    finally:
        sa.event.remove(engine.pool, "checkout", on_checkout)
        for dbapi_connection, factory in restore.values():
            if isinstance(dbapi_connection, sqlite3.Connection):
                with contextlib.suppress(sqlite3.ProgrammingError):  # closed since
                    dbapi_connection.set_trace_callback(None)
            else:
                dbapi_connection.cursor_factory = factory


# Authentication (api/tokens.py): the lookup of the caller's live session and user, and the
# update of the session's last use that it makes at most once a minute (which SQLite runs in a
# BEGIN … COMMIT of its own).
_SESSION_LOOKUP = re.compile(
    r"\s*SELECT\s.*\sFROM\s+sessions\s+JOIN\s+users\s+ON\s+users\.id\s*=\s*sessions\.user_id"
    r"\s+WHERE\s+sessions\.id\s*=",
    re.DOTALL,
)
_SESSION_TOUCH = re.compile(r"\s*UPDATE\s+sessions\s+SET\s+last_used_at\s*=")


def beyond_authentication(statements: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """Every captured statement but those that authenticate the request's caller: what the
    operation itself costs, a whole N+1 included, whatever table it reads."""
    kept: list[tuple[str, object]] = []
    closing = False  # the COMMIT of the touch's own transaction comes next
    for sql, params in statements:
        if _SESSION_LOOKUP.match(sql):
            continue
        if _SESSION_TOUCH.match(sql):
            if kept and kept[-1][0].strip().upper() == "BEGIN":
                kept.pop()
                closing = True
            continue
        if closing and sql.strip().upper() == "COMMIT":
            closing = False
            continue
        kept.append((sql, params))
    return kept


def _recording(base: type, statements: list) -> type:
    class Recording(base):
        def execute(self, query, params=None, **kwargs):
            statements.append((query, params))
            return super().execute(query, params, **kwargs)

        def executemany(self, query, params_seq, **kwargs):
            params_seq = list(params_seq)
            statements.extend((query, params) for params in params_seq)
            return super().executemany(query, params_seq, **kwargs)

    return Recording


def explain(app, statement, parameters) -> str:
    """The plan of a statement: EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL."""
    with app.app_context():
        with db.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
                return "\n".join(row[-1] for row in rows)
            # At scale a page never reads the table nor sorts it: a test table is too small to
            # make the planner see that by itself.
            for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                conn.exec_driver_sql(f"SET {setting} = off")
            rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters)
            return "\n".join(row[0] for row in rows)
