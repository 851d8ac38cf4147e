"""Query strings: loading one with a schema (400 malformed, 422 out of range), and keeping what
a query string loads and parses to, for the next request with the same one."""

import functools
from collections.abc import Callable

from flask import request
from marshmallow import Schema, ValidationError

from api.http.problems import Problem

_NO_QUERY: dict[int, dict] = {}  # per schema: what an empty query string loads to
QUERIES_REMEMBERED = 512  # per process and use: the query strings whose results are kept
REMEMBERED_QUERY_BYTES = 1024  # a longer query string is worked on anew each time
# Credentials that a query string may carry (a stream ticket; an access token, refused): a
# query string that may hold one is never kept.
QUERY_CREDENTIALS = frozenset({"access_token", "ticket"})


def per_query_string(function: Callable) -> Callable:
    """`function`, kept per query string of the request: what it makes of the query string
    (with the arguments it takes, hashable) is the same for every request with that string,
    as `request.args` is, and it must make only immutable values, or hand out copies. A call
    that raises is never kept, and a query string over REMEMBERED_QUERY_BYTES never is either
    (a request line may be 8 kB long: 512 of those would be 4 MB a worker)."""
    kept = functools.lru_cache(maxsize=QUERIES_REMEMBERED)(lambda _string, *key: function(*key))

    @functools.wraps(function)
    def remembered(*key):
        query_string = request.query_string
        if len(query_string) > REMEMBERED_QUERY_BYTES:
            return function(*key)
        return kept(query_string, *key)

    remembered.cache_info = kept.cache_info
    return remembered


@per_query_string
def query_names() -> frozenset[str]:
    """The names of the request's query parameters (the routes ask for a few on every request:
    a token where none may be, a ticket, an admin's owner_id)."""
    return frozenset(request.args.keys())


def load_query(schema: Schema, *, remember: bool = True) -> dict:
    """Validate query parameters: 400 when one is unknown or malformed, 422 when out of range.
    `remember`: keep what a query string loads to, for the next request with the same one (an
    app asks for the first page of its list again and again)."""
    if not query_names():  # the usual case: every schema's defaults, loaded once
        defaults = _NO_QUERY.get(id(schema))
        if defaults is None:
            defaults = _NO_QUERY[id(schema)] = _load_query(schema, {})
        return dict(defaults)
    if not remember:
        return _load_query(schema, request.args.to_dict(flat=True))
    return dict(_remembered_load(schema))  # each value loaded is immutable: str, int, UUID …


@per_query_string
def _remembered_load(schema: Schema) -> dict:
    return _load_query(schema, request.args.to_dict(flat=True))


def _load_query(schema: Schema, args: dict) -> dict:
    try:
        return schema.load(args)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        malformed = any(
            name not in schema.fields
            or set(problems) & set(schema.fields[name].error_messages.values())
            for name, problems in messages.items()
        )
        status = 400 if malformed else 422
        raise Problem(status, "A query parameter is invalid.", errors=messages) from None
