"""Data-key indexes: the indexes that serve `?sort=data.<path>`, declared by the operator.

`flask data-index add data.priority` builds, on `records`,

    (owner_id, collection, <the ORDER BY terms of sort=data.priority>, id)

and records the declaration in `data_indexes`. The terms come from `query.Compiler.sort_terms`,
the very expressions that listings order by, with their constants written inline: SQLite and
PostgreSQL use an index on expressions only for the same expressions. One index serves both
directions (scanned backwards for `-data.priority`), the first page and the pages after a cursor
(a row-value seek), with or without filters (checked on the rows the index yields).

On PostgreSQL the index is built with CREATE INDEX CONCURRENTLY, so writes go on while it
builds; a build that failed leaves an INVALID index, which `add` drops and builds again. The
name is `ix_records_data_` and a hash of the path and of the definition: paths run to 520
characters and PostgreSQL names to 63, and when a new Coffer changes the sort terms the name
changes too, so `list` shows the old index as stale and `add` replaces it.

On PostgreSQL `add` also creates statistics on the expressions that filters on the key compare
(`CREATE STATISTICS st_records_data_<the same hash> ON (<rank>), (<number>), (<string>),
(<boolean>) FROM records`, part of the hashed definition) and analyzes `records`. Without them
the planner knows nothing of `data.status=eq.open`: it guesses that 0.5% of a collection
matches, where half of it may, and sorts the whole filtered collection rather than walk an
index for a page of 21 rows.
"""

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api import query
from api.errors import InvalidRequest
from api.extensions import db
from api.models import Record, UTCDateTime, utcnow

PREFIX = "ix_records_data_"
STATISTICS_PREFIX = "st_records_data_"
READY, BUILDING, INVALID, MISSING, STALE = "ready", "building", "invalid", "missing", "stale"


class DataIndex(db.Model):
    """A data key the operator indexed, and the name of the index that serves it."""

    __tablename__ = "data_indexes"

    field: Mapped[str] = mapped_column(sa.String(600), primary_key=True)  # "data.<path>"
    index_name: Mapped[str] = mapped_column(sa.String(63))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DataIndexError(Exception):
    """A data-index command that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class Declared:
    field: str
    index_name: str
    status: str


def field_of(text: str) -> str:
    """`text` if it is a field that listings sort by (`data.<path>`), else DataIndexError."""
    if not text.startswith("data."):
        raise DataIndexError(f"{text!r} is not a data key: give data.<path>, e.g. data.priority.")
    try:
        query.path_of(text, "field")
    except InvalidRequest as exc:
        raise DataIndexError(exc.detail) from None
    return text


def columns_sql(field: str, dialect: sa.Dialect) -> str:
    """The indexed expressions as SQL: owner, collection, the sort terms of `field`, id."""
    terms = query.Compiler(dialect.name).sort_terms(field)
    table = Record.__table__
    return ", ".join(
        [table.c.owner_id.name, table.c.collection.name]
        + [f"({_expression_sql(term, dialect)})" for term in terms]
        + [table.c.id.name]
    )


def statistics_sql(field: str, dialect: sa.Dialect) -> str:
    """The expressions that filters on `field` compare, as SQL ("" where there are none)."""
    terms = query.Compiler(dialect.name).filter_terms(field)
    return ", ".join(f"({_expression_sql(term, dialect)})" for term in terms)


def _expression_sql(term: sa.ColumnElement, dialect: sa.Dialect) -> str:
    compiled = term.compile(dialect=dialect, compile_kwargs={"include_table": False})
    if compiled.params:  # never true: an index on a parameter would match no query
        raise RuntimeError(f"indexed terms must be SQL literals only: {compiled.params}")
    return str(compiled)


def index_name(field: str, dialect: sa.Dialect) -> str:
    """A name of 36 characters for the index of `field`, whatever the length of the path."""
    definition = f"{field}\n{columns_sql(field, dialect)}"
    statistics = statistics_sql(field, dialect)
    if statistics:
        definition += f"\n{statistics}"
    return PREFIX + hashlib.sha256(definition.encode()).hexdigest()[:20]


def statistics_name(index: str) -> str:
    """The name of the statistics object that goes with the index named `index`."""
    return STATISTICS_PREFIX + index.removeprefix(PREFIX)


def _create_sql(name: str, field: str, dialect: sa.Dialect) -> str:
    table = Record.__tablename__
    return (
        f"CREATE INDEX {_concurrently(dialect)}IF NOT EXISTS {name} "
        f"ON {table} ({columns_sql(field, dialect)})"
    )


def _drop_sql(name: str, dialect: sa.Dialect) -> str:
    return f"DROP INDEX {_concurrently(dialect)}IF EXISTS {name}"


def _create_statistics_sql(name: str, field: str, dialect: sa.Dialect) -> str:
    return (
        f"CREATE STATISTICS IF NOT EXISTS {statistics_name(name)} "
        f"ON {statistics_sql(field, dialect)} FROM {Record.__tablename__}"
    )


def _has_statistics(conn: sa.Connection, name: str) -> bool:
    """Whether the statistics of index `name` exist (always, where there are none to make)."""
    if conn.dialect.name != "postgresql":
        return True
    found = conn.execute(
        sa.text(
            "SELECT 1 FROM pg_statistic_ext WHERE stxname = :name "
            "AND stxnamespace = to_regnamespace(current_schema())"
        ),
        {"name": statistics_name(name)},
    ).first()
    return found is not None


def _drop_statistics(conn: sa.Connection, name: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"DROP STATISTICS IF EXISTS {statistics_name(name)}")


def _concurrently(dialect: sa.Dialect) -> str:
    # Without it PostgreSQL would block every write to records while the index builds.
    return "CONCURRENTLY " if dialect.name == "postgresql" else ""


@contextlib.contextmanager
def _ddl_connection() -> Iterator[sa.Connection]:
    """A connection outside any transaction, as CREATE INDEX CONCURRENTLY must run.

    It waits for every transaction that holds an older snapshot, so the session's own
    transaction is ended first (else the build would wait for it forever).
    """
    db.session.rollback()
    with db.engine.connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


def _status(conn: sa.Connection, name: str) -> str:
    """What the catalog says of index `name`: ready, building, invalid or missing."""
    if conn.dialect.name == "sqlite":
        found = conn.execute(
            sa.text("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = :name"),
            {"name": name},
        ).first()
        return READY if found else MISSING
    row = conn.execute(
        sa.text(
            "SELECT i.indisvalid, p.pid IS NOT NULL FROM pg_index i "
            "LEFT JOIN pg_stat_progress_create_index p ON p.index_relid = i.indexrelid "
            "WHERE i.indexrelid = to_regclass(:name)"
        ),
        {"name": name},
    ).first()
    if row is None:
        return MISSING
    valid, building = row
    return READY if valid else BUILDING if building else INVALID


def declared() -> list[Declared]:
    """Every declared data key, with the state of its index (stale: built by an older Coffer)."""
    dialect = db.engine.dialect
    rows = [
        (row.field, row.index_name)
        for row in db.session.scalars(db.select(DataIndex).order_by(DataIndex.field))
    ]
    with _ddl_connection() as conn:
        found = []
        for field, name in rows:
            status = _status(conn, name)
            if status == READY and name != index_name(field, dialect):
                status = STALE
            found.append(Declared(field, name, status))
    return found


def add(field: str) -> str:
    """Build the index that serves sorts on `field` and declare it; nothing to do when ready."""
    field, dialect = field_of(field), db.engine.dialect
    name = index_name(field, dialect)
    row = db.session.get(DataIndex, field)
    previous = row.index_name if row else None
    with _ddl_connection() as conn:
        status, has_statistics = _status(conn, name), _has_statistics(conn, name)
        if status == READY and has_statistics and previous == name:
            return f"{field} is already indexed ({name})"
        if status == BUILDING:
            raise DataIndexError(f"{name} for {field} is being built by another session.")
        if status == INVALID:  # left by a concurrent build that failed
            conn.exec_driver_sql(_drop_sql(name, dialect))
        if status != READY:
            conn.exec_driver_sql(_create_sql(name, field, dialect))
        if not has_statistics:
            conn.exec_driver_sql(_create_statistics_sql(name, field, dialect))
        if dialect.name == "postgresql" and (status != READY or not has_statistics):
            # Statistics on the index's and the filters' expressions: without them PostgreSQL's
            # planner guesses, and can prefer sorting the whole collection to walking the index.
            conn.exec_driver_sql(f"ANALYZE {Record.__tablename__}")
        if previous not in (None, name):  # built for the terms of an older Coffer
            conn.exec_driver_sql(_drop_sql(previous, dialect))
            _drop_statistics(conn, previous)
    _declare(field, name)
    return f"indexed {field} ({name})"


def _declare(field: str, name: str) -> None:
    row = db.session.get(DataIndex, field)
    if row is None:
        db.session.add(DataIndex(field=field, index_name=name))
    else:
        row.index_name = name
    db.session.commit()


def drop(field: str) -> str:
    """Drop the index of `field`, its statistics and its declaration; DataIndexError when
    there is neither index nor declaration."""
    field, dialect = field_of(field), db.engine.dialect
    row = db.session.get(DataIndex, field)
    names = dict.fromkeys(n for n in (row and row.index_name, index_name(field, dialect)) if n)
    with _ddl_connection() as conn:
        present = [name for name in names if _status(conn, name) != MISSING]
        if row is None and not present:
            raise DataIndexError(f"{field} is not indexed (`data-index list` shows which are).")
        for name in present:
            conn.exec_driver_sql(_drop_sql(name, dialect))
        for name in names:
            _drop_statistics(conn, name)
    db.session.execute(db.delete(DataIndex).where(DataIndex.field == field))
    db.session.commit()
    return f"dropped the index of {field}" if present else f"forgot {field} (it had no index)"
