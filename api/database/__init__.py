"""Database URL and engine settings: SQLite by default, PostgreSQL (psycopg 3) in production.

On PostgreSQL a request's statements cost one round trip each: no ping when a connection is
taken up (a local look at its socket instead), no BEGIN and ROLLBACK around the request's Core
statements (they run in AUTOCOMMIT, each its own transaction), and no parsing anew (psycopg
prepares a statement on its fifth use on a connection, and keeps it until a ROLLBACK).

Each worker thread that serves ordinary requests keeps one connection from request to request
(COFFER_THREADS of them per worker, sized into the pool), so that a request neither checks a
connection out nor returns it; the statements of every request (the session check, reading a
record, a list's first page, creating a record) are compiled once and run on the DB-API cursor
(`Statement`, `Write`).

The package: engine.py (URL, pool, pragmas, the check at checkout), request_connection.py
(a request's connection), kept.py (the connections request threads keep), statements.py
(`Statement`, `Write`), writers.py (`transaction`, `dbapi_transaction`, SQLite's writer
queue).
"""

from flask import Flask

from api.database.engine import database_url, engine_options
from api.database.kept import KeptConnections, connection, let_go, release_session
from api.database.request_connection import RequestConnection
from api.database.statements import Statement, Write
from api.database.writers import dbapi_transaction, transaction

__all__ = [
    "KeptConnections",
    "RequestConnection",
    "Statement",
    "Write",
    "connection",
    "database_url",
    "dbapi_transaction",
    "engine_options",
    "init_app",
    "let_go",
    "release_session",
    "transaction",
]


def init_app(app: Flask) -> None:
    url = database_url(app)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.setdefault(
        "SQLALCHEMY_ENGINE_OPTIONS", engine_options(url, app.config["COFFER_THREADS"])
    )
    app.extensions["coffer_kept_connections"] = KeptConnections(app.config["COFFER_THREADS"])
