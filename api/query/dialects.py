"""JSON values in Python and in each database: type ranks, and the SQLite and PostgreSQL
expressions that read, compare and sort a `data` key the same way on both.

SQLite reads with `json_type`/`json_extract`, PostgreSQL with JSONB `->` and `jsonb_typeof`.
A sort on a data key compiles to ORDER BY terms that are never NULL and hold only inline
literals (no bound parameter), so that an index on the same expressions serves the sort and
the cursor's seek:

- PostgreSQL: a type rank (a CASE), then one typed value per type (numeric, text in
  `COLLATE "C"`, false/true as 0/1), each a constant for values of the other types.
- SQLite: one CASE whose value orders by itself, since SQLite orders numbers before text
  before BLOBs: the number, the string, or X'00' false, X'01' true, X'02' object/array,
  X'03' null/missing.
"""

import re
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from api.models import Record
from api.record_rules import in_int64

# Type ranks: the order of JSON types when sorting on a data field, ascending.
NUMBER, STRING, BOOLEAN, CONTAINER, MISSING = range(5)
TYPED = (NUMBER, STRING, BOOLEAN)  # the ranks that carry a comparable value


def int64_or_float(value: object) -> object:
    """`value`, but an integer beyond int64 as a float: SQLite binds only int64 and reads such
    JSON integers as floats anyway (no record stores one)."""
    if isinstance(value, int) and not in_int64(value):
        return float(value)
    return value


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

    def filter_terms(self, _segments):
        return []  # SQLite's ANALYZE keeps statistics on indexes only, not on expressions

    def sort_terms(self, segments):
        path = self._path(segments, _inline)
        raw = sa.func.json_extract(Record.data, path)
        whens = [(_inline(kind), raw) for kind in ("integer", "real", "text")]
        whens += [(_inline(kind), _blob(code)) for kind, code in self._AFTER_TEXT.items()]
        kind = sa.func.json_type(Record.data, path)
        return [sa.case(*whens, value=kind, else_=_blob(self._LAST))]

    def sort_bounds(self, rank, typed):
        if rank == NUMBER:
            return [sa.literal(int64_or_float(typed))]
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

    def _type(self, segments, literal=_bound):
        return sa.func.jsonb_typeof(self._node(segments, literal))

    def rank(self, segments, literal=_bound):
        if literal is _bound:
            return sa.case(self._RANKS, value=self._type(segments), else_=MISSING)
        ranks = [(_inline(name), _inline(rank)) for name, rank in self._RANKS.items()]
        return sa.case(*ranks, value=self._type(segments, _inline), else_=_inline(MISSING))

    def value(self, segments, rank, literal=_bound):
        kind, node = self._type(segments, literal), self._node(segments, literal)
        if rank == NUMBER:
            return sa.case((kind == literal("number"), sa.cast(node, sa.Numeric)))
        if rank == BOOLEAN:
            boolean = sa.cast(sa.cast(node, sa.Boolean), sa.Integer)
            return sa.case((kind == literal("boolean"), boolean))
        text = self._text(segments, literal)
        return sa.collate(sa.case((kind == literal("string"), text)), "C")

    def filter_terms(self, segments):
        """The expressions that filters on a data key compare (its rank and typed values) with
        their constants inline, as statistics on them are declared. Filters bind the path and
        type names; a custom plan, which sees the bound values as constants, matches them."""
        return [
            self.rank(segments, _inline),
            *(self.value(segments, rank, _inline) for rank in TYPED),
        ]

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
        boolean = sa.cast(sa.cast(node, sa.Boolean), sa.Integer)
        text = self._text(segments, _inline)
        return [
            self.rank(segments, _inline),
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


DIALECTS = {"sqlite": _SQLiteJSON(), "postgresql": _PostgresJSON()}
