"""The list language of records: filters, sorts and keyset cursors, the same on every database.

`GET /api/v1/data/{collection}` takes PostgREST-style filters, `?sort=` and a cursor. This module
parses them into a `Listing` and compiles that into SQLAlchemy expressions for SQLite
(`json_type`/`json_extract`) and PostgreSQL (JSONB `->`, `jsonb_typeof`), so that both return the
same records in the same order. Filter values and paths and cursor positions are bound
parameters; only the sort expressions are SQL literals (see Sorting).

Fields
    `data.<path>` addresses a key of `data`; dots go into nested objects (`data.address.city`).
    A segment is 1-64 characters of `A-Z a-z 0-9 _ -`, at most 8 deep. Segments name object
    keys only: `data.tags.0` is the key "0", never the first element of an array.
    `created_at` and `updated_at` filter and sort by the record's timestamps; `id` sorts.

Filters: `?<field>=<operator>.<value>`, several ANDed (the same field may repeat)
    Operators `eq ne gt gte lt lte in`. The value is read as JSON when it parses (`3`, `true`,
    `null`, `"3"`), else taken as a plain string (`eq.open`). `in.(a,b,"c,d")` lists items
    separated by commas; an item that starts with a double quote runs to the matching quote
    (backslash escapes it) and may contain commas; each item is then read like a single value
    (so `"a,b"` is the JSON string a,b), with no trimming of spaces. Quotes elsewhere in an
    item are plain characters: `in.(say "hi",x)` is the two items `say "hi"` and `x`.
    `in.()` is the empty list and matches nothing. At most 20 filters and 100 items per `in`.
    Timestamps take RFC 3339 values with a time zone (`created_at=gte.2026-01-01T00:00:00Z`).

Types (on `data` fields)
    A value is a number, string, boolean, object/array, or null; a missing key counts as null.
    An operator compares only values of the same JSON type: `gt.3` never matches "4", `eq.3`
    matches 3 and 3.0 but not "3". Numbers compare numerically, strings by Unicode code point
    (PostgreSQL compares with `COLLATE "C"`), false < true.
    - `gt gte lt lte` take a number or a string; with any other value: 400.
    - `eq` / `in` with null match null or missing; `ne.x` matches present, non-null values
      other than x (a value of another type is "other than x"); `ne.null` matches any present,
      non-null value. No other operator matches null or missing.
    - Objects and arrays cannot be compared identically on both databases (JSONB compares them
      semantically, SQLite only as text), so a filter value that is an object or array is 400.
      Filter on a key inside them instead.

Sorting: `?sort=` comma-separated keys, `-` for descending, at most 4; default `-created_at`
    On a `data` field the order is numbers, strings, booleans, objects/arrays (which tie among
    themselves), then null/missing; descending reverses all of it, so null/missing come first.
    Ties are broken by `id`, in the direction of the last key (`-created_at` is
    `-created_at,-id`: newest first, an index scan backwards).
    A data key compiles to ORDER BY terms that are never NULL and hold only inline literals
    (no bound parameter), so that an index on the same expressions (api/indexes.py, declared
    with `flask data-index add`) serves the sort and the cursor's seek:
    - PostgreSQL: a type rank (a CASE), then one typed value per type (numeric, text in
      `COLLATE "C"`, false/true as 0/1), each a constant for values of the other types.
    - SQLite: one CASE whose value orders by itself, since SQLite orders numbers before text
      before BLOBs: the number, the string, or X'00' false, X'01' true, X'02' object/array,
      X'03' null/missing.

Cursors
    A cursor carries the sort values of the last row of its page (per key: the timestamp, the
    id, or the type rank and typed value of a data field) and a hash of what the page was asked
    for (owner, collection, filters, sort). The next page is everything strictly after that
    position in the full sort order, so paging never repeats nor skips a record whatever the
    sort, even while records are added. When every key has the same direction, "after" is one
    row-value comparison over the ORDER BY terms, which the B-tree indexes seek to; mixed
    directions expand it into (a > x) OR (a = x AND b < y) OR …. A cursor replayed with another
    collection, filter or sort is 400; cursors are signed (api/pagination.py), a tampered one is
    400.
"""

import hashlib
import operator
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from werkzeug.datastructures import MultiDict

from api import pagination
from api.errors import Problem
from api.models import Record

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in")
RANGE_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})
TIMESTAMPS = ("created_at", "updated_at")
COLUMNS = (*TIMESTAMPS, "id")
DEFAULT_SORT = "-created_at"
SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_DEPTH = 8
MAX_FILTERS = 20
MAX_IN_ITEMS = 100
MAX_SORT_KEYS = 4
_INT64 = 2**63

# Type ranks: the order of JSON types when sorting on a data field, ascending.
NUMBER, STRING, BOOLEAN, CONTAINER, MISSING = range(5)
_TYPED = (NUMBER, STRING, BOOLEAN)  # the ranks that carry a comparable value

_COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


@dataclass(frozen=True)
class Filter:
    field: str  # "created_at", "updated_at" or "data.<path>"
    op: str
    values: tuple  # the operand; every item of `in`


@dataclass(frozen=True)
class SortKey:
    field: str  # "created_at", "updated_at", "id" or "data.<path>"
    descending: bool


@dataclass(frozen=True)
class Listing:
    filters: tuple[Filter, ...]
    sort: tuple[SortKey, ...]  # always includes id, the final tie-breaker


def _bad(param: str, message: str) -> Problem:
    return Problem(400, message, errors={param: [message]})


# --- parsing ---------------------------------------------------------------------------------


def is_filter(name: str) -> bool:
    """Whether a query parameter names a filter (the list schema validates the others)."""
    return name in TIMESTAMPS or name.startswith("data.")


def parse(args: MultiDict, *, sort: str | None) -> Listing:
    """The filters among `args` (other parameters are the list schema's) and the sort."""
    filters = []
    for name, texts in args.lists():
        if not is_filter(name):
            if len(texts) > 1:
                raise _bad(name, f"{name} may be given only once.")
            continue
        filters.extend(_parse_filter(name, text) for text in texts)
    if len(filters) > MAX_FILTERS:
        raise _bad("data", f"At most {MAX_FILTERS} filters are allowed.")
    return Listing(filters=tuple(filters), sort=parse_sort(sort))


def path_of(field: str, param: str) -> tuple[str, ...]:
    """The key segments of a `data.<path>` field; 400 when the path is not valid."""
    segments = tuple(field.split(".")[1:])
    if not 0 < len(segments) <= MAX_DEPTH or not all(SEGMENT.fullmatch(s) for s in segments):
        raise _bad(
            param,
            f"{field!r} is not a valid field path: data.<key>[.<key>…], up to {MAX_DEPTH} keys "
            "of 1-64 characters among A-Z a-z 0-9 _ -.",
        )
    return segments


def _parse_filter(name: str, text: str) -> Filter:
    if name.startswith("data."):
        path_of(name, name)
    op, dot, operand = text.partition(".")
    if not dot or op not in OPERATORS:
        raise _bad(
            name,
            f"Filter {name}={text!r} needs <operator>.<value> with an operator among "
            f"{', '.join(OPERATORS)}.",
        )
    values = _items(name, operand) if op == "in" else (_scalar(name, operand),)
    if name in TIMESTAMPS:
        values = tuple(_timestamp(name, value) for value in values)
    else:
        _check_types(name, op, values)
    return Filter(field=name, op=op, values=values)


def _scalar(param: str, text: str) -> object:
    """A filter value: JSON when it parses, else the text itself."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text
    if "\x00" in text or (isinstance(value, str) and "\x00" in value):
        raise _bad(param, "Filter values must not contain U+0000.")
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
        value = float(value)  # beyond every stored integer either way; SQLite binds only int64
    return value


def _items(param: str, operand: str) -> tuple:
    """The items of `in.(…)`: split on commas, except inside an item that opens with `"`."""
    if len(operand) < 2 or operand[0] != "(" or operand[-1] != ")":
        raise _bad(param, f"The in operator takes a list in parentheses: {param}=in.(a,b).")
    inner = operand[1:-1]
    if not inner:
        return ()
    items, start, quoted, escaped = [], 0, False, False
    for index, char in enumerate(inner):
        if escaped:
            escaped = False
        elif quoted:
            escaped, quoted = char == "\\", char != '"'
        elif char == '"' and index == start:
            quoted = True
        elif char == ",":
            items.append(inner[start:index])
            start = index + 1
    if quoted:
        raise _bad(param, f"Unterminated double quote in {param}=in.{operand}.")
    items.append(inner[start:])
    if len(items) > MAX_IN_ITEMS:
        raise _bad(param, f"The in operator takes at most {MAX_IN_ITEMS} items.")
    return tuple(_scalar(param, item) for item in items)


def _timestamp(param: str, value: object) -> datetime:
    message = (
        f"{param} filters take RFC 3339 timestamps with a time zone, e.g. 2026-01-01T00:00:00Z."
    )
    if not isinstance(value, str):
        raise _bad(param, message)
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _bad(param, message) from None


def _check_types(param: str, op: str, values: tuple) -> None:
    for value in values:
        if rank_of(value) == CONTAINER:
            raise _bad(param, "Objects and arrays cannot be compared; filter on a key inside them.")
        if op in RANGE_OPERATORS and rank_of(value) not in (NUMBER, STRING):
            raise _bad(param, f"The {op} operator compares numbers or strings only.")


def parse_sort(text: str | None) -> tuple[SortKey, ...]:
    """`?sort=` as keys, completed by a tie-breaker on id in the direction of the last key."""
    keys: list[SortKey] = []
    for item in (DEFAULT_SORT if text is None else text).split(","):
        descending = item.startswith("-")
        field = item[1:] if descending else item
        if field.startswith("data."):
            path_of(field, "sort")
        elif field not in COLUMNS:
            raise _bad(
                "sort",
                f"Unknown sort key {item!r}: sort by created_at, updated_at, id or data.<path>, "
                "with - for descending.",
            )
        if any(key.field == field for key in keys):
            raise _bad("sort", f"The sort key {field} is given twice.")
        keys.append(SortKey(field, descending))
    if len(keys) > MAX_SORT_KEYS:
        raise _bad("sort", f"At most {MAX_SORT_KEYS} sort keys are allowed.")
    if all(key.field != "id" for key in keys):
        keys.append(SortKey("id", keys[-1].descending))
    return tuple(keys)


# --- JSON values, in Python and in each database --------------------------------------------


def rank_of(value: object) -> int:
    """The type rank of a JSON value (bool before int: True is an int in Python)."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int | float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    return CONTAINER


def lookup(data: object, segments: tuple[str, ...]) -> object:
    """The value at a path of object keys, None when missing (as the databases read it)."""
    for segment in segments:
        if not isinstance(data, dict) or segment not in data:
            return None
        data = data[segment]
    return data


# Sort expressions are written into the SQL text, never bound: an index on an expression serves
# a query only when the query's expression is the same, constants included, and a bound
# parameter never equals a constant (SQLite compares the parsed expressions; PostgreSQL's
# generic plans see a $n where the index has a literal). This is safe because only two kinds
# of value are ever inlined: type names and ranks written in this module, and JSON paths built
# from segments that path_of restricted to [A-Za-z0-9_-]. _SAFE_LITERAL checks it again, so no
# quote or backslash can reach the SQL, and the quotes are doubled all the same.
_SAFE_LITERAL = re.compile(r'[A-Za-z0-9_$."-]*')


def _inline(value: str | int) -> sa.ColumnElement:
    """A string or integer constant as an SQL literal (only path and type-name characters)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"only strings and integers are inlined, not {value!r}")
    if isinstance(value, int):
        return sa.literal_column(str(value), sa.Integer)
    if not _SAFE_LITERAL.fullmatch(value):
        raise ValueError(f"refusing to write {value!r} into SQL")
    return sa.literal_column("'" + value.replace("'", "''") + "'", sa.Text)


def _int64(value: int | float) -> int | float:
    """A number SQLite can bind: beyond int64 it reads JSON integers as floats anyway."""
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        return float(value)
    return value


def _bound(value: str) -> sa.ColumnElement:
    return sa.literal(value, sa.Text)


def _blob(code: int) -> sa.ColumnElement:
    return sa.literal_column(f"X'{code:02X}'", sa.LargeBinary)


class _SQLiteJSON:
    """`json_type` tells the type ('integer', 'real', 'text', 'true', …); `json_extract` gives
    numbers and text natively but booleans as 1/0 and objects as text, so values are only
    read under a type check."""

    _RANKS = {
        "integer": NUMBER,
        "real": NUMBER,
        "text": STRING,
        "true": BOOLEAN,
        "false": BOOLEAN,
        "object": CONTAINER,
        "array": CONTAINER,
    }
    # SQLite orders NULL < numbers < text < BLOBs, and BLOBs byte by byte: so one value sorts a
    # data key, with booleans, objects/arrays and null/missing as one-byte BLOBs after the text.
    _AFTER_TEXT = {"false": 0, "true": 1, "object": 2, "array": 2}
    _LAST = 3  # null or missing
    # SQLite (3.40) seeks an index with a row value only when its terms are plain columns.
    row_values_seek_expressions = False

    def _path(self, segments, literal=_bound):
        return literal("$" + "".join(f'."{segment}"' for segment in segments))

    def _type(self, segments):
        return sa.func.json_type(Record.data, self._path(segments))

    def rank(self, segments):
        return sa.case(self._RANKS, value=self._type(segments), else_=MISSING)

    def value(self, segments, rank):
        kind = self._type(segments)
        if rank == BOOLEAN:
            return sa.case((kind == "true", 1), (kind == "false", 0))
        raw = sa.func.json_extract(Record.data, self._path(segments))
        if rank == NUMBER:
            return sa.case((kind.in_(("integer", "real")), raw))
        return sa.case((kind == "text", raw))

    def param(self, value, rank):
        return sa.literal(int(value) if rank == BOOLEAN else value)

    def sort_terms(self, segments):
        path = self._path(segments, _inline)
        raw = sa.func.json_extract(Record.data, path)
        whens = [(_inline(kind), raw) for kind in ("integer", "real", "text")]
        whens += [(_inline(kind), _blob(code)) for kind, code in self._AFTER_TEXT.items()]
        kind = sa.func.json_type(Record.data, path)
        return [sa.case(*whens, value=kind, else_=_blob(self._LAST))]

    def sort_bounds(self, rank, typed):
        if rank == NUMBER:
            return [sa.literal(_int64(typed))]
        if rank == STRING:
            return [sa.literal(typed, sa.Text)]
        code = int(typed) if rank == BOOLEAN else 2 if rank == CONTAINER else self._LAST
        return [sa.literal(bytes([code]), sa.LargeBinary)]


class _PostgresJSON:
    """`->` with a text key reads object keys only (`#>` and subscripts would index arrays);
    casts to numeric/boolean are guarded by `jsonb_typeof`, strings compare in `COLLATE "C"`."""

    _RANKS = {
        "number": NUMBER,
        "string": STRING,
        "boolean": BOOLEAN,
        "object": CONTAINER,
        "array": CONTAINER,
    }
    row_values_seek_expressions = True

    def _node(self, segments, literal=_bound):
        node = sa.type_coerce(Record.data, JSONB)
        for segment in segments:
            node = node.op("->", return_type=JSONB)(literal(segment))
        return node

    def _text(self, segments, literal=_bound):
        parent = self._node(segments[:-1], literal)
        return parent.op("->>", return_type=sa.Text)(literal(segments[-1]))

    def _type(self, segments):
        return sa.func.jsonb_typeof(self._node(segments))

    def rank(self, segments):
        return sa.case(self._RANKS, value=self._type(segments), else_=MISSING)

    def value(self, segments, rank):
        kind, node = self._type(segments), self._node(segments)
        if rank == NUMBER:
            return sa.case((kind == "number", sa.cast(node, sa.Numeric)))
        if rank == BOOLEAN:
            return sa.case((kind == "boolean", sa.cast(sa.cast(node, sa.Boolean), sa.Integer)))
        return sa.collate(sa.case((kind == "string", self._text(segments))), "C")

    def param(self, value, rank):
        if rank == BOOLEAN:
            return sa.literal(int(value))
        if rank == NUMBER:  # exact: jsonb numbers are numerics, and floats keep their repr
            return sa.literal(
                Decimal(repr(value) if isinstance(value, float) else value), sa.Numeric
            )
        return sa.literal(value, sa.Text)

    def sort_terms(self, segments):
        node = self._node(segments, _inline)
        kind = sa.func.jsonb_typeof(node)
        ranks = [(_inline(name), _inline(rank)) for name, rank in self._RANKS.items()]
        boolean = sa.cast(sa.cast(node, sa.Boolean), sa.Integer)
        text = self._text(segments, _inline)
        return [
            sa.case(*ranks, value=kind, else_=_inline(MISSING)),
            sa.case((kind == _inline("number"), sa.cast(node, sa.Numeric)), else_=_inline(0)),
            sa.collate(sa.case((kind == _inline("string"), text), else_=_inline("")), "C"),
            sa.case((kind == _inline("boolean"), boolean), else_=_inline(0)),
        ]

    def sort_bounds(self, rank, typed):
        return [
            sa.literal(rank),
            self.param(typed if rank == NUMBER else 0, NUMBER),
            sa.literal(typed if rank == STRING else "", sa.Text),
            sa.literal(int(typed) if rank == BOOLEAN else 0),
        ]


_DIALECTS = {"sqlite": _SQLiteJSON(), "postgresql": _PostgresJSON()}


# --- compiling -------------------------------------------------------------------------------


class Compiler:
    """Turns a Listing into WHERE, ORDER BY and keyset expressions for one database."""

    def __init__(self, dialect: str) -> None:
        if dialect not in _DIALECTS:
            raise NotImplementedError(f"The data query language does not support {dialect}.")
        self.json = _DIALECTS[dialect]

    def apply(self, stmt: sa.Select, listing: Listing, position: list | None = None) -> sa.Select:
        """`stmt` filtered and ordered as `listing` says, after `position` when given."""
        stmt = stmt.where(*(self._condition(f) for f in listing.filters))
        if position is not None:
            stmt = stmt.where(self._after(listing, position))
        return stmt.order_by(*self._order_by(listing))

    def _condition(self, flt: Filter):
        if flt.field in TIMESTAMPS:
            column = getattr(Record, flt.field)
            if flt.op == "in":
                return column.in_(flt.values)
            return _COMPARE[flt.op](column, flt.values[0])
        segments = path_of(flt.field, flt.field)
        if flt.op in ("eq", "in"):
            return self._equals_any(segments, flt.values)
        value = flt.values[0]
        rank = self.json.rank(segments)
        if flt.op == "ne" and value is None:
            return rank != MISSING
        typed = self.json.value(segments, rank_of(value))
        if flt.op == "ne":  # another type counts as "other than"; OR hides the NULL of `typed`
            return sa.and_(
                rank != MISSING, sa.or_(rank != rank_of(value), typed != self._param(value))
            )
        return _COMPARE[flt.op](typed, self._param(value))

    def _equals_any(self, segments, values):
        clauses = []
        if any(value is None for value in values):
            clauses.append(self.json.rank(segments) == MISSING)
        for rank in _TYPED:
            same = [value for value in values if value is not None and rank_of(value) == rank]
            if same:
                typed = self.json.value(segments, rank)
                clauses.append(typed.in_([self.json.param(v, rank) for v in same]))
        return sa.or_(sa.false(), *clauses)

    def _param(self, value):
        return self.json.param(value, rank_of(value))

    def sort_terms(self, field: str) -> list:
        """The ORDER BY expressions of an ascending sort on a `data.<path>` field, which an index
        must list, in this order, to serve it (api/indexes.py)."""
        return self.json.sort_terms(path_of(field, "sort"))

    def _terms(self, key: SortKey) -> list:
        if key.field in COLUMNS:
            return [getattr(Record, key.field)]
        return self.sort_terms(key.field)

    def _bounds(self, key: SortKey, value) -> list:
        """The values of `_terms(key)` at a cursor position, as bound parameters."""
        if key.field in COLUMNS:
            return [sa.literal(value, getattr(Record, key.field).type)]
        rank, typed = value
        return self.json.sort_bounds(rank, typed)

    def _order_by(self, listing: Listing) -> list:
        return [
            term.desc() if key.descending else term.asc()
            for key in listing.sort
            for term in self._terms(key)
        ]

    def _after(self, listing: Listing, position: list):
        """Rows strictly after `position` in the listing's order (a keyset predicate)."""
        keyed = [
            (term, key.descending, bound)
            for key, value in zip(listing.sort, position, strict=True)
            for term, bound in zip(self._terms(key), self._bounds(key, value), strict=True)
        ]
        if len({key.descending for key in listing.sort}) > 1:
            return _lexicographically_after(keyed)
        # One direction: a row-value comparison, which B-tree indexes seek to.
        descending = listing.sort[0].descending
        row = sa.tuple_(*(term for term, _, _ in keyed))
        bound = sa.tuple_(*(value for _, _, value in keyed))
        after = row < bound if descending else row > bound
        first, _, first_bound = keyed[0]
        if listing.sort[0].field in COLUMNS or self.json.row_values_seek_expressions:
            return after
        # SQLite would scan from the start of the index: seek on the first term, then compare.
        return sa.and_(first <= first_bound if descending else first >= first_bound, after)


def _lexicographically_after(terms: list):
    """(a, b, …) after (x, y, …): a beyond x, or a = x and b beyond y, or … (no term is ever
    NULL: sort terms of data keys have a value for every type)."""
    clauses = []
    for index, (expression, descending, value) in enumerate(terms):
        equal = [earlier == earlier_value for earlier, _, earlier_value in terms[:index]]
        beyond = expression < value if descending else expression > value
        clauses.append(sa.and_(*equal, beyond))
    return sa.or_(*clauses)


# --- cursors ---------------------------------------------------------------------------------


def position(listing: Listing, record: Record) -> list:
    """The sort values of `record`, as a cursor carries them."""
    values: list = []
    for key in listing.sort:
        if key.field == "id":
            values.append(str(record.id))
        elif key.field in TIMESTAMPS:
            values.append(getattr(record, key.field).isoformat())
        else:
            value = lookup(record.data, path_of(key.field, "sort"))
            rank = rank_of(value)
            values.append([rank, value if rank in _TYPED else None])
    return values


def _fingerprint(listing: Listing, scope: tuple[str, ...]) -> str:
    filters = sorted(orjson.dumps([f.field, f.op, list(f.values)]) for f in listing.filters)
    sort = [[key.field, key.descending] for key in listing.sort]
    blob = orjson.dumps([list(scope), [f.decode() for f in filters], sort])
    return hashlib.sha256(blob).hexdigest()[:24]


def encode_cursor(listing: Listing, scope: tuple[str, ...], record: Record) -> str:
    """A signed cursor for the page after `record`, valid only for this listing and scope."""
    payload = {"q": _fingerprint(listing, scope), "p": position(listing, record)}
    return pagination.encode_cursor(payload)


def decode_cursor(cursor: str, listing: Listing, scope: tuple[str, ...]) -> list:
    """The position a cursor carries; 400 when it was made for another query or is damaged."""
    payload = pagination.decode_cursor(cursor)
    if not isinstance(payload, dict) or payload.get("q") != _fingerprint(listing, scope):
        raise _bad(
            "cursor",
            "This cursor belongs to another query: keep the collection, filters and sort "
            "of the page that returned it.",
        )
    try:
        return [_decoded(key, v) for key, v in zip(listing.sort, payload["p"], strict=True)]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _bad("cursor", "The cursor is malformed.") from None


def _decoded(key: SortKey, value: object) -> object:
    if key.field == "id":
        return uuid.UUID(value)
    if key.field in TIMESTAMPS:
        return datetime.fromisoformat(value)
    rank, typed = value
    expected = rank if rank in _TYPED else MISSING
    if type(rank) is not int or rank not in range(MISSING + 1) or rank_of(typed) != expected:
        raise ValueError("not a data position")
    return rank, typed
