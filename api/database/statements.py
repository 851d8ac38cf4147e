"""Core statements compiled once per dialect and run on the DB-API cursor of the request's
connection: SELECTs (`Statement`) and the writes of the hot paths (`Write`)."""

import functools
import operator
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from api.database.kept import connection


class _OnCursor:
    """A Core statement compiled once per dialect, run on the DB-API cursor of the request's
    connection, with a DB-API error raised as SQLAlchemy raises it from its own executions."""

    __slots__ = ("stmt", "_compiled")

    def __init__(self, stmt: sa.Executable) -> None:
        self.stmt = stmt
        self._compiled: dict[str, _Compiled | object] = {}

    def _compiled_for(self, dialect: Dialect):
        """The statement's `_Compiled` for `dialect`, or _EXPANDING (an `in` of a list)."""
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _compile(self.stmt, dialect)
        return compiled


class Statement(_OnCursor):
    """A Core SELECT compiled once per dialect and run on the DB-API cursor of the request's
    connection: what SQLAlchemy does on every execution (a cache key of the statement, a
    result object, row objects) costs more than the query itself on the hot paths.

    Parameters are bound and values read back with the types' own processors, as SQLAlchemy
    binds and reads them; values that the statement carries (a filter's) are bound once.
    Rows come back as dicts keyed like the statement's columns.
    """

    __slots__ = ()

    def all(self, params: dict) -> list[dict]:
        conn = connection()
        compiled = self._compiled_for(conn.dialect)
        if compiled is _EXPANDING:  # `in` of a list: its SQL follows the list, SQLAlchemy's job
            return [dict(row) for row in conn.execute(self.stmt, params).mappings()]
        return compiled.read(_on_cursor(conn, compiled, params, _fetchall, retry=True))

    def first(self, params: dict) -> dict | None:
        rows = self.all(params)
        return rows[0] if rows else None


class Write(_OnCursor):
    """A Core INSERT, UPDATE or DELETE compiled once per dialect and run on the DB-API cursor
    of the request's connection, as `Statement` runs a SELECT; `run` answers the rowcount.

    It writes in the DB-API connection's own transaction, which SQLAlchemy's bookkeeping does
    not see: on SQLite run it inside `dbapi_transaction` (api/database/writers.py), which
    commits; on PostgreSQL the request's AUTOCOMMIT connection commits each statement. A write
    is never run again, not even on a connection that the server dropped.
    """

    __slots__ = ()

    def run(self, params: dict) -> int:
        conn = connection()
        compiled = self._compiled_for(conn.dialect)
        if compiled is _EXPANDING:
            raise TypeError("a Write takes no expanding `in`")
        return _on_cursor(conn, compiled, params, _rowcount, retry=False)


def _on_cursor(conn, compiled: "_Compiled", params: dict, use: Callable, *, retry: bool):
    """`use(cursor)` after `compiled` ran on a cursor of the request's connection `conn`. With
    `retry` (a read), the request's first statement runs again, once, when the server had
    dropped the connection (RequestConnection.retry_read)."""
    first = retry and not conn._used
    bound = compiled.bind(params)
    try:
        try:
            return _execute(conn.dbapi(), compiled.sql, bound, use)
        except Exception as exc:
            if not conn.retry_read(first, exc):
                raise
            return _execute(conn.dbapi(), compiled.sql, bound, use)
    except Exception as exc:
        raise conn.translated(exc, compiled.sql, bound) from exc


def _execute(dbapi_connection, sql: str, params, use: Callable):
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(sql, params)
        return use(cursor)
    finally:
        cursor.close()


_fetchall = operator.methodcaller("fetchall")
_rowcount = operator.attrgetter("rowcount")


_EXPANDING = object()
_new, _setattr = object.__new__, object.__setattr__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown  # an Enum member: looked up once, not per value
_SQLITE_DATETIME_LENGTH = len("2026-01-02 03:04:05.000006")  # SQLAlchemy's SQLite format
_NAIVE = datetime(2000, 1, 1)


def _result_processor(type_: sa.types.TypeEngine, dialect: Dialect) -> Callable | None:
    """The type's own result processor; on SQLite, for a UUID or a datetime stored in the
    form SQLAlchemy writes them (32 hex digits; "YYYY-MM-DD HH:MM:SS.ffffff"), one that reads
    that form straight, and gives any other to the type's own; on PostgreSQL, none for a
    datetime that the type reads as it comes when it comes aware (see `_leaves_aware`)."""
    process = type_.dialect_impl(dialect).result_processor(dialect, None)
    if process is not None and dialect.name == "postgresql" and _leaves_aware(type_, dialect):
        return None
    if dialect.name != "sqlite" or process is None:
        return process
    if isinstance(type_, sa.Uuid) and type_.as_uuid:
        return functools.partial(_sqlite_uuid, process)
    decorator = type_ if isinstance(type_, sa.TypeDecorator) else None
    if isinstance(type_.impl_instance if decorator else type_, sa.DateTime):
        after = (
            functools.partial(decorator.process_result_value, dialect=dialect)
            if decorator
            else None
        )
        if after is not None and after(_NAIVE).tzinfo is UTC:  # stored naive, read as UTC
            return functools.partial(_sqlite_utc_datetime, process)
        return functools.partial(_sqlite_datetime, process, after)
    return process


def _leaves_aware(type_: sa.types.TypeEngine, dialect: Dialect) -> bool:
    """A type over a `timestamptz` whose own processor only acts on naive datetimes (as
    UTCDateTime does, for SQLite's): psycopg reads a `timestamptz` aware, in UTC on Coffer's
    connections (engine.py), so the processor would call a function per value to change
    nothing."""
    if not isinstance(type_, sa.TypeDecorator):
        return False
    impl = type_.impl_instance
    if not (isinstance(impl, sa.DateTime) and impl.timezone):
        return False
    if impl.dialect_impl(dialect).result_processor(dialect, None) is not None:
        return False
    return type_.process_result_value(_AWARE, dialect) is _AWARE


_AWARE = datetime(2000, 1, 1, tzinfo=UTC)


class StoredUUID(uuid.UUID):
    """A UUID read from the 32 hex digits SQLite stores, with its text made from them once.

    A list answers each record's ids as text: made from the digits, that text costs a slice,
    where `str(UUID)` formats the integer again. It is a UUID in every other way."""

    __slots__ = ("_text",)

    def __str__(self) -> str:
        try:
            return self._text
        except AttributeError:  # made some other way than by the reader (a copy, say)
            return super().__str__()


class StoredDateTime(datetime):
    """A UTC datetime read from the text SQLite stores, with its ISO form to the millisecond
    (what the API answers) made from that text once: a slice, where `isoformat` formats every
    field again. It is an aware datetime in every other way; what `replace` or arithmetic
    makes of it formats itself."""

    _iso_ms: str | None = None

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        text = self._iso_ms
        if text is not None and sep == "T" and timespec == "milliseconds":
            return text
        return super().isoformat(sep, timespec)


def _sqlite_uuid(process: Callable, value):
    if value is None or len(value) != 32:
        return process(value)
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return process(value)
    if len(raw) != 16:  # fromhex skips spaces
        return process(value)
    digits = value.lower()
    found = _new(StoredUUID)  # uuid.UUID(hex=value), without its parsing of other forms
    _setattr(found, "int", int.from_bytes(raw))
    _setattr(found, "is_safe", _UNKNOWN_SAFETY)
    _setattr(
        found,
        "_text",
        f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}",
    )
    return found


def _sqlite_datetime(process: Callable, after: Callable | None, value):
    if value is None or len(value) != _SQLITE_DATETIME_LENGTH or value[10] != " ":
        return process(value)
    found = datetime.fromisoformat(value)
    return found if after is None else after(found)


def _sqlite_utc_datetime(process: Callable, value):
    """A datetime that its type reads as UTC, as a StoredDateTime."""
    if value is None or len(value) != _SQLITE_DATETIME_LENGTH or value[10] != " ":
        return process(value)
    found = StoredDateTime.fromisoformat(value + "+00:00")
    found._iso_ms = f"{value[:10]}T{value[11:23]}+00:00"
    return found


def _compile(stmt: sa.Executable, dialect: Dialect):
    compiled = stmt.compile(dialect=dialect)
    if any(bind.expanding for bind in compiled.binds.values()):
        return _EXPANDING
    return _Compiled(stmt, compiled, dialect)


class _Compiled:
    """A statement's SQL for one dialect, with how to bind its parameters and read its rows."""

    def __init__(self, stmt: sa.Executable, compiled, dialect: Dialect) -> None:
        self.sql = compiled.string
        self.positional = compiled.positional
        names = compiled.positiontup if self.positional else list(compiled.binds)
        escaped = compiled.escaped_bind_names or {}
        # (name in the SQL, parameter, bind processor, value the statement carries, required)
        self.slots: list[tuple[str, str, Callable | None, object, bool]] = []
        for name in names:
            bind = compiled.binds[name]
            process = _bind_processor(bind.type, dialect)
            fixed = None if bind.required else bind.effective_value
            if fixed is not None and process is not None:
                fixed = process(fixed)
            self.slots.append((escaped.get(name, name), name, process, fixed, bind.required))
        columns = stmt.exported_columns  # a SELECT's; a write's RETURNING (none: no rows)
        self.keys = tuple(columns.keys())
        self.processors = tuple(_result_processor(column.type, dialect) for column in columns)
        self.read = _reader(self.keys, self.processors)

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


def _reader(keys: tuple[str, ...], processors: tuple[Callable | None, ...]) -> Callable:
    """`read(rows)`: each row (a DB-API tuple) as a dict keyed like the statement's columns,
    each value through its column's processor, written as one comprehension for these columns
    (a loop over keys and processors cost as much again as the processors):

        def read(rows):
            return [{"id": p0(c0), "collection": c1, ...} for (c0, c1, ...) in rows]
    """
    if not keys:
        return _no_columns
    names = [f"c{i}" for i in range(len(keys))]
    values = [
        name if process is None else f"p{i}({name})"
        for i, (name, process) in enumerate(zip(names, processors, strict=True))
    ]
    display = ", ".join(f"{key!r}: {value}" for key, value in zip(keys, values, strict=True))
    source = f"def read(rows):\n    return [{{{display}}} for ({', '.join(names)},) in rows]\n"
    namespace = {f"p{i}": process for i, process in enumerate(processors) if process is not None}
    exec(compile(source, "<row reader>", "exec"), namespace)  # noqa: S102 - our own source
    return namespace["read"]


def _no_columns(rows: list[tuple]) -> list[dict]:
    return [{} for _ in rows]


def _bind_processor(type_: sa.types.TypeEngine, dialect: Dialect) -> Callable | None:
    """The type's own bind processor; on SQLite, for a datetime type that stores an aware
    UTC datetime naive (UTCDateTime), one that writes the usual value (an aware datetime in
    UTC) straight in the form SQLAlchemy writes, and gives any other to the type's own."""
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    if dialect.name != "sqlite" or process is None or not isinstance(type_, sa.TypeDecorator):
        return process
    if not isinstance(type_.impl_instance, sa.DateTime):
        return process
    if type_.process_bind_param(_AWARE, dialect) != _NAIVE:  # not stored naive in UTC
        return process
    if process(_AWARE) != _SQLITE_AWARE_TEXT:  # not SQLAlchemy's SQLite format
        return process
    return functools.partial(_sqlite_utc_bind, process)


_SQLITE_AWARE_TEXT = "2000-01-01 00:00:00.000000"  # _AWARE, as SQLAlchemy stores it on SQLite


def _sqlite_utc_bind(process: Callable, value):
    if isinstance(value, datetime) and value.tzinfo is UTC:
        return value.isoformat(" ", "microseconds")[:-6]  # "+00:00" off: stored naive
    return process(value)
