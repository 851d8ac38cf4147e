"""Compiling: a Listing into WHERE, ORDER BY and keyset (after-a-cursor) expressions.

The page after a cursor is every row strictly after its position in the full sort order. When
every key has the same direction that is one row-value comparison over the ORDER BY terms,
which B-tree indexes seek to; mixed directions expand it into (a > x) OR (a = x AND b < y) OR ….
"""

import operator

import sqlalchemy as sa

from api.models import Record
from api.query.dialects import DIALECTS, MISSING, TYPED, rank_of
from api.query.parsing import COLUMNS, TIMESTAMPS, Filter, Listing, SortKey, path_of

_COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


class Compiler:
    """Turns a Listing into WHERE, ORDER BY and keyset expressions for one database."""

    def __init__(self, dialect: str) -> None:
        if dialect not in DIALECTS:
            raise NotImplementedError(f"The data query language does not support {dialect}.")
        self.json = DIALECTS[dialect]

    def apply(self, stmt: sa.Select, listing: Listing, position: list | None = None) -> sa.Select:
        """`stmt` filtered and ordered as `listing` says, after `position` when given."""
        stmt = stmt.where(*(self._condition(f) for f in listing.filters))
        if position is not None:
            stmt = stmt.where(self._after(listing, position))
        return stmt.order_by(*self._order_by(listing))

    def condition(self, flt: Filter):
        """One filter as a condition on the records table."""
        return self._condition(flt)

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
        for rank in TYPED:
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

    def filter_terms(self, field: str) -> list:
        """The expressions that filters on a `data.<path>` field compare, on which planner
        statistics serve them (api/indexes.py); none on SQLite."""
        return self.json.filter_terms(path_of(field, "filter"))

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
