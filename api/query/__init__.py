"""The list language of records, which docs/query-language.md specifies.

`parse` reads the query parameters into a `Listing` (parsing.py), a
`Compiler` turns that into SQLAlchemy expressions (compile.py) over the JSON expressions of
SQLite and PostgreSQL (dialects.py), which return the same records in the same order, and
`encode_cursor`/`decode_cursor` carry a page's position (cursor.py). Filter values, paths and
cursor positions are bound parameters; only sort expressions are SQL literals, so that an index
on them (api/indexes.py) serves the sort.
"""

from api.query.compile import Compiler
from api.query.cursor import decode_cursor, encode_cursor
from api.query.dialects import in_int64, lookup, rank_of
from api.query.parsing import (
    MAX_DEPTH,
    MAX_FILTERS,
    OPERATORS,
    SEGMENT,
    TIMESTAMPS,
    Filter,
    Listing,
    SortKey,
    is_filter,
    parse,
    parse_sort,
    path_of,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_FILTERS",
    "OPERATORS",
    "SEGMENT",
    "TIMESTAMPS",
    "Compiler",
    "Filter",
    "Listing",
    "SortKey",
    "decode_cursor",
    "encode_cursor",
    "in_int64",
    "is_filter",
    "lookup",
    "parse",
    "parse_sort",
    "path_of",
    "rank_of",
]
