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
