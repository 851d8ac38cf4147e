"""The list language of records: filters, sorts and keyset cursors, the same on every database.

`GET /api/v1/data/{collection}` takes PostgREST-style filters, `?sort=` and a cursor;
docs/query-language.md specifies them. `parse` reads them into a `Listing` (parsing.py), a
`Compiler` turns that into SQLAlchemy expressions (compile.py) over the JSON expressions of
SQLite and PostgreSQL (dialects.py), which return the same records in the same order, and
`encode_cursor`/`decode_cursor` carry a page's position (cursor.py). Filter values, paths and
cursor positions are bound parameters; only sort expressions are SQL literals, so that an index
on them (api/indexes.py) serves the sort.
"""

from api.query.compile import Compiler
from api.query.cursor import decode_cursor, encode_cursor
from api.query.dialects import in_int64, lookup, rank_of
from api.query.parsing import Filter, Listing, SortKey, is_filter, parse, parse_sort, path_of

__all__ = [
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
