"""What an app sends to its database, for tests that check the statements of a request."""

import contextlib

import sqlalchemy as sa

from api.extensions import db


@contextlib.contextmanager
def captured_statements(app):
    """Collect the (statement, parameters) of every query the app runs inside the block."""
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


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
